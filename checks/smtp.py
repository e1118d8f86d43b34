"""The SMTP relay Mastodon sends its mail through: how .env.production reaches it (STARTTLS,
certificate verification, a password in clear) and what it answers an outsider (STARTTLS and its
certificate, AUTH before TLS, VRFY, relaying to anywhere, the banner) (T-SMTP-CREDENTIALS,
T-MAIL-SPOOFING). Network facts from mastoaudit/probes/smtp.py (facts/smtp.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mastoaudit import kinds
from mastoaudit.checkdef import Remediation, check, errored, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.smtp import SmtpEndpoint
from mastoaudit.judgments.env import CONFIG_DOCS, local_place, templated, var_at, where_used
from mastoaudit.model import Location, Outcome
from mastoaudit.parsers.env import EnvVar, MastodonEnv

# --- how Mastodon connects (.env.production) ----------------------------------------------------------


def _smtp(env: MastodonEnv) -> tuple[EnvVar | None, str | None]:
    """The SMTP server variable, and why SMTP is not judged (None when it is)."""
    server = env.get("SMTP_SERVER")
    method = env.value("SMTP_DELIVERY_METHOD", "smtp")
    if method != "smtp":
        return server, f"mail is delivered with {method}, not SMTP"
    if server is None or not server.is_set:
        return server, "no SMTP_SERVER configured"
    return server, None


def _implicit_tls(env: MastodonEnv) -> EnvVar | None:
    for key in ("SMTP_TLS", "SMTP_SSL"):
        if env.is_true(key):
            return env.get(key)
    return None


def _tls_templated(env: MastodonEnv) -> EnvVar | None:
    for key in ("SMTP_ENABLE_STARTTLS", "SMTP_ENABLE_STARTTLS_AUTO", "SMTP_TLS", "SMTP_SSL"):
        var = env.get(key)
        if var is not None and var.templated:
            return var
    return None


def _starttls_mode(env: MastodonEnv) -> tuple[str, EnvVar | None]:
    """always, never or auto, as Mastodon's email configuration derives it."""
    var = env.get("SMTP_ENABLE_STARTTLS")
    if var is not None and var.value in ("always", "never", "auto"):
        return var.value, var
    auto = env.get("SMTP_ENABLE_STARTTLS_AUTO")
    if auto is not None and auto.value == "false":
        return "never", auto
    return "auto", var


@check(
    id="smtp.env-starttls",
    title="Mail to the SMTP relay is encrypted (STARTTLS or TLS)",
    component="smtp",
    severity="high",
    threats=["T-SMTP-CREDENTIALS"],
    needs=[kinds.MASTODON_ENV],
    reads=[kinds.COMPOSE],
    rationale="""Password-reset and confirmation mails carry links that log people in, and the
        relay login travels on the same connection. SMTP_ENABLE_STARTTLS=never (or
        SMTP_ENABLE_STARTTLS_AUTO=false) sends all of it in clear to a relay across the network.""",
    remediation=Remediation("Require STARTTLS (or use implicit TLS on port 465).", "SMTP_ENABLE_STARTTLS=always"),
    references=[CONFIG_DOCS + "#smtp"],
    tags=["mail", "tls"],
)
def smtp_starttls(facts: FactSet) -> Iterator[Outcome]:
    used, skips = where_used(facts, _smtp, "not configured", "SMTP over TLS")
    yield from skips
    for env, server in used:
        unknown = server if server.templated else _tls_templated(env)
        if unknown is not None:
            yield templated(env, unknown)
            continue
        tls = _implicit_tls(env)
        mode, var = _starttls_mode(env)
        place = local_place(facts, env, server.value)
        if place is not None:
            yield passed(f"mail goes to a relay on {place}", at=var_at(env, server), subject="SMTP_SERVER",
                         observed=server.value, expected="TLS to remote relays")
        elif tls is not None:
            yield passed(f"implicit TLS ({tls.key})", at=var_at(env, tls), subject=tls.key, observed="true",
                         expected="TLS")
        elif mode == "never":
            yield failed(f"STARTTLS is off: mail to {server.value} travels in clear", at=var_at(env, var),
                         subject=var.key if var else "SMTP_ENABLE_STARTTLS",
                         observed=var.value if var else "never", expected="always")
        else:
            yield passed(f"STARTTLS is {mode}", at=var_at(env, var or server), subject="SMTP_ENABLE_STARTTLS",
                         observed=var.value if var and var.key == "SMTP_ENABLE_STARTTLS" else f"unset ({mode})",
                         expected="auto or always")


VERIFYING_MODES = ("peer",)


@check(
    id="smtp.env-certificate-verify",
    title="The SMTP relay's certificate is verified",
    component="smtp",
    severity="high",
    threats=["T-SMTP-CREDENTIALS"],
    needs=[kinds.MASTODON_ENV],
    reads=[kinds.COMPOSE],
    rationale="""Without certificate verification TLS to the relay only stops passive listening:
        anyone on the path can present their own certificate and read the relay password and every
        mail. On a client, `client_once` and `fail_if_no_peer_cert` verify nothing either; only
        `peer` does (the default when unset).""",
    remediation=Remediation("Verify the relay's certificate (give SMTP_CA_FILE for a private CA).",
                            "SMTP_OPENSSL_VERIFY_MODE=peer"),
    references=[CONFIG_DOCS + "#smtp"],
    tags=["mail", "tls"],
)
def smtp_certificate_verify(facts: FactSet) -> Iterator[Outcome]:
    used, skips = where_used(facts, _smtp, "not configured", "SMTP over TLS")
    yield from skips
    for env, server in used:
        var = env.get("SMTP_OPENSSL_VERIFY_MODE")
        if var is not None and var.templated:
            yield templated(env, var)
        elif not server.templated and (place := local_place(facts, env, server.value)) is not None:
            # mastodon:setup's "send from localhost" sets none: the connection never leaves the host.
            yield passed(f"the relay is on {place}: no network to guard", at=var_at(env, server),
                         subject="SMTP_SERVER", observed=server.value, expected="peer for remote relays")
        elif var is None or not var.is_set:
            yield passed("certificates are verified (default)", at=var_at(env, var), subject="SMTP_OPENSSL_VERIFY_MODE",
                         observed="unset (peer)", expected="peer")
        elif var.value.strip().lower() in VERIFYING_MODES:
            yield passed("certificates are verified", at=var_at(env, var), subject=var.key, observed=var.value,
                         expected="peer")
        else:
            yield failed("the relay's certificate is not verified", at=var_at(env, var), subject=var.key,
                         observed=var.value, expected="peer")


@check(
    id="smtp.env-auth-cleartext",
    title="The SMTP password is only sent over TLS",
    component="smtp",
    severity="high",
    threats=["T-SMTP-CREDENTIALS", "T-MAIL-SPOOFING"],
    needs=[kinds.MASTODON_ENV],
    reads=[kinds.COMPOSE],
    rationale="""SMTP_AUTH_METHOD plain (the default) and login send the password itself, merely
        base64-encoded. Unless TLS is guaranteed (SMTP_TLS, SMTP_SSL or STARTTLS always) it can go
        out in clear: with STARTTLS never always, with auto whenever someone on the path strips the
        STARTTLS offer. Stolen relay credentials send phishing in the instance's name.""",
    remediation=Remediation("Make TLS mandatory for the relay connection.", "SMTP_ENABLE_STARTTLS=always"),
    references=[CONFIG_DOCS + "#smtpauthentication"],
    tags=["mail", "tls", "credentials"],
)
def smtp_auth_cleartext(facts: FactSet) -> Iterator[Outcome]:
    used, skips = where_used(facts, _smtp, "not configured", "SMTP over TLS")
    yield from skips
    for env, server in used:
        method_var = env.get("SMTP_AUTH_METHOD")
        method = (method_var.value.strip().lower() if method_var and method_var.is_set else "plain")
        password = env.get("SMTP_PASSWORD")
        mode, _ = _starttls_mode(env)
        tls = _implicit_tls(env)
        where = var_at(env, method_var or password or server)
        observed = f"{method}{'' if method_var and method_var.is_set else ' (default)'}"
        unknown = next((v for v in (server, method_var, _tls_templated(env)) if v is not None and v.templated), None)
        if unknown is not None:
            yield templated(env, unknown)
        elif method == "none" or password is None or not password.is_set:
            yield passed("no password is sent to the relay", at=where, subject="SMTP_AUTH_METHOD",
                         observed=observed if method == "none" else "no SMTP_PASSWORD",
                         expected="no cleartext password")
        elif method not in ("plain", "login"):
            yield passed(f"{method} does not send the password itself", at=where, subject="SMTP_AUTH_METHOD",
                         observed=observed, expected="no cleartext password")
        elif (place := local_place(facts, env, server.value)) is not None:
            yield passed(f"the password goes to a relay on {place}", at=where, subject="SMTP_AUTH_METHOD",
                         observed=f"{observed} to {server.value}", expected="TLS to remote relays")
        elif tls is not None or mode == "always":
            yield passed(f"{method} authentication only over TLS", at=where, subject="SMTP_AUTH_METHOD",
                         observed=f"{observed} with {'implicit TLS' if tls else 'STARTTLS always'}",
                         expected="TLS guaranteed")
        elif mode == "never":
            yield failed(f"the SMTP password is sent in clear ({method} without TLS)", at=where,
                         subject="SMTP_AUTH_METHOD", observed=f"{observed} with STARTTLS never",
                         expected="STARTTLS always or implicit TLS")
        else:
            yield warned(f"{method} authentication relies on opportunistic STARTTLS, which an attacker on the path "
                         "can strip", at=where, subject="SMTP_AUTH_METHOD", observed=f"{observed} with STARTTLS auto",
                         expected="STARTTLS always or implicit TLS", severity="medium")


# --- from outside (probe: smtp) -----------------------------------------------------------------------


def _endpoints(facts: FactSet) -> Iterator[tuple[SmtpEndpoint, Location]]:
    for ep in facts.all(kinds.SMTP_ENDPOINT):
        yield ep, Location(ep.location)


@check(
    id="smtp.starttls",
    title="The SMTP relay offers STARTTLS (or implicit TLS) that works",
    component="smtp",
    severity="high",
    threats=["T-SMTP-CREDENTIALS", "T-TRANSPORT-MITM"],
    needs=[kinds.SMTP_ENDPOINT],
    rationale="""Without STARTTLS everything sent to and from the relay travels in clear: the relay
        password, password-reset links, the mail of the instance's users.""",
    remediation=Remediation("Give the relay a certificate and enable TLS.",
                            "# Postfix main.cf\nsmtpd_tls_security_level = may\nsmtpd_tls_cert_file = …\n"
                            "smtpd_tls_key_file = …"),
    references=["https://www.rfc-editor.org/rfc/rfc3207", "https://www.rfc-editor.org/rfc/rfc8314"],
    tags=["network", "mail", "tls"],
)
def relay_starttls(facts: FactSet) -> Iterator[Outcome]:
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
    needs=[kinds.SMTP_ENDPOINT],
    rationale="""Mastodon verifies the relay's certificate (SMTP_OPENSSL_VERIFY_MODE=peer) and MTA-STS
        senders verify the MX's: a self-signed, expired or misnamed certificate either breaks
        delivery or pushes admins to switch verification off.""",
    remediation=Remediation("Use a certificate from a trusted CA naming the relay (as SMTP_SERVER or the MX names it).",
                            "smtpd_tls_chain_files = /etc/letsencrypt/live/mail.example.social/privkey.pem, "
                            "/etc/letsencrypt/live/mail.example.social/fullchain.pem"),
    references=["https://www.rfc-editor.org/rfc/rfc8461#section-4.1"],
    tags=["network", "mail", "tls"],
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
    needs=[kinds.SMTP_ENDPOINT],
    rationale="""A relay that advertises AUTH PLAIN or LOGIN on an unencrypted session invites clients
        to send the password in clear (base64 is not encryption); a man in the middle who strips
        STARTTLS collects it.""",
    remediation=Remediation("Offer AUTH only after STARTTLS.", "smtpd_tls_auth_only = yes"),
    references=["https://www.postfix.org/postconf.5.html#smtpd_tls_auth_only"],
    tags=["network", "mail", "tls"],
)
def relay_auth_cleartext(facts: FactSet) -> Iterator[Outcome]:
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
    needs=[kinds.SMTP_ENDPOINT],
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
    needs=[kinds.SMTP_ENDPOINT],
    rationale="""VRFY tells anyone which mailboxes exist: a list of addresses for phishing and for
        guessing account names.""",
    remediation=Remediation("Disable VRFY.", "disable_vrfy_command = yes"),
    references=["https://www.postfix.org/postconf.5.html#disable_vrfy_command"],
    tags=["network", "mail"],
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
    needs=[kinds.SMTP_ENDPOINT],
    rationale="""The greeting is the first thing a scanner records: naming the MTA, the distribution or
        a version tells an attacker which exploits to try. A host name and "ESMTP" are all a client
        needs.""",
    remediation=Remediation("Shorten the banner.", "smtpd_banner = $myhostname ESMTP"),
    references=["https://www.postfix.org/postconf.5.html#smtpd_banner"],
    tags=["network", "mail"],
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
