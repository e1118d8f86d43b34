"""Mail as the world sees it: the mail domains' SPF, DKIM, DMARC, MTA-STS and TLS-RPT, the web
domain's CAA and DNSSEC, and the SMTP relay's STARTTLS, certificate, AUTH, VRFY and relaying."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, errored, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.mail import (
    CaaFact,
    DkimFact,
    DmarcFact,
    DnssecFact,
    MtaStsFact,
    SpfFact,
    TlsRptFact,
    where,
)
from mastoaudit.facts.smtp import SmtpEndpoint
from mastoaudit.model import Location, Outcome
from mastoaudit.net.spf import HARD_CAP

MODES = ("network",)
ENFORCING = ("quarantine", "reject")
RFC7208 = "https://www.rfc-editor.org/rfc/rfc7208"


def _dmarc_policy(facts: FactSet, domain: str) -> str | None:
    fact = next((f for f in facts.all("mail_dmarc") if f.domain == domain), None)
    return fact.policy if isinstance(fact, DmarcFact) and fact.error is None else None


# --- SPF ----------------------------------------------------------------------------------------------

@check(
    id="mail.spf-record",
    title="Each mail domain publishes one valid SPF record within the lookup limits",
    component="mail-dns",
    severity="high",
    threats=["T-MAIL-SPOOFING"],
    needs=["mail_spf"],
    rationale="""Receivers check the sending address against the domain's SPF record. No record, two
        records, a syntax error, more than 10 DNS-querying terms (include, a, mx, ptr, exists,
        redirect, counted through nested includes) or more than 2 void lookups make SPF a
        permanent error: the policy protects nothing and DMARC cannot pass on SPF.""",
    remediation=Remediation("Publish exactly one TXT record starting with v=spf1; flatten includes that "
                            "push it over 10 lookups.", 'example.social. TXT "v=spf1 mx -all"'),
    references=[RFC7208 + "#section-4.6.4", RFC7208 + "#section-4.5"],
    tags=["network", "mail", "dns"],
    modes=MODES,
)
def spf_record(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("mail_spf"):
        assert isinstance(fact, SpfFact)
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
    needs=["mail_spf"],
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
    modes=MODES,
)
def spf_all(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("mail_spf"):
        assert isinstance(fact, SpfFact)
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
    needs=["mail_spf"],
    rationale="""If the relay's public address is not permitted by the domain's SPF policy, the
        instance's own mail (confirmations, password resets) fails SPF and, without an aligned DKIM
        signature, DMARC: it is rejected or filed as spam, and admins loosen the policy to fix it.""",
    remediation=Remediation("Add the relay to the SPF record (its MX, an a: or an ip4:/ip6: term).",
                            'example.social. TXT "v=spf1 mx ip4:203.0.113.25 -all"'),
    references=[RFC7208 + "#section-5"],
    tags=["network", "mail", "dns"],
    modes=MODES,
)
def spf_relay(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("mail_spf"):
        assert isinstance(fact, SpfFact)
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
    needs=["mail_dkim"],
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
    modes=MODES,
)
def dkim(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("mail_dkim"):
        assert isinstance(fact, DkimFact)
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
    needs=["mail_dmarc"],
    rationale="""DMARC ties SPF and DKIM to the visible From address and tells receivers what to do
        with mail that fails: p=none delivers it anyway. Without rua= nobody learns that someone
        spoofs the domain or that the instance's own mail fails; pct below 100 enforces on a sample;
        sp=none leaves every subdomain open.""",
    remediation=Remediation("Publish a DMARC record with p=quarantine or reject and a report address.",
                            '_dmarc.example.social. TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.social"'),
    references=["https://www.rfc-editor.org/rfc/rfc7489#section-6.3"],
    tags=["network", "mail", "dns"],
    modes=MODES,
)
def dmarc(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("mail_dmarc"):
        assert isinstance(fact, DmarcFact)
        at = Location(where(fact.found_at or fact.name, "TXT"))
        if fact.dns_error:
            yield errored(f"the DMARC record of {fact.domain} could not be read: {fact.dns_error}", at=at,
                          subject="record", observed=fact.dns_error, expected="a v=DMARC1 record")
            continue
        if not fact.records:
            yield failed(f"{fact.domain} has no DMARC record: receivers apply no policy to spoofed mail", at=at,
                         subject="record", observed="no v=DMARC1 record", expected="p=quarantine or p=reject")
            continue
        if fact.error:
            yield failed(f"the DMARC record of {fact.domain} is unusable: {fact.error}", at=at, subject="record",
                         observed=" | ".join(r[:150] for r in fact.records), expected="one valid v=DMARC1 record")
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
    needs=["mail_mta_sts"],
    rationale="""Between mail servers STARTTLS is opportunistic: an attacker on the path strips it
        and reads replies to the instance (reports, appeals, password-reset follow-ups). An MTA-STS
        policy in mode enforce, served over HTTPS with a valid certificate and listing every MX,
        makes senders refuse to deliver without verified TLS.""",
    remediation=Remediation("Publish _mta-sts TXT and the policy at https://mta-sts.<domain>/.well-known/mta-sts.txt.",
                            '_mta-sts.example.social. TXT "v=STSv1; id=20260101"\n'
                            "# mta-sts.txt\nversion: STSv1\nmode: enforce\nmx: mail.example.social\nmax_age: 604800"),
    references=["https://www.rfc-editor.org/rfc/rfc8461"],
    tags=["network", "mail", "dns", "tls"],
    modes=MODES,
)
def mta_sts(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("mail_mta_sts"):
        assert isinstance(fact, MtaStsFact)
        rec_at, pol_at = Location(where(f"_mta-sts.{fact.domain}", "TXT")), Location(fact.policy_url)
        if fact.dns_error:
            yield errored(f"the MTA-STS record could not be read: {fact.dns_error}", at=rec_at, subject="record",
                          observed=fact.dns_error, expected="v=STSv1; id=…")
            continue
        if not fact.records:
            yield warned(f"{fact.domain} has no MTA-STS policy: mail to it can be downgraded to clear text", at=rec_at,
                         subject="record", observed="no v=STSv1 record", expected="v=STSv1; id=…")
            continue
        if fact.record_error:
            yield failed(f"the MTA-STS record is unusable: {fact.record_error}", at=rec_at, subject="record",
                         observed=" | ".join(r[:120] for r in fact.records), expected="v=STSv1; id=…")
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
    needs=["mail_tls_rpt"],
    rationale="""Without a TLS-RPT record nobody hears about senders that could not set up TLS to the
        MX (an expired certificate, an MTA-STS mismatch, a downgrade attack in progress).""",
    remediation=Remediation("Publish a TLS-RPT record.",
                            '_smtp._tls.example.social. TXT "v=TLSRPTv1; rua=mailto:tls-reports@example.social"'),
    references=["https://www.rfc-editor.org/rfc/rfc8460"],
    tags=["network", "mail", "dns"],
    modes=MODES,
)
def tls_rpt(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("mail_tls_rpt"):
        assert isinstance(fact, TlsRptFact)
        at = Location(where(f"_smtp._tls.{fact.domain}", "TXT"))
        if fact.dns_error:
            yield errored(f"the TLS-RPT record could not be read: {fact.dns_error}", at=at, subject="record",
                          observed=fact.dns_error, expected="v=TLSRPTv1; rua=…")
        elif not fact.records:
            yield warned(f"{fact.domain} has no TLS-RPT record: TLS failures go unreported", at=at, subject="record",
                         observed="no v=TLSRPTv1 record", expected="v=TLSRPTv1; rua=…")
        elif fact.error:
            yield failed(f"the TLS-RPT record is unusable: {fact.error}", at=at, subject="record",
                         observed=" | ".join(r[:120] for r in fact.records), expected="v=TLSRPTv1; rua=…")
        else:
            yield passed("TLS failures are reported", at=at, subject="record", observed=fact.records[0][:200],
                         expected="v=TLSRPTv1; rua=…")


# --- CAA, DNSSEC --------------------------------------------------------------------------------------

@check(
    id="dns.caa",
    title="CAA records name the certificate authorities that may issue for the web domain",
    component="tls",
    severity="low",
    threats=["T-TRANSPORT-MITM"],
    needs=["dns_caa"],
    rationale="""Without CAA every public CA may issue a certificate for the instance's domain; one
        mis-issuance (a CA tricked through a hijacked validation path) is a valid certificate for a
        man in the middle. CAA limits issuance to the CA the instance uses.""",
    remediation=Remediation("Publish CAA records for the CA you use (and issuewild if wildcards are not used).",
                            'example.social. CAA 0 issue "letsencrypt.org"\nexample.social. CAA 0 issuewild ";"'),
    references=["https://www.rfc-editor.org/rfc/rfc8659"],
    tags=["network", "dns", "tls"],
    modes=MODES,
)
def caa(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("dns_caa"):
        assert isinstance(fact, CaaFact)
        at = Location(where(fact.found_at or fact.domain, "CAA"))
        if fact.dns_error:
            yield errored(f"CAA of {fact.domain} could not be read: {fact.dns_error}", at=at, subject="CAA",
                          observed=fact.dns_error, expected="issue/issuewild records")
            continue
        restricting = [(t, v) for _, t, v in fact.records if t in ("issue", "issuewild")]
        shown = "; ".join(f"{t} {v}" for _, t, v in fact.records)[:200] or "no CAA record"
        if fact.errors and not restricting:
            yield failed(f"the CAA records of {fact.domain} are unreadable", at=at, subject="CAA",
                         observed="; ".join(fact.errors)[:200], expected="issue/issuewild records")
        elif restricting:
            yield passed(f"certificate issuance is restricted ({fact.found_at})", at=at, subject="CAA",
                         observed=shown, expected="issue/issuewild records")
        elif fact.records:
            yield warned("the CAA records do not restrict issuance (no issue or issuewild tag)", at=at, subject="CAA",
                         observed=shown, expected="issue/issuewild records")
        else:
            yield warned(f"no CAA record for {fact.domain}: any CA may issue certificates for it", at=at,
                         subject="CAA", observed=shown, expected="issue/issuewild records")


@check(
    id="dns.dnssec",
    title="The instance's DNS zone is signed (DNSSEC)",
    component="mail-dns",
    severity="low",
    threats=["T-MAIL-SPOOFING", "T-TRANSPORT-MITM"],
    needs=["dns_dnssec"],
    rationale="""Unsigned answers can be forged on the way to a resolver: the MX, SPF, DKIM and
        MTA-STS records a receiver relies on, and the address of the instance. Signing lets
        validating resolvers reject forgeries and enables DANE for mail. Many domains are unsigned
        and work, so this is a low-severity warning, not a failure.""",
    remediation=Remediation("Enable DNSSEC signing at the DNS provider and publish the DS record at the registrar.",
                            "# Knot: zone: - domain: example.social\n#   dnssec-signing: on"),
    references=["https://www.rfc-editor.org/rfc/rfc9364"],
    tags=["network", "dns"],
    modes=MODES,
)
def dnssec(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("dns_dnssec"):
        assert isinstance(fact, DnssecFact)
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


# --- the SMTP relay -----------------------------------------------------------------------------------

def _endpoints(facts: FactSet) -> Iterator[tuple[SmtpEndpoint, Location]]:
    for ep in facts.all("smtp_endpoint"):
        assert isinstance(ep, SmtpEndpoint)
        yield ep, Location(ep.location)


@check(
    id="smtp.starttls",
    title="The SMTP relay offers STARTTLS (or implicit TLS) that works",
    component="smtp",
    severity="high",
    threats=["T-SMTP-CREDENTIALS", "T-TRANSPORT-MITM"],
    needs=["smtp_endpoint"],
    rationale="""Without STARTTLS everything sent to and from the relay travels in clear: the relay
        password, password-reset links, the mail of the instance's users.""",
    remediation=Remediation("Give the relay a certificate and enable TLS.",
                            "# Postfix main.cf\nsmtpd_tls_security_level = may\nsmtpd_tls_cert_file = …\n"
                            "smtpd_tls_key_file = …"),
    references=["https://www.rfc-editor.org/rfc/rfc3207", "https://www.rfc-editor.org/rfc/rfc8314"],
    tags=["network", "mail", "tls"],
    modes=MODES,
)
def smtp_starttls(facts: FactSet) -> Iterator[Outcome]:
    for ep, at in _endpoints(facts):
        subject = f"{ep.source} {ep.shown}"
        tls = ep.tls
        if tls is not None and tls.established:
            old = tls.protocol in ("SSLv3", "TLSv1", "TLSv1.1")
            outcome = warned if old else passed
            yield outcome(f"{'implicit TLS' if ep.mode == 'implicit' else 'STARTTLS'} works ({tls.protocol})", at=at,
                          subject=subject, observed=f"{tls.protocol} {tls.cipher or ''}".strip(),
                          expected="TLS 1.2 or newer")
        elif ep.mode == "starttls" and ep.starttls_offered is False:
            yield failed(f"{ep.shown} does not offer STARTTLS: mail and credentials travel in clear", at=at,
                         subject=subject, observed="no STARTTLS in EHLO", expected="STARTTLS")
        elif tls is not None:
            yield failed(f"TLS on {ep.shown} fails: {tls.error or 'handshake failed'}", at=at, subject=subject,
                         observed=(tls.error or "handshake failed")[:200], expected="a working TLS handshake")
        else:
            yield errored(f"the SMTP dialogue with {ep.shown} failed: {ep.error}", at=at, subject=subject,
                          observed=(ep.error or "")[:200], expected="STARTTLS")


@check(
    id="smtp.tls-certificate",
    title="The SMTP relay's certificate verifies for its name",
    component="smtp",
    severity="medium",
    threats=["T-SMTP-CREDENTIALS", "T-TRANSPORT-MITM"],
    needs=["smtp_endpoint"],
    rationale="""Mastodon verifies the relay's certificate (SMTP_OPENSSL_VERIFY_MODE=peer) and MTA-STS
        senders verify the MX's: a self-signed, expired or misnamed certificate either breaks
        delivery or pushes admins to switch verification off.""",
    remediation=Remediation("Use a certificate from a trusted CA naming the relay (as SMTP_SERVER or the MX names it).",
                            "smtpd_tls_chain_files = /etc/letsencrypt/live/mail.example.social/privkey.pem, "
                            "/etc/letsencrypt/live/mail.example.social/fullchain.pem"),
    references=["https://www.rfc-editor.org/rfc/rfc8461#section-4.1"],
    tags=["network", "mail", "tls"],
    modes=MODES,
)
def smtp_certificate(facts: FactSet) -> Iterator[Outcome]:
    for ep, at in _endpoints(facts):
        subject = f"{ep.source} {ep.shown}"
        tls = ep.tls
        if tls is None or not tls.established:
            yield skipped(f"no TLS session with {ep.shown}: no certificate to judge", at=at, subject=subject)
        elif tls.verified:
            yield passed(f"the certificate verifies for {ep.host}", at=at, subject=subject, observed="verified",
                         expected=f"a valid certificate for {ep.host}")
        else:
            yield failed(f"the certificate of {ep.shown} does not verify for {ep.host}: {tls.verify_error}", at=at,
                         subject=subject, observed=f"not verified: {tls.verify_error}"[:200],
                         expected=f"a valid certificate for {ep.host}")


@check(
    id="smtp.auth-cleartext",
    title="The SMTP relay does not offer AUTH before TLS",
    component="smtp",
    severity="high",
    threats=["T-SMTP-CREDENTIALS"],
    needs=["smtp_endpoint"],
    rationale="""A relay that advertises AUTH PLAIN or LOGIN on an unencrypted session invites clients
        to send the password in clear (base64 is not encryption); a man in the middle who strips
        STARTTLS collects it.""",
    remediation=Remediation("Offer AUTH only after STARTTLS.", "smtpd_tls_auth_only = yes"),
    references=["https://www.postfix.org/postconf.5.html#smtpd_tls_auth_only"],
    tags=["network", "mail", "tls"],
    modes=MODES,
)
def smtp_auth_cleartext(facts: FactSet) -> Iterator[Outcome]:
    for ep, at in _endpoints(facts):
        subject = f"{ep.source} {ep.shown}"
        if ep.mode == "implicit":
            yield passed("the session is encrypted from the start (implicit TLS)", at=at, subject=subject,
                         observed="implicit TLS", expected="no AUTH before TLS")
        elif ep.auth_clear:
            mechs = " ".join(ep.auth_clear)
            yield failed(f"{ep.shown} offers AUTH {mechs} before TLS", at=at, subject=subject,
                         observed=f"AUTH {mechs} in clear EHLO", expected="no AUTH before STARTTLS")
        else:
            yield passed("no AUTH is offered before TLS", at=at, subject=subject, observed="no AUTH in clear EHLO",
                         expected="no AUTH before STARTTLS")


@check(
    id="smtp.open-relay",
    title="The SMTP relay does not relay mail for outsiders",
    component="smtp",
    severity="critical",
    threats=["T-MAIL-SPOOFING", "T-SMTP-CREDENTIALS"],
    needs=["smtp_endpoint"],
    rationale="""An open relay accepts mail from anyone to anyone: spammers and phishers send through
        it in the instance's name, its address lands on blocklists and the instance's own mail stops
        arriving. The probe stops at RCPT TO (an outside address, from a .invalid sender) and never
        sends a message.""",
    remediation=Remediation("Relay only for the app hosts and authenticated clients.",
                            "mynetworks = 127.0.0.0/8\n"
                            "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
                            "reject_unauth_destination"),
    references=["https://www.postfix.org/SMTPD_ACCESS_README.html"],
    tags=["network", "mail"],
    modes=MODES,
)
def smtp_open_relay(facts: FactSet) -> Iterator[Outcome]:
    for ep, at in _endpoints(facts):
        subject = f"{ep.source} {ep.shown}"
        relay = ep.relay
        expected = "RCPT TO an outside domain refused (5xx)"
        if relay is None:
            yield skipped(f"the relay test on {ep.shown} did not run: {ep.error or 'no session'}", at=at,
                          subject=subject)
        elif relay.open:
            yield failed(f"{ep.shown} relays mail from anyone to anywhere", at=at, subject=subject,
                         observed=f"RCPT TO:<probe@example.net> -> {relay.rcpt}", expected=expected)
        elif relay.open is False:
            yield passed(f"{ep.shown} refuses to relay", at=at, subject=subject,
                         observed=f"RCPT TO:<probe@example.net> -> {relay.rcpt}", expected=expected)
        elif relay.rcpt is not None:
            yield warned(f"{ep.shown} deferred the outside recipient: {relay.note}", at=at, subject=subject,
                         observed=f"RCPT TO:<probe@example.net> -> {relay.rcpt}", expected=expected)
        else:
            yield skipped(f"relaying could not be tried on {ep.shown}: {relay.note} ({relay.mail_from})", at=at,
                          subject=subject)


@check(
    id="smtp.vrfy",
    title="The SMTP relay does not answer VRFY",
    component="smtp",
    severity="low",
    threats=["T-APP-INFO-LEAK"],
    needs=["smtp_endpoint"],
    rationale="""VRFY tells anyone which mailboxes exist: a list of addresses for phishing and for
        guessing account names.""",
    remediation=Remediation("Disable VRFY.", "disable_vrfy_command = yes"),
    references=["https://www.postfix.org/postconf.5.html#disable_vrfy_command"],
    tags=["network", "mail"],
    modes=MODES,
)
def smtp_vrfy(facts: FactSet) -> Iterator[Outcome]:
    for ep, at in _endpoints(facts):
        subject = f"{ep.source} {ep.shown}"
        if ep.vrfy is None:
            yield skipped(f"VRFY was not tried on {ep.shown}: {ep.error or 'no session'}", at=at, subject=subject)
        elif ep.vrfy_enabled:
            yield failed(f"{ep.shown} answers VRFY", at=at, subject=subject,
                         observed=f"VRFY postmaster -> {ep.vrfy}"[:200], expected="502 (VRFY disabled)")
        else:
            yield passed(f"{ep.shown} does not verify addresses", at=at, subject=subject,
                         observed=f"VRFY postmaster -> {ep.vrfy}"[:200], expected="502 (VRFY disabled)")


_SOFTWARE = re.compile(r"\b(postfix|exim|sendmail|qmail|opensmtpd|haraka|microsoft|exchange|hmailserver|mdaemon|"
                       r"zimbra|courier|debian|ubuntu|centos|red ?hat|gnu|smtpd|mailenable|kerio|communigate)\b"
                       r"|\b\d+\.\d+(\.\d+)*\b", re.IGNORECASE)


def software_named(banner: str, host: str) -> list[str]:
    """Words of a 220 banner that name the MTA, the OS or a version (the server's own name, the first
    word, left out; so is the name the relay was reached by)."""
    words = (banner[4:] if banner[:3].isdigit() else banner).split()[1:]
    words = [w for w in words if w.lower().rstrip(".") != host.lower()]
    return list(dict.fromkeys(m.group(0) for m in _SOFTWARE.finditer(" ".join(words))))


@check(
    id="smtp.banner",
    title="The SMTP banner does not name the mail software or its version",
    component="smtp",
    severity="info",
    threats=["T-APP-INFO-LEAK"],
    needs=["smtp_endpoint"],
    rationale="""The greeting is the first thing a scanner records: naming the MTA, the distribution or
        a version tells an attacker which exploits to try. A host name and "ESMTP" are all a client
        needs.""",
    remediation=Remediation("Shorten the banner.", "smtpd_banner = $myhostname ESMTP"),
    references=["https://www.postfix.org/postconf.5.html#smtpd_banner"],
    tags=["network", "mail"],
    modes=MODES,
)
def smtp_banner(facts: FactSet) -> Iterator[Outcome]:
    for ep, at in _endpoints(facts):
        subject = f"{ep.source} {ep.shown}"
        if not ep.banner:
            continue
        named = software_named(ep.banner, ep.host)
        if named:
            yield failed(f"the banner of {ep.shown} names {', '.join(named)}", at=at, subject=subject,
                         observed=ep.banner[:200], expected="<host name> ESMTP")
        else:
            yield passed("the banner names no software", at=at, subject=subject, observed=ep.banner[:200],
                         expected="<host name> ESMTP")
