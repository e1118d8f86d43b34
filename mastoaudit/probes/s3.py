"""S3: the media bucket as an anonymous client sees it, directly and through the media host.

Directly at the endpoint with boto3 (unsigned requests; signed ones as well when the user gives
credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, only with --s3-signed): boto3 builds, signs
and parses the requests, and the scan's one outbound client sends them (`_OneClient`), so the
endpoint's requests are judged by the scan's address policy, bounded in size and ended by the
probe's deadline like every other request; and through the media alias host
(S3_ALIAS_HOST, Mastodon's documented nginx proxy in front of the bucket) with the scan's HTTP
client: can a stranger list the bucket, write into it, read a media file, reach it over plain
HTTP, write to it from another origin (CORS)? Does the bucket hold something that looks like a
database dump, readable by anyone? What do its ACL, policy and public access block say?

An endpoint on a loopback or private address the scan was not pointed at (the lab's moto on
127.0.0.1:9000, an internal MinIO) is not what outsiders reach: what it answers is recorded but
the media host is judged, and no write is attempted there.

The write test puts an empty object under mastoaudit-probe/ and removes it again (unsigned, then
with the credentials if given); the fact says whether it was removed.
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from html import unescape
from typing import Any
from urllib.parse import quote, urlsplit

from ..addresses import is_public
from ..facts.s3 import MAX_POLICY, Attempt, S3Fact, cors_write_methods
from ..net.http import HttpError
from ..net.runner import ProbeContext, ProbeFact, probe
from ..net.target import S3Settings, ScanTarget
from ..net.text import excerpt

PROBE_PREFIX = "mastoaudit-probe/"
MAX_KEYS = 1000  # keys listed per listing
SHOWN_KEYS = 20  # keys kept as evidence
PROBE_ORIGIN = "https://mastoaudit-probe.invalid"
DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "403", "401", "Forbidden", "Unauthorized",
                "InvalidAccessKeyId", "SignatureDoesNotMatch", "MethodNotAllowed", "405"}
ABSENT_CODES = {"NoSuchPublicAccessBlockConfiguration", "NoSuchBucketPolicy", "NoSuchCORSConfiguration",
                "ServerSideEncryptionConfigurationNotFoundError", "NoSuchTagSet", "404"}
QUERY_NAMES = {"acl": "acl", "public_access_block": "publicAccessBlock", "policy": "policy", "cors": "cors",
               "encryption": "encryption", "versioning": "versioning"}

# Names of objects that look like database dumps or backups (never something Mastodon serves as media).
DUMP_RE = re.compile(
    r"(?i)(\.(sql|dump|pgdump|psql|bak|backup|rdb|aof|tar|tgz|tbz2|txz|zip|7z)(\.(gz|bz2|xz|zst|lz4|gpg|enc|age))?$"
    r"|(^|/)(backups?|dumps?|db[-_]?backups?|pg_?dumps?|database)(/|[-_.])"
    r"|(^|/)[^/]*(_production|_prod|pg_?dump)[^/]*\.(gz|bz2|xz|zst)$)")


def looks_like_dump(key: str) -> bool:
    return not key.startswith(PROBE_PREFIX) and bool(DUMP_RE.search(key))


# --- parsers (hostile input: bounded, never raise) -----------------------------------------------


_KEY_RE = re.compile(rb"<Key>([^<]{1,1024})</Key>")


def parse_listing(body: bytes) -> tuple[bool, list[str]]:
    """(is it a ListBucketResult, its keys) from an XML body, without an XML parser (entities)."""
    if b"<ListBucketResult" not in body[:4096]:
        return False, []
    keys = [unescape(m.group(1).decode("utf-8", "replace"))[:300] for m in _KEY_RE.finditer(body)]
    return True, keys[:MAX_KEYS]


def summarize_acl(response: dict) -> dict[str, Any]:
    grants = []
    for grant in response.get("Grants", [])[:100] if isinstance(response.get("Grants"), list) else []:
        if not isinstance(grant, dict) or not isinstance(grant.get("Grantee"), dict):
            continue
        grantee = grant["Grantee"]
        who = grantee.get("URI") or grantee.get("DisplayName") or grantee.get("ID") or grantee.get("EmailAddress")
        grants.append({"grantee": str(who)[:120], "permission": str(grant.get("Permission", ""))[:40]})
    return {"grants": grants}


# --- the probe ----------------------------------------------------------------------------------


def _credentials() -> tuple[dict[str, str] | None, str | None]:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None, None
    creds = {"aws_access_key_id": key, "aws_secret_access_key": secret}
    if os.environ.get("AWS_SESSION_TOKEN"):
        creds["aws_session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return creds, "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment"


S3_BODY_BYTES = 2 * 1024 * 1024  # a listing of MAX_KEYS keys of 1,024 bytes each fits
STREAMED_BYTES = 4096  # GetObject: the probe reads 64 bytes of an object; more is not kept
_NOT_FORWARDED = {"user-agent", "expect", "host", "accept-encoding"}  # the client sets its own


class EndpointUnanswered(OSError):
    """An S3 request the outbound client could not complete (refused by the policy, timed out,
    too large...): the attempt's error, like any other network error."""


class _Raw(io.BytesIO):
    """A body botocore can read (`stream()` for parsed answers, `read()` for GetObject)."""

    def stream(self, **_kw):
        yield self.getvalue()


class _OneClient:
    """Sends boto3's requests through the scan's outbound client (botocore's `before-send` hook:
    an answer returned there is used instead of botocore's own connection pool), so that no S3
    request opens a connection of its own, waits past the probe's deadline or reads an endless body."""

    def __init__(self, http, verify: str) -> None:
        self.http, self.verify = http, verify

    def __call__(self, request, event_name: str = "", **_kw):
        from botocore.awsrequest import AWSResponse, HeadersDict

        body = request.body
        if hasattr(body, "read"):
            body = body.read(1)
        if body:  # the probe writes empty objects only: the client sends no request bodies
            raise EndpointUnanswered(f"{request.url[:200]}: a request with a body is not sent")
        headers = {k: v.decode("latin-1") if isinstance(v, bytes) else str(v) for k, v in request.headers.items()
                   if k.lower() not in _NOT_FORWARDED}
        streamed = event_name.endswith(".GetObject")
        try:
            response = self.http.get(request.url, method=request.method, headers=headers,
                                     max_body=STREAMED_BYTES if streamed else S3_BODY_BYTES, verify=self.verify)
        except HttpError as exc:
            raise EndpointUnanswered(str(exc)) from None
        if response.truncated and not streamed:
            raise EndpointUnanswered(f"{request.url[:200]}: the answer is larger than {S3_BODY_BYTES} bytes")
        merged: dict[str, str] = {}
        for name, value in response.headers:
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        return AWSResponse(request.url, response.status, HeadersDict(merged), _Raw(response.body))


def _client(settings: S3Settings, target: ScanTarget, creds: dict[str, str] | None, http):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    host = urlsplit(settings.endpoint).hostname or ""
    style = "virtual" if host.endswith("amazonaws.com") else "path"
    config = Config(signature_version=UNSIGNED if creds is None else "s3v4", connect_timeout=target.timeout,
                    read_timeout=target.timeout, retries={"max_attempts": 1, "mode": "standard"},
                    s3={"addressing_style": style}, user_agent_extra="mastoaudit")
    session = boto3.session.Session()
    client = session.client("s3", endpoint_url=settings.endpoint, region_name=settings.region, config=config,
                            verify=target.ca_bundle or True, **(creds or {}))
    # The certificate must verify (as boto3 requires), against --ca-bundle when given.
    client.meta.events.register("before-send.s3", _OneClient(http, "require"))
    return client


def _call(fn, **kw) -> tuple[str, dict | None, int | None, str, str]:
    """(outcome, response, HTTP status, code, message) of one boto3 call; never raises."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = fn(**kw)
    except ClientError as exc:
        err = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(
            exc.response, dict) else None
        code = str(err.get("Code", ""))[:80]
        outcome = "denied" if code in DENIED_CODES else "absent" if code in ABSENT_CODES else "error"
        return outcome, None, status, code, str(err.get("Message", ""))[:200]
    except (BotoCoreError, OSError, ValueError) as exc:
        return "error", None, None, type(exc).__name__, str(exc)[:200]
    return "allowed", response, response.get("ResponseMetadata", {}).get("HTTPStatusCode"), "", ""


def _view(target: ScanTarget, ctx: ProbeContext, endpoint: str) -> tuple[str, str | None]:
    host = urlsplit(endpoint).hostname or ""
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        found = ctx.resolver.addresses(host)
        if not found:
            return "unknown", None
        address = found[0]
    if is_public(address) or address in target.own_addresses():
        return "public", address
    return "internal", address


class _Prober:
    def __init__(self, target: ScanTarget, ctx: ProbeContext, fact: S3Fact, anon, signed) -> None:
        self.target, self.ctx, self.fact, self.anon, self.signed = target, ctx, fact, anon, signed
        self.bucket = fact.settings.bucket if fact.settings else ""

    # -- the media host (HTTP) --

    def _http(self, url: str, action: str, *, method: str = "GET", headers: dict[str, str] | None = None,
              max_body: int = 65536) -> tuple[Attempt, Any]:
        try:
            response = self.ctx.http.get(url, method=method, headers=headers, max_body=max_body)
        except HttpError as exc:
            return Attempt("media host", url, action, "error", code="no answer", detail=str(exc)[:200]), None
        return Attempt("media host", url, action, "answered", response.status), response

    def alias_listing(self, query: str) -> Attempt:
        url = f"https://{self.fact.alias_host}/{query}"
        attempt, response = self._http(url, "list")
        if response is None:
            return attempt
        listing, keys = parse_listing(response.body)
        attempt.outcome = "allowed" if response.status == 200 and listing else "denied"
        attempt.detail = (f"ListBucketResult with {len(keys)} keys" if listing else
                          f"{response.header('content-type') or 'no content type'}: {excerpt(response.body, 80)}")
        attempt.data = {"keys": keys}
        return attempt

    def alias_write(self) -> Attempt:
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}.txt"
        url = f"https://{self.fact.alias_host}/{key}"
        attempt, response = self._http(url, "write", method="PUT", headers={"Content-Length": "0"}, max_body=4096)
        attempt.data["key"] = key
        if response is None:
            return attempt
        attempt.outcome = "allowed" if 200 <= response.status < 300 else "denied"
        attempt.detail = f"PUT {key}"
        if attempt.outcome == "allowed":
            removal, _ = self._http(url, "remove", method="DELETE", max_body=4096)
            _, gone = self._http(url, "verify", max_body=64)
            removed = gone is not None and gone.status == 404
            attempt.data["removed"] = removed
            attempt.data["removal"] = f"unsigned DELETE via the media host: {removal.evidence}"
            if not removed and self.signed is not None and self.bucket:
                attempt.data.update(self._signed_remove(key))
        return attempt

    def alias_read(self, key: str) -> Attempt:
        url = f"https://{self.fact.alias_host}/{quote(key)}"
        attempt, response = self._http(url, "read", max_body=4096)
        if response is None:
            return attempt
        attempt.outcome = "allowed" if response.status in (200, 206) else "denied"
        attempt.data = {h: response.header(h) for h in ("content-type", "x-content-type-options",
                                                        "content-security-policy", "access-control-allow-origin")}
        attempt.detail = f"content-type {response.header('content-type') or '-'}"
        return attempt

    def plain_http(self, key: str | None) -> Attempt:
        url = f"http://{self.fact.alias_host}/{quote(key) if key else ''}"
        try:
            response = self.ctx.http.get(url, max_body=1024)
        except HttpError as exc:
            return Attempt("media host", url, "read-plain-http", "refused", detail=str(exc)[:200])
        location = response.location or ""
        outcome = "redirected" if response.status in (301, 302, 303, 307, 308) and location.startswith(
            "https://") else "served"
        return Attempt("media host", url, "read-plain-http", outcome, response.status,
                       detail=f"Location: {location[:200]}" if location else
                       f"content-type {(response.header('content-type') or '-')[:80]}")

    def preflight(self, url: str, via: str, address: str | None = None) -> Attempt:
        headers = {"Origin": PROBE_ORIGIN, "Access-Control-Request-Method": "PUT",
                   "Access-Control-Request-Headers": "content-type"}
        try:
            response = self.ctx.http.get(url, method="OPTIONS", headers=headers, max_body=4096, address=address)
        except HttpError as exc:
            return Attempt(via, url, "preflight", "error", code="no answer", detail=str(exc)[:200])
        origin = response.header("access-control-allow-origin") or ""
        methods = response.header("access-control-allow-methods") or ""
        writes = cors_write_methods(methods) if origin in ("*", PROBE_ORIGIN) else []
        return Attempt(via, url, "preflight", "allowed" if writes else "denied", response.status,
                       detail=f"Access-Control-Allow-Origin: {origin[:80] or '-'}; "
                              f"Access-Control-Allow-Methods: {methods[:120] or '-'}",
                       data={"write_methods": writes, "allow_origin": origin[:200]})

    # -- the endpoint (boto3) --

    def endpoint_listing(self, client, via: str) -> Attempt:
        url = f"{self.fact.endpoint_url}/{self.bucket}?list-type=2"
        outcome, response, status, code, message = _call(client.list_objects_v2, Bucket=self.bucket, MaxKeys=MAX_KEYS)
        keys = [str(o.get("Key", ""))[:300] for o in (response or {}).get("Contents", [])[:MAX_KEYS]]
        detail = f"{len(keys)} keys" + (" (more not listed)" if (response or {}).get("IsTruncated") else "") \
            if response is not None else message
        return Attempt(via, url, "list", outcome, status, code, detail, {"keys": keys})

    def endpoint_write(self) -> Attempt:
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}.txt"
        url = self.fact.object_url(key, "endpoint")
        outcome, _, status, code, message = _call(self.anon.put_object, Bucket=self.bucket, Key=key, Body=b"")
        attempt = Attempt("endpoint", url, "write", outcome, status, code, message or f"PUT {key}", {"key": key})
        if outcome == "allowed":
            removal = _call(self.anon.delete_object, Bucket=self.bucket, Key=key)
            gone = _call(self.anon.head_object, Bucket=self.bucket, Key=key)
            removed = gone[0] != "allowed" and gone[2] == 404
            attempt.data["removed"] = removed
            attempt.data["removal"] = f"unsigned DELETE: {removal[0]} {removal[2] or ''} {removal[3]}".strip()
            if not removed and self.signed is not None:
                attempt.data.update(self._signed_remove(key))
        return attempt

    def _signed_remove(self, key: str) -> dict[str, Any]:
        outcome, _, status, code, _ = _call(self.signed.delete_object, Bucket=self.bucket, Key=key)
        gone = _call(self.signed.head_object, Bucket=self.bucket, Key=key)
        return {"removed": gone[2] == 404, "removal": f"DELETE with the credentials: {outcome} {status or ''} {code}"}

    def endpoint_read(self, key: str, action: str = "read") -> Attempt:
        url = self.fact.object_url(key, "endpoint")
        outcome, response, status, code, message = _call(self.anon.get_object, Bucket=self.bucket, Key=key,
                                                         Range="bytes=0-63")
        body = (response or {}).get("Body")
        if body is not None:
            try:
                body.read(64)
            except Exception as exc:  # botocore/urllib3 errors while streaming: the status is known already
                message = f"reading the body failed: {type(exc).__name__}"
            finally:
                body.close()
        return Attempt("endpoint", url, action, outcome, status, code, message,
                       {"content-type": (response or {}).get("ContentType")})

    def config(self, name: str) -> Attempt:
        calls = {"acl": "get_bucket_acl", "public_access_block": "get_public_access_block",
                 "policy": "get_bucket_policy", "cors": "get_bucket_cors", "encryption": "get_bucket_encryption",
                 "versioning": "get_bucket_versioning"}
        best: Attempt | None = None
        for via, client in (("endpoint, signed", self.signed), ("endpoint", self.anon)):
            if client is None:
                continue
            outcome, response, status, code, message = _call(getattr(client, calls[name]), Bucket=self.bucket)
            attempt = Attempt(via, f"{self.fact.endpoint_url}/{self.bucket}?{QUERY_NAMES[name]}", name,
                              "read" if outcome == "allowed" else outcome, status, code, message)
            if response is not None:
                try:
                    attempt.data = _summarize(name, response)
                except (AttributeError, TypeError, ValueError):
                    attempt.outcome, attempt.detail = "error", f"unexpected answer: {excerpt(str(response))}"
            if attempt.outcome in ("read", "absent"):
                return attempt
            best = best or attempt
        assert best is not None
        return best


def _summarize(name: str, response: dict) -> dict[str, Any]:
    if name == "acl":
        return summarize_acl(response)
    if name == "public_access_block":
        conf = response.get("PublicAccessBlockConfiguration", {})
        return {k: bool(conf.get(k)) for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                               "RestrictPublicBuckets")}
    if name == "policy":
        return {"policy": str(response.get("Policy", ""))[:MAX_POLICY]}
    if name == "cors":
        rules = response.get("CORSRules", []) if isinstance(response.get("CORSRules"), list) else []
        return {"rules": [{"methods": [str(m)[:10] for m in r.get("AllowedMethods", [])][:10],
                           "origins": [str(o)[:100] for o in r.get("AllowedOrigins", [])][:10]}
                          for r in rules[:20] if isinstance(r, dict)]}
    if name == "encryption":
        rules = response.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        algos = [str(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm", ""))[:40]
                 for r in rules[:10] if isinstance(r, dict)]
        return {"algorithms": [a for a in algos if a]}
    if name == "versioning":
        return {"status": str(response.get("Status", "") or "never enabled")[:40],
                "mfa_delete": str(response.get("MFADelete", "") or "")[:40]}
    return {}


def collect(target: ScanTarget, ctx: ProbeContext) -> S3Fact | None:
    settings = target.s3
    alias = (settings.alias_host if settings else None) or target.media_host
    if settings is None and not alias:
        return None
    creds, source = _credentials() if settings and settings.signed else (None, None)
    fact = S3Fact(settings, alias, credentials=source,
                  _secrets=tuple(v for k, v in (creds or {}).items() if k != "aws_access_key_id"))
    anon = signed = None
    if settings is not None:
        fact.endpoint_view, fact.endpoint_address = _view(target, ctx, settings.endpoint)
        anon = _client(settings, target, None, ctx.http)
        signed = _client(settings, target, creds, ctx.http) if creds else None
    prober = _Prober(target, ctx, fact, anon, signed)

    with ThreadPoolExecutor(max_workers=12, thread_name_prefix="s3") as pool:
        # Phase 1: listings, writes and the bucket's configuration.
        listings = []
        if alias:
            listings += [pool.submit(prober.alias_listing, q) for q in ("", "?list-type=2")]
        if settings is not None:
            listings.append(pool.submit(prober.endpoint_listing, anon, "endpoint"))
        signed_listing = pool.submit(prober.endpoint_listing, signed, "endpoint, signed") if signed else None
        writes = [pool.submit(prober.alias_write)] if alias else []
        if settings is not None and fact.endpoint_judged:
            writes.append(pool.submit(prober.endpoint_write))
        configs = {name: pool.submit(prober.config, name) for name in (
            "acl", "public_access_block", "policy", "cors", "encryption", "versioning")} if settings else {}
        fact.listings = [f.result() for f in listings]
        fact.writes = [f.result() for f in writes]
        fact.config = {name: f.result() for name, f in configs.items()}
        seen: dict[str, None] = {}
        for attempt in [*fact.listings, *([signed_listing.result()] if signed_listing else [])]:
            if attempt.data.get("keys"):
                fact.keys_source.append(attempt.via + (" " + attempt.url if attempt.via == "media host" else ""))
            for key in attempt.data.get("keys", []):
                if not key.startswith(PROBE_PREFIX):
                    seen[key] = None
        fact.keys = list(seen)[:MAX_KEYS]
        for attempt in fact.listings:  # our own write probe may show up in a listing made meanwhile
            keys = [k for k in attempt.data.get("keys", []) if not k.startswith(PROBE_PREFIX)]
            if attempt.outcome == "allowed" and len(keys) != len(attempt.data.get("keys", [])):
                attempt.detail = re.sub(r"\d+ keys", f"{len(keys)} keys", attempt.detail, count=1)
            attempt.data["keys"] = keys

        # Phase 2: a media file read (directly and through the media host), plain HTTP, CORS, dumps.
        key = (settings.public_object if settings else None) or next(
            (k for k in fact.keys if k.startswith(("media_attachments/", "accounts/", "cache/"))), None)
        fact.public_object = key
        reads, plains, preflights, dumps = [], [], [], []
        if key and alias:
            reads.append(pool.submit(prober.alias_read, key))
        if key and settings is not None:
            reads.append(pool.submit(prober.endpoint_read, key))
        if alias:
            plains.append(pool.submit(prober.plain_http, key))
            preflights.append(pool.submit(prober.preflight, f"https://{alias}/{quote(key or PROBE_PREFIX)}",
                                          "media host"))
        if settings is not None and fact.endpoint_judged:
            preflights.append(pool.submit(prober.preflight, fact.object_url(key or PROBE_PREFIX, "endpoint"),
                                          "endpoint", fact.endpoint_address))
        for dump in [k for k in fact.keys if looks_like_dump(k)][:5]:
            dumps.append(pool.submit(prober.alias_read, dump) if alias else pool.submit(
                prober.endpoint_read, dump, "read-dump"))
        fact.reads = [f.result() for f in reads]
        fact.plain_http = [f.result() for f in plains]
        fact.preflights = [f.result() for f in preflights]
        fact.dumps = [f.result() for f in dumps]
        for attempt in fact.dumps:
            attempt.action = "read-dump"
    return fact


@probe("s3", timeout=40, description="the media bucket and its media host: anonymous listing, writes and reads, "
                                      "HTTPS, CORS, ACL and policy, dumps in the bucket")
def probe_s3(target: ScanTarget, ctx: ProbeContext):
    fact = collect(target, ctx)
    if fact is not None:
        yield ProbeFact("s3", fact)
