"""The mail domains' DNS as a receiving MTA sees it: SPF (evaluated for the relay), DKIM keys at the
selectors, DMARC, MTA-STS (record and policy), TLS-RPT; and the web domain's CAA and DNSSEC.

Every record is data from the network: the parsers below return a fact with an `error` (an escaped,
truncated excerpt) for anything malformed, never raise.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from ..facts.mail import (
    CaaFact,
    DkimFact,
    DkimKey,
    DmarcFact,
    DnssecFact,
    MtaStsFact,
    RelayCoverage,
    SpfFact,
    TlsRptFact,
)
from ..net.dns import Answer
from ..net.http import HttpError
from ..net.relays import Relay, mx_hosts, smtp_relays
from ..net.runner import ProbeContext, ProbeFact, ProbeProblem, probe
from ..net.spf import SpfEvaluator
from ..net.target import ScanTarget
from ..net.text import excerpt

MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 §3.2: a policy is at most 64 KiB
MAX_SELECTORS = 16
MAX_TAGS = 64
SPF_BUDGET = 15.0  # seconds of DNS per mail domain's SPF walk (the probe's limit is 30)
DEFAULT_SELECTORS = ScanTarget.__dataclass_fields__["dkim_selectors"].default

Item = ProbeFact | ProbeProblem


# --- tag=value lists (DKIM, DMARC, MTA-STS, TLS-RPT) ---------------------------------------------------

class TagError(ValueError):
    pass


_TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def parse_tags(text: str, *, strip_spaces_in: Iterable[str] = ()) -> dict[str, str]:
    """RFC 6376 §3.2 tag-list: `tag=value; ...`; duplicate or malformed tags are errors."""
    if len(text) > 8192:
        raise TagError("record longer than 8192 characters")
    if any(ord(c) < 0x20 and c not in "\t\r\n" for c in text):
        raise TagError(f"control characters in {excerpt(text, 80)}")
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not _TAG_NAME.match(name):
            raise TagError(f"not a tag=value pair: {excerpt(part.strip(), 80)}")
        if name in tags:
            raise TagError(f"tag {name!r} appears twice")
        if len(tags) >= MAX_TAGS:
            raise TagError(f"more than {MAX_TAGS} tags")
        value = value.strip()
        if name in strip_spaces_in:
            value = re.sub(r"\s+", "", value)
        tags[name] = value
    return tags


# --- SPF ----------------------------------------------------------------------------------------------


# --- DKIM ---------------------------------------------------------------------------------------------


def parse_dkim(selector: str, name: str, text: str) -> DkimKey:
    """One DKIM key record (RFC 6376 §3.6.1, RFC 8463): v=DKIM1; k=rsa|ed25519; p=base64."""
    key = DkimKey(selector, name, record=text[:200])
    try:
        tags = parse_tags(text, strip_spaces_in=("p",))
    except TagError as exc:
        key.error = f"malformed record: {exc}"
        return key
    if "v" in tags and (tags["v"] != "DKIM1" or next(iter(tags)) != "v"):
        key.error = f"v= must be DKIM1 and come first, found {excerpt(tags['v'], 40)}"
        return key
    if "p" not in tags:
        key.error = "no p= tag (public key)"
        return key
    key.key_type = tags.get("k", "rsa").lower()
    key.testing = "y" in tags.get("t", "").split(":")
    if tags["p"] == "":
        key.revoked = True
        return key
    try:
        der = base64.b64decode(tags["p"], validate=True)
    except (binascii.Error, ValueError):
        key.error = f"p= is not base64: {excerpt(tags['p'], 60)}"
        return key
    if key.key_type == "rsa":
        key.bits, key.error = _rsa_bits(der)
    elif key.key_type == "ed25519":
        if len(der) == 32:
            key.bits = 256
        else:
            key.error = f"an ed25519 key is 32 bytes, p= has {len(der)}"
    else:
        key.error = f"unknown key type k={excerpt(key.key_type, 40)}"
    return key


def _rsa_bits(der: bytes) -> tuple[int | None, str | None]:
    try:
        public = load_der_public_key(der)
    except (ValueError, TypeError):
        # RFC 6376 names the PKCS#1 RSAPublicKey; a few signers publish that instead of SPKI.
        pem = b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END RSA PUBLIC KEY-----\n"
        try:
            public = load_pem_public_key(pem)
        except (ValueError, TypeError):
            return None, f"p= is not an RSA public key ({len(der)} bytes)"
    if isinstance(public, rsa.RSAPublicKey):
        return public.key_size, None
    if isinstance(public, ed25519.Ed25519PublicKey):
        return None, "k=rsa but p= holds an ed25519 key"
    return None, f"k=rsa but p= holds a {type(public).__name__}"


# --- DMARC --------------------------------------------------------------------------------------------

_POLICIES = ("none", "quarantine", "reject")


def parse_dmarc(text: str) -> tuple[dict[str, str], str | None]:
    """(tags, error) of a DMARC record (RFC 7489 §6.3). A missing or invalid p= (or sp=) with a valid
    rua= reads as p=none (§6.6.3: the receiver acts as if p=none were published)."""
    try:
        tags = parse_tags(text, strip_spaces_in=("rua", "ruf"))
    except TagError as exc:
        return {}, f"malformed record: {exc}"
    if next(iter(tags), None) != "v" or tags["v"] != "DMARC1":
        return tags, "v=DMARC1 must be the first tag"
    for name in ("adkim", "aspf"):
        if name in tags and tags[name].lower() not in ("r", "s"):
            return tags, f"{name}={excerpt(tags[name], 40)} is not r or s"
    if "pct" in tags and (not tags["pct"].isdigit() or int(tags["pct"]) > 100):
        return tags, f"pct={excerpt(tags['pct'], 40)} is not 0-100"
    for name in ("rua", "ruf"):
        for uri in filter(None, tags.get(name, "").split(",")):
            if not re.match(r"^(mailto:[^@\s]+@[^@\s!]+|https?://\S+)(![0-9]+[kmgt]?)?$", uri, re.IGNORECASE):
                return tags, f"{name}: not a mailto: or http(s) URI: {excerpt(uri, 80)}"
    bad = [n for n in ("p", "sp") if n in tags and tags[n].lower() not in _POLICIES]
    if "p" not in tags or bad:
        why = f"{bad[0]}={excerpt(tags[bad[0]], 40)} is not none, quarantine or reject" if bad else "no p= tag"
        if not tags.get("rua"):
            return tags, why
        tags.pop("sp", None)
        tags["p"] = "none"  # §6.6.3 with a valid rua=
    for name in ("p", "sp"):
        if name in tags:
            tags[name] = tags[name].lower()
    return tags, None


def rua_domains(tags: dict[str, str]) -> list[str]:
    out = []
    for uri in filter(None, tags.get("rua", "").split(",")):
        if uri.lower().startswith("mailto:"):
            out.append(uri.split("@", 1)[1].split("!", 1)[0].rstrip(".").lower())
    return out


def _related(a: str, b: str) -> bool:
    """Same domain or one below the other: no external-destination authorization needed (approximation
    of 'same organizational domain' without a public suffix list)."""
    return a == b or a.endswith("." + b) or b.endswith("." + a)


# --- MTA-STS and TLS-RPT ------------------------------------------------------------------------------


def parse_sts_record(text: str) -> tuple[dict[str, str], str | None]:
    try:
        tags = parse_tags(text)
    except TagError as exc:
        return {}, f"malformed record: {exc}"
    if next(iter(tags), None) != "v" or tags["v"] != "STSv1":
        return tags, "v=STSv1 must be the first tag"
    if not re.fullmatch(r"[A-Za-z0-9]{1,32}", tags.get("id", "")):
        return tags, f"id= must be 1-32 letters or digits, found {excerpt(tags.get('id'), 40)}"
    return tags, None


def parse_sts_policy(body: bytes) -> tuple[dict[str, object], str | None]:
    """RFC 8461 §3.2: `key: value` lines; version, mode, mx (repeated), max_age."""
    if len(body) > MAX_POLICY_BYTES:
        return {}, f"policy larger than {MAX_POLICY_BYTES} bytes"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}, f"policy is not UTF-8 text: {excerpt(body[:60])}"
    policy: dict[str, object] = {"mx": []}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_]{1,32}", key.strip()):
            return policy, f"not a key: value line: {excerpt(line, 80)}"
        key, value = key.strip(), value.strip()
        if key == "mx":
            policy["mx"].append(value.lower())  # type: ignore[union-attr]
        elif key in ("version", "mode", "max_age") and key in policy:
            return policy, f"{key} appears twice"
        elif key in ("version", "mode", "max_age"):
            policy[key] = value
    if policy.get("version") != "STSv1":
        return policy, f"version must be STSv1, found {excerpt(policy.get('version'), 40)}"
    if policy.get("mode") not in ("enforce", "testing", "none"):
        return policy, f"mode must be enforce, testing or none, found {excerpt(policy.get('mode'), 40)}"
    max_age = str(policy.get("max_age", ""))
    if not max_age.isdigit() or len(max_age) > 10 or int(max_age) > 31557600:
        return policy, f"max_age must be 0-31557600 seconds, found {excerpt(policy.get('max_age'), 40)}"
    policy["max_age"] = int(max_age)
    if policy["mode"] != "none" and not policy["mx"]:
        return policy, "no mx: line"
    return policy, None


def mx_pattern_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: a pattern is a name, or `*.` and a name matching exactly one more label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == host


def parse_tlsrpt(text: str) -> tuple[dict[str, str], str | None]:
    """RFC 8460 §3: v=TLSRPTv1; rua=mailto:...|https://... (comma-separated)."""
    try:
        tags = parse_tags(text, strip_spaces_in=("rua",))
    except TagError as exc:
        return {}, f"malformed record: {exc}"
    if next(iter(tags), None) != "v" or tags["v"] != "TLSRPTv1":
        return tags, "v=TLSRPTv1 must be the first tag"
    uris = [u for u in tags.get("rua", "").split(",") if u]
    if not uris:
        return tags, "no rua= (where reports go)"
    for uri in uris:
        if not re.match(r"^(mailto:[^@\s]+@\S+|https://\S+)$", uri, re.IGNORECASE):
            return tags, f"rua: not a mailto: or https: URI: {excerpt(uri, 80)}"
    return tags, None


# --- CAA and DNSSEC -----------------------------------------------------------------------------------


def parse_caa(text: str) -> tuple[int, str, str] | None:
    """'0 issue "letsencrypt.org"' as dnspython prints it -> (flags, tag, value); None when garbled."""
    m = re.fullmatch(r'(\d{1,3})\s+([A-Za-z0-9]{1,15})\s+"(.*)"', text.strip(), re.DOTALL)
    if not m or int(m.group(1)) > 255:
        return None
    return int(m.group(1)), m.group(2).lower(), m.group(3)


# --- collecting ---------------------------------------------------------------------------------------

def _spf_records(answer: Answer) -> list[str]:
    return [r for r in answer.records if r[:7].lower() in ("v=spf1", "v=spf1 ")]


def collect_spf(ctx: ProbeContext, domain: str, relays: list[Relay], source: str) -> list[Item]:
    """The domain's SPF, evaluated for each relay the mail leaves from (mastoaudit/net/relays.py)."""
    evaluator = SpfEvaluator(ctx.resolver.query, budget=SPF_BUDGET)
    analysis = evaluator.analyze(domain)
    fact = SpfFact(domain, analysis, relay_source=source)
    if analysis.record is not None:
        for name, address in dict.fromkeys((r.name, r.address) for r in relays):
            fact.relays.append(RelayCoverage(name, address, evaluator.check_host(address, domain)))
    return [ProbeFact("mail_spf", fact)]


def collect_dkim(ctx: ProbeContext, target: ScanTarget, domain: str, pool: ThreadPoolExecutor) -> list[Item]:
    selectors = list(dict.fromkeys(target.dkim_selectors))[:MAX_SELECTORS]
    fact = DkimFact(domain, selectors, explicit=tuple(target.dkim_selectors) != DEFAULT_SELECTORS)

    def one(selector: str) -> DkimKey | None:
        name = f"{selector}._domainkey.{domain}"
        answer = ctx.resolver.query(name, "TXT")
        if answer.rcode == "NXDOMAIN" or (answer.ok and not answer.records):
            return None
        if not answer.ok:
            return DkimKey(selector, name, error=f"DNS {answer.rcode}")
        records = [r for r in answer.records if "p=" in r or r.startswith("v=DKIM1")]
        if not records:
            return None
        if len(records) > 1:
            return DkimKey(selector, name, record=records[0][:200], error=f"{len(records)} key records (one expected)")
        return parse_dkim(selector, name, records[0])

    fact.keys = [k for k in pool.map(one, selectors) if k is not None]
    return [ProbeFact("mail_dkim", fact)]


def _dmarc_records(ctx: ProbeContext, name: str) -> tuple[list[str], str | None]:
    answer = ctx.resolver.query(name, "TXT")
    if answer.rcode not in ("NOERROR", "NXDOMAIN"):
        return [], f"DNS {answer.rcode}"
    return [r for r in answer.records if r.startswith("v=DMARC1")], None


def collect_dmarc(ctx: ProbeContext, domain: str) -> list[Item]:
    fact = DmarcFact(domain, f"_dmarc.{domain}")
    labels = domain.split(".")
    # DMARCbis tree walk: the domain's own record, else the nearest parent's (never the TLD's).
    for i in range(min(len(labels) - 1, 8)):
        name = "_dmarc." + ".".join(labels[i:])
        records, error = _dmarc_records(ctx, name)
        if error:
            fact.dns_error = f"{name}: {error}"
            break
        if records:
            fact.found_at, fact.records = name, records
            break
    if len(fact.records) > 1:
        fact.error = f"{len(fact.records)} DMARC records (exactly one allowed; receivers ignore them all)"
    elif fact.records:
        fact.tags, fact.error = parse_dmarc(fact.records[0])
        if fact.error is None:
            for dest in rua_domains(fact.tags):
                if _related(dest, domain):
                    continue
                auth, error = _dmarc_records(ctx, f"{domain}._report._dmarc.{dest}")
                if error or not auth:
                    fact.unauthorized_rua.append(dest)
    return [ProbeFact("mail_dmarc", fact)]


def collect_mta_sts(ctx: ProbeContext, domain: str) -> list[Item]:
    fact = MtaStsFact(domain, policy_url=f"https://mta-sts.{domain}/.well-known/mta-sts.txt")
    answer = ctx.resolver.query(f"_mta-sts.{domain}", "TXT")
    if answer.rcode not in ("NOERROR", "NXDOMAIN"):
        fact.dns_error = f"DNS {answer.rcode}"
        return [ProbeFact("mail_mta_sts", fact)]
    fact.records = [r for r in answer.records if r.startswith("v=STSv1")]
    if not fact.records:
        return [ProbeFact("mail_mta_sts", fact)]
    if len(fact.records) > 1:
        fact.record_error = f"{len(fact.records)} v=STSv1 records (exactly one allowed)"
    else:
        _, fact.record_error = parse_sts_record(fact.records[0])
    fact.mx_hosts = mx_hosts(ctx.resolver, domain)
    try:
        # RFC 8461 §3.3: no redirects; the certificate must be valid for mta-sts.<domain>.
        response = ctx.http.get(fact.policy_url, follow=False, max_body=MAX_POLICY_BYTES)
    except HttpError as exc:
        fact.policy_error = f"cannot fetch the policy: {exc}"
        return [ProbeFact("mail_mta_sts", fact)]
    fact.policy_status, fact.cert_verified = response.status, response.cert_verified
    if response.status != 200:
        fact.policy_error = f"HTTP {response.status} (200 expected, redirects are not followed)"
    elif response.truncated:
        fact.policy_error = f"policy larger than {MAX_POLICY_BYTES} bytes"
    else:
        fact.policy, fact.policy_error = parse_sts_policy(response.body)
        patterns = fact.policy.get("mx") or []
        fact.uncovered_mx = [h for h in fact.mx_hosts
                             if not any(mx_pattern_matches(str(p), h) for p in patterns)]  # type: ignore[union-attr]
    return [ProbeFact("mail_mta_sts", fact)]


def collect_tlsrpt(ctx: ProbeContext, domain: str) -> list[Item]:
    fact = TlsRptFact(domain)
    answer = ctx.resolver.query(f"_smtp._tls.{domain}", "TXT")
    if answer.rcode not in ("NOERROR", "NXDOMAIN"):
        fact.dns_error = f"DNS {answer.rcode}"
    else:
        fact.records = [r for r in answer.records if r.startswith("v=TLSRPTv1")]
        if len(fact.records) > 1:
            fact.error = f"{len(fact.records)} v=TLSRPTv1 records (exactly one allowed)"
        elif fact.records:
            fact.tags, fact.error = parse_tlsrpt(fact.records[0])
    return [ProbeFact("mail_tls_rpt", fact)]


def collect_caa(ctx: ProbeContext, domain: str) -> list[Item]:
    """RFC 8659 §3: the CAA set of the closest name (the domain, then its parents) that has one."""
    fact = CaaFact(domain)
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        name = ".".join(labels[i:])
        answer = ctx.resolver.query(name, "CAA")
        if answer.rcode not in ("NOERROR", "NXDOMAIN"):
            fact.dns_error = f"{name}: DNS {answer.rcode}"
            break
        if answer.records:
            fact.found_at = name
            for text in answer.records:
                parsed = parse_caa(text)
                if parsed is None:
                    fact.errors.append(f"unreadable CAA record {excerpt(text, 80)}")
                else:
                    fact.records.append(parsed)
            break
    return [ProbeFact("dns_caa", fact)]


def collect_dnssec(ctx: ProbeContext, name: str, rdtypes: tuple[str, ...]) -> list[Item]:
    fact = DnssecFact(name, rdtypes[0])
    for rdtype in rdtypes:
        answer = ctx.resolver.query(name, rdtype)
        fact.rdtype, fact.rcode = rdtype, answer.rcode
        if answer.records:
            fact.signed, fact.authenticated = answer.signed, answer.authenticated
            break
    fact.dnskey = bool(ctx.resolver.query(name, "DNSKEY").records)
    return [ProbeFact("dns_dnssec", fact)]


def _guarded(fn: Callable[..., list[Item]], *args: object) -> list[Item]:
    """One sub-probe's failure is one error problem; the others still report."""
    try:
        return fn(*args)
    except Exception as exc:  # a bug or a hostile answer must not lose the other records
        return [ProbeProblem("network", f"{fn.__name__} failed: {type(exc).__name__}: {excerpt(str(exc))}")]


def _mail_domains(target: ScanTarget) -> list[str]:
    return list(dict.fromkeys(d.lower().rstrip(".") for d in (target.mail_domains or (target.local_domain,))))


@probe("mail-dns", timeout=30, description="SPF, DKIM, DMARC, MTA-STS and TLS-RPT of the mail domains")
def mail_dns(target: ScanTarget, ctx: ProbeContext) -> Iterable[Item]:
    domains = _mail_domains(target)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="mail-dns") as pool, \
            ThreadPoolExecutor(max_workers=8, thread_name_prefix="dkim") as dkim_pool:
        relays_future = pool.submit(smtp_relays, target, ctx.resolver)
        futures = []
        for domain in domains:
            futures += [pool.submit(_guarded, collect_dkim, ctx, target, domain, dkim_pool),
                        pool.submit(_guarded, collect_dmarc, ctx, domain),
                        pool.submit(_guarded, collect_mta_sts, ctx, domain),
                        pool.submit(_guarded, collect_tlsrpt, ctx, domain)]
        try:
            plan = relays_future.result()
            relays, source = plan.relays, plan.source
        except Exception as exc:  # SPF is still judged, only the relay coverage is lost
            relays, source = [], "MX"
            yield ProbeProblem("network", f"the SMTP relays could not be found: {type(exc).__name__}: "
                               f"{excerpt(str(exc))}")
        futures += [pool.submit(_guarded, collect_spf, ctx, domain, relays, source) for domain in domains]
        for future in futures:
            yield from future.result()


@probe("dns-zone", timeout=30, description="CAA of the web domain, DNSSEC of the web and mail domains")
def dns_zone(target: ScanTarget, ctx: ProbeContext) -> Iterable[Item]:
    web = target.web_domain.lower().rstrip(".")
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="dns-zone") as pool:
        futures = [pool.submit(_guarded, collect_caa, ctx, web),
                   pool.submit(_guarded, collect_dnssec, ctx, web, ("A", "AAAA"))]
        futures += [pool.submit(_guarded, collect_dnssec, ctx, d, ("MX", "TXT", "A"))
                    for d in _mail_domains(target) if d != web]
        for future in futures:
            yield from future.result()
