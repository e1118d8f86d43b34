"""TLS as an outsider sees it: protocols, ciphers, certificates, known TLS attacks and Mozilla's
profile for every endpoint the `tls` probe scanned (mastoaudit/probes/tls.py), plus STARTTLS on the
mail relays and TLS on a PostgreSQL server that answers from outside; and the web domain's CAA
records, which say who may issue its certificates. How nginx is configured for TLS is judged in
checks/nginx.py (nginx.tls-*).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from mastoaudit import kinds
from mastoaudit.checkdef import Remediation, check, errored, failed, passed, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.mail import where
from mastoaudit.facts.tls import HTTPS, PROTOCOLS, SMTP_STARTTLS, CertDeployment, CertSummary, TlsEndpoint
from mastoaudit.model import Location, Outcome

OLD_PROTOCOLS = {  # protocol -> (severity, why)
    "SSL 2.0": ("critical", "broken (DROWN)"),
    "SSL 3.0": ("high", "broken (POODLE)"),
    "TLS 1.0": ("medium", "deprecated by RFC 8996 (BEAST, no AEAD ciphers)"),
    "TLS 1.1": ("medium", "deprecated by RFC 8996"),
}
# Curves beyond Mozilla's list that are at least as strong as the ones it lists: offering them does
# not weaken anything (the client picks), so they are noted, not counted as deviations.
STRONG_EXTRA_CURVES = {"X448", "secp521r1", "X25519MLKEM768", "SecP256r1MLKEM768", "SecP384r1MLKEM1024",
                       "X25519Kyber768Draft00"}
# Mozilla-checker keys that another check of this module already judges.
JUDGED_ELSEWHERE = {
    "certificate_path_validation": "tls.certificate-trusted",
    "tls_versions": "tls.protocols",
    "ciphers": "tls.ciphers",
    "ciphersuites": "tls.ciphers",
    "rsa_key_size": "tls.key-size",
    "tls_vulnerability_compression": "tls.vulnerabilities",
    "tls_vulnerability_ccs_injection": "tls.vulnerabilities",
    "tls_vulnerability_heartbleed": "tls.vulnerabilities",
    "tls_vulnerability_robot": "tls.vulnerabilities",
    "tls_vulnerability_renegotiation": "tls.vulnerabilities",
}
TLS_THREATS = ["T-TRANSPORT-MITM", "T-SMTP-CREDENTIALS", "T-INTERNAL-CLEARTEXT"]
MOZILLA = "https://wiki.mozilla.org/Security/Server_Side_TLS"


def _names(items: Iterable[str], limit: int = 8) -> str:
    items = list(dict.fromkeys(items))
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _tls_endpoints(facts: FactSet) -> list[TlsEndpoint]:
    return [e for e in facts.all(kinds.TLS_ENDPOINT) if e.tls_offered]


def _opportunistic_mx(e: TlsEndpoint) -> bool:
    """Port 25 between mail servers: opportunistic TLS (RFC 7435), judged against broken ciphers only."""
    return e.kind == SMTP_STARTTLS and e.port == 25


def _expected_protocols(e: TlsEndpoint) -> tuple[str, ...]:
    return e.profile.protocols if e.profile else ("TLS 1.2", "TLS 1.3")


# --- protocols and ciphers ---------------------------------------------------------------------------


@check(
    id="tls.protocols",
    title="Endpoints accept only TLS 1.2 and 1.3",
    component="tls",
    severity="high",
    threats=TLS_THREATS,
    needs=[kinds.TLS_ENDPOINT],
    rationale="""SSL 2.0 and 3.0 are broken (DROWN, POODLE) and TLS 1.0 and 1.1 were deprecated by
        RFC 8996: a man in the middle can force a client down to them. Browsers dropped TLS 1.0 and
        1.1 in 2020, so no legitimate visitor, peer instance or mail server needs them. Mozilla's
        intermediate profile allows TLS 1.2 and 1.3, the modern profile TLS 1.3 only.""",
    remediation=Remediation("Allow only TLS 1.2 and 1.3 in nginx (and in Postfix, PostgreSQL).",
                            "ssl_protocols TLSv1.2 TLSv1.3;\n# Postfix: smtpd_tls_protocols = >=TLSv1.2\n"
                            "# PostgreSQL: ssl_min_protocol_version = 'TLSv1.2'"),
    references=[MOZILLA, "https://www.rfc-editor.org/rfc/rfc8996"],
    tags=["tls", "network"],
)
def protocols(facts: FactSet) -> Iterator[Outcome]:
    for e in _tls_endpoints(facts):
        expected = _expected_protocols(e)
        subject = f"{e.where} protocols"
        accepted = ", ".join(e.protocols) or "none"
        old = [p for p in e.protocols if p in OLD_PROTOCOLS]
        if old:
            worst = min((OLD_PROTOCOLS[p][0] for p in old), key=["critical", "high", "medium"].index)
            why = "; ".join(f"{p} {OLD_PROTOCOLS[p][1]}" for p in old)
            yield failed(f"{e.where} accepts {', '.join(old)}: {why}", at=e.at(), subject=subject,
                         observed=accepted, expected=", ".join(expected), severity=worst)
            continue
        unscanned = [p for p in OLD_PROTOCOLS if p not in e.protocols_scanned]
        if unscanned:
            yield errored(f"{e.where}: {', '.join(unscanned)} could not be tested "
                          f"({_names(e.errors.values(), 2)})", at=e.at(), subject=subject)
            continue
        extra = [p for p in e.protocols if p not in expected]
        if extra:
            name = e.profile.name if e.profile else ""
            yield failed(f"{e.where} accepts {', '.join(extra)}, outside Mozilla's {name} profile", at=e.at(),
                         subject=subject, observed=accepted, expected=", ".join(expected),
                         severity="low")
        elif not e.protocols:
            yield errored(f"{e.where}: no protocol version was accepted in the scan", at=e.at(), subject=subject)
        else:
            yield passed(f"{e.where} accepts only {accepted}", at=e.at(), subject=subject, observed=accepted,
                         expected=", ".join(expected))


@check(
    id="tls.ciphers",
    title="Endpoints offer only the cipher suites of Mozilla's profile, and no broken ones",
    component="tls",
    severity="high",
    threats=TLS_THREATS,
    needs=[kinds.TLS_ENDPOINT],
    rationale="""NULL, anonymous, export, RC4, DES and 3DES suites let a man in the middle read or
        forge traffic; CBC suites and static-RSA key exchange (no forward secrecy) are outside
        Mozilla's intermediate profile because a stolen key decrypts recorded traffic and CBC has a
        long record of padding oracles. Port 25 between mail servers is opportunistic TLS (RFC 7435):
        a sender that cannot agree on a cipher falls back to clear text, so there only broken
        ciphers fail; anonymous suites, used only by senders that verify nothing anyway, are noted.""",
    remediation=Remediation(
        "Use the cipher list of Mozilla's configuration generator for your server.",
        "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;\n"
        "ssl_prefer_server_ciphers off;\n"
        "# Postfix: smtpd_tls_exclude_ciphers = aNULL, eNULL, EXPORT, DES, 3DES, RC4, MD5"),
    references=[MOZILLA, "https://ssl-config.mozilla.org/", "https://www.rfc-editor.org/rfc/rfc7435"],
    tags=["tls", "network"],
)
def ciphers(facts: FactSet) -> Iterator[Outcome]:
    for e in _tls_endpoints(facts):
        subject = f"{e.where} ciphers"
        if not e.protocols_scanned:
            yield errored(f"{e.where}: the cipher suites could not be scanned", at=e.at(), subject=subject)
            continue
        mx = _opportunistic_mx(e)
        broken = [(c, c.weaknesses) for c in e.ciphers if c.weaknesses]
        anonymous_only = [c for c, why in broken if set(why) == {"anonymous (no authentication)"}]
        if mx:
            broken = [(c, why) for c, why in broken if set(why) != {"anonymous (no authentication)"}]
        profile = e.profile
        allowed = (profile.ciphers | profile.ciphersuites) if profile else frozenset()
        outside = [c.name for c in e.ciphers if profile and c.name not in allowed]
        expected = (f"only suites of Mozilla's {profile.name} profile {profile.version}" if profile
                    else "no broken suites")
        if broken:
            yield failed(f"{e.where} offers {len({c.name for c, _ in broken})} broken cipher suites",
                         at=e.at(), subject=subject,
                         observed=_names(f"{c.name} ({', '.join(why)})" for c, why in broken),
                         expected=expected if not mx else "no NULL, export, RC4, DES, 3DES or MD5 suites")
        elif outside and not mx:
            yield failed(f"{e.where} offers {len(set(outside))} cipher suites outside Mozilla's "
                         f"{profile.name} profile", at=e.at(), subject=subject, observed=_names(outside),
                         expected=expected, severity="medium")
        elif unscanned := [(ours, e.errors[field]) for field, ours, _ in PROTOCOLS
                           if ours not in e.protocols_scanned and field in e.errors]:
            # nothing broken in what was scanned, but a protocol's suites were not (a scan, or the
            # split-off half of one, that failed): that is no evidence of a clean list
            yield errored(f"{e.where}: the {', '.join(p for p, _ in unscanned)} cipher suites could not be "
                          f"scanned ({_names((why for _, why in unscanned), 2)})", at=e.at(), subject=subject)
        else:
            note = ""
            if mx and (outside or anonymous_only):
                note = (f" (opportunistic SMTP: {len(set(outside))} suites outside Mozilla's web profile, "
                        f"{len({c.name for c in anonymous_only})} anonymous, tolerated on port 25)")
            yield passed(f"{e.where} offers no broken cipher suites{note}", at=e.at(), subject=subject,
                         observed=f"{len({c.name for c in e.ciphers})} suites", expected=expected)


# --- certificates ------------------------------------------------------------------------------------------


def _deployments(facts: FactSet) -> Iterator[tuple[TlsEndpoint, CertDeployment, str]]:
    for e in _tls_endpoints(facts):
        several = len(e.certificates) > 1
        for dep in e.certificates:
            yield e, dep, f"{e.where} certificate" + (f" ({dep.leaf.key_type})" if several else "")


def _cert_errors(facts: FactSet, subject_suffix: str) -> Iterator[Outcome]:
    for e in _tls_endpoints(facts):
        if not e.certificates:
            why = e.errors.get("certificate_info", "the server sent no certificate")
            yield errored(f"{e.where}: the certificate could not be read: {why}", at=e.at(),
                          subject=f"{e.where} {subject_suffix}")


@check(
    id="tls.certificate-trusted",
    title="Certificates chain to a trusted CA and name the host",
    component="tls",
    severity="high",
    threats=["T-TRANSPORT-MITM", "T-SMTP-CREDENTIALS"],
    needs=[kinds.TLS_ENDPOINT],
    rationale="""A certificate that does not chain to a CA the clients trust, or that names another
        host, is either refused (browsers, other instances fetching ActivityPub objects, Mastodon
        verifying its SMTP relay) or trained away by clicking through warnings, which is what a man
        in the middle needs. Internal CAs are trusted when given with --ca-bundle.""",
    remediation=Remediation("Serve the full chain (leaf and intermediates) of a certificate from a public CA "
                            "(Let's Encrypt via certbot) that names every host.",
                            "ssl_certificate     /etc/letsencrypt/live/example.social/fullchain.pem;\n"
                            "ssl_certificate_key /etc/letsencrypt/live/example.social/privkey.pem;"),
    references=["https://docs.joinmastodon.org/admin/install/#acquiring-an-ssl-certificate"],
    tags=["tls", "network", "certificate"],
)
def certificate_trusted(facts: FactSet) -> Iterator[Outcome]:
    for e, dep, subject in _deployments(facts):
        leaf = dep.leaf
        names = _names(leaf.sans, 6) or "no subjectAltName"
        if not dep.trusted and dep.lenient_trusted_by:
            stores = ", ".join(dep.lenient_trusted_by)
            yield failed(f"{e.where}: the chain leads to a CA of {stores} (OpenSSL's default verification accepts "
                         "it), but strict X.509 validation (RFC 5280) rejects it: "
                         f"{dep.trust_error or 'a CA certificate breaks the profile'}; clients that validate strictly "
                         "(Python 3.13's default context, cryptography, some Fediverse servers) refuse it",
                         at=e.at(), subject=subject,
                         observed=f"issuer {leaf.issuer or '?'}; names {names}; strict: {dep.trust_error or 'refused'}",
                         expected=f"a chain to a trusted CA naming {e.sni}, valid under strict X.509",
                         severity="medium")
        elif not dep.trusted:
            yield failed(f"{e.where}: the certificate is not trusted: {dep.trust_error or 'no chain to a trusted CA'}",
                         at=e.at(), subject=subject,
                         observed=f"issuer {leaf.issuer or '?'}; names {names}; {dep.trust_error or 'untrusted'}",
                         expected=f"a chain to a trusted CA naming {e.sni}")
        elif not dep.hostname_match:
            yield failed(f"{e.where}: the certificate does not name {e.sni}", at=e.at(), subject=subject,
                         observed=f"names {names}", expected=f"a certificate naming {e.sni}")
        else:
            yield passed(f"{e.where}: trusted ({', '.join(dep.trusted_by)}) and names {e.sni}", at=e.at(),
                         subject=subject, observed=f"issuer {leaf.issuer}; names {names}",
                         expected=f"a chain to a trusted CA naming {e.sni}")
    yield from _cert_errors(facts, "certificate")


def _earliest_expiry(dep: CertDeployment) -> CertSummary:
    """The leaf or an intermediate it was sent with, whichever expires first (roots are not judged)."""
    sent = [c for c in dep.chain if c.not_after and (c is dep.chain[0] or c.subject != c.issuer)] or [dep.leaf]
    return min(sent, key=lambda c: c.not_after or datetime.max.replace(tzinfo=UTC))


@check(
    id="tls.certificate-expiry",
    title="Certificates are valid for at least three more weeks",
    component="tls",
    severity="high",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.TLS_ENDPOINT],
    rationale="""An expired certificate takes the instance off the fediverse (peers refuse its
        signatures' key fetches and deliveries) and trains users to accept warnings. certbot renews
        Let's Encrypt certificates 30 days before expiry: under 21 days left means renewal has been
        failing for over a week (warn); under 7 days it is an outage in waiting (fail).""",
    remediation=Remediation("Renew the certificate and fix the renewal job; alert on failed renewals.",
                            "certbot renew && systemctl reload nginx\nsystemctl list-timers certbot.timer"),
    references=["https://letsencrypt.org/docs/integration-guide/"],
    tags=["tls", "network", "certificate"],
)
def certificate_expiry(facts: FactSet) -> Iterator[Outcome]:
    now = datetime.now(UTC)
    for e, dep, subject in _deployments(facts):
        cert = _earliest_expiry(dep)
        which = "the certificate" if cert is dep.leaf else f"the intermediate {cert.subject}"
        if cert.not_after is None:
            yield errored(f"{e.where}: the expiry date could not be read", at=e.at(), subject=subject)
            continue
        days = (cert.not_after - now).total_seconds() / 86400
        shown = f"{cert.not_after:%Y-%m-%d %H:%M} UTC ({int(days)} days)"
        if dep.leaf.not_before and dep.leaf.not_before > now:
            yield failed(f"{e.where}: the certificate is not valid before {dep.leaf.not_before:%Y-%m-%d}",
                         at=e.at(), subject=subject, observed=f"not before {dep.leaf.not_before:%Y-%m-%d}",
                         expected="valid now")
        elif days < 0:
            yield failed(f"{e.where}: {which} expired on {cert.not_after:%Y-%m-%d}", at=e.at(), subject=subject,
                         observed=shown, expected="at least 21 days left", severity="critical")
        elif days < 7:
            yield failed(f"{e.where}: {which} expires in {int(days)} days", at=e.at(), subject=subject,
                         observed=shown, expected="at least 21 days left")
        elif days < 21:
            yield warned(f"{e.where}: {which} expires in {int(days)} days: is renewal failing?", at=e.at(),
                         subject=subject, observed=shown, expected="at least 21 days left", severity="medium")
        else:
            yield passed(f"{e.where}: valid until {cert.not_after:%Y-%m-%d}", at=e.at(), subject=subject,
                         observed=shown, expected="at least 21 days left")
    yield from _cert_errors(facts, "certificate")


def _weak_key(cert: CertSummary) -> str | None:
    size = cert.key_size or 0
    if cert.key_type == "RSA" and size < 2048:
        return f"RSA {size} bits (under 2048)"
    if cert.key_type == "EC" and size < 256:
        return f"EC {size} bits (under 256)"
    if cert.key_type == "DSA":
        return f"DSA {size} bits (DSA is deprecated)"
    if cert.key_type not in ("RSA", "EC", "Ed25519", "Ed448"):
        return f"{cert.key_type} (unknown key type)"
    return None


@check(
    id="tls.key-size",
    title="Certificate keys are at least RSA 2048 or EC 256 bits",
    component="tls",
    severity="high",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.TLS_ENDPOINT],
    rationale="""RSA keys under 2048 bits and elliptic-curve keys under 256 bits are within reach of
        well-funded attackers (NIST SP 800-131A disallowed them after 2013); whoever factors the key
        impersonates the server. The leaf and the intermediates it is sent with are judged.""",
    remediation=Remediation("Issue a new certificate on an RSA 2048+ or ECDSA P-256/P-384 key.",
                            "certbot certonly --key-type ecdsa --elliptic-curve secp256r1 -d example.social"),
    references=[MOZILLA, "https://csrc.nist.gov/pubs/sp/800/131/a/r2/final"],
    tags=["tls", "network", "certificate"],
)
def key_size(facts: FactSet) -> Iterator[Outcome]:
    for e, dep, subject in _deployments(facts):
        judged = [c for c in dep.chain if c is dep.chain[0] or c.subject != c.issuer]
        weak = [(c, _weak_key(c)) for c in judged if _weak_key(c)]
        if weak:
            cert, why = weak[0]
            who = "the certificate" if cert is dep.chain[0] else f"the intermediate {cert.subject}"
            size = cert.key_size or 0
            yield failed(f"{e.where}: {who} has a weak key: {why}", at=e.at(), subject=subject,
                         observed=cert.key, expected="RSA >= 2048 or EC >= 256 bits",
                         severity="critical" if cert.key_type == "RSA" and size < 1024 else None)
        else:
            yield passed(f"{e.where}: {dep.leaf.key} key", at=e.at(), subject=subject, observed=dep.leaf.key,
                         expected="RSA >= 2048 or EC >= 256 bits")
    yield from _cert_errors(facts, "certificate")


@check(
    id="tls.ocsp-stapling",
    title="OCSP responses are stapled where the certificate names a responder",
    component="tls",
    severity="info",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.TLS_ENDPOINT],
    rationale="""Since 2024 the CA/Browser Forum makes OCSP optional for CAs, and Let's Encrypt
        stopped issuing certificates with an OCSP URL and shut its responders down in 2025;
        browsers rely on CRLs pushed to them (CRLite, CRLSets) and ever shorter certificate
        lifetimes. So a certificate without an OCSP responder has nothing to staple and passes.
        Where the certificate still names a responder, not stapling makes clients that check
        revocation ask the CA, telling it who visits the instance (a warning at info level); a
        certificate with the Must-Staple extension and no staple is refused by Firefox (a failure).""",
    remediation=Remediation("Staple OCSP responses when the certificate names a responder, or get one without "
                            "Must-Staple.", "ssl_stapling on;\nssl_stapling_verify on;\nresolver 127.0.0.53;"),
    references=["https://letsencrypt.org/2024/12/05/ending-ocsp/",
                "https://cabforum.org/2023/07/14/ballot-sc063v4-make-ocsp-optional-require-crls-and-incentivize-"
                "automation/"],
    tags=["tls", "network", "certificate"],
)
def ocsp_stapling(facts: FactSet) -> Iterator[Outcome]:
    for e, dep, subject in _deployments(facts):
        if e.kind != HTTPS:
            continue  # mail servers and PostgreSQL clients do not check OCSP
        leaf = dep.leaf
        responder = _names(leaf.ocsp_urls, 2)
        if dep.ocsp_stapled:
            if dep.ocsp_status != "SUCCESSFUL" or dep.ocsp_trusted is False:
                state = dep.ocsp_status if dep.ocsp_status != "SUCCESSFUL" else "not trusted"
                yield warned(f"{e.where}: the stapled OCSP response is {state}", at=e.at(), subject=subject,
                             observed=f"stapled, {state}", expected="a successful, trusted response",
                             severity="low")
            else:
                yield passed(f"{e.where}: OCSP response stapled", at=e.at(), subject=subject,
                             observed="stapled", expected="stapled, or no OCSP responder in the certificate")
        elif leaf.must_staple:
            yield failed(f"{e.where}: the certificate requires stapling (Must-Staple) but no OCSP response is "
                         "stapled: Firefox refuses the connection", at=e.at(), subject=subject,
                         observed="Must-Staple, nothing stapled", expected="a stapled OCSP response", severity="high")
        elif leaf.ocsp_urls:
            yield warned(f"{e.where}: the certificate names the OCSP responder {responder} but the server staples no "
                         "response", at=e.at(), subject=subject, observed="not stapled",
                         expected="a stapled OCSP response")
        else:
            crl = f"CRL {_names(leaf.crl_urls, 1)}" if leaf.crl_urls else "no CRL either"
            yield passed(f"{e.where}: the certificate names no OCSP responder: nothing to staple", at=e.at(),
                         subject=subject, observed=f"no OCSP responder ({crl})",
                         expected="stapled, or no OCSP responder in the certificate")


# --- attacks on the TLS implementation -------------------------------------------------------------------------

VULNERABILITIES = {  # key -> (name, severity)
    "heartbleed": ("Heartbleed (CVE-2014-0160)", "critical"),
    "ccs_injection": ("OpenSSL CCS injection (CVE-2014-0224)", "high"),
    "compression": ("TLS compression (CRIME)", "high"),
    "insecure_renegotiation": ("insecure renegotiation (CVE-2009-3555)", "medium"),
    "client_renegotiation_dos": ("client-initiated renegotiation (DoS)", "low"),
}
ROBOT = {"VULNERABLE_STRONG_ORACLE": "high", "VULNERABLE_WEAK_ORACLE": "medium"}


@check(
    id="tls.vulnerabilities",
    title="Endpoints are not vulnerable to Heartbleed, ROBOT, CCS injection, insecure renegotiation or CRIME",
    component="tls",
    severity="critical",
    threats=TLS_THREATS,
    needs=[kinds.TLS_ENDPOINT],
    rationale="""These are flaws of the TLS implementation, not of its settings: Heartbleed leaks the
        server's memory (keys, session cookies), ROBOT and CCS injection let an attacker decrypt or
        hijack sessions, insecure renegotiation lets one inject requests into a victim's session,
        client-initiated renegotiation multiplies the server's CPU cost, and TLS compression leaks
        secrets (CRIME). An up-to-date OpenSSL and web server have none of them.""",
    remediation=Remediation("Upgrade OpenSSL and the server (apt upgrade), disable TLS compression and "
                            "static-RSA key exchange (ROBOT).", "apt update && apt upgrade\nsystemctl restart nginx"),
    references=["https://heartbleed.com/", "https://robotattack.org/",
                "https://www.openssl.org/news/secadv/20140605.txt"],
    tags=["tls", "network", "vulnerability"],
)
def vulnerabilities(facts: FactSet) -> Iterator[Outcome]:
    for e in _tls_endpoints(facts):
        v = e.vulnerabilities
        found: list[tuple[str, str]] = [(name, sev) for key, (name, sev) in VULNERABILITIES.items() if v.get(key)]
        robot = v.get("robot")
        if robot in ROBOT:
            found.append((f"ROBOT ({robot.lower().replace('_', ' ')})", ROBOT[robot]))
        unknown = [VULNERABILITIES[k][0] for k in VULNERABILITIES if v.get(k) is None]
        if robot is None:
            unknown.append("ROBOT")
        for name, sev in found:
            yield failed(f"{e.where} is vulnerable to {name}", at=e.at(),
                         subject=f"{e.where} {name.split(' (')[0]}", observed="vulnerable",
                         expected="not vulnerable", severity=sev)
        if robot == "UNKNOWN_INCONSISTENT_RESULTS":
            yield warned(f"{e.where}: the ROBOT test gave inconsistent results", at=e.at(),
                         subject=f"{e.where} ROBOT", observed=robot, expected="not vulnerable", severity="medium")
        if unknown:
            yield errored(f"{e.where}: could not be tested for {', '.join(unknown)}", at=e.at(),
                          subject=f"{e.where} vulnerabilities")
        elif not found and robot != "UNKNOWN_INCONSISTENT_RESULTS":
            tested = ", ".join([*(n for n, _ in VULNERABILITIES.values()), "ROBOT"])
            yield passed(f"{e.where} is not vulnerable to {tested}", at=e.at(),
                         subject=f"{e.where} vulnerabilities", observed="none found", expected="not vulnerable")


# --- Mozilla's profile ------------------------------------------------------------------------------------


@check(
    id="tls.mozilla-profile",
    title="Web endpoints follow Mozilla's TLS configuration profile",
    component="tls",
    severity="low",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.TLS_ENDPOINT],
    rationale="""Mozilla's server-side TLS profiles (intermediate by default, modern with
        --tls-profile) are the reference configuration for web servers. This check lists what sslyze's
        profile checker finds that the other TLS checks do not already report: certificate lifespan
        (over 366 days for intermediate; browsers refuse over 398), certificate type and signature,
        DH and ECDH parameter sizes, curves weaker than the profile's, missing TLS_FALLBACK_SCSV or
        extended master secret. Curves at least as strong as the profile's (X448, P-521, hybrid
        post-quantum groups) are noted, not counted. Only HTTPS endpoints are held to it.""",
    remediation=Remediation("Generate the server's TLS settings with Mozilla's configuration generator and keep "
                            "certificate lifetimes short (ACME).",
                            "ssl_ecdh_curve X25519:prime256v1:secp384r1;\nssl_dhparam /etc/nginx/ffdhe2048.pem;"),
    references=[MOZILLA, "https://ssl-config.mozilla.org/"],
    tags=["tls", "network"],
)
def mozilla_profile(facts: FactSet) -> Iterator[Outcome]:
    for e in _tls_endpoints(facts):
        if e.kind != HTTPS:
            continue
        subject = f"{e.where} Mozilla profile"
        profile = e.profile
        label = f"Mozilla {profile.name} {profile.version}" if profile else "Mozilla's profile"
        if e.mozilla_error:
            yield errored(f"{e.where}: the profile could not be checked: {e.mozilla_error}", at=e.at(),
                          subject=subject)
            continue
        deviations = {k: v for k, v in e.mozilla_deviations.items() if k not in JUDGED_ELSEWHERE}
        note = ""
        if "tls_curves" in deviations and profile:
            extra = sorted(set(e.curves) - profile.curves)
            weaker = [c for c in extra if c not in STRONG_EXTRA_CURVES]
            del deviations["tls_curves"]
            if weaker:
                deviations["tls_curves"] = f"curves {', '.join(weaker)} are offered, outside the profile"
            stronger = [c for c in extra if c in STRONG_EXTRA_CURVES]
            if stronger:
                note = f" (also offers the curves {', '.join(stronger)}, stronger than the profile lists: not counted)"
        elsewhere = _covered_elsewhere(e)
        if deviations:
            points = f"{len(deviations)} point" + ("s" if len(deviations) > 1 else "")
            yield failed(f"{e.where} deviates from {label} in {points}{note}{elsewhere}", at=e.at(), subject=subject,
                         observed="; ".join(f"{k}: {v}" for k, v in sorted(deviations.items())),
                         expected=label)
        else:
            yield passed(f"{e.where} follows {label} in what this check covers (certificate lifespan, type and "
                         f"signature, DH and ECDH sizes, curves, fallback SCSV, extended master secret){note}"
                         f"{elsewhere}", at=e.at(), subject=subject, observed="no deviations", expected=label)


def _covered_elsewhere(e: TlsEndpoint) -> str:
    """The profile's points this check leaves to another, when that one finds something here: a pass
    beside a failure on the same endpoint says what it covers."""
    found = sorted({JUDGED_ELSEWHERE[k] for k in e.mozilla_deviations if k in JUDGED_ELSEWHERE})
    return f"; deviations judged by {', '.join(found)} are not counted here" if found else ""


# --- mail relay and database ----------------------------------------------------------------------------------


# --- the web domain's CAA (probe: dns-zone) -----------------------------------------------------------


@check(
    id="dns.caa",
    title="CAA records name the certificate authorities that may issue for the web domain",
    component="tls",
    severity="low",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.DNS_CAA],
    rationale="""Without CAA every public CA may issue a certificate for the instance's domain; one
        mis-issuance (a CA tricked through a hijacked validation path) is a valid certificate for a
        man in the middle. CAA limits issuance to the CA the instance uses.""",
    remediation=Remediation("Publish CAA records for the CA you use (and issuewild if wildcards are not used).",
                            'example.social. CAA 0 issue "letsencrypt.org"\nexample.social. CAA 0 issuewild ";"'),
    references=["https://www.rfc-editor.org/rfc/rfc8659"],
    tags=["network", "dns", "tls"],
)
def caa(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.DNS_CAA):
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
