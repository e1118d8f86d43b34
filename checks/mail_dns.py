"""Mail as receiving servers see it: the mail domains' SPF, DKIM, DMARC, MTA-STS and TLS-RPT, and
DNSSEC of the web and mail domains (T-MAIL-SPOOFING). Facts from mastoaudit/probes/mail_dns.py
(facts/mail.py). The relay itself is judged in checks/smtp.py, the web domain's CAA in checks/tls.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mastoaudit import kinds
from mastoaudit.checkdef import Remediation, check, errored, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.mail import where
from mastoaudit.model import Location, Outcome
from mastoaudit.net.spf import HARD_CAP

ENFORCING = ("quarantine", "reject")
RFC7208 = "https://www.rfc-editor.org/rfc/rfc7208"


def _dmarc_policy(facts: FactSet, domain: str) -> str | None:
    fact = next((f for f in facts.all(kinds.MAIL_DMARC) if f.domain == domain), None)
    return fact.policy if fact is not None and fact.error is None else None


Trouble = tuple[object, Callable[..., Outcome], str, str, str]  # (holds?, verdict, message, observed, expected)


def _record_trouble(*troubles: Trouble, at: Location) -> Outcome | None:
    """What is wrong with a policy record, the first that holds of: not readable, absent, unusable."""
    for holds, verdict, message, observed, expected in troubles:
        if holds:
            return verdict(message, at=at, subject="record", observed=observed, expected=expected)
    return None


# --- SPF ----------------------------------------------------------------------------------------------

@check(
    id="mail.spf-record",
    title="Each mail domain publishes one valid SPF record within the lookup limits",
    component="mail-dns",
    severity="high",
    threats=["T-MAIL-SPOOFING"],
    needs=[kinds.MAIL_SPF],
    rationale="""Receivers check the sending address against the domain's SPF record. No record, two
        records, a syntax error, more than 10 DNS-querying terms (include, a, mx, ptr, exists,
        redirect, counted through nested includes) or more than 2 void lookups make SPF a
        permanent error: the policy protects nothing and DMARC cannot pass on SPF.""",
    remediation=Remediation("Publish exactly one TXT record starting with v=spf1; flatten includes that "
                            "push it over 10 lookups.", 'example.social. TXT "v=spf1 mx -all"'),
    references=[RFC7208 + "#section-4.6.4", RFC7208 + "#section-4.5"],
    tags=["network", "mail", "dns"],
)
def spf_record(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.MAIL_SPF):
        a, at = fact.analysis, Location(fact.location)
        shown = " | ".join(r[:200] for r in a.records) or "no v=spf1 record"
        if a.status == "temperror":
            yield errored(f"the SPF record of {fact.domain} could not be read: {a.error}", at=at,
                          subject="record", observed=a.error, expected="one v=spf1 record")
            continue
        if a.record is None:
            yield failed(a.error or f"no usable SPF record at {fact.domain}", at=at, subject="record",
                         observed=shown, expected="exactly one valid v=spf1 record")
            continue
        yield passed(f"{fact.domain} publishes one valid SPF record", at=at, subject="record", observed=shown,
                     expected="exactly one valid v=spf1 record")
        lookups = f"{a.lookups} DNS-querying terms" + (" or more" if a.lookups > HARD_CAP else "")
        if a.over_limit:
            yield failed(f"the SPF policy of {fact.domain} needs {lookups}, more than the 10 allowed: receivers "
                         "return permerror", at=at, subject="DNS lookups", observed=lookups,
                         expected="at most 10 (nested includes and redirects counted)")
        else:
            yield passed(f"the SPF policy needs {lookups} (limit 10)", at=at, subject="DNS lookups",
                         observed=lookups, expected="at most 10")
        if a.over_void_limit:
            yield failed(f"{a.void_lookups} SPF lookups find nothing (limit 2): receivers return permerror",
                         at=at, subject="void lookups", observed=f"{a.void_lookups} void lookups", expected="at most 2")
        others = [p for p in a.problems if "DNS-querying terms" not in p and "void lookups" not in p]
        perm = [p for p in others if p.startswith("permerror")]
        temp = [p for p in others if p.startswith("temperror")]
        if perm:
            yield failed(f"the SPF policy of {fact.domain} breaks: {perm[0]}", at=at, subject="nested records",
                         observed="; ".join(perm)[:300], expected="every include and redirect has an SPF record")
        elif temp:
            yield warned(f"part of the SPF policy could not be resolved: {temp[0]}", at=at, subject="nested records",
                         observed="; ".join(temp)[:300], expected="every include resolves")


@check(
    id="mail.spf-all",
    title="SPF ends in -all (or ~all under an enforcing DMARC policy)",
    component="mail-dns",
    severity="high",
    threats=["T-MAIL-SPOOFING"],
    needs=[kinds.MAIL_SPF],
    rationale="""The final `all` says what happens to mail from everywhere else. `+all` authorizes the
        whole internet and `?all` (or no `all` at all) is neutral: both let anyone pass SPF or
        escape it. `-all` fails such mail. `~all` only marks it, but under a DMARC policy of
        quarantine or reject the receiver enforces anyway, and ~all avoids SMTP-time rejections of
        forwarded, DKIM-signed mail that DMARC would have accepted (M3AAWG's advice): so ~all passes
        when DMARC enforces, and warns when it does not.""",
    remediation=Remediation("End the record with -all, or ~all with DMARC p=quarantine or p=reject.",
                            'example.social. TXT "v=spf1 mx -all"'),
    references=[RFC7208 + "#section-5.1", "https://www.rfc-editor.org/rfc/rfc7489#section-10.1"],
    tags=["network", "mail", "dns"],
)
def spf_all(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.MAIL_SPF):
        a = fact.analysis
        if a.record is None:
            continue  # mail.spf-record reports it
        at = Location(where(a.all_domain or fact.domain, "TXT"))
        via = f" (through redirect to {a.all_domain})" if a.all_domain and a.all_domain != fact.domain else ""
        q = a.all_qualifier
        expected = "-all, or ~all with DMARC quarantine/reject"
        if q == "+":
            yield failed(f"SPF of {fact.domain} ends in +all{via}: every host on the internet may send as it", at=at,
                         subject="all", observed="+all", expected=expected, severity="critical")
        elif q == "?":
            yield failed(f"SPF of {fact.domain} ends in ?all{via}: mail from anywhere is neutral", at=at,
                         subject="all", observed="?all", expected=expected)
        elif q is None:
            yield failed(f"SPF of {fact.domain} has no all mechanism{via}: mail from anywhere is neutral", at=at,
                         subject="all", observed="no all (neutral)", expected=expected)
        elif q == "~":
            policy = _dmarc_policy(facts, fact.domain)
            if policy in ENFORCING:
                yield passed(f"~all{via} with DMARC p={policy}: spoofed mail is quarantined or rejected", at=at,
                             subject="all", observed=f"~all, DMARC {policy}", expected=expected)
            else:
                yield warned(f"~all{via} without an enforcing DMARC policy only marks spoofed mail", at=at,
                             subject="all", observed=f"~all, DMARC {policy or 'absent'}", expected=expected,
                             severity="medium")
        else:
            yield passed(f"SPF of {fact.domain} ends in -all{via}", at=at, subject="all", observed="-all",
                         expected=expected)


@check(
    id="mail.spf-relay",
    title="SPF authorizes the SMTP relay that sends the instance's mail",
    component="mail-dns",
    severity="medium",
    threats=["T-MAIL-SPOOFING"],
    needs=[kinds.MAIL_SPF],
    rationale="""If the relay's public address is not permitted by the domain's SPF policy, the
        instance's own mail (confirmations, password resets) fails SPF and, without an aligned DKIM
        signature, DMARC: it is rejected or filed as spam, and admins loosen the policy to fix it.""",
    remediation=Remediation("Add the relay to the SPF record (its MX, an a: or an ip4:/ip6: term).",
                            'example.social. TXT "v=spf1 mx ip4:203.0.113.25 -all"'),
    references=[RFC7208 + "#section-5"],
    tags=["network", "mail", "dns"],
)
def spf_relay(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.MAIL_SPF):
        at = Location(fact.location)
        if fact.analysis.record is None:
            continue
        if not fact.relays:
            yield skipped(f"no relay address known for {fact.domain} (no --smtp-host and no MX that resolves)",
                          at=at, subject="relay")
            continue
        for relay in fact.relays:
            r = relay.result
            subject = f"{fact.relay_source} {relay.host} ({relay.address})"
            observed = f"{relay.address}: {r.result}" + (f" ({r.mechanism})" if r.mechanism else "") + \
                (f" ({r.reason[:120]})" if r.reason and not r.mechanism else "")
            if r.result == "pass" and r.mechanism and r.mechanism.lstrip("+") == "all":
                yield warned(f"{relay.host} passes SPF only through +all", at=at, subject=subject,
                             observed=observed, expected="pass by a mechanism naming the relay")
            elif r.result == "pass":
                yield passed(f"{relay.host} ({relay.address}) may send as {fact.domain}", at=at, subject=subject,
                             observed=observed, expected="pass")
            else:
                yield failed(f"{relay.host} ({relay.address}) is not permitted by the SPF policy of {fact.domain}: "
                             f"its mail gets {r.result}", at=at, subject=subject, observed=observed, expected="pass")


# --- DKIM ---------------------------------------------------------------------------------------------

@check(
    id="mail.dkim",
    title="DKIM keys at the selectors are valid RSA keys of 2048 bits or more",
    component="mail-dns",
    severity="high",
    threats=["T-MAIL-SPOOFING"],
    needs=[kinds.MAIL_DKIM],
    rationale="""A DKIM signature is what lets DMARC pass for mail that is forwarded, and a key is only
        as strong as its size: 1024-bit RSA is within reach of a well-funded attacker and below what
        current guidance accepts, shorter keys have been factored (the 512-bit keys of 2012). A
        malformed record or an empty p= (revoked) leaves the mail unsigned in effect.""",
    remediation=Remediation("Generate a 2048-bit key, publish it at a new selector, switch the signer, then "
                            "revoke the old one (p=).",
                            'mastodon._domainkey.example.social. TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkq…"'),
    references=["https://www.rfc-editor.org/rfc/rfc8301#section-3.2",
                "https://www.rfc-editor.org/rfc/rfc6376#section-3.6.1"],
    tags=["network", "mail", "dns"],
)
def dkim(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.MAIL_DKIM):
        tried = ", ".join(fact.selectors)
        if not fact.keys:
            at = Location(f"_domainkey.{fact.domain}")
            if fact.explicit:
                yield failed(f"no DKIM key at the selector(s) {tried} of {fact.domain}", at=at, subject="selectors",
                             observed=f"no key at {tried}", expected="a DKIM key record")
            else:
                yield warned(f"no DKIM key at the common selectors tried for {fact.domain}: name yours with "
                             "--dkim-selector", at=at, subject="selectors", observed=f"no key at {tried}",
                             expected="a DKIM key record", severity="low")
            continue
        usable = [k for k in fact.keys if not k.error and not k.revoked]
        has_rsa = any(k.key_type == "rsa" for k in usable)
        for key in fact.keys:
            at, subject = Location(where(key.name, "TXT")), f"selector {key.selector}"
            if key.error:
                yield failed(f"the DKIM record at {key.name} is unusable: {key.error}", at=at, subject=subject,
                             observed=key.error[:200], expected="v=DKIM1; k=rsa; p=<key>")
            elif key.revoked:
                if usable:
                    yield passed(f"the key at selector {key.selector} is revoked (another selector has a key)",
                                 at=at, subject=subject, observed="revoked (empty p=)", expected="a key or revoked")
                else:
                    yield failed(f"the only DKIM key of {fact.domain} (selector {key.selector}) is revoked", at=at,
                                 subject=subject, observed="revoked (empty p=)", expected="a 2048-bit key")
            elif key.key_type == "ed25519":
                if has_rsa:
                    yield passed("an ed25519 key beside an RSA key", at=at, subject=subject, observed="ed25519",
                                 expected="RSA >= 2048 (ed25519 in addition)")
                else:
                    yield warned("only an ed25519 key: many receivers verify RSA signatures only", at=at,
                                 subject=subject, observed="ed25519 only", expected="an RSA key >= 2048 as well",
                                 severity="medium")
            elif key.bits is not None and key.bits < 1024:
                yield failed(f"the DKIM key at selector {key.selector} has {key.bits} bits: forgeable", at=at,
                             subject=subject, observed=f"RSA {key.bits} bits", expected="RSA >= 2048 bits")
            elif key.bits is not None and key.bits < 2048:
                yield warned(f"the DKIM key at selector {key.selector} has {key.bits} bits (2048 recommended)",
                             at=at, subject=subject, observed=f"RSA {key.bits} bits", expected="RSA >= 2048 bits",
                             severity="medium")
            else:
                yield passed(f"the DKIM key at selector {key.selector} has {key.bits} bits", at=at, subject=subject,
                             observed=f"RSA {key.bits} bits", expected="RSA >= 2048 bits")
            if key.testing and not key.error:
                yield warned(f"the key at selector {key.selector} is in test mode (t=y): failures are ignored",
                             at=at, subject=f"{subject} t=", observed="t=y", expected="no t=y", severity="low")


# --- DMARC --------------------------------------------------------------------------------------------

@check(
    id="mail.dmarc",
    title="DMARC rejects or quarantines spoofed mail and sends reports",
    component="mail-dns",
    severity="high",
    threats=["T-MAIL-SPOOFING"],
    needs=[kinds.MAIL_DMARC],
    rationale="""DMARC ties SPF and DKIM to the visible From address and tells receivers what to do
        with mail that fails: p=none delivers it anyway. Without rua= nobody learns that someone
        spoofs the domain or that the instance's own mail fails; pct below 100 enforces on a sample;
        sp=none leaves every subdomain open.""",
    remediation=Remediation("Publish a DMARC record with p=quarantine or reject and a report address.",
                            '_dmarc.example.social. TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.social"'),
    references=["https://www.rfc-editor.org/rfc/rfc7489#section-6.3"],
    tags=["network", "mail", "dns"],
)
def dmarc(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.MAIL_DMARC):
        at = Location(where(fact.found_at or fact.name, "TXT"))
        trouble = _record_trouble(
            (fact.dns_error, errored, f"the DMARC record of {fact.domain} could not be read: {fact.dns_error}",
             fact.dns_error, "a v=DMARC1 record"),
            (not fact.records, failed, f"{fact.domain} has no DMARC record: receivers apply no policy to spoofed mail",
             "no v=DMARC1 record", "p=quarantine or p=reject"),
            (fact.error, failed, f"the DMARC record of {fact.domain} is unusable: {fact.error}",
             " | ".join(r[:150] for r in fact.records), "one valid v=DMARC1 record"), at=at)
        if trouble is not None:
            yield trouble
            continue
        tags, policy = fact.tags, fact.policy
        source = f" (inherited from {fact.found_at})" if fact.inherited else ""
        shown = f"{'sp' if fact.inherited and 'sp' in tags else 'p'}={policy}{source}"
        if policy in ENFORCING:
            yield passed(f"DMARC {policy}s mail that fails", at=at, subject="policy", observed=shown,
                         expected="p=quarantine or p=reject")
        else:
            yield failed(f"DMARC policy of {fact.domain} is none: spoofed mail is delivered", at=at,
                         subject="policy", observed=shown, expected="p=quarantine or p=reject")
        pct = int(tags.get("pct", "100"))
        if pct < 100 and policy in ENFORCING:
            yield warned(f"the policy applies to {pct}% of failing mail only", at=at, subject="pct",
                         observed=f"pct={pct}", expected="pct=100 (or absent)", severity="medium")
        if not fact.inherited and tags.get("p") in ENFORCING:  # with p=none the policy failure says it all
            sp = tags.get("sp")
            if sp == "none":
                yield warned("subdomains are not protected (sp=none)", at=at, subject="sp", observed="sp=none",
                             expected="sp=quarantine or reject (or absent)", severity="medium")
            else:
                yield passed(f"subdomains get {sp or tags.get('p')}", at=at, subject="sp",
                             observed=f"sp={sp}" if sp else f"sp absent (p={tags.get('p')})",
                             expected="sp=quarantine or reject (or absent)")
        if not tags.get("rua"):
            yield warned("no aggregate reports (rua=): spoofing and failing mail go unnoticed", at=at, subject="rua",
                         observed="no rua", expected="rua=mailto:…", severity="low")
        elif fact.unauthorized_rua:
            dest = fact.unauthorized_rua[0]
            yield warned(f"the report destination {dest} has not authorized reports for {fact.domain}", at=at,
                         subject="rua", observed=f"no {fact.domain}._report._dmarc.{dest} record",
                         expected="a v=DMARC1 record authorizing the external destination", severity="low")
        else:
            yield passed("aggregate reports are requested", at=at, subject="rua", observed=tags["rua"][:200],
                         expected="rua=mailto:…")
        align = f"adkim={tags.get('adkim', 'r')} aspf={tags.get('aspf', 'r')}"
        yield passed(f"alignment: {align} (s: exact domain, r: same organizational domain)", at=at,
                     subject="alignment", observed=align, expected="r or s")


# --- MTA-STS, TLS-RPT ---------------------------------------------------------------------------------

@check(
    id="mail.mta-sts",
    title="MTA-STS makes senders require TLS to the mail domain's MX",
    component="mail-dns",
    severity="medium",
    threats=["T-SMTP-CREDENTIALS", "T-TRANSPORT-MITM"],
    needs=[kinds.MAIL_MTA_STS],
    rationale="""Between mail servers STARTTLS is opportunistic: an attacker on the path strips it
        and reads replies to the instance (reports, appeals, password-reset follow-ups). An MTA-STS
        policy in mode enforce, served over HTTPS with a valid certificate and listing every MX,
        makes senders refuse to deliver without verified TLS.""",
    remediation=Remediation("Publish _mta-sts TXT and the policy at https://mta-sts.<domain>/.well-known/mta-sts.txt.",
                            '_mta-sts.example.social. TXT "v=STSv1; id=20260101"\n'
                            "# mta-sts.txt\nversion: STSv1\nmode: enforce\nmx: mail.example.social\nmax_age: 604800"),
    references=["https://www.rfc-editor.org/rfc/rfc8461"],
    tags=["network", "mail", "dns", "tls"],
)
def mta_sts(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.MAIL_MTA_STS):
        rec_at, pol_at = Location(where(f"_mta-sts.{fact.domain}", "TXT")), Location(fact.policy_url)
        trouble = _record_trouble(
            (fact.dns_error, errored, f"the MTA-STS record could not be read: {fact.dns_error}", fact.dns_error,
             "v=STSv1; id=…"),
            (not fact.records, warned, f"{fact.domain} has no MTA-STS policy: mail to it can be downgraded to clear "
             "text", "no v=STSv1 record", "v=STSv1; id=…"),
            (fact.record_error, failed, f"the MTA-STS record is unusable: {fact.record_error}",
             " | ".join(r[:120] for r in fact.records), "v=STSv1; id=…"), at=rec_at)
        if trouble is not None:
            yield trouble
            continue
        if fact.policy_error:
            yield failed(f"the MTA-STS policy is unusable: {fact.policy_error}", at=pol_at, subject="policy",
                         observed=fact.policy_error[:200], expected="a valid policy over HTTPS")
            continue
        if fact.cert_verified is False:
            yield failed("the policy host's certificate does not verify: senders ignore the policy", at=pol_at,
                         subject="certificate", observed="not verified", expected="a valid certificate")
            continue
        mode, mx = fact.policy.get("mode"), ", ".join(map(str, fact.policy.get("mx") or []))  # type: ignore[call-overload]
        if fact.uncovered_mx:
            yield failed(f"MX hosts not covered by the policy: {', '.join(fact.uncovered_mx)}", at=pol_at,
                         subject="mx", observed=f"policy mx: {mx}; MX: {', '.join(fact.mx_hosts)}",
                         expected="every MX host matches an mx: line")
        if mode == "enforce":
            yield passed("MTA-STS is enforced", at=pol_at, subject="mode", observed=f"mode: enforce; mx: {mx}",
                         expected="mode: enforce")
        elif mode == "testing":
            yield warned("MTA-STS is in testing mode: failures are only reported", at=pol_at, subject="mode",
                         observed="mode: testing", expected="mode: enforce")
        else:
            yield failed("MTA-STS mode is none: the policy is withdrawn", at=pol_at, subject="mode",
                         observed=f"mode: {mode}", expected="mode: enforce")
        max_age = fact.policy.get("max_age")
        if isinstance(max_age, int) and max_age < 86400:
            yield warned(f"max_age {max_age} s: senders forget the policy within a day", at=pol_at, subject="max_age",
                         observed=f"max_age: {max_age}", expected=">= 86400 (weeks are usual)", severity="low")


@check(
    id="mail.tls-rpt",
    title="TLS-RPT asks senders to report TLS failures to the mail domain",
    component="mail-dns",
    severity="low",
    threats=["T-SMTP-CREDENTIALS", "T-TRANSPORT-MITM"],
    needs=[kinds.MAIL_TLS_RPT],
    rationale="""Without a TLS-RPT record nobody hears about senders that could not set up TLS to the
        MX (an expired certificate, an MTA-STS mismatch, a downgrade attack in progress).""",
    remediation=Remediation("Publish a TLS-RPT record.",
                            '_smtp._tls.example.social. TXT "v=TLSRPTv1; rua=mailto:tls-reports@example.social"'),
    references=["https://www.rfc-editor.org/rfc/rfc8460"],
    tags=["network", "mail", "dns"],
)
def tls_rpt(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.MAIL_TLS_RPT):
        at = Location(where(f"_smtp._tls.{fact.domain}", "TXT"))
        trouble = _record_trouble(
            (fact.dns_error, errored, f"the TLS-RPT record could not be read: {fact.dns_error}", fact.dns_error,
             "v=TLSRPTv1; rua=…"),
            (not fact.records, warned, f"{fact.domain} has no TLS-RPT record: TLS failures go unreported",
             "no v=TLSRPTv1 record", "v=TLSRPTv1; rua=…"),
            (fact.error, failed, f"the TLS-RPT record is unusable: {fact.error}",
             " | ".join(r[:120] for r in fact.records), "v=TLSRPTv1; rua=…"), at=at)
        if trouble is not None:
            yield trouble
        else:
            yield passed("TLS failures are reported", at=at, subject="record", observed=fact.records[0][:200],
                         expected="v=TLSRPTv1; rua=…")


# --- CAA, DNSSEC --------------------------------------------------------------------------------------


@check(
    id="dns.dnssec",
    title="The instance's DNS zone is signed (DNSSEC)",
    component="mail-dns",
    severity="low",
    threats=["T-MAIL-SPOOFING", "T-TRANSPORT-MITM"],
    needs=[kinds.DNS_DNSSEC],
    rationale="""Unsigned answers can be forged on the way to a resolver: the MX, SPF, DKIM and
        MTA-STS records a receiver relies on, and the address of the instance. Signing lets
        validating resolvers reject forgeries and enables DANE for mail. Many domains are unsigned
        and work, so this is a low-severity warning, not a failure.""",
    remediation=Remediation("Enable DNSSEC signing at the DNS provider and publish the DS record at the registrar.",
                            "# Knot: zone: - domain: example.social\n#   dnssec-signing: on"),
    references=["https://www.rfc-editor.org/rfc/rfc9364"],
    tags=["network", "dns"],
)
def dnssec(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.DNS_DNSSEC):
        at = Location(where(fact.name, fact.rdtype))
        if fact.rcode not in ("NOERROR", "NXDOMAIN"):
            yield errored(f"{fact.name} could not be resolved: DNS {fact.rcode}", at=at, subject="DNSSEC",
                          observed=f"DNS {fact.rcode}", expected="signed answers")
        elif fact.signed:
            keys = ", DNSKEY published" if fact.dnskey else ""
            yield passed(f"answers for {fact.name} are signed", at=at, subject="DNSSEC",
                         observed=f"RRSIG with the {fact.rdtype} answer{keys}", expected="signed answers")
        elif fact.authenticated:
            yield passed(f"the resolver validated {fact.name} (AD flag)", at=at, subject="DNSSEC",
                         observed="AD flag set", expected="signed answers")
        else:
            yield warned(f"the zone of {fact.name} is not signed: its records can be forged in transit", at=at,
                         subject="DNSSEC", observed=f"no RRSIG with the {fact.rdtype} answer, no AD flag",
                         expected="signed answers", severity="low")
