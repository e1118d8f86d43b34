"""How far mastoaudit's SPF and DMARC verdicts agree with checkdmarc's, on the lab's zones and on a
corpus of records, with every disagreement explained.

    python3 bench/agreement_mail.py          # from the repository root; needs the lab (root)

Part 1 brings the lab up in each profile (holding it like a test session) and asks both tools about
mastodon.lab through the lab's Knot (127.0.0.53). Part 2 publishes nothing: each corpus record is fed
to both tools as the SPF record of mail.mastodon.lab (or the DMARC record of mastodon.lab):
mastoaudit through its lookup function, checkdmarc through parse_spf_record / parse_dmarc_record;
the names the records refer to are the lab zone's. Only checkdmarc's DNS functions are used (no
MTA-STS policy download, no SMTP/TLS checks), and a guard refuses any socket to a non-loopback
address, so nothing leaves the machine. Exit 1 when a disagreement has no explanation here.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAMESERVER = "127.0.0.53"
DOMAIN = "mastodon.lab"
# The corpus records are served as this name's (it has an A record, no SPF or MX of its own), so they
# can include and redirect to mastodon.lab's real policy without looping.
CORPUS_DOMAIN = "mail.mastodon.lab"


# --- network guard: loopback only -------------------------------------------------------------------

def _loopback_only(address) -> None:
    host = address[0] if isinstance(address, tuple) else address
    try:
        ok = ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        ok = False  # a name would be resolved by the system: refuse
    if not ok:
        raise PermissionError(f"agreement bench: refusing a connection to {host!r} (loopback only)")


def _guard_sockets() -> None:
    for name in ("connect", "connect_ex"):
        original = getattr(socket.socket, name)

        def guarded(self, address, _original=original):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                _loopback_only(address)
            return _original(self, address)

        setattr(socket.socket, name, guarded)
    original_sendto = socket.socket.sendto

    def sendto(self, data, *args):
        _loopback_only(args[-1])
        return original_sendto(self, data, *args)

    socket.socket.sendto = sendto  # type: ignore[method-assign]
    original_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kw):  # the system resolver is not loopback-bound: no names through it
        if host not in (None, "localhost"):
            _loopback_only(host)
        return original_getaddrinfo(host, *args, **kw)

    socket.getaddrinfo = getaddrinfo


_guard_sockets()

import checkdmarc.dmarc as cd_dmarc  # noqa: E402  (after the guard: nothing may connect before it)
import checkdmarc.dnssec as cd_dnssec  # noqa: E402
import checkdmarc.smtp_tls_reporting as cd_tlsrpt  # noqa: E402
import checkdmarc.spf as cd_spf  # noqa: E402
import checkdmarc.utils as cd_utils  # noqa: E402

from mastoaudit.facts import FactSet  # noqa: E402
from mastoaudit.net.dns import Answer, Resolver  # noqa: E402
from mastoaudit.net.runner import all_probes, run_probes  # noqa: E402
from mastoaudit.net.spf import SpfEvaluator  # noqa: E402
from mastoaudit.net.target import ScanTarget  # noqa: E402
from mastoaudit.probes.mail_dns import parse_dmarc  # noqa: E402
from mastoaudit.registry import default_registry  # noqa: E402

NS = [NAMESERVER]
TIMEOUT = 2.0
REGISTRY = default_registry(plugins=False)

# Why the tools differ, by aspect: each disagreement printed is explained from here.
REASONS = {
    "SPF all verdict": "checkdmarc reports the qualifier (parsed.all) but raises no warning or error for +all or "
                       "?all; mastoaudit fails both (+all critical): a policy that authorizes every host protects "
                       "nothing.",
}
CORPUS_REASONS = {
    "redirect-with-all": "RFC 7208 §5.1: redirect= is ignored when the record has an all mechanism, so it costs "
                         "no lookup; checkdmarc still follows and counts it.",
    "include-no-spf": "RFC 7208 §5.2: an include whose target has no SPF record is a permerror (the whole "
                      "policy fails); checkdmarc only warns ('An SPF record does not exist') and keeps it valid.",
    "eleven-lookups": "checkdmarc counts the 11 lookups but enforces the limit only while evaluating include, mx, "
                      "exists or redirect terms; eleven a terms slip through. RFC 7208 §4.6.4 counts a terms too.",
    "a-prefix-33": "RFC 7208 §12: an ip4-cidr-length is 0-32, so a:…/33 is a syntax error (permerror); checkdmarc "
                   "drops the prefix length of a/mx terms without checking it.",
    "include-twice": "RFC 7208 §4.6.4 counts terms as evaluated: a receiver evaluates the second include again "
                     "(2 includes + 2 nested mx = 4); checkdmarc warns about the duplicate and does not walk it "
                     "again (3).",
    "no-p": "RFC 9989 (which checkdmarc follows) reads a record without p= as p=none; RFC 7489 §6.6.3 does so only "
            "with a valid rua=, otherwise no DMARC applies. Either way the policy check fails (none / no policy).",
    "pct-150": "checkdmarc follows RFC 9989 (DMARCbis), which removed pct=: it ignores the value with a warning. "
               "mastoaudit reads pct= as RFC 7489 receivers still do, where 150 is out of range.",
}


# --- running both sides ------------------------------------------------------------------------------

def _lab(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    if done.returncode not in (0, 3) and args[0] != "status":
        raise SystemExit(f"python -m lab {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def _clear_checkdmarc_caches() -> None:
    for cache in (cd_utils.DNS_CACHE, cd_dnssec.DNSSEC_CACHE, cd_dnssec.DNSKEY_CACHE):
        cache.clear()


def ours_live(env: dict) -> dict:
    target = ScanTarget(name=DOMAIN, local_domain=DOMAIN, web_domain=DOMAIN, addresses=(env["public_address"],),
                        resolver=(NAMESERVER, 53), ca_bundle=env["ca_file"], mail_domains=(DOMAIN,),
                        dkim_selectors=(env["dns"]["dkim_selector"],), timeout=TIMEOUT)
    facts = FactSet(DOMAIN)
    run_probes(target, facts, [p for p in all_probes() if p.name in ("mail-dns", "dns-zone")])
    status = {}
    for check_id in ("mail.spf-record", "mail.spf-all", "mail.dmarc", "mail.tls-rpt", "dns.dnssec"):
        for outcome in REGISTRY.get(check_id).run(facts):
            key = (check_id, outcome.subject)
            status[key] = "fail" if "fail" in (status.get(key), outcome.status.value) else outcome.status.value
    spf = facts.first("mail_spf").analysis
    dmarc = facts.first("mail_dmarc")
    tags = {"adkim": "r", "aspf": "r", "pct": "100", **dmarc.tags}
    tags.setdefault("sp", tags.get("p"))
    return {
        "SPF valid": status.get(("mail.spf-record", "record")) == "pass" and "fail" not in {
            v for (c, _), v in status.items() if c == "mail.spf-record"},
        "SPF DNS lookups": spf.lookups,
        "SPF void lookups": spf.void_lookups,
        "SPF all qualifier": {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral", None: "neutral"}[
            spf.all_qualifier],
        "SPF all verdict": status.get(("mail.spf-all", "all")) == "pass",
        "DMARC valid": bool(dmarc.records) and dmarc.error is None,
        "DMARC p": tags.get("p"),
        "DMARC p verdict (enforcing)": status.get(("mail.dmarc", "policy")) == "pass",
        "DMARC sp": tags.get("sp"),
        "DMARC pct": tags.get("pct"),
        "DMARC adkim/aspf": f"{tags['adkim']}/{tags['aspf']}",
        "DMARC rua verdict (present)": status.get(("mail.dmarc", "rua")) == "pass",
        "TLS-RPT valid": status.get(("mail.tls-rpt", "record")) == "pass",
        "DNSSEC signed": status.get(("dns.dnssec", "DNSSEC")) == "pass",
    }


def theirs_live() -> dict:
    _clear_checkdmarc_caches()
    spf = cd_spf.check_spf(DOMAIN, nameservers=NS, timeout=TIMEOUT, retries=0)
    dmarc = cd_dmarc.check_dmarc(DOMAIN, nameservers=NS, timeout=TIMEOUT, retries=0)
    tlsrpt = cd_tlsrpt.check_smtp_tls_reporting(DOMAIN, nameservers=NS, timeout=TIMEOUT, retries=0)
    tags = {k: v["value"] for k, v in dmarc.get("tags", {}).items()}
    warnings = " ".join(dmarc.get("warnings", []))
    all_action = (spf.get("parsed") or {}).get("all")
    return {
        "SPF valid": bool(spf.get("valid")) and "error" not in spf,
        "SPF DNS lookups": spf.get("dns_lookups"),
        "SPF void lookups": spf.get("void_dns_lookups"),
        "SPF all qualifier": all_action,
        # checkdmarc has no verdict on all: "pass" means it raised no warning or error about it
        "SPF all verdict": not any("all" in w.lower() for w in spf.get("warnings", [])),
        "DMARC valid": bool(dmarc.get("valid")),
        "DMARC p": tags.get("p"),
        "DMARC p verdict (enforcing)": "unenforced" not in warnings and tags.get("p") in ("quarantine", "reject"),
        "DMARC sp": tags.get("sp"),
        "DMARC pct": str(tags.get("pct", "100")),
        "DMARC adkim/aspf": f"{tags.get('adkim', 'r')}/{tags.get('aspf', 'r')}",
        "DMARC rua verdict (present)": "rua tag" not in warnings,
        "TLS-RPT valid": bool(tlsrpt.get("valid")),
        "DNSSEC signed": _their_dnssec(),
    }


def _their_dnssec() -> bool | str:
    try:
        return cd_dnssec.test_dnssec(DOMAIN, nameservers=NS, timeout=TIMEOUT)
    except ImportError as exc:  # dnspython's DNSSEC validation wants a newer cryptography than installed
        return f"n/a ({exc})"


# --- the corpus --------------------------------------------------------------------------------------

SPF_CORPUS = [
    ("plain", "v=spf1 a -all"),
    ("bad-prefix", "v=spf1 ip4:192.0.2.0/33 -all"),
    ("wrong-family", "v=spf1 ip6:192.0.2.1 -all"),
    ("unknown-mechanism", "v=spf1 foo -all"),
    ("include", "v=spf1 include:mastodon.lab -all"),
    ("include-no-spf", "v=spf1 include:media.mastodon.lab -all"),
    ("include-twice", "v=spf1 include:mastodon.lab include:mastodon.lab -all"),
    ("void-3", "v=spf1 a:v1.mastodon.lab a:v2.mastodon.lab a:v3.mastodon.lab -all"),
    ("eleven-lookups", "v=spf1 " + " ".join(["a:mail.mastodon.lab"] * 11) + " -all"),
    ("ten-lookups", "v=spf1 " + " ".join(["a:mail.mastodon.lab"] * 10) + " -all"),
    ("redirect", "v=spf1 redirect=mastodon.lab"),
    ("redirect-with-all", "v=spf1 a -all redirect=mastodon.lab"),
    ("self-include", "v=spf1 include:mail.mastodon.lab -all"),
    ("bad-macro", "v=spf1 include:%{x}.mastodon.lab -all"),
    ("macro", "v=spf1 exists:%{i}.mastodon.lab -all"),
    ("ptr", "v=spf1 ptr -all"),
    ("dual-cidr", "v=spf1 a/24//64 -all"),
    ("exp", "v=spf1 -all exp=mastodon.lab"),
    ("a-prefix-33", "v=spf1 a:mastodon.lab/33 -all"),
    ("plus-all", "v=spf1 +all"),
]
DMARC_CORPUS = [
    ("full", "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s; rua=mailto:d@mastodon.lab"),
    ("none", "v=DMARC1; p=none"),
    ("no-p-with-rua", "v=DMARC1; rua=mailto:d@mastodon.lab"),
    ("no-p", "v=DMARC1; adkim=s"),
    ("bad-policy", "v=DMARC1; p=block"),
    ("pct-150", "v=DMARC1; p=reject; pct=150"),
    ("v-not-first", "p=reject; v=DMARC1"),
    ("rua-no-mailto", "v=DMARC1; p=reject; rua=d@mastodon.lab"),
    ("partial", "v=DMARC1; p=quarantine; pct=50; sp=none"),
    ("external-rua", "v=DMARC1; p=reject; rua=mailto:d@example.com"),
    ("unknown-tag", "v=DMARC1; p=reject; foo=bar"),
    ("no-spaces", "v=DMARC1;p=reject;rua=mailto:d@mastodon.lab"),
    ("uppercase-policy", "v=DMARC1; p=REJECT"),
]


def ours_spf(record: str) -> tuple[bool, int | None]:
    resolver = Resolver(ScanTarget(DOMAIN, DOMAIN, DOMAIN, resolver=(NAMESERVER, 53), timeout=TIMEOUT))

    def lookup(name: str, rdtype: str) -> Answer:
        if (name, rdtype) == (CORPUS_DOMAIN, "TXT"):
            return Answer(name, rdtype, (record,))
        return resolver.query(name, rdtype)

    a = SpfEvaluator(lookup).analyze(CORPUS_DOMAIN)
    valid = a.record is not None and not a.over_limit and not a.over_void_limit and not any(
        p.startswith("permerror") for p in a.problems)
    return valid, a.lookups if a.record is not None else None


def theirs_spf(record: str) -> tuple[bool, int | None, str]:
    _clear_checkdmarc_caches()
    try:
        parsed = cd_spf.parse_spf_record(record, CORPUS_DOMAIN, nameservers=NS, timeout=TIMEOUT, retries=0)
    except cd_spf.SPFError as exc:
        return False, (getattr(exc, "data", None) or {}).get("dns_lookups"), type(exc).__name__
    return "error" not in parsed, parsed.get("dns_lookups"), "; ".join(parsed.get("warnings", []))[:80]


def theirs_dmarc(record: str) -> tuple[bool, str]:
    _clear_checkdmarc_caches()
    try:
        cd_dmarc.parse_dmarc_record(record, DOMAIN, nameservers=NS, timeout=TIMEOUT, retries=0)
    except (cd_dmarc.DMARCError, cd_dmarc._DMARCWarning) as exc:  # the latter: raised for unverified rua
        return False, type(exc).__name__
    return True, ""


# --- report ------------------------------------------------------------------------------------------

def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def main() -> int:
    if os.geteuid() != 0:
        print("the lab needs root: python3 bench/agreement_mail.py", file=sys.stderr)
        return 2
    from lab.core import exclusive_use

    live_rows, disagreements = [], []
    corpus_spf, corpus_dmarc = [], []
    with exclusive_use():
        before = json.loads(_lab("status") or "{}")
        try:
            for profile in ("weak", "hardened"):
                _lab("up", "--profile", profile)
                env = json.loads(_lab("env", "--profile", profile))
                ours, theirs = ours_live(env), theirs_live()
                for aspect in ours:
                    if isinstance(theirs[aspect], str) and theirs[aspect].startswith("n/a"):
                        live_rows.append((profile, aspect, ours[aspect], theirs[aspect][:60], "n/a"))
                        continue
                    agree = ours[aspect] == theirs[aspect]
                    live_rows.append((profile, aspect, ours[aspect], theirs[aspect], "yes" if agree else "NO"))
                    if not agree:
                        disagreements.append(f"{profile} / {aspect}: mastoaudit {ours[aspect]!r}, checkdmarc "
                                             f"{theirs[aspect]!r}. " + (REASONS.get(aspect) or "UNEXPLAINED"))
            for name, record in SPF_CORPUS:  # the hardened zone answers the names the records use
                (ov, ol), (tv, tl, note) = ours_spf(record), theirs_spf(record)
                agree = ov == tv and (ol == tl or not ov)
                corpus_spf.append((name, record[:48], ov, tv, ol, tl, "yes" if agree else "NO", note))
                if not agree:
                    disagreements.append(f"SPF corpus {name}: mastoaudit valid={ov} lookups={ol}, checkdmarc "
                                         f"valid={tv} lookups={tl} ({note}). "
                                         + CORPUS_REASONS.get(name, "UNEXPLAINED"))
            for name, record in DMARC_CORPUS:
                ov = parse_dmarc(record)[1] is None
                tv, note = theirs_dmarc(record)
                corpus_dmarc.append((name, record[:56], ov, tv, "yes" if ov == tv else "NO", note))
                if ov != tv:
                    disagreements.append(f"DMARC corpus {name}: mastoaudit valid={ov}, checkdmarc valid={tv} "
                                         f"({note}). " + CORPUS_REASONS.get(name, "UNEXPLAINED"))
        finally:
            if before.get("running") and before.get("profile"):
                _lab("up", "--profile", before["profile"])
            else:
                _lab("down")

    print(f"checkdmarc {_version()} vs mastoaudit, lab zone {DOMAIN} at {NAMESERVER}\n")
    print(_table(live_rows, ("profile", "aspect", "mastoaudit", "checkdmarc", "agree")))
    print(f"\nSPF corpus (each record served as {CORPUS_DOMAIN}'s; the hardened zone answers the rest)\n")
    print(_table(corpus_spf, ("case", "record", "ours valid", "theirs valid", "ours lookups", "theirs lookups",
                              "agree", "checkdmarc says")))
    print("\nDMARC corpus\n")
    print(_table(corpus_dmarc, ("case", "record", "ours valid", "theirs valid", "agree", "checkdmarc says")))
    total = len([r for r in live_rows if r[-1] != "n/a"]) + len(corpus_spf) + len(corpus_dmarc)
    print(f"\n{total - len(disagreements)} of {total} comparisons agree. Disagreements:")
    for text in disagreements:
        print(f"- {text}")
    return 1 if any("UNEXPLAINED" in d for d in disagreements) else 0


def _version() -> str:
    from importlib.metadata import version

    return version("checkdmarc")


if __name__ == "__main__":
    raise SystemExit(main())
