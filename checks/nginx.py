"""nginx: the front door of a Mastodon instance (TLS, HSTS, redirects, headers, the proxy to the app),
as its configuration says (files, or nginx -T on a live host) and as browsers see it (the network).

What Mastodon's own documentation sets up is the baseline and never fails: large request bodies,
the app (Rails) setting its own HSTS and Content-Security-Policy on the responses nginx proxies to
it, publicly readable media. A check judges what nginx itself puts on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from mastoaudit import ciphers, kinds, templating
from mastoaudit.addresses import reach, split_host_port
from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.http import ONE_YEAR, SIX_MONTHS, HttpSite, Observation, nosniff, parse_hsts, redirect_verdict
from mastoaudit.judgments.http import urls
from mastoaudit.model import Location, Outcome, SkipReason, Status
from mastoaudit.net import csp
from mastoaudit.net.csp import escape
from mastoaudit.parsers.nginx import Directive, Header, NginxConfig, Server, location_spec, site_path

NGINX_DOC = "https://nginx.org/en/docs/"
MASTODON_INSTALL = "https://docs.joinmastodon.org/admin/install/"
MOZILLA_TLS = "https://ssl-config.mozilla.org/"
HSTS_MIN = 31536000  # one year
MEDIA_URI = "/system/media_attachments/files/110/000/000/000/000/001/original/0123456789abcdef.png"
STREAMING_URI = "/api/v1/streaming"
BAD_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
_STORAGE_HINT = re.compile(r"s3|bucket|storage|wasabi|backblaze|b2|r2\.|minio|spaces|objects|media|files|cdn", re.I)




# --- what serves a request -----------------------------------------------------------------------


def serve_mode(conf: NginxConfig, server: Directive, loc: Directive | None, depth: int = 0) -> str:
    """How nginx answers in a location: "return" (redirect/refusal), "app" (proxied inside the
    deployment), "external" (proxied to another host, e.g. object storage), "app-fallback" (files
    from disk, else the app), or "static" (files from disk)."""
    if server.first("return") is not None:
        return "return"
    if loc is None:
        return "static"
    if loc.first("return") is not None:
        return "return"
    target = conf.proxy_target(loc)
    if target is not None:
        if target.internal and _fixed_host(conf, loc):
            return "external"  # an object-storage proxy on this host (a local MinIO, an S3 gateway)
        return "app" if target.internal else "external"
    if any(loc.first(n) for n in ("fastcgi_pass", "uwsgi_pass", "grpc_pass", "scgi_pass")):
        return "app"
    fallback = conf.falls_back_to(server, loc)
    if fallback is not None and depth < 4 and serve_mode(conf, server, fallback, depth + 1) == "app":
        return "app-fallback"
    return "static"


def _fixed_host(conf: NginxConfig, loc: Directive) -> bool:
    """Mastodon is proxied with `Host $host`; a literal Host (the bucket's name, as Mastodon's
    object-storage proxy guide sets it) means the upstream is object storage, not the app."""
    host = conf.proxy_headers(loc).get("host")
    return host is not None and len(host.args) >= 2 and not host.args[1].startswith("$")


def _proxy_node(conf: NginxConfig, server: Directive, loc: Directive | None) -> Directive | None:
    """The location whose proxy settings apply: the location itself or the one it falls back to."""
    if loc is None:
        return None
    if conf.proxy_target(loc) is not None:
        return loc
    fallback = conf.falls_back_to(server, loc)
    if fallback is not None and conf.proxy_target(fallback) is not None:
        return fallback
    return None


def _app_locations(conf: NginxConfig, server: Directive) -> list[Directive]:
    return [loc for loc in conf.locations(server) if serve_mode(conf, server, loc) == "app"]


def is_mastodon_server(conf: NginxConfig, server: Server) -> bool:
    """A server in front of Mastodon: it proxies to the app, or serves a Mastodon public/ directory."""
    if _app_locations(conf, server.directive):
        return True
    root = conf.effective(server.directive, "root")
    return root is not None and bool(re.search(r"(live|mastodon)[^/]*/public/?$", root.arg))


def _http_servers(conf: NginxConfig) -> list[Server]:
    return conf.servers()


def _tls_servers(conf: NginxConfig) -> list[Server]:
    """Servers that complete TLS handshakes (not those set to ssl_reject_handshake on)."""
    out = []
    for server in conf.servers():
        reject = conf.effective(server.directive, "ssl_reject_handshake")
        if server.ssl and not (reject is not None and reject.arg.lower() == "on"):
            out.append(server)
    return out


def _mastodon_servers(conf: NginxConfig) -> list[Server]:
    return [s for s in conf.servers() if is_mastodon_server(conf, s)]


def _content_servers(facts: FactSet) -> Iterator[tuple[NginxConfig, Server]]:
    """Mastodon's servers that serve content (not only a redirect), in each configuration."""
    for conf in facts.all(kinds.NGINX):
        for server in _mastodon_servers(conf):
            if _serves_content(conf, server):
                yield conf, server


def _serves_content(conf: NginxConfig, server: Server) -> bool:
    """False for a server that only redirects or refuses (the ACME challenge path aside)."""
    s = server.directive
    if s.first("return") is not None:
        return False
    locations = [loc for loc in conf.locations(s) if not loc.arg.startswith("@") and not _acme(loc)]
    if not locations:
        return True
    return any(serve_mode(conf, s, loc) != "return" for loc in locations)


def _grouped(conf: NginxConfig, servers: Iterable[Server],
             name: str) -> Iterator[tuple[Directive | None, list[Server]]]:
    """Servers grouped by the directive that sets `name` for them (an http-level line once;
    the servers where it is unset in one group with None)."""
    groups: dict[int, tuple[Directive | None, list[Server]]] = {}
    for server in servers:
        d = conf.effective(server.directive, name)
        groups.setdefault(id(d) if d is not None else 0, (d, []))[1].append(server)
    yield from groups.values()


def _at(conf: NginxConfig, d: Directive | None, servers: list[Server]) -> Location:
    return d.location if d is not None else _unset_at(conf, servers)


def _unset_at(conf: NginxConfig, servers: list[Server]) -> Location:
    """Where a missing http-level setting belongs: the http block, else the first server."""
    http = conf.http_blocks()
    if http and http[0].name == "http" and http[0].line is not None:
        return http[0].location
    return servers[0].location


def _unseen_for(conf: NginxConfig, d: Directive | None, servers: list[Server]) -> str:
    """Includes that could not be read and sit where they could override `d` for these servers."""
    notes = []
    for server in servers:
        for level in conf.levels(server.directive):
            if d is not None and level is d.parent:
                break  # at d's own level an include could only repeat it, which nginx rejects
            notes += [x.unseen_label() for x in level.children("include") if x.unresolved]
    return ", ".join(dict.fromkeys(notes))


def _hedge(note: str, outcome: Outcome) -> Outcome:
    """A failure that an unreadable include might undo becomes a warning that says so."""
    if not note or outcome.status not in (Status.FAIL, Status.WARN):
        return outcome
    return replace(outcome, status=Status.WARN, message=f"{outcome.message}; but {note} could not be read "
                   "and may set it")


def _subject(servers: list[Server]) -> str:
    return ", ".join(s.label for s in servers)


def _templated(d: Directive | None) -> bool:
    return d is not None and any(templating.is_templated(a, "nginx") for a in d.args)


def _unseen_note(conf: NginxConfig, node: Directive) -> str:
    unseen = conf.unseen(node)
    return ", ".join(d.unseen_label() for d in unseen)


# --- TLS -----------------------------------------------------------------------------------------


@check(
    id="nginx.tls-protocols",
    title="HTTPS accepts only TLS 1.2 and TLS 1.3",
    component="nginx",
    severity="high",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.NGINX],
    rationale="""TLS 1.0 and 1.1 (and SSLv3) have known downgrade and cipher weaknesses and are
        deprecated (RFC 8996). Mozilla's intermediate profile, which Mastodon's sample follows,
        allows TLS 1.2 and 1.3 only. Debian's stock nginx.conf still lists TLSv1 and TLSv1.1 in the
        http block; a server that does not set its own ssl_protocols inherits them. With OpenSSL 3
        the old versions are negotiated only when the cipher string also lowers @SECLEVEL, but the
        configuration should not ask for them at all. nginx takes the protocols of the default
        server of an address:port for the handshake, so every TLS server should agree.""",
    remediation=Remediation("Allow TLS 1.2 and 1.3 only, in the http block or every TLS server.",
                            "ssl_protocols TLSv1.2 TLSv1.3;"),
    references=[MOZILLA_TLS, "https://nginx.org/en/docs/http/ngx_http_ssl_module.html#ssl_protocols"],
    tags=["tls", "mozilla-intermediate"],
)
def tls_protocols(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        for d, servers in _grouped(conf, _tls_servers(conf), "ssl_protocols"):
            subject = _subject(servers)
            note = _unseen_for(conf, d, servers)
            if d is None:
                yield _hedge(note, warned("ssl_protocols is not set: nginx's default depends on its version "
                             "(TLS 1.0 and 1.1 included before nginx 1.23.4)", at=_unset_at(conf, servers),
                             subject=subject, observed="unset", expected="TLSv1.2 TLSv1.3"))
                continue
            if _templated(d):
                yield skipped("ssl_protocols is templated: cannot be judged", at=d.location, subject=subject)
                continue
            bad = [p for p in d.args if p in BAD_PROTOCOLS]
            unknown = [p for p in d.args if p not in BAD_PROTOCOLS and p not in ("TLSv1.2", "TLSv1.3")]
            observed = " ".join(d.args)
            if bad:
                yield _hedge(note, failed(f"deprecated protocols enabled: {', '.join(bad)}", at=d.location,
                                          subject=subject, observed=observed, expected="TLSv1.2 TLSv1.3"))
            elif unknown or not d.args:
                yield warned(f"unrecognised ssl_protocols value: {observed}", at=d.location, subject=subject,
                             observed=observed, expected="TLSv1.2 TLSv1.3")
            else:
                yield passed("only TLS 1.2/1.3 are allowed", at=d.location, subject=subject, observed=observed,
                             expected="TLSv1.2 TLSv1.3")


NGINX_DEFAULT_CIPHERS = "HIGH:!aNULL:!MD5"  # ssl_ciphers' default (nginx.org)


def _openssl_on_host(facts: FactSet) -> str:
    """The host's OpenSSL, when its packages were read (audit): the one nginx expands the string with."""
    for packages in facts.all(kinds.PACKAGES):
        for name in ("libssl3", "libssl3t64", "libssl1.1", "openssl"):
            if name in packages.versions:
                return f"; the host has {name} {packages.versions[name]}"
    return ""


def _cipher_outcome(judgment: ciphers.CipherJudgment, at: Location, subject: str, shown: str,
                    host_openssl: str) -> Outcome:
    profile = judgment.profile
    expected = f"only the suites of {profile.label}"
    by = judgment.expanded_by + host_openssl
    suites = len(judgment.expansion.suites)
    verdict = judgment.verdict
    if verdict == "fail":
        return failed(f"weak suites enabled: {judgment.explain()} ({by})", at=at, subject=subject, observed=shown,
                      expected=expected)
    if verdict == "unusable":
        return warned(f"{judgment.expansion.error} ({by}): nginx linked to the same OpenSSL would refuse to start",
                      at=at, subject=subject, observed=shown, expected=expected)
    if verdict == "weak":
        return failed(f"admits {len(judgment.outside)} of its {suites} suites outside {profile.label}, some without "
                      f"forward secrecy: {judgment.explain()} ({by})", at=at, subject=subject, observed=shown,
                      expected=expected, severity="medium")
    if verdict == "outside":
        return warned(f"admits {len(judgment.outside)} of its {suites} suites outside {profile.label} (none broken): "
                      f"{judgment.explain()} ({by})", at=at, subject=subject, observed=shown, expected=expected,
                      severity="low")
    inert = (f"; {len(judgment.inert)} pre-shared-key, SRP or DSS suites it also names are never negotiated by nginx"
             if judgment.inert else "")
    return passed(f"its {suites} suites are all in {profile.label}{inert} ({by}); TLS 1.3 suites are not set by "
                  "this string, and protocols are judged by nginx.tls-protocols", at=at, subject=subject,
                  observed=shown, expected=expected)


@check(
    id="nginx.tls-ciphers",
    title="HTTPS offers only the cipher suites of Mozilla's profile",
    component="nginx",
    severity="high",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.NGINX],
    reads=[kinds.PACKAGES],
    rationale="""RC4, 3DES, NULL, EXPORT, MD5 and anonymous suites are broken or offer no
        authentication; @SECLEVEL=0 tells OpenSSL to allow all of them again together with short
        keys. A string that names none of them can still admit suites without forward secrecy
        (static RSA key exchange: a stolen key decrypts recorded traffic) and CBC suites (a long
        record of padding oracles), which Mozilla's intermediate profile leaves out: Mastodon's own
        sample, HIGH:!MEDIUM:!LOW:!aNULL:!NULL:!SHA, is such a string, as is nginx's default
        HIGH:!aNULL:!MD5. The string is expanded with the OpenSSL mastoaudit runs on and each suite
        is judged; the server's OpenSSL may expand it a little differently. (TLS 1.3 suites are not
        set by ssl_ciphers and are all strong.)""",
    remediation=Remediation(
        "Use Mozilla's intermediate cipher list and never lower @SECLEVEL.",
        f"ssl_ciphers {ciphers.mozilla_profile().openssl_string};\nssl_prefer_server_ciphers off;",
    ),
    references=[MOZILLA_TLS, "https://nginx.org/en/docs/http/ngx_http_ssl_module.html#ssl_ciphers",
                "https://wiki.mozilla.org/Security/Server_Side_TLS"],
    tags=["tls", "mozilla-intermediate"],
)
def tls_ciphers(facts: FactSet) -> Iterator[Outcome]:
    host_openssl = _openssl_on_host(facts)
    for conf in facts.all(kinds.NGINX):
        for d, servers in _grouped(conf, _tls_servers(conf), "ssl_ciphers"):
            subject = _subject(servers)
            if d is not None and _templated(d):
                yield skipped("ssl_ciphers is templated: cannot be judged", at=d.location, subject=subject,
                              because=SkipReason.TEMPLATED)
                continue
            spec = " ".join(d.args) if d is not None else NGINX_DEFAULT_CIPHERS
            shown = spec if d is not None else f"unset ({NGINX_DEFAULT_CIPHERS}, nginx's default)"
            outcome = _cipher_outcome(ciphers.judge(spec), _at(conf, d, servers), subject, shown, host_openssl)
            yield _hedge(_unseen_for(conf, d, servers), outcome)


@check(
    id="nginx.tls-prefer-server-ciphers",
    title="Clients choose the cipher only among strong suites (Mozilla's profile)",
    component="nginx",
    severity="low",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.NGINX],
    rationale="""Mozilla's intermediate profile sets ssl_prefer_server_ciphers off: its list holds
        strong suites only, so the client may pick (ChaCha20 on phones without AES hardware). With a
        list that also admits weaker suites (no forward secrecy, CBC) or broken ones, off lets a
        client, or a man in the middle steering the handshake, pick the weakest: there the server's
        order must decide until the list is fixed (nginx.tls-ciphers judges the list itself).""",
    remediation=Remediation("Offer only Mozilla's suites and leave the choice to clients; with a broader list, "
                            "turn server preference on until the list is fixed.",
                            "ssl_prefer_server_ciphers off;  # with Mozilla's intermediate ssl_ciphers"),
    references=["https://nginx.org/en/docs/http/ngx_http_ssl_module.html#ssl_prefer_server_ciphers", MOZILLA_TLS],
    tags=["tls", "mozilla-intermediate"],
)
def tls_prefer_server_ciphers(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        for d, servers in _grouped(conf, _tls_servers(conf), "ssl_prefer_server_ciphers"):
            subject = _subject(servers)
            on = d is not None and d.arg.lower() == "on"
            observed = d.arg if d is not None else "unset (off)"
            where = _at(conf, d, servers)
            listed = conf.effective(servers[0].directive, "ssl_ciphers")
            if listed is not None and _templated(listed):
                yield skipped("the cipher list is templated: cannot be judged", at=where, subject=subject,
                              because=SkipReason.TEMPLATED)
                continue
            judgment = ciphers.judge(" ".join(listed.args) if listed is not None else NGINX_DEFAULT_CIPHERS)
            label = judgment.profile.label
            strong = judgment.verdict == "pass"
            if strong and not on:
                yield passed(f"clients choose among strong suites only, as {label} has it (off); the suites are "
                             "judged by nginx.tls-ciphers", at=where, subject=subject, observed=observed,
                             expected="off with Mozilla's suites")
            elif strong:
                yield passed(f"the server's order is used; {label} leaves the choice to clients (off), since every "
                             "suite in the list is strong: either is safe", at=where, subject=subject,
                             observed=observed, expected="off with Mozilla's suites")
            elif on:
                yield passed("the server's order is used, so clients cannot pick the weaker suites the list also "
                             "holds (the list itself is judged by nginx.tls-ciphers)", at=where, subject=subject,
                             observed=observed, expected="on while the list holds weaker suites")
            elif judgment.verdict in ("fail", "weak"):
                kind = "broken" if judgment.verdict == "fail" else "no-forward-secrecy"
                yield _hedge(_unseen_for(conf, d, servers), failed(
                    f"clients choose the cipher from a list that holds {kind} suites ({_short(judgment)})",
                    at=where, subject=subject, observed=observed, expected="on, or only Mozilla's suites (then off)"))
            else:
                yield _hedge(_unseen_for(conf, d, servers), warned(
                    f"clients choose the cipher from a list with suites outside {label} ({_short(judgment)})",
                    at=where, subject=subject, observed=observed, expected="on, or only Mozilla's suites (then off)"))


def _short(judgment: ciphers.CipherJudgment) -> str:
    names = [n for n, _ in judgment.broken] or list(judgment.outside)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


TICKET_ROTATION = (1, 23, 2)  # nginx rotates ticket keys itself with a shared ssl_session_cache from this release
_NGINX_PACKAGES = ("nginx", "nginx-core", "nginx-full", "nginx-light", "nginx-extras", "nginx-common", "nginx-mainline")


def nginx_version(facts: FactSet) -> tuple[tuple[int, ...], str] | None:
    """nginx's release on the host, when its packages were read (audit): ((1, 22, 1), "1.22.1-9+deb12u1")."""
    for packages in facts.all(kinds.PACKAGES):
        for name in _NGINX_PACKAGES:
            found = re.match(r"(?:\d+:)?(\d+)\.(\d+)\.(\d+)", packages.versions.get(name, ""))
            if found:
                return tuple(int(x) for x in found.groups()), packages.versions[name]
    return None


@check(
    id="nginx.tls-session-tickets",
    title="TLS session tickets do not undo forward secrecy",
    component="nginx",
    severity="low",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.NGINX],
    reads=[kinds.PACKAGES],
    rationale="""Session tickets are encrypted with a key: whoever obtains it can decrypt the sessions
        recorded while it was in use, which undoes forward secrecy. Before nginx 1.23.2 that key
        lived as long as the worker processes and was never rotated; since 1.23.2 nginx rotates it
        itself when ssl_session_cache is shared (the key lives in the shared memory). Mozilla's
        profile and Mastodon's sample set ssl_session_tickets off (resumption still works through
        the session cache); with key files (ssl_session_ticket_key) rotation is yours to do.""",
    remediation=Remediation("Turn session tickets off (or run nginx 1.23.2+ with a shared ssl_session_cache).",
                            "ssl_session_tickets off;"),
    references=["https://nginx.org/en/docs/http/ngx_http_ssl_module.html#ssl_session_tickets",
                "https://nginx.org/en/CHANGES", MOZILLA_TLS],
    tags=["tls", "mozilla-intermediate"],
)
def tls_session_tickets(facts: FactSet) -> Iterator[Outcome]:
    version = nginx_version(facts)
    for conf in facts.all(kinds.NGINX):
        for d, servers in _grouped(conf, _tls_servers(conf), "ssl_session_tickets"):
            subject = _subject(servers)
            if d is not None and d.arg.lower() == "off":
                yield passed("session tickets are off", at=d.location, subject=subject, observed="off", expected="off")
                continue
            keys = conf.effective(servers[0].directive, "ssl_session_ticket_key")
            if keys is not None:
                yield passed("session tickets use ssl_session_ticket_key files (rotate them regularly)",
                             at=keys.location, subject=subject, observed="on, with ticket key files",
                             expected="off, or rotated ticket keys")
                continue
            cache = conf.effective(servers[0].directive, "ssl_session_cache")
            shared = cache is not None and any(a.startswith("shared:") for a in cache.args)
            observed = (d.arg if d is not None else "unset (on)") + (f"; ssl_session_cache {' '.join(cache.args)}"
                                                                     if cache is not None else "")
            at = _at(conf, d, servers)
            rotating = ".".join(map(str, TICKET_ROTATION))
            if version is not None and shared and version[0] >= TICKET_ROTATION:
                yield passed(f"session tickets are on, and nginx {version[1]} rotates their key itself (a shared "
                             f"ssl_session_cache, nginx {rotating} and later)", at=at, subject=subject,
                             observed=observed, expected="off, or rotated ticket keys")
            elif version is not None:
                why = (f"nginx {version[1]} predates key rotation ({rotating})" if version[0] < TICKET_ROTATION
                       else "without a shared ssl_session_cache nginx does not rotate it")
                yield _hedge(_unseen_for(conf, d, servers), failed(
                    f"session tickets are on with a key nginx never rotates: {why}", at=at, subject=subject,
                    observed=observed, expected="off"))
            elif shared:
                yield _hedge(_unseen_for(conf, d, servers), warned(
                    f"session tickets are on: with the shared ssl_session_cache set here, nginx {rotating} and later "
                    "rotate their key, earlier releases (Debian 12 ships 1.22.1) never do; nginx's version is not "
                    "known from the files", at=at, subject=subject, observed=observed, expected="off",
                    severity="low"))
            else:
                yield _hedge(_unseen_for(conf, d, servers), failed(
                    "session tickets are on with a key nginx never rotates (no shared ssl_session_cache, whatever "
                    "its version)", at=at, subject=subject, observed=observed, expected="off"))


@check(
    id="nginx.tls-certificate",
    title="Every TLS listener has a real certificate configured",
    component="nginx",
    severity="high",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.NGINX],
    rationale="""A TLS server without ssl_certificate fails every handshake; one that still uses the
        distribution's self-signed "snakeoil" certificate teaches users to click through warnings,
        which is what a man in the middle needs. Mastodon's guide obtains a Let's Encrypt
        certificate with certbot.""",
    remediation=Remediation("Configure a CA-issued certificate and key for every TLS server.",
                            "ssl_certificate     /etc/letsencrypt/live/example.com/fullchain.pem;\n"
                            "ssl_certificate_key /etc/letsencrypt/live/example.com/privkey.pem;"),
    references=["https://nginx.org/en/docs/http/configuring_https_servers.html", MASTODON_INSTALL],
    tags=["tls"],
)
def tls_certificate(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        for server in _tls_servers(conf):
            cert = conf.effective(server.directive, "ssl_certificate")
            key = conf.effective(server.directive, "ssl_certificate_key")
            if cert is None or key is None:
                missing = "ssl_certificate" if cert is None else "ssl_certificate_key"
                note = _unseen_note(conf, server.directive)
                if note:
                    yield warned(f"{missing} not found, but {note} could not be read", at=server.location,
                                 subject=server.label, observed=f"{missing} unset", expected="a certificate and key")
                else:
                    yield failed(f"TLS listener without {missing}", at=server.location, subject=server.label,
                                 observed=f"{missing} unset", expected="a certificate and key")
            elif _templated(cert):
                yield skipped("the certificate path is templated: cannot be judged", at=cert.location,
                              subject=server.label)
            elif "snakeoil" in cert.arg.lower():
                yield warned("the self-signed snakeoil certificate of the distribution is in use", at=cert.location,
                             subject=server.label, observed=cert.arg, expected="a CA-issued certificate")
            else:
                yield passed("a certificate and key are configured", at=cert.location, subject=server.label,
                             observed=cert.arg, expected="a certificate and key")


# --- HSTS and the plain-HTTP side ----------------------------------------------------------------


def hsts_max_age(value: str) -> int | None:
    m = re.search(r"max-age\s*=\s*\"?(\d+)", value, re.I)
    return int(m.group(1)) if m else None


@check(
    id="nginx.hsts",
    title="HTTPS responses carry HSTS for at least a year",
    component="nginx",
    severity="medium",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.NGINX],
    rationale="""Strict-Transport-Security makes browsers refuse plain HTTP to the instance, which
        closes the window an SSL-stripping attacker uses. Responses nginx proxies to Mastodon get
        HSTS from Rails (force_ssl), and a browser keeps HSTS for the whole host once any response
        carries it, so files nginx serves before falling back to the app (try_files $uri @proxy) do
        without it; what needs the header is content nginx serves on its own, and the app's header
        must not be removed on the way out. The trap is nginx's inheritance rule: a location with
        any add_header of its own inherits none from the server, so a static location adding
        Cache-Control silently drops the server's HSTS. Mastodon's sample repeats the HSTS line in
        every such location.""",
    remediation=Remediation(
        "Add HSTS with max-age of at least 31536000 in the server and again in every location that has "
        "add_header lines of its own (an include of one snippet keeps them in step).",
        'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;',
    ),
    references=["https://nginx.org/en/docs/http/ngx_http_headers_module.html#add_header",
                "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Strict-Transport-Security"],
    tags=["headers", "tls"],
)
def hsts(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        for server in [*_tls_servers(conf), *(s for s in conf.servers() if s.implicit)]:
            yield from _hsts_server(conf, server)


HSTS = "Strict-Transport-Security"


def _hsts_server(conf: NginxConfig, server: Server) -> Iterator[Outcome]:
    s = server.directive
    if s.first("return") is not None:
        yield passed("the server only answers with a return (no content)", at=s.first("return").location,
                     subject=server.label, observed=s.first("return").text(), expected="HSTS on content")
        return
    bad: list[Outcome] = []
    good: list[Header] = []
    judged: set[int] = set()
    locations = conf.locations(s)
    app_host = bool(_app_locations(conf, s))
    for node in [s, *locations]:  # every HSTS value nginx sends here, whichever module sets it
        for h in conf.resolve_header(node, HSTS).added:
            if id(h.directive) in judged:
                continue
            judged.add(id(h.directive))
            age = hsts_max_age(h.value)
            if templating.is_templated(h.value, "nginx") or "$" in h.value:
                bad.append(skipped("the HSTS value is templated or a variable: cannot be judged",
                                   at=h.directive.location, subject=server.label, because=SkipReason.TEMPLATED))
            elif age is None or age < HSTS_MIN:
                bad.append(failed(f"HSTS max-age is {'missing' if age is None else age}, under a year",
                                  at=h.directive.location, subject=server.label, observed=h.value,
                                  expected=f"max-age>={HSTS_MIN}"))
            else:
                good.append(h)
    expected = f"max-age>={HSTS_MIN}"
    from_disk: list[str] = []  # try_files before the proxy: files without nginx's HSTS, pages with the app's
    for loc in [loc for loc in locations if not loc.arg.startswith("@")] or [None]:
        mode = serve_mode(conf, s, loc)
        node = loc if loc is not None else s
        resolved = conf.resolve_header(node, HSTS)
        if mode == "return" or resolved.added:
            continue
        if mode == "app" and app_host:
            if resolved.upstream in ("hidden", "cleared") and resolved.by is not None:
                bad.append(failed(f"the app's own HSTS header is removed here ({resolved.by.text()})",
                                  at=resolved.by.location, subject=_loc_subject(server, loc),
                                  observed=f"{resolved.upstream} by {resolved.by.name}", expected=expected))
            continue  # the app's responses carry its HSTS (Rails force_ssl)
        own = node.children("add_header")
        above = [d for lvl in conf.levels(node)[1:] for d in lvl.children("add_header")
                 if d.arg.lower() == HSTS.lower()]
        if own and above:
            msg = (f"this location adds its own headers ({own[0].arg} ...), so by nginx's add_header rule it "
                   f"does not inherit the HSTS header set at {above[0].file}:{above[0].line}")
        else:
            msg = "responses nginx serves here carry no HSTS header"
        subject = _loc_subject(server, loc)
        note = _unseen_note(conf, node)
        if note:
            bad.append(warned(f"{msg}; {note} could not be read", at=node.location, subject=subject,
                              observed="no Strict-Transport-Security", expected=expected))
        elif mode == "app-fallback" and app_host:
            # Mastodon's documented shape (try_files $uri @proxy): robots.txt, favicon.ico and the
            # like come from disk without HSTS, but a browser keeps HSTS for the host once any
            # response carries it, and every page comes from the app. Only a fallback that removes
            # the app's header leaves the host without it.
            fallback = conf.falls_back_to(s, loc) if loc is not None else None
            upstream = conf.resolve_header(fallback, HSTS) if fallback is not None else None
            if upstream is not None and upstream.upstream in ("hidden", "cleared") and upstream.by is not None:
                bad.append(failed(f"the app's own HSTS header is removed where nginx falls back to it "
                                  f"({upstream.by.text()})", at=upstream.by.location, subject=subject,
                                  observed=f"{upstream.upstream} by {upstream.by.name}", expected=expected))
            elif own and above:  # the server's HSTS meant for these files is dropped by add_header's rule
                bad.append(warned(f"{msg}: the files nginx serves from disk here (try_files before the proxy) "
                                  "lack it; the app's own responses carry it, so browsers still learn it from "
                                  "the pages", at=node.location, subject=subject,
                                  observed="no Strict-Transport-Security on files", expected=expected,
                                  severity="low"))
            else:
                from_disk.append(subject)
        else:
            bad.append(failed(msg, at=node.location, subject=subject, observed="no Strict-Transport-Security",
                              expected=expected))
    assumed = ("; judged as the locations of an HTTPS server (the server that includes them is not in the tree)"
               if server.implicit else "")
    disk = (f"; the files nginx finds on disk at {', '.join(from_disk)} (try_files before the proxy) carry no "
            "HSTS of their own, which is enough: every page comes from the app with its header, and a browser "
            "keeps HSTS for the whole host once it has seen it") if from_disk else ""
    if bad:
        yield from bad
    elif good:
        h = good[0]
        app = "; the app sets its own on what is proxied to it (Rails force_ssl)" if app_host else ""
        where = "on everything else it serves itself" if from_disk else "on everything it serves itself"
        yield passed(f"nginx sets HSTS ({h.module} at {h.directive.file}:{h.directive.line}) {where}{app}{disk}"
                     f"{assumed}", at=h.directive.location, subject=server.label, observed=h.value, expected=expected)
    elif app_host:
        yield passed(f"the pages come from the Mastodon app, which sets HSTS (Rails force_ssl){disk}{assumed}"
                     if from_disk else
                     f"every response comes from the Mastodon app, which sets HSTS (Rails force_ssl){assumed}",
                     at=server.location, subject=server.label, observed="set by the app", expected=expected)
    else:
        yield passed("the server only redirects or refuses (no content)", at=server.location,
                     subject=server.label, observed="no content served", expected="HSTS on content")


def _loc_subject(server: Server, loc: Directive | None) -> str:
    return f"{server.label} location {' '.join(loc.args)}" if loc is not None else server.label


def _redirect_verdict(d: Directive) -> str | None:
    """"permanent", "temporary", "refuse", "insecure" for a return/rewrite line; None if it serves."""
    if d.name == "return":
        code = d.arg
        target = d.args[1] if len(d.args) > 1 else ""
        if code in ("301", "308") and target.lower().startswith("https://"):
            return "permanent"
        if code in ("302", "303", "307") and target.lower().startswith("https://"):
            return "temporary"
        if code.isdigit() and int(code) >= 400:
            return "refuse"
        if code.lower().startswith("https://"):
            return "temporary"  # "return URL" is a 302
        return "insecure"
    if d.name == "rewrite" and len(d.args) >= 2 and d.args[1].lower().startswith("https://"):
        flag = d.args[2] if len(d.args) > 2 else ""
        return "permanent" if flag == "permanent" else "temporary"
    return None


def _acme(loc: Directive) -> bool:
    return "acme-challenge" in " ".join(loc.args)


@check(
    id="nginx.http-redirect",
    title="Plain HTTP only redirects to HTTPS",
    component="nginx",
    severity="medium",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.NGINX],
    rationale="""A port-80 server that serves the site lets anyone on the path read and change pages,
        cookies and tokens. Mastodon's sample answers every plain-HTTP request with a 301 to https,
        except the ACME challenge path certbot needs.""",
    remediation=Remediation("Redirect everything on port 80 (except the ACME challenge) with a 301.",
                            "location / { return 301 https://$host$request_uri; }"),
    references=[MASTODON_INSTALL, "https://nginx.org/en/docs/http/ngx_http_rewrite_module.html#return"],
    tags=["tls", "redirect"],
)
def http_redirect(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        for server in _http_servers(conf):
            plain = [x for x in server.listens if not x.ssl]
            public = facts.public_addresses()
            if not server.plain or all(x.loopback_only and x.address not in public for x in plain):
                continue
            named = _named_plain_server_beside(facts.all(kinds.NGINX), server)
            if named is not None:
                yield passed("this catch-all server answers only host names no other server claims, and serves "
                             "no page of the app (nothing is proxied); plain HTTP for the site is "
                             f"{named.label}'s, judged on its own", at=server.location, subject=server.label,
                             observed="catch-all default server (no proxy_pass)", expected="301/308 to https")
                continue
            front = behind_proxy(conf, server) if not server.ssl else None
            if front is not None:
                yield passed("plain HTTP here is the hop from a proxy in front that terminates TLS (this server "
                             f"trusts it: {front.text()} at {front.file}:{front.line}); redirecting visitors to "
                             "https is that proxy's job, and it is not in the tree", at=front.location,
                             subject=server.label, observed=f"plain HTTP behind a proxy ({front.name})",
                             expected="301/308 to https (at the TLS-terminating proxy)")
                continue
            yield from _redirect_server(conf, server)


_PASSES = ("proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass")


def _named_plain_server_beside(confs: list[NginxConfig], server: Server) -> Server | None:
    """A distribution's stock catch-all (`listen 80 default_server; server_name _;` serving its
    welcome page, as Debian and Ubuntu leave sites-enabled/default) is not the site when another
    plain-HTTP server on the same port carries real names: a browser asking for the site reaches
    that one (in the same configuration, or in a site file read on its own). Returns it; None when
    the catch-all may be what visitors reach, or proxies anything."""
    if server.ssl or server.implicit or any(n not in ("_", '""', "", "localhost") for n in server.names):
        return None
    if any(d.name in _PASSES for d in server.directive.walk()):
        return None
    ports = {x.port for x in server.listens if not x.ssl}
    for other in (o for conf in confs for o in conf.servers()):
        if other is not server and other.plain and not other.implicit and \
                any(n not in ("_", '""', "", "localhost") for n in other.names) and \
                ports & {x.port for x in other.listens if not x.ssl}:
            return other
    return None


def behind_proxy(conf: NginxConfig, server: Server) -> Directive | None:
    """The directive that shows a server sits behind another proxy (a load balancer, an ingress, a
    CDN) that terminates TLS: it takes client addresses from it (set_real_ip_from, real_ip_header)
    or passes its X-Forwarded-Proto on; None when nothing says so."""
    s = server.directive
    for name in ("set_real_ip_from", "real_ip_header"):
        found = conf.effective(s, name)
        if found is not None:
            return found
    for loc in conf.locations(s):
        proto = conf.proxy_headers(loc).get("x-forwarded-proto")
        if proto is not None and len(proto.args) > 1 and proto.args[1].lower() == "$http_x_forwarded_proto":
            return proto
    return None


def _redirect_server(conf: NginxConfig, server: Server) -> Iterator[Outcome]:
    s = server.directive
    mixed = server.ssl
    for d in s.children():
        verdict = _redirect_verdict(d) if d.name in ("return", "rewrite") else None
        if d.name == "if" and any(a in ("$scheme", "$https") for a in d.args):
            inner = [_redirect_verdict(x) for x in d.children() if x.name in ("return", "rewrite")]
            if "permanent" in inner:
                yield passed("plain-HTTP requests are redirected to https", at=d.location, subject=server.label,
                             observed=d.text(), expected="301/308 to https")
                return
        if verdict is not None and (not mixed or verdict == "refuse"):
            yield from _judge_redirect(verdict, d, server, "every request")
            return
    if mixed:
        yield failed("the server listens for both HTTP and HTTPS and serves the same content over plain HTTP",
                     at=next(x for x in server.listens if not x.ssl).directive.location, subject=server.label,
                     observed="no redirect for plain HTTP", expected="301/308 to https")
        return
    host_ifs = [d for d in s.children("if") if any(_redirect_verdict(x) == "permanent" for x in d.children())]
    locations = [loc for loc in conf.locations(s) if not loc.arg.startswith("@") and not _acme(loc)]
    serving = []
    judged = False
    for loc in locations:
        ret = loc.first("return") or loc.first("rewrite")
        verdict = _redirect_verdict(ret) if ret is not None else None
        if verdict is None:
            if not loc.children("location"):
                serving.append(loc)
            continue
        judged = True
        if verdict in ("temporary", "insecure"):
            yield from _judge_redirect(verdict, ret, server, f"location {' '.join(loc.args)}")
            return
    if serving:
        loc = serving[0]
        yield failed(f"location {' '.join(loc.args)} serves content over plain HTTP", at=loc.location,
                     subject=server.label, observed=f"{serve_mode(conf, s, loc)} content, no redirect",
                     expected="301/308 to https")
    elif judged:
        first = next(loc for loc in locations if loc.first("return") or loc.first("rewrite"))
        d = first.first("return") or first.first("rewrite")
        yield passed("plain-HTTP requests are redirected to https (ACME challenge exempt)", at=d.location,
                     subject=server.label, observed=d.text(), expected="301/308 to https")
    elif host_ifs:
        yield passed("known host names are redirected to https (certbot style)", at=host_ifs[0].location,
                     subject=server.label, observed=host_ifs[0].text(), expected="301/308 to https")
    else:
        yield failed("the server serves its root over plain HTTP", at=server.location, subject=server.label,
                     observed="no redirect", expected="301/308 to https")


def _judge_redirect(verdict: str, d: Directive, server: Server, scope: str) -> Iterator[Outcome]:
    if verdict == "permanent":
        yield passed(f"{scope}: redirected to https", at=d.location, subject=server.label, observed=d.text(),
                     expected="301/308 to https")
    elif verdict == "refuse":
        yield passed(f"{scope}: refused, nothing served over plain HTTP", at=d.location, subject=server.label,
                     observed=d.text(), expected="301/308 to https, or a refusal")
    elif verdict == "temporary":
        yield warned(f"{scope}: a temporary redirect; browsers do not remember it", at=d.location,
                     subject=server.label, observed=d.text(), expected="301/308 to https")
    else:
        yield failed(f"{scope}: redirected, but not to https", at=d.location, subject=server.label,
                     observed=d.text(), expected="301/308 to https")


# --- information leaks ---------------------------------------------------------------------------


@check(
    id="nginx.server-tokens",
    title="nginx does not announce its version",
    component="nginx",
    severity="low",
    threats=["T-APP-INFO-LEAK"],
    needs=[kinds.NGINX],
    rationale="""With server_tokens on (the default) every response and error page names the exact
        nginx version, which tells an attacker which published vulnerabilities to try.
        Mastodon's sample does not set it; Debian ships it commented out.""",
    remediation=Remediation("Set server_tokens off in the http block.", "server_tokens off;"),
    references=["https://nginx.org/en/docs/http/ngx_http_core_module.html#server_tokens"],
    tags=["headers", "cis"],
)
def server_tokens(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        servers = [s for s in _http_servers(conf) if not s.implicit]  # a snippet's server is not in the tree
        for d, group in _grouped(conf, servers, "server_tokens"):
            subject = _subject(group)
            if d is not None and d.arg.lower() == "off":
                loud = [x for s in group for x in conf.locations(s.directive)
                        for x in x.children("server_tokens") if x.arg.lower() != "off"]
                if loud:
                    yield failed("a location turns server_tokens back on", at=loud[0].location, subject=subject,
                                 observed=loud[0].arg, expected="off")
                else:
                    yield passed("the version is not announced", at=d.location, subject=subject,
                                 observed="off", expected="off")
            elif d is None and conf.context == "http":
                yield warned(f"server_tokens is not set in {conf.path}, a site file read without the nginx.conf that "
                             "includes it: unless that file's http block sets it off, nginx's default (on) names "
                             "the version in every response and error page", at=_at(conf, d, group), subject=subject,
                             observed="unset here (the http block is not in the tree)", expected="off",
                             severity="low")
            else:
                yield _hedge(_unseen_for(conf, d, group), failed(
                    "responses and error pages show the nginx version", at=_at(conf, d, group),
                    subject=subject, observed=d.arg if d is not None else "unset (on)", expected="off"))


@check(
    id="nginx.autoindex",
    title="No directory listings",
    component="nginx",
    severity="high",
    threats=["T-MEDIA-ACCESS", "T-APP-INFO-LEAK"],
    needs=[kinds.NGINX],
    rationale="""autoindex on lists a directory's files. On /system it lets anyone enumerate every
        upload, including the media of private and direct posts, whose unguessable URLs are the
        only thing keeping them private.""",
    remediation=Remediation("Remove autoindex on (the default is off).", "autoindex off;"),
    references=["https://nginx.org/en/docs/http/ngx_http_autoindex_module.html"],
    tags=["media"],
)
def autoindex(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        on = [d for d in conf.all("autoindex") if d.arg.lower() == "on"]
        for d in on:
            yield failed("directory listing is on", at=d.location, observed="on", expected="off")
        if not on:
            yield passed("no directory listing is turned on", at=conf.at(), observed="off (default)",
                         expected="off")


# --- media ---------------------------------------------------------------------------------------


def _media_nodes(conf: NginxConfig) -> Iterator[tuple[Server, Directive | None, str]]:
    """(server, location or None, mode) for every place that serves uploaded media: the location a
    Mastodon server picks for a /system/ URL, and object-storage proxy locations."""
    for server in conf.servers():
        s = server.directive
        if is_mastodon_server(conf, server):
            loc = conf.match_location(s, MEDIA_URI)
            yield server, loc, serve_mode(conf, s, loc)
            continue
        for loc in conf.locations(s):
            target = conf.proxy_target(loc)
            if target is None or (target.internal and not _fixed_host(conf, loc)):
                continue
            hint = " ".join([target.raw, *server.names])
            if _STORAGE_HINT.search(hint):
                yield server, loc, "external"


def _media_check(facts: FactSet, judge) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        for server, loc, mode in _media_nodes(conf):
            subject = _loc_subject(server, loc)
            if mode == "return":
                continue
            if mode == "app":
                where = loc.location if loc is not None else server.location
                yield passed("media is proxied to the Mastodon app, which sets this header itself", at=where,
                             subject=subject, observed="served by the app", expected="set by nginx or the app")
                continue
            node = loc if loc is not None else server.directive
            yield judge(conf, node, subject, mode)


_MEDIA_MODE = {"static": "files served from disk by nginx", "app-fallback": "files served from disk by nginx",
               "external": "files proxied from object storage"}


def csp_blocks_scripts(value: str) -> bool:
    """True when a CSP runs no script: sandbox without allow-scripts, or script-src / default-src 'none'."""
    directives = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = [w.lower() for w in words[1:]]
    if "sandbox" in directives and "allow-scripts" not in directives["sandbox"]:
        return True
    scripts = directives.get("script-src", directives.get("default-src"))
    return scripts == ["'none'"]


@check(
    id="nginx.media-csp",
    title="Uploaded media is served with a script-blocking Content-Security-Policy",
    component="nginx",
    severity="high",
    threats=["T-MEDIA-XSS"],
    needs=[kinds.NGINX],
    rationale="""Anyone can upload files that end up under /system (or in object storage). If a browser
        renders one as HTML or SVG on the instance's origin, its script runs with the victim's
        session. Mastodon's sample adds Content-Security-Policy "default-src 'none'; form-action
        'none'" to /system so such a file can run nothing. When /system is proxied to the app, the
        app sets the header; when nginx serves the files from disk or from object storage, nginx
        must.""",
    remediation=Remediation("Add the CSP in the location that serves /system (and in the media proxy).",
                            "add_header Content-Security-Policy \"default-src 'none'; form-action 'none'\";"),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage-proxy/", MASTODON_INSTALL],
    tags=["media", "headers"],
)
def media_csp(facts: FactSet) -> Iterator[Outcome]:
    def judge(conf: NginxConfig, node: Directive, subject: str, mode: str) -> Outcome:
        h = conf.header(node, "Content-Security-Policy")
        expected = "default-src 'none'; form-action 'none'"
        note = _unseen_note(conf, node)
        if h is None:
            if note:
                return warned(f"no Content-Security-Policy seen on {_MEDIA_MODE[mode]}; {note} could not be read",
                              at=node.location, subject=subject, observed="missing", expected=expected)
            return failed(f"{_MEDIA_MODE[mode]} carry no Content-Security-Policy", at=node.location,
                          subject=subject, observed="missing", expected=expected)
        if templating.is_templated(h.value, "nginx"):
            return skipped("the CSP value is templated: cannot be judged", at=h.directive.location, subject=subject,
                           because=SkipReason.TEMPLATED)
        if not csp_blocks_scripts(h.value):
            return failed("the media CSP still lets scripts run", at=h.directive.location, subject=subject,
                          observed=h.value, expected=expected)
        if h.only:
            return warned(f"the script-blocking CSP is sent only for {h.only} ({h.module}): other media lack it",
                          at=h.directive.location, subject=subject, observed=f"{h.value} (only {h.only})",
                          expected=expected)
        return passed(f"{_MEDIA_MODE[mode]} carry a script-blocking CSP ({h.module})", at=h.directive.location,
                      subject=subject, observed=h.value, expected=expected)

    yield from _media_check(facts, judge)


@check(
    id="nginx.media-nosniff",
    title="Uploaded media is served with X-Content-Type-Options: nosniff",
    component="nginx",
    severity="medium",
    threats=["T-MEDIA-XSS"],
    needs=[kinds.NGINX],
    rationale="""Without nosniff a browser may guess that an uploaded "image" is HTML or script and run
        it. Mastodon's sample sets X-Content-Type-Options nosniff on /system; the object storage
        proxy guide does the same.""",
    remediation=Remediation("Add the header in the location that serves /system (and in the media proxy).",
                            "add_header X-Content-Type-Options nosniff;"),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage-proxy/", MASTODON_INSTALL],
    tags=["media", "headers"],
)
def media_nosniff(facts: FactSet) -> Iterator[Outcome]:
    def judge(conf: NginxConfig, node: Directive, subject: str, mode: str) -> Outcome:
        h = conf.header(node, "X-Content-Type-Options")
        note = _unseen_note(conf, node)
        if h is None or h.value.strip().lower() != "nosniff":
            observed = "missing" if h is None else h.value
            if h is None and note:
                return warned(f"no nosniff header seen on {_MEDIA_MODE[mode]}; {note} could not be read",
                              at=node.location, subject=subject, observed=observed, expected="nosniff")
            return failed(f"{_MEDIA_MODE[mode]} may be content-sniffed by browsers",
                          at=h.directive.location if h else node.location, subject=subject, observed=observed,
                          expected="nosniff")
        if h.only:
            return warned(f"nosniff is sent only for {h.only} ({h.module}): other media lack it",
                          at=h.directive.location, subject=subject, observed=f"{h.value} (only {h.only})",
                          expected="nosniff")
        return passed(f"{_MEDIA_MODE[mode]} are sent with nosniff ({h.module})", at=h.directive.location,
                      subject=subject, observed=h.value, expected="nosniff")

    yield from _media_check(facts, judge)


# --- the proxy to the app ------------------------------------------------------------------------


def _proxy_locations(conf: NginxConfig) -> Iterator[tuple[Server, Directive]]:
    for server in conf.servers():
        for loc in _app_locations(conf, server.directive):
            if conf.proxy_target(loc) is not None:
                yield server, loc


@check(
    id="nginx.proxy-headers",
    title="Requests proxied to Mastodon carry Host, X-Forwarded-For/-Proto and an empty Proxy header",
    component="nginx",
    severity="medium",
    threats=["T-PROXY-MISCONFIG"],
    needs=[kinds.NGINX],
    rationale="""Mastodon learns the client's address and scheme from these headers: without
        X-Forwarded-For every request seems to come from nginx, so the app's rate limits and logs
        see one client; without X-Forwarded-Proto the app believes the request was plain HTTP;
        without Host nginx sends the upstream's name. Proxy "" strips a client-sent Proxy header
        (httpoxy). Beware nginx's rule: a location with any proxy_set_header of its own (say
        Upgrade) inherits none of the server's.""",
    remediation=Remediation("Set all four in every location that proxies to Mastodon (an include keeps them together).",
                            "proxy_set_header Host $host;\nproxy_set_header X-Real-IP $remote_addr;\n"
                            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                            "proxy_set_header X-Forwarded-Proto $scheme;\nproxy_set_header Proxy \"\";"),
    references=["https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_set_header", MASTODON_INSTALL,
                "https://httpoxy.org/"],
    tags=["proxy"],
)
def proxy_headers(facts: FactSet) -> Iterator[Outcome]:
    expected = 'Host, X-Forwarded-For, X-Forwarded-Proto, Proxy ""'
    for conf in facts.all(kinds.NGINX):
        for server, loc in _proxy_locations(conf):
            headers = conf.proxy_headers(loc)
            missing = []
            if "host" not in headers:
                missing.append("Host")
            xff = headers.get("x-forwarded-for")
            if xff is None or "$" not in xff.args[1]:
                missing.append("X-Forwarded-For")
            proto = headers.get("x-forwarded-proto")
            forwarded = proto is not None and proto.args[1].lower() == "$http_x_forwarded_proto" and not server.ssl
            if proto is None or (proto.args[1].lower() not in ("$scheme", "https") and not forwarded):
                missing.append("X-Forwarded-Proto" if proto is None else f"X-Forwarded-Proto ({proto.args[1]})")
            proxy = headers.get("proxy")
            if proxy is None or proxy.args[1] != "":
                missing.append('Proxy ""')
            subject = _loc_subject(server, loc)
            target = conf.proxy_target(loc)
            where = target.directive.location if target else loc.location
            note = _unseen_note(conf, loc)
            if not missing:
                scheme = (" (the scheme as the TLS-terminating proxy in front sent it: $http_x_forwarded_proto on a "
                          "plain-HTTP server)" if forwarded else "")
                yield passed(f"the app receives the client's address, scheme and host{scheme}", at=where,
                             subject=subject, observed=expected, expected=expected)
            elif note:
                yield warned(f"not seen: {', '.join(missing)}; {note} could not be read", at=where,
                             subject=subject, observed="missing: " + ", ".join(missing), expected=expected)
            else:
                yield failed(f"proxied to the app without {', '.join(missing)}", at=where, subject=subject,
                             observed="missing: " + ", ".join(missing), expected=expected)


@check(
    id="nginx.upstream-loopback",
    title="The app and streaming backends are reached on loopback",
    component="nginx",
    severity="high",
    threats=["T-PROXY-MISCONFIG", "T-INTERNAL-CLEARTEXT"],
    needs=[kinds.NGINX],
    rationale="""Mastodon's sample proxies to 127.0.0.1:3000 and 127.0.0.1:4000: Puma and the
        streaming server listen on loopback and only nginx reaches them. An upstream on a public
        address means the backend listens where the internet can reach it around nginx, and the
        proxied traffic (sessions, tokens) crosses the network in clear; 0.0.0.0 is the "all
        interfaces" address a backend binds to, not one to connect to. A private address is a
        documented multi-host setup, but the traffic is still unencrypted on that network.""",
    remediation=Remediation("Point upstreams at 127.0.0.1 (or a unix socket); keep Puma bound to loopback.",
                            "upstream backend {\n    server 127.0.0.1:3000 fail_timeout=0;\n}"),
    references=["https://nginx.org/en/docs/http/ngx_http_upstream_module.html#server", MASTODON_INSTALL],
    tags=["proxy", "network"],
)
def upstream_loopback(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        for name, up in conf.upstreams().items():
            for d in up.children("server"):
                yield _judge_address(d.arg, d.location, f"upstream {name}")
        for server in conf.servers():
            for loc in conf.locations(server.directive):
                target = conf.proxy_target(loc)
                if target is None or target.kind in ("upstream", "variable", "hostname"):
                    continue
                if target.kind == "unix":
                    yield passed("proxied to a unix socket", at=target.directive.location,
                                 subject=_loc_subject(server, loc), observed=target.raw, expected="loopback")
                    continue
                yield _judge_address(target.raw.split("://", 1)[-1].split("/", 1)[0], target.directive.location,
                                     _loc_subject(server, loc), target.scheme)


def _judge_address(spec: str, where: Location, subject: str, scheme: str = "http") -> Outcome:
    if spec.startswith("unix:"):
        return passed("a unix socket", at=where, subject=subject, observed=spec, expected="loopback")
    if templating.is_templated(spec, "nginx") or "$" in spec:
        return skipped("the address is templated or a variable: cannot be judged", at=where, subject=subject)
    host, _ = split_host_port(spec, strict=False)
    kind = reach(host)
    if kind == "loopback":
        return passed("the backend is on loopback", at=where, subject=subject, observed=spec, expected="loopback")
    if kind == "any":
        return failed("0.0.0.0 / :: means the backend listens on every interface", at=where, subject=subject,
                      observed=spec, expected="127.0.0.1 or a unix socket")
    if kind == "public":
        return failed("the backend is on a public address: reachable around nginx, and proxied in clear",
                      at=where, subject=subject, observed=spec, expected="127.0.0.1 or a unix socket")
    if kind == "private":
        if scheme == "https":
            return passed("a private address over TLS", at=where, subject=subject, observed=spec, expected="loopback")
        return warned("the backend is on another host: proxied traffic crosses the network in clear",
                      at=where, subject=subject, observed=spec, expected="loopback, or TLS to the backend",
                      severity="low")
    if "." not in host:
        return passed("a container or service name on the deployment's own network", at=where, subject=subject,
                      observed=spec, expected="loopback")
    return warned("a host name: where it resolves cannot be judged from the configuration", at=where,
                  subject=subject, observed=spec, expected="loopback", severity="low")


_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")


def body_size_bytes(value: str) -> int | None:
    m = _SIZE.match(value)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]


@check(
    id="nginx.client-max-body-size",
    title="Request bodies have a size limit",
    component="nginx",
    severity="low",
    threats=["T-PROXY-DOS", "T-FED-DOS"],
    needs=[kinds.NGINX],
    rationale="""client_max_body_size 0 removes the limit: nginx then buffers request bodies of any size
        to disk for the app, which fills the disk or ties up workers. Mastodon needs a large limit
        for media uploads (its sample sets 99m; older ones 80m), and that is fine: only an unlimited
        body is a finding.""",
    remediation=Remediation("Set a finite limit that fits Mastodon's uploads.", "client_max_body_size 99m;"),
    references=["https://nginx.org/en/docs/http/ngx_http_core_module.html#client_max_body_size", MASTODON_INSTALL],
    tags=["dos"],
)
def client_max_body_size(facts: FactSet) -> Iterator[Outcome]:
    for conf, server in _content_servers(facts):
        s = server.directive
        lines = [conf.effective(s, "client_max_body_size")] + [
            d for loc in conf.locations(s) for d in loc.children("client_max_body_size")]
        zero = [d for d in lines if d is not None and body_size_bytes(d.arg) == 0]
        for d in zero:
            yield failed("request bodies are unlimited", at=d.location, subject=server.label, observed="0",
                         expected="a finite size such as 99m")
        if zero:
            continue
        d = lines[0]
        if d is None:
            yield passed("nginx's default 1m limit applies (Mastodon's uploads need about 99m)",
                         at=server.location, subject=server.label, observed="unset (1m)", expected="finite")
        else:
            yield passed("request bodies are limited", at=d.location, subject=server.label, observed=d.arg,
                         expected="finite")


@check(
    id="nginx.streaming-upgrade",
    title="The streaming API is proxied with WebSocket upgrade headers",
    component="nginx",
    severity="low",
    threats=["T-PROXY-MISCONFIG"],
    needs=[kinds.NGINX],
    rationale="""Mastodon's streaming server speaks WebSocket at /api/v1/streaming. nginx passes the
        upgrade only with proxy_http_version 1.1 and the Upgrade and Connection headers set; without
        them real-time updates break and clients fall back to polling the app, which multiplies the
        load on it.""",
    remediation=Remediation("Proxy /api/v1/streaming to the streaming server with the upgrade headers.",
                            "proxy_http_version 1.1;\nproxy_set_header Upgrade $http_upgrade;\n"
                            "proxy_set_header Connection $connection_upgrade;"),
    references=["https://nginx.org/en/docs/http/websocket.html", MASTODON_INSTALL],
    tags=["proxy", "streaming"],
)
def streaming_upgrade(facts: FactSet) -> Iterator[Outcome]:
    expected = "proxy_http_version 1.1, Upgrade $http_upgrade, Connection upgrade"
    for conf in facts.all(kinds.NGINX):
        for server in _mastodon_servers(conf):
            s = server.directive
            if s.first("return") is not None:
                continue
            loc = conf.match_location(s, STREAMING_URI)
            mode = serve_mode(conf, s, loc)
            if mode == "return":
                continue
            subject = _loc_subject(server, loc)
            node = _proxy_node(conf, s, loc)
            if node is None:
                yield failed("/api/v1/streaming is not proxied to the streaming server", at=(loc or s).location,
                             subject=subject, observed=mode, expected="proxied with upgrade headers")
                continue
            version = conf.effective(node, "proxy_http_version")
            headers = conf.proxy_headers(node)
            upgrade = headers.get("upgrade")
            connection = headers.get("connection")
            missing = []
            if version is None or version.arg != "1.1":
                missing.append("proxy_http_version 1.1")
            if upgrade is None or upgrade.args[1] != "$http_upgrade":
                missing.append("Upgrade $http_upgrade")
            if connection is None or "upgrade" not in connection.args[1].lower():
                missing.append("Connection upgrade")
            where = conf.proxy_target(node).directive.location  # type: ignore[union-attr]
            if missing:
                yield failed(f"WebSocket upgrade cannot pass: missing {', '.join(missing)}", at=where,
                             subject=subject, observed="missing: " + ", ".join(missing), expected=expected)
            else:
                yield passed("WebSocket upgrades reach the streaming server", at=where, subject=subject,
                             observed=expected, expected=expected)


_UNSAFE = ("'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:")


def csp_script_weakness(value: str) -> list[str]:
    """What in a CSP lets injected script run: unsafe-inline/eval or wildcard sources, or no limit."""
    directives = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = [w.lower() for w in words[1:]]
    scripts = directives.get("script-src", directives.get("default-src"))
    if scripts is None:
        return ["no script-src or default-src"]
    if "'strict-dynamic'" in scripts and "'unsafe-eval'" not in scripts:
        return []
    return [w for w in scripts if w in _UNSAFE]


@check(
    id="nginx.app-csp",
    title="nginx does not replace Mastodon's Content-Security-Policy with a weaker one",
    component="nginx",
    severity="high",
    threats=["T-APP-XSS"],
    needs=[kinds.NGINX],
    rationale="""Mastodon sends a strict Content-Security-Policy (no inline script) that limits what an
        XSS bug can do. proxy_hide_header Content-Security-Policy drops it; an add_header policy with
        'unsafe-inline' or 'unsafe-eval' in script-src then becomes the only one. A weak nginx policy
        added next to the app's is not enforced alone (browsers apply both), but it is a loosening
        waiting for the app's header to go missing.""",
    remediation=Remediation("Let the app's CSP through: drop proxy_hide_header Content-Security-Policy and any "
                            "add_header Content-Security-Policy on locations proxied to Mastodon."),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/CSP",
                "https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_hide_header"],
    tags=["headers", "xss"],
)
def app_csp(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        for server, loc in _proxy_locations(conf):
            subject = _loc_subject(server, loc)
            resolved = conf.resolve_header(loc, "Content-Security-Policy")
            csp = next((h for h in reversed(resolved.added) if not h.types), None)
            if csp is not None and templating.is_templated(csp.value, "nginx"):
                yield skipped("the CSP value is templated: cannot be judged", at=csp.directive.location,
                              subject=subject, because=SkipReason.TEMPLATED)
                continue
            weak = csp_script_weakness(csp.value) if csp is not None else []
            expected = "the app's CSP passed through"
            by = resolved.by
            how = {"hidden": "hidden (proxy_hide_header)", "cleared": "cleared (more_clear_headers)",
                   "replaced": "replaced (more_set_headers)"}.get(resolved.upstream, "")
            if resolved.upstream in ("hidden", "cleared") and csp is None:
                yield failed(f"the app's CSP is {how} and nothing replaces it", at=by.location if by else loc.location,
                             subject=subject, observed=by.text() if by else resolved.upstream, expected=expected)
            elif resolved.upstream != "kept" and csp is not None and weak:
                yield failed(f"the app's CSP is {how}: the policy sent instead allows {', '.join(weak)} in scripts",
                             at=csp.directive.location, subject=subject, observed=csp.value, expected=expected)
            elif resolved.upstream == "replaced" and csp is not None:
                yield warned("nginx replaces the app's CSP with a fixed one (more_set_headers): Mastodon derives its "
                             "own from its settings (asset and media hosts, streaming URL), which this one does not "
                             "follow", at=csp.directive.location, subject=subject, observed=csp.value,
                             expected=expected, severity="low")
            elif weak and csp is not None:
                yield warned(f"nginx adds a CSP allowing {', '.join(weak)} in scripts next to the app's",
                             at=csp.directive.location, subject=subject, observed=csp.value,
                             expected="no CSP added by nginx on app responses")
            else:
                yield passed("the app's own CSP reaches the browser",
                             at=csp.directive.location if csp else loc.location, subject=subject,
                             observed=csp.value if csp else "not touched by nginx", expected="the app's CSP")


@check(
    id="nginx.rate-limit",
    title="nginx limits request rates to the app",
    component="nginx",
    severity="info",
    threats=["T-PROXY-DOS", "T-FED-DOS"],
    needs=[kinds.NGINX],
    rationale="""Mastodon limits requests per IP and per account in the app (Rack::Attack), but each
        request still costs a Puma thread before it is refused. limit_req / limit_conn in nginx
        turn floods away before they reach the app. Mastodon's sample has none: this is advice, not
        a documented requirement.""",
    remediation=Remediation("Define a zone in http and apply it to the proxied locations.",
                            "limit_req_zone $binary_remote_addr zone=mastodon:10m rate=30r/s;\n"
                            "limit_req zone=mastodon burst=60 nodelay;"),
    references=["https://nginx.org/en/docs/http/ngx_http_limit_req_module.html"],
    tags=["dos"],
)
def rate_limit(facts: FactSet) -> Iterator[Outcome]:
    for conf, server in _content_servers(facts):
        s = server.directive
        nodes = [s, *conf.locations(s)]
        found = next((d for n in nodes for name in ("limit_req", "limit_conn")
                      for d in conf.effective_all(n, name)), None)
        if found is not None:
            yield passed("request limits are applied", at=found.location, subject=server.label,
                         observed=found.text(), expected="limit_req or limit_conn")
        else:
            yield warned("no limit_req or limit_conn applies to this server", at=server.location,
                         subject=server.label, observed="none", expected="limit_req or limit_conn")


@check(
    id="nginx.document-root",
    title="nginx serves Mastodon's public/ directory, not the application directory",
    component="nginx",
    severity="critical",
    threats=["T-SECRETS-EXPOSED"],
    needs=[kinds.NGINX],
    reads=[kinds.MASTODON_ENV, kinds.SYSTEMD_UNIT],
    rationale="""Mastodon's checkout holds .env.production (the secret key base, database and SMTP
        passwords, encryption keys) and log/ next to public/. A location that serves files from the
        checkout, or from a directory above it, lets anyone download those files by name. What a
        root serves is judged, not its name: a location serves files from its root joined with the
        URI (or from its alias), only for the URIs it matches, and a location that only proxies
        serves nothing from disk. The checkout is where the tree puts .env.production or
        Mastodon's units run (WorkingDirectory), the directory above a served public/, and the
        documented places (/home/mastodon/live, the image's /opt/mastodon).""",
    remediation=Remediation("Point root at the public/ directory of the checkout, and serve nothing else of it.",
                            "root /home/mastodon/live/public;"),
    references=[MASTODON_INSTALL, "https://nginx.org/en/docs/http/ngx_http_core_module.html#root"],
    tags=["secrets"],
)
def document_root(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.NGINX):
        checkouts = _checkouts(facts, conf)
        for server in _mastodon_servers(conf):
            s = server.directive
            if s.first("return") is not None:
                continue
            judged = [_judge_served(conf, server, served, checkouts) for served in _served_dirs(conf, s)]
            if judged:
                yield from judged
            else:
                root = conf.effective(s, "root")
                yield passed("nothing is served from disk here: every location proxies or answers itself",
                             at=root.location if root else server.location, subject=server.label,
                             observed=f"root {root.arg} (serves nothing)" if root else "unset",
                             expected="…/live/public")


# Where a Mastodon checkout is when the tree does not say: the installation guide's, the image's.
DOCUMENTED_CHECKOUTS = ("/home/mastodon/live", "/opt/mastodon", "/mastodon")
_SYSTEM_DIRS = {"/", "/etc", "/home", "/root", "/var", "/srv", "/opt", "/usr", "/var/www", "/home/mastodon"}
_HOST_DIRS = re.compile(r"(^|/)((?:home|opt|srv|var|usr)/.*)$")


def _checkouts(facts: FactSet, conf: NginxConfig) -> dict[str, str]:
    """Mastodon checkouts this tree shows (path -> how it is known)."""
    found = {path: "the documented location" for path in DOCUMENTED_CHECKOUTS}
    for env in facts.all(kinds.MASTODON_ENV):
        folder = env.path.split(":", 1)[-1].rsplit("/", 1)[0]  # host:path over SSH
        match = _HOST_DIRS.search(folder)
        if match:
            found["/" + match.group(2)] = f"its .env.production ({env.path})"
    for unit in facts.all(kinds.SYSTEMD_UNIT):
        work = unit.last("WorkingDirectory")
        if "mastodon" in unit.name and work is not None and work.value.startswith("/") and \
                not templating.is_templated(work.value, "systemd"):
            found[work.value.rstrip("/") or "/"] = f"{unit.name}'s WorkingDirectory"
    for server in _mastodon_servers(conf):
        root = conf.effective(server.directive, "root")
        if root is not None and root.arg.rstrip("/").endswith("/public") and not _templated(root):
            found.setdefault(root.arg.rstrip("/")[: -len("/public")], f"the directory above {root.arg}")
    return found


@dataclass(frozen=True)
class _Served:
    directive: Directive  # the root or alias
    location: Directive | None
    folder: str  # the directory files are served from for the URIs the location matches
    uri_prefix: str  # the URI that maps to `folder`


def _served_dirs(conf: NginxConfig, server: Directive) -> list[_Served]:
    """Each directory a location serves files from, with the URI prefix that reaches it."""
    out: list[_Served] = []
    seen: set[tuple[int, str]] = set()
    for loc in [loc for loc in conf.locations(server) if not loc.arg.startswith("@")] or [None]:
        if serve_mode(conf, server, loc) not in ("static", "app-fallback"):
            continue
        node = loc if loc is not None else server
        alias = loc.first("alias") if loc is not None else None
        prefixes = _uri_prefixes(loc)
        if alias is not None:
            pairs = [(alias, alias.arg.rstrip("/") or "/", prefixes[0])]
        else:
            root = conf.effective(node, "root")
            if root is None:
                continue  # nginx's compiled-in html/ directory: not the checkout
            base = root.arg.rstrip("/")
            pairs = [(root, (base + p).rstrip("/") or "/", p) for p in prefixes]
        for directive, folder, prefix in pairs:
            if (id(directive), folder) not in seen:
                seen.add((id(directive), folder))
                out.append(_Served(directive, loc, folder, prefix))
    return out


_REGEX_PREFIX = re.compile(r"\^(/[\w./-]*)(?:\(([\w/|.-]+)\))?")


def _uri_prefixes(loc: Directive | None) -> list[str]:
    """The URI prefixes a location serves: its path for a prefix or exact location, the literal
    start of an anchored regex (with a group of alternatives expanded), else "/" (anything)."""
    if loc is None:
        return ["/"]
    mod, path = location_spec(loc)
    path = site_path(mod, path)
    if mod in ("", "^~", "="):
        return [path if path.startswith("/") else "/"]
    match = _REGEX_PREFIX.match(path)
    if not match:
        return ["/"]
    literal, group = match.group(1), match.group(2)
    if group and literal.endswith("/"):
        return [literal + alt for alt in group.split("|")]
    return [literal]


def _within(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder.rstrip("/") + "/")


def _denied(conf: NginxConfig, loc: Directive | None) -> bool:
    """A location that answers no file: deny all, internal, or a return of 4xx."""
    if loc is None:
        return False
    ret = loc.first("return")
    if ret is not None and ret.arg.isdigit() and int(ret.arg) >= 400:
        return True
    if loc.first("internal") is not None:
        return True
    rules = [d for d in conf.effective_all(loc, "deny")] + [d for d in conf.effective_all(loc, "allow")]
    return any(d.name == "deny" and d.arg == "all" for d in rules) and not loc.children("allow")


def _judge_served(conf: NginxConfig, server: Server, served: _Served, checkouts: dict[str, str]) -> Outcome:
    d = served.directive
    where = d.location
    subject = _loc_subject(server, served.location)
    shown = d.arg
    if templating.is_templated(d.arg, "nginx") or "$" in d.arg:
        return skipped(f"the {d.name} path is templated or a variable: what it serves cannot be judged", at=where,
                       subject=subject, because=SkipReason.TEMPLATED)
    exposed = [(c, why) for c, why in checkouts.items() if _within(c, served.folder)]
    if exposed:
        checkout, why = exposed[0]
        env = f"{checkout}/.env.production"
        uri = served.uri_prefix.rstrip("/") + "/" + env[len(served.folder.rstrip("/")) + 1:] if served.folder != "/" \
            else env
        answering = conf.match_location(server.directive, uri)
        if _denied(conf, answering):
            return failed(f"{d.name} serves the Mastodon checkout {checkout} ({why}): log/, config/ and the code "
                          f"are readable; {uri} itself is refused ({answering.text() if answering else ''})",
                          at=where, subject=subject, observed=shown, expected="…/live/public", severity="high")
        return failed(f"{d.name} serves the Mastodon checkout {checkout} ({why}): GET {uri} downloads its secrets",
                      at=where, subject=subject, observed=shown, expected="…/live/public")
    inside = [(c, why) for c, why in checkouts.items() if _within(served.folder, c)
              and not _within(served.folder, c.rstrip("/") + "/public")]
    if inside:
        checkout, why = inside[0]
        return warned(f"{d.name} serves {served.folder}, part of the Mastodon checkout {checkout} ({why}) outside "
                      "public/", at=where, subject=subject, observed=shown, expected="…/live/public",
                      severity="medium")
    if served.folder in _SYSTEM_DIRS:
        return failed(f"{d.name} serves {served.folder}, a system directory: every file under it can be downloaded",
                      at=where, subject=subject, observed=shown, expected="…/live/public", severity="high")
    return passed(f"{d.name} serves {served.folder} for {served.uri_prefix}, not a Mastodon checkout", at=where,
                  subject=subject, observed=shown, expected="…/live/public")


# --- as browsers see it (probe: http-headers) ---------------------------------------------------------


HSTS_HINT = 'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;'


def _hosts(site: HttpSite) -> list[str]:
    return [site.web_domain, *site.media_hosts]


def _served(site: HttpSite, host: str) -> list[Observation]:
    """GET responses over HTTPS from `host` that were served (2xx/3xx: nginx adds its headers to
    those only, unless `always`)."""
    return [o for o in site.observations if o.method == "GET" and o.scheme == "https" and o.host == host
            and o.status is not None and o.status < 400]


@check(
    id="http.hsts",
    title="HTTPS responses carry HSTS for at least a year",
    component="nginx",
    severity="medium",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.HTTP_SITE],
    rationale="""Strict-Transport-Security makes browsers refuse plain http to the instance after the
        first visit, so a man in the middle cannot strip TLS from later visits (session cookies,
        OAuth tokens). A year is the usual minimum; includeSubDomains covers the media and mail hosts.""",
    remediation=Remediation("Send HSTS on every HTTPS server block of the web and media hosts.", HSTS_HINT),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Strict-Transport-Security",
                "https://hstspreload.org/"],
    tags=["network", "headers", "tls"],
)
def served_hsts(facts: FactSet) -> Iterator[Outcome]:
    for site in facts.all(kinds.HTTP_SITE):
        for host in _hosts(site):
            served = _served(site, host)
            if not served:
                continue
            main = served[0]
            values = main.header_all("strict-transport-security")
            subject = f"HSTS on {host}"
            expected = "max-age >= 31536000 (includeSubDomains)"
            if not values:
                yield failed(f"no Strict-Transport-Security on {host}", at=main.at(), subject=subject,
                             observed="no header", expected=expected)
                continue
            parsed = parse_hsts(values[0])
            shown = escape(values[0], 200)
            if not parsed.valid:
                yield failed(f"the HSTS header cannot be read ({'; '.join(parsed.problems)}): browsers ignore it",
                             at=main.at(), subject=subject, observed=shown, expected=expected)
                continue
            age = parsed.max_age or 0
            subs = "with includeSubDomains" if parsed.include_subdomains else "without includeSubDomains"
            lacking = [o for o in served[1:] if not o.header_all("strict-transport-security")]
            if age < SIX_MONTHS:
                yield failed(f"HSTS max-age is {age} s (under six months)", at=main.at(), subject=subject,
                             observed=shown, expected=expected)
            elif age < ONE_YEAR:
                yield warned(f"HSTS max-age is {age} s (under a year), {subs}", at=main.at(), subject=subject,
                             observed=shown, expected=expected)
            elif lacking:
                yield warned(f"HSTS is sent, but not on {urls(lacking)}", at=lacking[0].at(), subject=subject,
                             observed=f"{shown}; missing on {len(lacking)} of {len(served)} responses",
                             expected="on every HTTPS response")
            else:
                yield passed(f"HSTS for {age // 86400} days, {subs}", at=main.at(), subject=subject, observed=shown,
                             expected=expected)
            if host == site.web_domain:
                yield _preload(site, parsed, main)


def _preload(site: HttpSite, parsed, main: Observation) -> Outcome:
    missing = []
    if (parsed.max_age or 0) < ONE_YEAR:
        missing.append("max-age >= 31536000")
    if not parsed.include_subdomains:
        missing.append("includeSubDomains")
    if not parsed.preload:
        missing.append("the preload token")
    result, _, detail = redirect_verdict(site.first("http"), site.web_domain)
    if result != "to-https":
        missing.append(f"a redirect from http on the same host ({detail})")
    observed = "eligible" if not missing else "not eligible: " + ", ".join(missing)
    message = ("eligible for the HSTS preload list (hstspreload.org checks the rest)" if not missing
               else f"not eligible for the HSTS preload list (optional): missing {', '.join(missing)}")
    return passed(message, at=main.at(), subject="HSTS preload", observed=observed,
                  expected="optional: max-age >= 31536000; includeSubDomains; preload", severity="info")


@check(
    id="http.redirect",
    title="Plain http redirects permanently to https on the same host",
    component="nginx",
    severity="medium",
    threats=["T-TRANSPORT-MITM"],
    needs=[kinds.HTTP_SITE],
    rationale="""A visitor who types the domain arrives over plain http. The server must send them
        to https at once (301 or 308, which browsers remember) and serve nothing in clear: a page
        or API answer over http can be read and rewritten on the way.""",
    remediation=Remediation("Make the port-80 server block only redirect.",
                            "server {\n  listen 80;\n  server_name example.social;\n"
                            "  location / { return 301 https://$host$request_uri; }\n}"),
    references=["https://docs.joinmastodon.org/admin/install/#setting-up-nginx"],
    tags=["network", "tls"],
)
def redirect(facts: FactSet) -> Iterator[Outcome]:
    for site in facts.all(kinds.HTTP_SITE):
        pairs = [(site.web_domain, site.first("http"))]
        pairs += [(o.host, o) for o in site.labelled("http-media")]
        for host, obs in pairs:
            if obs is None:
                continue
            result, _, detail = redirect_verdict(obs, host)
            at, subject = Location(obs.url), f"http://{host}/"
            expected = f"301 or 308 to https://{host}/"
            observed = detail if obs.status is None else f"{obs.status}" + (
                f" to {escape(obs.location, 200)}" if obs.location else "")
            if result == "to-https" and obs.status in (301, 308):
                yield passed(f"plain http redirects permanently to https ({obs.status})", at=at, subject=subject,
                             observed=observed, expected=expected)
            elif result == "to-https":
                yield warned(f"the redirect to https is temporary ({obs.status}): browsers do not remember it",
                             at=at, subject=subject, observed=observed, expected=expected)
            elif result in ("no-http", "no-answer"):
                yield passed(f"nothing is served over plain http ({detail})", at=at, subject=subject,
                             observed=detail, expected=expected)
            elif result == "off-host":
                yield warned("plain http redirects to another host first (HSTS preload needs the same host)",
                             at=at, subject=subject, observed=observed, expected=expected)
            elif result == "not-to-https":
                yield failed("plain http redirects, but not to https", at=at, subject=subject, observed=observed,
                             expected=expected)
            elif result == "missing":
                yield failed(f"plain http serves content without redirecting ({obs.status})", at=at,
                             subject=subject, observed=observed, expected=expected)
            else:
                yield warned(f"plain http answers {obs.status} without redirecting to https", at=at,
                             subject=subject, observed=observed, expected=expected)


@check(
    id="http.media-headers",
    title="Uploaded media are served with a CSP that blocks scripts and with nosniff",
    component="nginx",
    severity="high",
    threats=["T-MEDIA-XSS"],
    needs=[kinds.HTTP_SITE],
    rationale="""Anyone can upload a file that a browser would run as HTML or script if it were
        sniffed or opened directly. Mastodon's nginx configuration (and its object-storage proxy)
        serves /system/ and the media host with Content-Security-Policy "default-src 'none';
        form-action 'none'" and X-Content-Type-Options: nosniff so that nothing in a file runs.""",
    remediation=Remediation("Add the headers to the media locations (local /system/ and the media host's proxy).",
                            "add_header X-Content-Type-Options nosniff;\n"
                            "add_header Content-Security-Policy \"default-src 'none'; form-action 'none'\";"),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage-proxy/"],
    tags=["network", "headers", "media"],
)
def media_headers(facts: FactSet) -> Iterator[Outcome]:
    for site in facts.all(kinds.HTTP_SITE):
        media = site.media()
        if not media:
            tried = site.labelled("media")
            why = ("no media URL answered: " + "; ".join(
                f"{o.url} ({o.status or o.error})" for o in tried[:3])) if tried else (
                "no media URL known (give a public object with --s3-public-object, or the instance links none)")
            yield skipped(why, at=Location(f"https://{site.web_domain}/"))
            continue
        for obs in media:
            policy = obs.header_all("content-security-policy")
            issues = csp.media_issues(csp.parse_header_values(policy))
            problems = [(i.level, i.message) for i in issues]
            if not nosniff(obs.header_all("x-content-type-options")):
                problems.append(("fail", "no X-Content-Type-Options: nosniff"))
            observed = (f"Content-Security-Policy: {escape(' | '.join(policy), 200) if policy else 'none'}; "
                        f"X-Content-Type-Options: {escape(obs.header('x-content-type-options') or 'none', 40)}")
            expected = f'Content-Security-Policy: {csp.MEDIA_POLICY}; X-Content-Type-Options: nosniff'
            subject = f"media on {obs.host} ({obs.source})" if obs.source else f"media on {obs.host}"
            fails = [m for lvl, m in problems if lvl == "fail"]
            if fails:
                yield failed("uploaded files could run in the browser: " + "; ".join(m for _, m in problems),
                             at=obs.at(), subject=subject, observed=observed, expected=expected)
            elif problems:
                yield warned("media headers are weaker than Mastodon's: " + "; ".join(m for _, m in problems),
                             at=obs.at(), subject=subject, observed=observed, expected=expected)
            else:
                yield passed("media are served with a script-blocking CSP and nosniff", at=obs.at(), subject=subject,
                             observed=observed, expected=expected)


@check(
    id="http.nosniff",
    title="Responses carry X-Content-Type-Options: nosniff",
    component="nginx",
    severity="low",
    threats=["T-MEDIA-XSS", "T-APP-XSS"],
    needs=[kinds.HTTP_SITE],
    rationale="""Without nosniff a browser may guess a response's type from its content and run a
        text or image file as HTML or script. Mastodon sends it on the app's responses; nginx must
        add it wherever it serves files itself.""",
    remediation=Remediation("Add the header in every location nginx serves files from.",
                            "add_header X-Content-Type-Options nosniff;"),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Content-Type-Options"],
    tags=["network", "headers"],
)
def nosniff_header(facts: FactSet) -> Iterator[Outcome]:
    for site in facts.all(kinds.HTTP_SITE):
        for host in _hosts(site):
            served = [o for o in _served(site, host) if o.status is not None and o.status < 300]
            if not served:
                continue
            lacking = [o for o in served if not nosniff(o.header_all("x-content-type-options"))]
            subject = f"nosniff on {host}"
            if lacking:
                shown = lacking[0].header("x-content-type-options")
                yield failed(f"{len(lacking)} of {len(served)} responses lack nosniff: {urls(lacking)}",
                             at=lacking[0].at(), subject=subject,
                             observed=escape(shown, 60) if shown else "no X-Content-Type-Options",
                             expected="X-Content-Type-Options: nosniff")
            else:
                yield passed(f"all {len(served)} responses carry nosniff", at=served[0].at(), subject=subject,
                             observed="nosniff", expected="X-Content-Type-Options: nosniff")


_VERSION = re.compile(r"\d+\.\d+|/\s*\d")


_VIA_PRODUCT = re.compile(r"[a-z]/\d|\(\S+/\d", re.IGNORECASE)  # Via: 1.1 varnish (Varnish/6.0)


_ALWAYS_LEAKS = ("x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-generator")


@check(
    id="http.server-leak",
    title="Responses do not announce software versions",
    component="nginx",
    severity="low",
    threats=["T-APP-INFO-LEAK"],
    needs=[kinds.HTTP_SITE],
    rationale="""A Server header with a version number (nginx/1.22.1), X-Powered-By, or a Via header
        naming proxy software tells an attacker which published vulnerabilities to try, without any
        probing. X-Runtime gives away timings that help enumeration.""",
    remediation=Remediation("Hide versions in nginx and drop framework headers.",
                            "server_tokens off;\nproxy_hide_header X-Powered-By;\nproxy_hide_header X-Runtime;"),
    references=["https://nginx.org/en/docs/http/ngx_http_core_module.html#server_tokens"],
    tags=["network", "headers"],
)
def server_leak(facts: FactSet) -> Iterator[Outcome]:
    for site in facts.all(kinds.HTTP_SITE):
        by_host: dict[str, list[Observation]] = {}
        for obs in site.observations:
            if obs.answered:
                by_host.setdefault(obs.host, []).append(obs)
        for host, seen in by_host.items():
            leaks: dict[str, tuple[str, Observation]] = {}
            minor: dict[str, tuple[str, Observation]] = {}
            for obs in seen:
                for name, value in obs.headers:
                    if (name == "server" and _VERSION.search(value)) or name in _ALWAYS_LEAKS:
                        leaks.setdefault(f"{name}: {escape(value, 80)}", (name, obs))
                    elif name == "x-runtime":
                        minor.setdefault(name, (name, obs))
                    elif name == "via" and _VIA_PRODUCT.search(value):
                        minor.setdefault(f"{name}: {escape(value, 80)}", (name, obs))
            subject = f"headers of {host}"
            if leaks:
                first = next(iter(leaks.values()))[1]
                yield failed(f"{host} announces its software: {'; '.join(leaks)}", at=first.at(), subject=subject,
                             observed="; ".join([*leaks, *minor]), expected="Server without a version, no X-Powered-By")
            elif minor:
                first = next(iter(minor.values()))[1]
                yield warned(f"{host} gives away internals: {'; '.join(minor)}", at=first.at(), subject=subject,
                             observed="; ".join(minor), expected="no X-Runtime, Via without versions")
            else:
                server = next((o.header("server") for o in seen if o.header("server")), None)
                yield passed(f"no version in the headers of {host}", at=seen[0].at(), subject=subject,
                             observed=f"Server: {escape(server, 80)}" if server else "no Server header",
                             expected="Server without a version, no X-Powered-By")


@check(
    id="http.observatory-grade",
    title="The site scores B or better on an Observatory-style grade",
    component="nginx",
    severity="info",
    threats=["T-TRANSPORT-MITM", "T-APP-XSS"],
    needs=[kinds.HTTP_GRADE],
    rationale="""A single score, in the manner of Mozilla's HTTP Observatory (its published tests:
        CSP, cookies, CORS, redirection, Referrer-Policy, HSTS, X-Content-Type-Options,
        X-Frame-Options, Cross-Origin-Resource-Policy; subresource integrity is not tested), to
        compare instances and follow progress. The rubric is mastoaudit's own: 100 points minus
        penalties, bonuses only above 90. The findings of the other http.* checks say what to fix.""",
    remediation=Remediation("Fix the deductions listed (the other http.* findings give the details)."),
    references=["https://developer.mozilla.org/en-US/observatory/docs/tests_and_scoring"],
    tags=["network", "headers", "grade"],
)
def observatory_grade(facts: FactSet) -> Iterator[Outcome]:
    for grade in facts.all(kinds.HTTP_GRADE):
        at = Location(grade.get("url") or "")
        if grade.get("score") is None:
            yield skipped(f"no grade: {grade.get('note', 'the home page did not answer')}", at=at)
            continue
        score, letter = grade["score"], grade["grade"]
        moved = [f"{t['test']} {t['points']:+d} ({t['result']})" for t in grade["tests"] if t["points"]]
        if grade["score"] < 90:
            moved = [m for m in moved if " -" in m]  # bonuses do not count below 90
        message = f"grade {letter} ({score}/100)" + (": " + "; ".join(moved) if moved else ": no deductions")
        observed, expected = f"{letter} {score}/100", "B or better (70/100)"
        if score >= 70:
            yield passed(message, at=at, subject="grade", observed=observed, expected=expected)
        elif score >= 50:
            yield warned(message, at=at, subject="grade", observed=observed, expected=expected)
        else:
            yield failed(message, at=at, subject="grade", observed=observed, expected=expected)
