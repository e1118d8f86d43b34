"""An SPF evaluator (RFC 7208): record syntax, check_host() for one address, and a walk of the
whole policy that counts DNS-querying terms the way the RFC does.

- The 10-lookup limit (§4.6.4) covers the terms include, a, mx, ptr, exists and the redirect
  modifier, across nested includes and redirects. An mx or ptr term may in addition not query
  more than 10 address records. Void lookups (NXDOMAIN or an empty answer) are limited to 2.
- `check_host()` stops at the first match, as receivers do. `analyze()` evaluates every term of
  every nested record (what a sender that matches nothing costs a receiver): that is the count a
  policy must keep under 10, and it keeps counting past 10 so the report can say by how much.

DNS answers come from a `lookup(name, rdtype) -> Answer` callable (mastoaudit.net.dns) and are
treated as hostile: every failure becomes a result or a problem, never an exception.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:  # the SPF result types are fact data: reading them must not load dnspython
    from .dns import Answer

LOOKUP_LIMIT = 10  # DNS-querying terms per evaluation (RFC 7208 §4.6.4)
VOID_LIMIT = 2  # void lookups per evaluation (RFC 7208 §4.6.4)
ADDRESS_LIMIT = 10  # address records per mx or ptr term
HARD_CAP = 60  # analyze() stops querying here: enough to report "well over the limit"
MAX_DEPTH = 12  # nested include/redirect levels (a loop is caught before this)

QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists", "redirect")
_MACRO_LETTERS = "slodiphv"  # c, r, t are allowed only in exp= (§7.2)
_MACRO_RE = re.compile(r"%\{([a-zA-Z])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.]*$")
_CIDR_RE = re.compile(r"^(.*?)(?:/(\d{1,3}))?(?://(\d{1,3}))?$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?$")


class SpfSyntaxError(ValueError):
    """The record does not follow RFC 7208's grammar (a permerror)."""


@dataclass(frozen=True)
class Term:
    name: str  # a mechanism, "redirect", "exp" or another modifier's name (lower case)
    qualifier: str  # "+", "-", "~" or "?" for mechanisms; "" for modifiers
    value: str | None  # domain-spec, network or modifier value, as written
    cidr4: int | None = None
    cidr6: int | None = None
    text: str = ""  # the term as written

    @property
    def is_mechanism(self) -> bool:
        return self.name in MECHANISMS and self.qualifier != ""


@dataclass(frozen=True)
class SpfRecord:
    text: str
    terms: tuple[Term, ...]

    @property
    def mechanisms(self) -> list[Term]:
        return [t for t in self.terms if t.is_mechanism]

    def modifier(self, name: str) -> Term | None:
        return next((t for t in self.terms if not t.is_mechanism and t.name == name), None)

    @property
    def all_term(self) -> Term | None:
        return next((t for t in self.mechanisms if t.name == "all"), None)

    @property
    def redirect(self) -> str | None:
        # RFC 7208 §5.1: redirect is ignored when the record has an "all" mechanism anywhere.
        term = self.modifier("redirect")
        return term.value if term and self.all_term is None else None


def is_spf(text: str) -> bool:
    """Whether a TXT string is an SPF record: "v=spf1" followed by a space or the end (§4.5)."""
    low = text[:7].lower()
    return low == "v=spf1" or low == "v=spf1 "


def _check_macro_string(text: str, in_exp: bool = False) -> None:
    pos = 0
    for m in _MACRO_RE.finditer(text):
        literal = text[pos:m.start()]
        if "%" in literal:
            raise SpfSyntaxError(f"bad macro in {text[:80]!r}")
        if m.group(1):
            letter = m.group(1).lower()
            if letter not in _MACRO_LETTERS and not (in_exp and letter in "crt"):
                raise SpfSyntaxError(f"unknown macro letter %{{{m.group(1)}}} in {text[:80]!r}")
        pos = m.end()
    if "%" in text[pos:]:
        raise SpfSyntaxError(f"bad macro in {text[:80]!r}")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in text):
        raise SpfSyntaxError(f"invalid character in {text[:80]!r}")


def _check_domain_spec(spec: str) -> None:
    if not spec:
        raise SpfSyntaxError("empty domain-spec")
    _check_macro_string(spec)
    if "%" not in spec:  # a literal domain must end in a top label that is not all digits
        top = spec.rstrip(".").rsplit(".", 1)[-1]
        if "." not in spec.rstrip(".") or not top or top.isdigit() or not _LABEL_RE.match(top):
            raise SpfSyntaxError(f"not a domain name: {spec[:80]!r}")


def _cidr(value: str | None, maximum: int, what: str) -> int | None:
    if value is None:
        return None
    if (len(value) > 1 and value.startswith("0")) or int(value) > maximum:
        raise SpfSyntaxError(f"bad {what} prefix length /{value}")
    return int(value)


def _parse_term(text: str) -> Term:
    qualifier = "+"
    body = text
    if body[0] in QUALIFIERS:
        qualifier, body = body[0], body[1:]
    name_end = len(body)
    for i, c in enumerate(body):
        if c in ":/=":
            name_end = i
            break
    name, rest = body[:name_end].lower(), body[name_end:]
    if rest.startswith("=") and text[0] not in QUALIFIERS:  # a modifier
        if not _NAME_RE.match(name):
            raise SpfSyntaxError(f"bad modifier name in {text[:80]!r}")
        value = rest[1:]
        if name in ("redirect", "exp"):
            _check_domain_spec(value)
        else:
            _check_macro_string(value)
        return Term(name, "", value, text=text)
    if name not in MECHANISMS:
        raise SpfSyntaxError(f"unknown mechanism {text[:80]!r}")
    if name == "all":
        if rest:
            raise SpfSyntaxError(f"'all' takes no argument: {text[:80]!r}")
        return Term(name, qualifier, None, text=text)
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise SpfSyntaxError(f"{name} needs an address: {text[:80]!r}")
        addr, _, prefix = rest[1:].partition("/")
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            raise SpfSyntaxError(f"not an IP address in {text[:80]!r}") from None
        if ip.version != (4 if name == "ip4" else 6):
            raise SpfSyntaxError(f"wrong address family in {text[:80]!r}")
        if prefix and not prefix.isdigit():
            raise SpfSyntaxError(f"bad prefix length in {text[:80]!r}")
        length = _cidr(prefix or None, 32 if name == "ip4" else 128, name)
        return Term(name, qualifier, addr, length if name == "ip4" else None,
                    length if name == "ip6" else None, text=text)
    domain: str | None = None
    cidr4 = cidr6 = None
    if name in ("a", "mx"):
        m = _CIDR_RE.match(rest)
        assert m is not None  # the pattern matches any string
        spec, c4, c6 = m.groups()
        cidr4, cidr6 = _cidr(c4, 32, "ip4"), _cidr(c6, 128, "ip6")
        rest = spec
    if rest:
        if not rest.startswith(":"):
            raise SpfSyntaxError(f"bad mechanism {text[:80]!r}")
        domain = rest[1:]
        _check_domain_spec(domain)
    elif name in ("include", "exists"):
        raise SpfSyntaxError(f"{name} needs a domain: {text[:80]!r}")
    return Term(name, qualifier, domain, cidr4, cidr6, text=text)


def parse_record(text: str) -> SpfRecord:
    """Parse one SPF record; SpfSyntaxError says what is wrong."""
    if not is_spf(text):
        raise SpfSyntaxError("does not start with v=spf1")
    if any(c in text for c in "\t\r\n"):
        raise SpfSyntaxError("terms must be separated by spaces only")
    terms = tuple(_parse_term(t) for t in text[6:].split(" ") if t)
    for name in ("redirect", "exp"):
        if sum(1 for t in terms if not t.is_mechanism and t.name == name) > 1:
            raise SpfSyntaxError(f"more than one {name}= modifier")
    return SpfRecord(text, terms)


# --- macros (§7) ---------------------------------------------------------------------------------------

def _ip_macro(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if ip.version == 4:
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


def expand(spec: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, domain: str, sender: str,
           helo: str) -> str:
    local, _, sender_domain = sender.rpartition("@")
    values = {"s": sender, "l": local or "postmaster", "o": sender_domain or helo, "d": domain,
              "i": _ip_macro(ip), "p": "unknown", "v": "in-addr" if ip.version == 4 else "ip6", "h": helo}

    def one(m: re.Match) -> str:
        whole = m.group(0)
        if whole == "%%":
            return "%"
        if whole == "%_":
            return " "
        if whole == "%-":
            return "%20"
        letter, digits, reverse, delims = m.groups()
        value = values.get(letter.lower(), "")
        parts = re.split("[" + re.escape(delims or ".") + "]", value)
        if reverse:
            parts.reverse()
        if digits:
            keep = int(digits)
            if keep == 0:
                raise SpfSyntaxError("macro transformer 0")
            parts = parts[-keep:]
        out = ".".join(parts)
        return quote(out, safe="") if letter.isupper() else out

    out = _MACRO_RE.sub(one, spec)
    while len(out) > 253 and "." in out:  # §7.3: drop labels from the left until it fits
        out = out.split(".", 1)[1]
    return out


def valid_domain(name: str) -> bool:
    name = name.rstrip(".")
    if not name or len(name) > 253 or "." not in name:
        return False
    return all(label and len(label) <= 63 and all(33 <= ord(c) <= 126 for c in label) for label in name.split("."))


# --- evaluation ----------------------------------------------------------------------------------------

@dataclass
class SpfResult:
    result: str  # pass, fail, softfail, neutral, none, permerror, temperror
    mechanism: str | None = None  # the term that matched, as written
    domain: str | None = None  # the record it belongs to
    reason: str = ""
    lookups: int = 0
    void_lookups: int = 0


@dataclass
class SpfAnalysis:
    domain: str
    records: list[str] = field(default_factory=list)  # every v=spf1 TXT string at the domain
    record: SpfRecord | None = None
    status: str = "ok"  # ok, or why the top record cannot be used: none, permerror, temperror
    error: str | None = None  # why the top record cannot be used: none found, several, syntax, DNS
    lookups: int = 0  # DNS-querying terms, worst case, nested
    void_lookups: int = 0
    problems: list[str] = field(default_factory=list)  # permerror/temperror causes met while walking
    all_qualifier: str | None = None  # the effective "all" (following redirect); None: none (neutral)
    all_domain: str | None = None  # the record whose "all" that is
    domains: list[str] = field(default_factory=list)  # every record visited (includes, redirects)

    @property
    def over_limit(self) -> bool:
        return self.lookups > LOOKUP_LIMIT

    @property
    def over_void_limit(self) -> bool:
        return self.void_lookups > VOID_LIMIT


class _Abort(Exception):
    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result, self.reason = result, reason


Lookup = Callable[[str, str], "Answer"]
_DNS_OK = ("NOERROR", "NXDOMAIN")


class SpfEvaluator:
    """check_host() and analyze() over one lookup function; answers are cached per evaluator.

    `budget` bounds the time spent asking DNS (seconds, over the evaluator's life): past it, every
    new question is answered TIMEOUT without being asked, so a policy of slow includes ends in a
    temperror instead of holding the scan."""

    def __init__(self, lookup: Lookup, budget: float | None = None) -> None:
        self._lookup = lookup
        self._cache: dict[tuple[str, str], Answer] = {}
        self._deadline = time.monotonic() + budget if budget is not None else None
        self._reset(False)

    def _reset(self, exhaustive: bool) -> None:
        self.exhaustive = exhaustive
        self.lookups = 0
        self.void = 0
        self.problems: list[str] = []
        self.visited: list[str] = []  # every record evaluated, in order
        self._chain: list[str] = []  # the include/redirect chain being evaluated (loop detection)
        self._limit_reported = False

    def query(self, name: str, rdtype: str) -> Answer:
        key = (name.lower().rstrip("."), rdtype)
        if key not in self._cache:
            if self._deadline is not None and time.monotonic() > self._deadline:
                from .dns import Answer

                return Answer(key[0], rdtype, (), "TIMEOUT")
            self._cache[key] = self._lookup(key[0], rdtype)
        return self._cache[key]

    # errors: in check_host they end the evaluation; in analyze they are noted and the walk goes on
    def _error(self, result: str, reason: str) -> None:
        if not self.exhaustive:
            raise _Abort(result, reason)
        problem = f"{result}: {reason}"
        if problem not in self.problems:
            self.problems.append(problem)

    def _count(self, term: Term, domain: str) -> bool:
        """Count a DNS-querying term; False when analyze() has hit its hard cap (stop querying)."""
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT and not self._limit_reported:
            self._limit_reported = True
            self._error("permerror", f"more than {LOOKUP_LIMIT} DNS-querying terms (at {term.text!r} in {domain})")
        return self.lookups <= HARD_CAP

    def _void(self, answer: Answer, term: Term, domain: str) -> None:
        if answer.rcode == "NXDOMAIN" or (answer.ok and not answer.records):
            self.void += 1
            if self.void == VOID_LIMIT + 1:
                self._error("permerror", f"more than {VOID_LIMIT} void lookups (at {term.text!r} in {domain})")

    def _addresses(self, name: str, version: int) -> tuple[Answer, list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
        answer = self.query(name, "A" if version == 4 else "AAAA")
        found = []
        for text in answer.records:
            try:
                found.append(ipaddress.ip_address(text.strip()))
            except ValueError:
                continue  # hostile or garbled data is not an address
        return answer, found

    def _dns_failed(self, answer: Answer, what: str) -> bool:
        if answer.rcode in _DNS_OK:
            return False
        self._error("temperror", f"{what}: DNS {answer.rcode}")
        return True

    def fetch(self, domain: str) -> tuple[SpfRecord | None, list[str], str | None, str | None]:
        """(record, the v=spf1 strings, result when unusable, why) for one domain (§4.4, §4.5)."""
        if not valid_domain(domain):
            return None, [], "none", f"{domain[:80]!r} is not a valid domain name"
        answer = self.query(domain, "TXT")
        if answer.rcode not in _DNS_OK:
            return None, [], "temperror", f"TXT {domain}: DNS {answer.rcode}"
        found = [r for r in answer.records if is_spf(r)]
        if not found:
            return None, found, "none", f"no SPF record at {domain}"
        if len(found) > 1:
            return None, found, "permerror", f"{len(found)} SPF records at {domain} (exactly one allowed)"
        try:
            return parse_record(found[0]), found, None, None
        except SpfSyntaxError as exc:
            return None, found, "permerror", f"syntax error in the SPF record of {domain}: {exc}"

    def _evaluate(self, ip, domain: str, sender: str, depth: int) -> SpfResult:
        if depth > MAX_DEPTH:
            self._error("permerror", f"includes/redirects nested more than {MAX_DEPTH} deep at {domain}")
            return SpfResult("permerror", domain=domain, reason="nested too deep")
        if domain.lower() in self._chain:
            self._error("permerror", f"include/redirect loop back to {domain}")
            return SpfResult("permerror", domain=domain, reason="loop")
        self.visited.append(domain.lower())
        self._chain.append(domain.lower())
        try:
            return self._evaluate_record(ip, domain, sender, depth)
        finally:
            self._chain.pop()

    def _evaluate_record(self, ip, domain: str, sender: str, depth: int) -> SpfResult:
        record, _, result, reason = self.fetch(domain)
        if record is None:
            assert result is not None and reason is not None
            if result != "none" or depth:
                self._error(result if result != "none" else "permerror", reason)
            return SpfResult(result, domain=domain, reason=reason)
        first: SpfResult | None = None
        for term in record.mechanisms:
            matched = self._mechanism(term, ip, domain, sender, depth)
            if matched and first is None:
                first = SpfResult(QUALIFIERS[term.qualifier], term.text, domain)
                if not self.exhaustive:
                    return first
        if first is not None:
            return first
        target = record.redirect
        if target is not None:
            term = record.modifier("redirect")
            assert term is not None
            if not self._count(term, domain):
                return SpfResult("neutral", domain=domain)
            name = self._expand(target, ip, domain, sender)
            if name is None:
                return SpfResult("permerror", domain=domain, reason="bad redirect")
            inner = self._evaluate(ip, name, sender, depth + 1)
            if inner.result == "none":
                self._error("permerror", f"redirect={name} has no SPF record")
                return SpfResult("permerror", domain=name, reason="redirect target without SPF record")
            return inner
        return SpfResult("neutral", domain=domain, reason="no mechanism matched")

    def _expand(self, spec: str, ip, domain: str, sender: str) -> str | None:
        try:
            name = expand(spec, ip, domain, sender, domain)
        except SpfSyntaxError as exc:
            self._error("permerror", str(exc))
            return None
        if not valid_domain(name):
            self._error("permerror", f"{spec[:80]!r} does not expand to a valid domain name")
            return None
        return name.rstrip(".")

    def _mechanism(self, term: Term, ip, domain: str, sender: str, depth: int) -> bool:
        name = term.name
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            net_len = term.cidr4 if name == "ip4" else term.cidr6
            if net_len is None:
                net_len = 32 if name == "ip4" else 128
            net = ipaddress.ip_network(f"{term.value}/{net_len}", strict=False)
            return net.version == ip.version and ip in net
        if not self._count(term, domain):
            return False
        target = self._expand(term.value, ip, domain, sender) if term.value else domain
        if target is None:
            return False
        if name == "include":
            inner = self._evaluate(ip, target, sender, depth + 1)
            if inner.result in ("none", "permerror"):
                if inner.result == "none":
                    self._error("permerror", f"include:{target} has no SPF record")
                return False
            if inner.result == "temperror":
                return False
            return inner.result == "pass"
        if name == "exists":
            answer = self.query(target, "A")
            if self._dns_failed(answer, f"exists A {target}"):
                return False
            self._void(answer, term, domain)
            return bool(answer.records)
        prefix = term.cidr4 if ip.version == 4 else term.cidr6
        if name == "a":
            answer, found = self._addresses(target, ip.version)
            if self._dns_failed(answer, f"a {target}"):
                return False
            self._void(answer, term, domain)
            return _matches(ip, found, prefix)
        if name == "mx":
            return self._mx(term, ip, target, domain, prefix)
        return self._ptr(term, ip, target)

    def _mx(self, term: Term, ip, target: str, domain: str, prefix: int | None) -> bool:
        answer = self.query(target, "MX")
        if self._dns_failed(answer, f"mx {target}"):
            return False
        self._void(answer, term, domain)
        hosts = [h for h in (_mx_host(r) for r in answer.records) if h]
        if len(hosts) > ADDRESS_LIMIT:
            self._error("permerror", f"mx:{target} has {len(hosts)} MX records (at most {ADDRESS_LIMIT})")
            hosts = hosts[:ADDRESS_LIMIT]
        matched = False
        for host in hosts:
            host_answer, found = self._addresses(host, ip.version)
            if self._dns_failed(host_answer, f"mx host {host}"):
                continue
            if _matches(ip, found, prefix):
                matched = True
                if not self.exhaustive:
                    break
        return matched

    def _ptr(self, term: Term, ip, target: str) -> bool:
        answer = self.query(ip.reverse_pointer, "PTR")
        if not answer.ok:  # §5.5: a DNS error makes ptr not match
            return False
        for name in answer.records[:ADDRESS_LIMIT]:
            name = name.rstrip(".").lower()
            _host_answer, found = self._addresses(name, ip.version)
            if ip in found and (name == target.lower() or name.endswith("." + target.lower())):
                return True
        return False

    # --- the two entry points -------------------------------------------------------------------------

    def check_host(self, ip: str, domain: str, sender: str | None = None) -> SpfResult:
        """RFC 7208 check_host(): the result a receiver computes for mail from `ip`."""
        self._reset(False)
        try:
            addr = _address(ip)
        except ValueError:
            return SpfResult("permerror", reason=f"not an IP address: {ip[:60]!r}")
        try:
            result = self._evaluate(addr, domain.rstrip("."), sender or f"postmaster@{domain}", 0)
        except _Abort as abort:
            result = SpfResult(abort.result, reason=abort.reason)
        result.lookups, result.void_lookups = self.lookups, self.void
        return result

    def analyze(self, domain: str, ip: str = "192.0.2.1") -> SpfAnalysis:
        """The whole policy: records, syntax, worst-case lookup count, void lookups, effective all."""
        domain = domain.rstrip(".")
        out = SpfAnalysis(domain)
        record, out.records, result, reason = self.fetch(domain)
        out.record = record
        if record is None:
            out.status, out.error = result or "none", reason
            return out
        self._reset(True)
        self._evaluate(_address(ip), domain, f"postmaster@{domain}", 0)
        out.lookups, out.void_lookups = self.lookups, self.void
        out.problems = list(self.problems)
        out.domains = list(dict.fromkeys(self.visited))
        out.all_qualifier, out.all_domain = self._effective_all(record, domain, 0)
        return out

    def _effective_all(self, record: SpfRecord, domain: str, depth: int) -> tuple[str | None, str | None]:
        term = record.all_term
        if term is not None:
            return term.qualifier, domain
        target = record.redirect
        if target is None or depth >= MAX_DEPTH or "%" in target:
            return None, domain
        inner, _, _, _ = self.fetch(target.rstrip("."))
        if inner is None:
            return None, target
        return self._effective_all(inner, target.rstrip("."), depth + 1)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped:  # §5: an IPv4-mapped IPv6 address is evaluated as IPv4
        return ip.ipv4_mapped
    return ip


def _matches(ip, found: list, prefix: int | None) -> bool:
    for other in found:
        if other.version != ip.version:
            continue
        if prefix is None:
            if other == ip:
                return True
        elif ip in ipaddress.ip_network(f"{other}/{prefix}", strict=False):
            return True
    return False


def _mx_host(text: str) -> str | None:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    host = parts[1].rstrip(".")
    return host if host and valid_domain(host) else None
