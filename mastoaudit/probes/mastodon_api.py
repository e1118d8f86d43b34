"""Mastodon as an anonymous outsider sees it: admin dashboards on every reachable vhost and app
port, the anonymous API (public timeline, peers, domain blocks), unsigned ActivityPub fetches, the
streaming server's metrics, WebFinger on LOCAL_DOMAIN, the version and NodeInfo.

Facts (mastoaudit/facts/mastodon.py): `mastodon_exposure` (MastodonExposure), `mastodon_version`
(MastodonVersion), `nodeinfo` (NodeInfo).

`fetch_nodeinfo` and `parse_nodeinfo_index`/`parse_nodeinfo_document` are meant for reuse (the
federation probes read peers' NodeInfo): they take hostile documents (links as one object instead
of a list, huge bodies, wrong types) and say what was wrong instead of raising.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

from ..facts.mastodon import Endpoint, MastodonExposure, MastodonVersion, NodeInfo
from ..model import Location, Status
from ..net.csp import escape, parse_header_values
from ..net.http import HttpClient, HttpError
from ..net.runner import ProbeContext, ProbeFact, ProbeProblem, probe
from ..net.target import ScanTarget
from .http_headers import configured_media, load_json, media_host_name, media_hosts_from_csp

BODY_BYTES = 256 * 1024
NODEINFO_BYTES = 64 * 1024  # a NodeInfo document is a few hundred bytes; more is not one
POOL = 8
APP_PORT, STREAMING_PORT = 3000, 4000
ACTIVITY_JSON = "application/activity+json"
INSTANCE_ACTOR = "mastodon.internal"  # the instance actor's username since Mastodon 4.0


# --- NodeInfo (reusable) --------------------------------------------------------------------------

_SCHEMA = re.compile(r"^https?://nodeinfo\.diaspora\.software/ns/schema/(\d{1,3})\.(\d{1,3})$")


def _excerpt(body: bytes) -> str:
    return escape(body[:200].decode("utf-8", "replace"), 200)


def _text(value: object, limit: int = 100) -> str | None:
    """A short printable string from JSON, or None for anything else (control and format characters,
    such as bidi overrides that would disguise a report, included)."""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        return None
    if any(unicodedata.category(c)[0] == "C" for c in value):
        return None
    return value.strip()


def parse_nodeinfo_index(body: bytes) -> tuple[str | None, str | None, str | None]:
    """/.well-known/nodeinfo -> (href of the highest 2.x schema, its version, problem)."""
    if len(body) > NODEINFO_BYTES:
        return None, None, f"index larger than {NODEINFO_BYTES} bytes"
    doc = load_json(body)
    if not isinstance(doc, dict):
        return None, None, f"not a JSON object: {_excerpt(body)}"
    links = doc.get("links")
    if isinstance(links, dict):  # seen in the wild: one link object instead of a list
        links = [links]
    if not isinstance(links, list):
        return None, None, f"no links list: {_excerpt(body)}"
    best: tuple[tuple[int, int], str] | None = None
    for link in links[:50]:
        if not isinstance(link, dict):
            continue
        rel, href = link.get("rel"), link.get("href")
        match = _SCHEMA.match(rel) if isinstance(rel, str) else None
        if not match or not isinstance(href, str) or len(href) > 2048:
            continue
        version = (int(match.group(1)), int(match.group(2)))
        if version[0] != 2 or urlsplit(href).scheme not in ("http", "https") or not urlsplit(href).hostname:
            continue
        if best is None or version > best[0]:
            best = (version, href)
    if best is None:
        return None, None, f"no NodeInfo 2.x link: {_excerpt(body)}"
    return best[1], f"{best[0][0]}.{best[0][1]}", None


def parse_nodeinfo_document(body: bytes) -> dict:
    """A NodeInfo 2.x document -> {software_name, software_version, protocols, open_registrations,
    users_total, problem}. Fields of the wrong type are left out and named in `problem`."""
    out: dict = {"software_name": None, "software_version": None, "protocols": (), "open_registrations": None,
                 "users_total": None, "problem": None}
    if len(body) > NODEINFO_BYTES:
        out["problem"] = f"document larger than {NODEINFO_BYTES} bytes"
        return out
    doc = load_json(body)
    if not isinstance(doc, dict):
        out["problem"] = f"not a JSON object: {_excerpt(body)}"
        return out
    wrong = []
    software = doc.get("software")
    if isinstance(software, dict):
        out["software_name"] = _text(software.get("name"), 64)
        out["software_version"] = _text(software.get("version"), 100)
        if out["software_name"] is None:
            wrong.append(f"software.name {escape(repr(software.get('name')), 60)}")
        if out["software_version"] is None:
            wrong.append(f"software.version {escape(repr(software.get('version')), 60)}")
    else:
        wrong.append("no software object")
    protocols = doc.get("protocols")
    if isinstance(protocols, dict):  # NodeInfo 1.x shape: {"inbound": [...], "outbound": [...]}
        protocols = [p for v in protocols.values() if isinstance(v, list) for p in v]
    if isinstance(protocols, list):
        out["protocols"] = tuple(dict.fromkeys(t for p in protocols[:20] if (t := _text(p, 40))))
    if isinstance(doc.get("openRegistrations"), bool):
        out["open_registrations"] = doc["openRegistrations"]
    usage = doc.get("usage")
    users = usage.get("users") if isinstance(usage, dict) else None
    total = users.get("total") if isinstance(users, dict) else None
    if isinstance(total, int) and not isinstance(total, bool) and 0 <= total < 10**12:
        out["users_total"] = total
    if wrong:
        out["problem"] = "; ".join(wrong)
    return out


def fetch_nodeinfo(http: HttpClient, domain: str, *, address: str | None = None,
                   base_url: str | None = None) -> NodeInfo:
    """The domain's NodeInfo: the well-known index, then the highest 2.x document. Never raises.
    `base_url` replaces https://DOMAIN (another port or scheme)."""
    index_url = f"{base_url or f'https://{domain}'}/.well-known/nodeinfo"
    try:
        r = http.get(index_url, headers={"Accept": "application/json"}, follow=True, max_body=NODEINFO_BYTES,
                     address=address)
    except HttpError as exc:
        return NodeInfo(domain, index_url, problem=escape(str(exc), 300), missing="refused" in str(exc).lower())
    if r.status != 200:
        return NodeInfo(domain, index_url, problem=f"{index_url} answered {r.status}", missing=r.status in (404, 410))
    if r.truncated:
        return NodeInfo(domain, index_url, problem=f"index larger than {NODEINFO_BYTES} bytes")
    href, schema, problem = parse_nodeinfo_index(r.body)
    if problem or href is None:
        return NodeInfo(domain, index_url, problem=problem)
    try:
        doc = http.get(href, headers={"Accept": "application/json"}, follow=True, max_body=NODEINFO_BYTES)
    except HttpError as exc:
        return NodeInfo(domain, index_url, href, schema, problem=escape(str(exc), 300))
    if doc.status != 200:
        return NodeInfo(domain, index_url, href, schema, problem=f"{escape(href, 200)} answered {doc.status}")
    if doc.truncated:
        return NodeInfo(domain, index_url, href, schema, problem=f"document larger than {NODEINFO_BYTES} bytes")
    parsed = parse_nodeinfo_document(doc.body)
    return NodeInfo(domain, index_url, href, schema, **parsed)


# --- the exposure fact ------------------------------------------------------------------------------


def _recognise(name: str, status: int, body: bytes) -> tuple[bool, int | None]:
    if status != 200:
        return False, None
    if name == "sidekiq":
        return bool(re.search(rb"sidekiq", body, re.IGNORECASE)), None
    if name == "pghero":
        return bool(re.search(rb"pghero", body, re.IGNORECASE)), None
    if name == "metrics":
        return bool(re.search(rb"^# (HELP|TYPE) \w", body, re.MULTILINE)), None
    doc = load_json(body)
    if name in ("timeline", "peers", "domain-blocks", "directory"):
        return isinstance(doc, list), len(doc) if isinstance(doc, list) else None
    if name == "actor":
        return isinstance(doc, dict) and isinstance(doc.get("id"), str) and "type" in doc, None
    if name in ("webfinger-local", "webfinger"):
        return isinstance(doc, dict) and ("subject" in doc or "links" in doc), None
    return doc is not None, None


def request(http: HttpClient, name: str, vhost: str, url: str, *, address: str | None = None,
            headers: dict[str, str] | None = None, source: str = "") -> tuple[Endpoint, bytes]:
    try:
        r = http.get(url, headers=headers, address=address, max_body=BODY_BYTES)
    except HttpError as exc:
        text = str(exc)
        return Endpoint(name, vhost, url, address, error=escape(text, 300), refused="refused" in text.lower(),
                        source=source), b""
    recognised, count = _recognise(name, r.status, r.body)
    ctype = (dict(r.headers).get("content-type") or "").split(";", 1)[0].strip().lower()
    return Endpoint(name, vhost, url, address, r.status, r.location, ctype, recognised, count, _excerpt(r.body),
                    source=source), r.body


def _bracket(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


def _web_address(target: ScanTarget, http: HttpClient) -> str | None:
    if target.addresses:
        return target.addresses[0]
    found = http.resolver.addresses(target.web_domain)
    return found[0] if found else None


def dashboard_requests(target: ScanTarget, address: str | None, media_hosts: Iterable[str]) -> list[dict]:
    """/sidekiq and /pghero on the web vhost and on every other vhost and app port reachable."""
    web = target.web_domain
    bases: list[tuple[str, str, str | None, dict]] = [
        (f"https://{web}", f"https://{web}", None, {}), (f"http://{web}", f"http://{web}", None, {})]
    if address:
        bare = _bracket(address)
        bases += [(f"https://{address} (Host: {address})", f"https://{bare}", address, {}),
                  (f"http://{address} (Host: {address})", f"http://{bare}", address, {})]
        for host in media_hosts:
            bases += [(f"https://{host} on {address}", f"https://{host}", address, {}),
                      (f"http://{host} on {address}", f"http://{host}", address, {})]
    # Puma directly: as nginx would send it, so that Rails' force_ssl does not just redirect.
    for addr in dict.fromkeys([*target.addresses, *target.scan_addresses] or ([address] if address else [])):
        bases.append((f"{addr}:{APP_PORT} (Puma, Host: {web})", f"http://{web}:{APP_PORT}", addr,
                      {"X-Forwarded-Proto": "https"}))
    out = []
    for vhost, base, addr, headers in bases:
        for name in ("sidekiq", "pghero"):
            out.append({"name": name, "vhost": vhost, "url": f"{base}/{name}", "address": addr, "headers": headers})
    return out


def metrics_requests(target: ScanTarget, address: str | None) -> list[dict]:
    web = target.web_domain
    out = [{"name": "metrics", "vhost": f"https://{web} (nginx)", "url": f"https://{web}/api/v1/streaming/metrics"},
           {"name": "metrics", "vhost": f"https://{web} (nginx)", "url": f"https://{web}/metrics"}]
    for addr in dict.fromkeys([*target.addresses, *target.scan_addresses] or ([address] if address else [])):
        out.append({"name": "metrics", "vhost": f"{addr}:{STREAMING_PORT} (streaming)",
                    "url": f"http://{_bracket(addr)}:{STREAMING_PORT}/metrics", "address": addr})
    return out


def _run(http: HttpClient, requests: list[dict]) -> list[tuple[Endpoint, bytes]]:
    if not requests:
        return []
    with ThreadPoolExecutor(max_workers=min(POOL, len(requests)), thread_name_prefix="mastodon") as ex:
        return list(ex.map(lambda kw: request(http, **kw), requests))


def _local_usernames(docs: Iterable[object]) -> list[str]:
    """Usernames of local accounts in API answers (an account, a status, or lists of them)."""
    found = []
    for doc in docs:
        for item in (doc if isinstance(doc, list) else [doc])[:5]:
            if not isinstance(item, dict):
                continue
            for account in (item, item.get("account"), (item.get("contact") or {}).get("account")
                            if isinstance(item.get("contact"), dict) else None):
                if not isinstance(account, dict):
                    continue
                name, acct = _text(account.get("username"), 64), account.get("acct")
                if name and re.match(r"^[A-Za-z0-9_.-]+$", name) and (not isinstance(acct, str) or "@" not in acct):
                    found.append(name)
    return list(dict.fromkeys(found))


def actor_from_webfinger(body: bytes, allowed_hosts: set[str]) -> str | None:
    doc = load_json(body)
    links = doc.get("links") if isinstance(doc, dict) else None
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict) or link.get("rel") != "self":
            continue
        href, kind = link.get("href"), link.get("type")
        if isinstance(href, str) and isinstance(kind, str) and ("activity+json" in kind or "ld+json" in kind):
            parts = urlsplit(href)
            if parts.scheme == "https" and (parts.hostname or "").lower() in allowed_hosts:
                return href
    return None


def _csp_media_hosts(http: HttpClient, web: str) -> list[str]:
    """The media hosts the home page's CSP names (a scan may not have been told S3_ALIAS_HOST)."""
    try:
        r = http.get(f"https://{web}/", max_body=1024)
    except HttpError:
        return []
    return media_hosts_from_csp(parse_header_values([v for k, v in r.headers if k == "content-security-policy"]),
                                web)


def _version(results: dict[str, tuple[Endpoint, bytes]], info: NodeInfo | None
             ) -> Iterable[ProbeFact | ProbeProblem]:
    for key in ("instance-v2", "instance-v1"):
        endpoint, body = results.get(key, (None, b""))
        if endpoint is None or endpoint.status != 200:
            continue
        doc = load_json(body)
        if not isinstance(doc, dict):
            yield ProbeProblem("mastodon_version", f"{endpoint.url} is not a JSON object: {endpoint.excerpt}",
                               endpoint.url, Status.WARN)
            continue
        version = _text(doc.get("version"), 100)
        if version is None:
            yield ProbeProblem("mastodon_version", f"{endpoint.url} has no readable version: "
                               f"{escape(repr(doc.get('version')), 100)}", endpoint.url, Status.WARN)
            continue
        yield ProbeFact("mastodon_version", MastodonVersion(version, Location(endpoint.url), endpoint.url))
        return
    if info is not None and info.ok and info.software_version and (info.software_name or "").lower() in (
            "mastodon", "glitch-soc", "hometown"):
        yield ProbeFact("mastodon_version", MastodonVersion(info.software_version, Location(info.url or info.index_url),
                                                            "nodeinfo"))


@probe("mastodon-exposure", timeout=60,
       description="Admin dashboards, anonymous API, unsigned ActivityPub fetches, streaming metrics, NodeInfo")
def mastodon_exposure(target: ScanTarget, ctx: ProbeContext) -> Iterable[ProbeFact | ProbeProblem]:
    http = ctx.http
    web, local = target.web_domain, target.local_domain
    address = _web_address(target, http)
    api = {"Accept": "application/json"}
    named = [
        ("instance-v2", {"name": "instance", "vhost": f"https://{web}", "url": f"https://{web}/api/v2/instance",
                         "headers": api}),
        ("timeline", {"name": "timeline", "vhost": f"https://{web}",
                      "url": f"https://{web}/api/v1/timelines/public?limit=1", "headers": api}),
        ("peers", {"name": "peers", "vhost": f"https://{web}", "url": f"https://{web}/api/v1/instance/peers",
                   "headers": api}),
        ("domain-blocks", {"name": "domain-blocks", "vhost": f"https://{web}",
                           "url": f"https://{web}/api/v1/instance/domain_blocks", "headers": api}),
        ("directory", {"name": "directory", "vhost": f"https://{web}",
                       "url": f"https://{web}/api/v1/directory?limit=1&local=true", "headers": api}),
    ]
    configured = [media_host_name(a) for a in configured_media(target)]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="nodeinfo") as side:
        nodeinfo_job = side.submit(fetch_nodeinfo, http, web)
        csp_job = side.submit(_csp_media_hosts, http, web)
        first = _run(http, [kw for _, kw in named] + metrics_requests(target, address))
        results = {key: first[i] for i, (key, _) in enumerate(named)}
        media_hosts = [h for h in dict.fromkeys([*configured, *csp_job.result()]) if h != web]
        second = dashboard_requests(target, address, media_hosts)
        if results["instance-v2"][0].status != 200:
            second.append({"name": "instance", "vhost": f"https://{web}", "url": f"https://{web}/api/v1/instance",
                           "headers": api})
        # candidate accounts: the contact, the directory, the public timeline; the lab's admin last
        names = _local_usernames([load_json(results[k][1]) for k in ("instance-v2", "directory", "timeline")
                                  if results[k][0].status == 200])
        names = list(dict.fromkeys([*names, "admin"]))[:4]
        for name in names:
            second.append({"name": "webfinger", "vhost": f"https://{web}", "source": name,
                           "url": f"https://{web}/.well-known/webfinger?resource=" + quote(f"acct:{name}@{local}"),
                           "headers": {"Accept": "application/jrd+json"}})
        second_results = _run(http, second)
        if results["instance-v2"][0].status != 200:
            results["instance-v1"] = next(r for r in second_results if r[0].name == "instance")
        actor, source = None, ""
        for endpoint, body in second_results:
            if endpoint.name == "webfinger" and endpoint.status == 200:
                actor = actor_from_webfinger(body, {web, local})
                if actor:
                    source = f"webfinger acct:{endpoint.source}@{local}"
                    break
        third: list[dict] = []
        if actor:
            third.append({"name": "actor", "vhost": f"https://{web}", "url": actor, "source": source,
                          "headers": {"Accept": ACTIVITY_JSON}})
        if local != web:
            who = next((e.source for e, _ in second_results if e.name == "webfinger" and e.status == 200),
                       INSTANCE_ACTOR)
            third.append({"name": "webfinger-local", "vhost": f"https://{local}",
                          "url": f"https://{local}/.well-known/webfinger?resource=" + quote(f"acct:{who}@{local}"),
                          "headers": {"Accept": "application/jrd+json"}})
        third_results = _run(http, third)
        info = nodeinfo_job.result()
    exposure = MastodonExposure(web, local, dict(target.expects), unset=target.unset)
    exposure.endpoints = [e for e, _ in first + second_results + third_results]
    if not actor:
        exposure.actor_note = f"no local actor found by WebFinger (tried {', '.join(names)})"
    yield ProbeFact("mastodon_exposure", exposure)
    yield from _version(results, info)
    yield ProbeFact("nodeinfo", info)
    if not info.ok and not info.missing:
        yield ProbeProblem("nodeinfo", f"NodeInfo could not be read: {info.problem}", info.url or info.index_url,
                           Status.WARN)
