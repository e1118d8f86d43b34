"""nginx checks on small configurations, and the demo trees checked by the real nginx (`nginx -t`)."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from mastoaudit_checks.nginx import csp_blocks_scripts, csp_script_weakness

from mastoaudit import ciphers
from mastoaudit.model import Finding, Status

from ..conftest import DEMO, FIXTURES, check_fn, lint

NGINX = "/usr/sbin/nginx"

UPSTREAMS = """\
upstream backend { server 127.0.0.1:3000; }
upstream streaming { server 127.0.0.1:4000; }
map $http_upgrade $connection_upgrade { default upgrade; '' close; }
"""

PROXY = """\
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Proxy "";
"""

CERT = """\
    ssl_certificate     /etc/letsencrypt/live/social.example.org/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/social.example.org/privkey.pem;
"""


def site(body: str, *, listen: str = "443 ssl", extra: str = "") -> str:
    """A Mastodon-like site file: the upstreams and one server with `body` inside."""
    return f"{UPSTREAMS}{extra}server {{\n    listen {listen};\n    server_name social.example.org;\n{body}}}\n"


APP = (f"    location / {{ try_files $uri @proxy; }}\n    location @proxy {{\n{PROXY}"
       "        proxy_pass http://backend;\n    }\n")


def results(registry, tmp_path: Path, check_id: str, files: dict[str, str]) -> list[Finding]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    run = lint(registry, tmp_path, select=[check_id])
    return [f for f in run.findings if f.check_id == check_id]


def statuses(found: list[Finding]) -> list[str]:
    return sorted(f.status.value for f in found)


def one(found: list[Finding], status: Status) -> Finding:
    match = [f for f in found if f.status is status]
    assert len(match) == 1, [(f.status.value, f.message, str(f.location)) for f in found]
    return match[0]


# --- TLS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("http", "server", "want", "line"), [
    ("", "", Status.WARN, 2),  # unset: version dependent, pointed at the http block
    ("ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;", "", Status.FAIL, 3),  # Debian's http-level default
    ("ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1.2 TLSv1.3;", Status.PASS, 8),
    ("", "ssl_protocols TLSv1.3;", Status.PASS, 8),
    ("", "ssl_protocols SSLv3 TLSv1.2;", Status.FAIL, 8),
])
def test_tls_protocols(registry, tmp_path, http, server, want, line):
    conf = (f"events {{}}\nhttp {{\n    {http}\n    server {{\n        listen 443 ssl;\n{CERT}        {server}\n"
            "    }\n}\n")
    found = results(registry, tmp_path, "nginx.tls-protocols", {"nginx.conf": conf})
    f = one(found, want)
    assert f.location.line == line


@pytest.mark.parametrize(("spec", "verdict"), [
    ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305", "pass"),
    ("DEFAULT:@SECLEVEL=0", "fail"),
    ("HIGH:@SECLEVEL=0", "fail"),
    ("RC4-SHA:HIGH", "fail"),  # named: this OpenSSL lacks RC4, the server's may not
    ("HIGH:RC4:!RC4:!aNULL", "weak"),  # RC4 removed again with "!"; HIGH still holds static RSA
    ("HIGH:!MD5", "fail"),  # HIGH holds anonymous suites (ADH-AES256-GCM-SHA384) unless !aNULL says otherwise
    ("ECDHE-RSA-DES-CBC3-SHA:HIGH", "fail"),
    ("EXP-RC4-MD5", "fail"),
    ("aNULL:HIGH", "fail"),
    ("ALL", "fail"),  # includes anonymous suites
    ("ALL:!aNULL:!eNULL", "weak"),
    ("DEFAULT", "weak"),
    ("HIGH:!MEDIUM:!LOW:!aNULL:!NULL:!SHA", "weak"),  # Mastodon's sample: static RSA, CBC
    ("HIGH:!aNULL:!MD5", "weak"),  # nginx's default
    ("ECDHE+AES", "outside"),  # forward secret and authenticated, but CBC and CCM suites
    ("EECDH+AESGCM:EDH+AESGCM", "pass"),  # AEAD with forward secrecy (DHE-DSS ones are never negotiated)
    ("NO-SUCH-SUITE", "unusable"),
])
def test_cipher_strings_as_openssl_expands_them(spec, verdict):
    assert ciphers.judge(spec).verdict == verdict


def test_tls_ciphers_unset_is_nginx_default(registry, tmp_path):
    """nginx's default HIGH:!aNULL:!MD5 is judged as OpenSSL expands it."""
    found = results(registry, tmp_path, "nginx.tls-ciphers", {"sites-enabled/x": site(CERT)})
    f = one(found, Status.FAIL)
    assert f.observed.startswith("unset (HIGH:!aNULL:!MD5") and f.severity.value == "medium"


def test_tls_ciphers_names_the_suites_and_the_openssl_that_expanded_them(registry, tmp_path):
    found = results(registry, tmp_path, "nginx.tls-ciphers",
                    {"sites-enabled/x": site(CERT + "    ssl_ciphers HIGH:!MEDIUM:!LOW:!aNULL:!NULL:!SHA;\n")})
    f = one(found, Status.FAIL)
    assert "no forward secrecy (static RSA key exchange): AES256-GCM-SHA384" in f.message
    assert "CBC mode: " in f.message and "ECDHE-RSA-AES256-SHA384" in f.message
    assert f"expanded with {ssl.OPENSSL_VERSION} (mastoaudit's; the server's OpenSSL may differ)" in f.message
    assert "Mozilla's intermediate profile" in f.expected
    mozilla = ciphers.mozilla_profile().openssl_string
    ok = one(results(registry, tmp_path / "ok", "nginx.tls-ciphers",
                     {"sites-enabled/x": site(CERT + f"    ssl_ciphers {mozilla};\n")}), Status.PASS)
    assert "protocols are judged by nginx.tls-protocols" in ok.message  # says what it covers
    forward_secret = one(results(registry, tmp_path / "fs", "nginx.tls-ciphers",
                                 {"sites-enabled/x": site(CERT + "    ssl_ciphers ECDHE+AES;\n")}), Status.WARN)
    assert forward_secret.severity.value == "low" and "none broken" in forward_secret.message


def test_tls_ciphers_templated_is_skipped(registry, tmp_path):
    found = results(registry, tmp_path, "nginx.tls-ciphers",
                    {"sites-enabled/x": site(CERT + "    ssl_ciphers ${SSL_CIPHERS};\n")})
    assert statuses(found) == ["skip"]


@pytest.mark.parametrize(("lines", "want"), [
    ("ssl_prefer_server_ciphers on; ssl_ciphers DEFAULT:@SECLEVEL=0;", Status.PASS),
    ("ssl_prefer_server_ciphers off; ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256;", Status.PASS),  # Mozilla's way
    ("ssl_prefer_server_ciphers on; ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256;", Status.PASS),  # safe too
    ("ssl_ciphers ALL:!aNULL;", Status.FAIL),  # unset (off) with static-RSA suites in the list
    ("ssl_prefer_server_ciphers off; ssl_ciphers ECDHE+AES;", Status.WARN),  # CBC and CCM: outside, not broken
    ("ssl_prefer_server_ciphers off; ssl_ciphers RC4-SHA:HIGH;", Status.FAIL),
])
def test_prefer_server_ciphers(registry, tmp_path, lines, want):
    found = results(registry, tmp_path, "nginx.tls-prefer-server-ciphers",
                    {"sites-enabled/x": site(CERT + f"    {lines}\n")})
    one(found, want)


@pytest.mark.parametrize(("lines", "want"), [
    ("", Status.FAIL),
    ("ssl_session_tickets on;", Status.FAIL),
    ("ssl_session_tickets off;", Status.PASS),
    ("ssl_session_ticket_key /etc/nginx/ticket.key;", Status.PASS),
])
def test_session_tickets(registry, tmp_path, lines, want):
    found = results(registry, tmp_path, "nginx.tls-session-tickets", {"sites-enabled/x": site(CERT + f"    {lines}\n")})
    one(found, want)


def test_certificate_missing_fails_and_unseen_include_warns(registry, tmp_path):
    found = results(registry, tmp_path / "a", "nginx.tls-certificate", {"sites-enabled/x": site("")})
    assert one(found, Status.FAIL).observed == "ssl_certificate unset"
    found = results(registry, tmp_path / "b", "nginx.tls-certificate",
                    {"sites-enabled/x": site("    include /etc/letsencrypt/options-ssl-nginx.conf;\n")})
    assert "could not be read" in one(found, Status.WARN).message


def test_certificate_in_a_snippet_and_reject_handshake_servers(registry, tmp_path):
    files = {
        "etc/nginx/nginx.conf": "events {}\nhttp {\n    include /etc/nginx/sites-enabled/*;\n}\n",
        "etc/nginx/snippets/cert.conf": CERT,
        "etc/nginx/sites-enabled/x": site("    include snippets/cert.conf;\n")
        + "server {\n    listen 443 ssl default_server;\n    ssl_reject_handshake on;\n    return 444;\n}\n",
    }
    found = results(registry, tmp_path, "nginx.tls-certificate", files)
    assert statuses(found) == ["pass"]
    assert found[0].location.file.endswith("snippets/cert.conf")


# --- HSTS ----------------------------------------------------------------------------------------


def test_hsts_only_app_responses_pass(registry, tmp_path):
    proxied = (f"    location / {{\n{PROXY}        proxy_pass http://backend;\n    }}\n")
    found = results(registry, tmp_path, "nginx.hsts", {"sites-enabled/x": site(CERT + proxied)})
    assert "every response comes from the Mastodon app" in one(found, Status.PASS).message


def test_hsts_on_files_served_before_the_proxy_is_judged(registry, tmp_path):
    """try_files $uri @proxy (Mastodon's documented shape): the files nginx finds on disk carry no
    HSTS of their own, but every page comes from the app with its header and a browser keeps HSTS
    for the whole host: a pass that says so. A fallback that removes the app's header fails."""
    found = results(registry, tmp_path / "docs", "nginx.hsts", {"sites-enabled/x": site(CERT + APP)})
    p = one(found, Status.PASS)
    assert "try_files before the proxy" in p.message and "location /" in p.message
    assert "keeps HSTS for the whole host" in p.message
    # the same with HSTS at the server level: a pass that gives the true reason
    body = CERT + '    add_header Strict-Transport-Security "max-age=63072000" always;\n' + APP
    passed = one(results(registry, tmp_path / "server", "nginx.hsts", {"sites-enabled/x": site(body)}), Status.PASS)
    assert "nginx sets HSTS (add_header at" in passed.message and "the app sets its own" in passed.message
    # the fallback hides the app's header: the host never sends HSTS
    hidden = APP.replace("proxy_pass http://backend;", "proxy_hide_header Strict-Transport-Security;\n"
                         "        proxy_pass http://backend;")
    f = one(results(registry, tmp_path / "hidden", "nginx.hsts", {"sites-enabled/x": site(CERT + hidden)}),
            Status.FAIL)
    assert "removed where nginx falls back to it" in f.message and "proxy_hide_header" in f.message
    # HSTS set for the server and silently dropped on the files by a location's own add_header: the
    # admin's intent defeated by nginx's inheritance rule, a low warning
    dropped = (CERT + '    add_header Strict-Transport-Security "max-age=63072000" always;\n'
               + APP.replace("{ try_files", '{ add_header Cache-Control "public"; try_files'))
    w = one(results(registry, tmp_path / "dropped", "nginx.hsts", {"sites-enabled/x": site(dropped)}), Status.WARN)
    assert w.severity.value == "low" and "does not inherit" in w.message and "try_files before the proxy" in w.message


def test_hsts_static_location_drops_the_servers_header(registry, tmp_path):
    body = (CERT + '    add_header Strict-Transport-Security "max-age=63072000" always;\n' + APP
            + '    location ~ ^/packs/ {\n        add_header Cache-Control "public";\n        try_files $uri =404;\n'
            "    }\n")
    found = results(registry, tmp_path, "nginx.hsts", {"sites-enabled/x": site(body)})
    f = one(found, Status.FAIL)
    assert "inherit" in f.message and "packs" in f.subject and f.location.line == 18


def test_hsts_repeated_through_an_include_passes(registry, tmp_path):
    body = (CERT + "    include /etc/nginx/snippets/hsts.conf;\n" + APP
            + '    location ~ ^/packs/ {\n        add_header Cache-Control "public";\n'
            "        include /etc/nginx/snippets/hsts.conf;\n        try_files $uri =404;\n    }\n")
    files = {"etc/nginx/nginx.conf": "events {}\nhttp { include /etc/nginx/sites-enabled/*; }\n",
             "etc/nginx/snippets/hsts.conf": 'add_header Strict-Transport-Security "max-age=31536000";\n',
             "etc/nginx/sites-enabled/x": site(body)}
    found = results(registry, tmp_path, "nginx.hsts", files)
    assert one(found, Status.PASS).location.file.endswith("snippets/hsts.conf")


def test_hsts_short_and_missing_on_a_static_site(registry, tmp_path):
    body = CERT + '    root /srv/www;\n    add_header Strict-Transport-Security "max-age=600";\n'
    found = results(registry, tmp_path / "short", "nginx.hsts", {"sites-enabled/x": site(body)})
    assert one(found, Status.FAIL).observed == "max-age=600"
    found = results(registry, tmp_path / "none", "nginx.hsts", {"sites-enabled/x": site(CERT + "    root /srv/www;\n")})
    assert one(found, Status.FAIL).observed == "no Strict-Transport-Security"


def test_hsts_redirect_only_server_passes(registry, tmp_path):
    found = results(registry, tmp_path, "nginx.hsts",
                    {"sites-enabled/x": site(CERT + "    return 301 https://social.example.org$request_uri;\n")})
    one(found, Status.PASS)


def test_hsts_object_storage_proxy_needs_its_own(registry):
    found = lint(registry, FIXTURES / "nginx" / "object-storage", select=["nginx.hsts"]).findings
    assert {f.subject.split(" location")[0] for f in found if f.status is Status.FAIL} == {
        "server files.example.org:443"}
    # the Mastodon server's own static files (try_files before the proxy) lack HSTS: a pass that says
    # why that is enough (the app's pages carry it)
    assert any(f.status is Status.PASS and "try_files before the proxy" in f.message and "social" in f.subject
               for f in found)


# --- plain HTTP ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "want"), [
    ("    location /.well-known/acme-challenge/ { allow all; }\n"
     "    location / { return 301 https://$host$request_uri; }\n", Status.PASS),
    ("    return 308 https://$host$request_uri;\n", Status.PASS),
    ("    return 444;\n", Status.PASS),
    ("    location / { return 302 https://$host$request_uri; }\n", Status.WARN),
    ("    location / { return 301 http://other.example$request_uri; }\n", Status.FAIL),
    ("    location / { return 301 https://$host$request_uri; }\n    location /api/ { proxy_pass http://backend; }\n",
     Status.FAIL),
    ("    root /home/mastodon/live/public;\n", Status.FAIL),
    ("    if ($host = social.example.org) {\n        return 301 https://$host$request_uri;\n    }\n"
     "    return 404;\n", Status.PASS),
])
def test_http_redirect(registry, tmp_path, body, want):
    found = results(registry, tmp_path, "nginx.http-redirect", {"sites-enabled/x": site(body, listen="80")})
    one(found, want)


def test_mixed_server_needs_a_scheme_redirect(registry, tmp_path):
    both = "80;\n    listen 443 ssl"
    found = results(registry, tmp_path / "a", "nginx.http-redirect", {"sites-enabled/x": site(CERT + APP, listen=both)})
    one(found, Status.FAIL)
    body = CERT + '    if ($scheme != "https") {\n        return 301 https://$host$request_uri;\n    }\n' + APP
    found = results(registry, tmp_path / "b", "nginx.http-redirect", {"sites-enabled/x": site(body, listen=both)})
    one(found, Status.PASS)


STOCK_DEFAULT = """server {
    listen 80 default_server;
    listen [::]:80 default_server;
    root /var/www/html;
    index index.html index.nginx-debian.html;
    server_name _;
    location / { try_files $uri $uri/ =404; }
}
"""
REDIRECTS = ("    location /.well-known/acme-challenge/ { allow all; }\n"
             "    location / { return 301 https://$host$request_uri; }\n")


@pytest.mark.parametrize(("files", "default_verdict"), [
    # Ubuntu's stock default site left enabled beside a site whose port-80 server redirects
    # (holdout: ubuntu-certbot): the welcome page for unclaimed names is not the site
    ({"sites-enabled/mastodon": site(REDIRECTS, listen="80")}, Status.PASS),
    # no named port-80 server: http://social.example.org reaches the catch-all, which does not redirect
    ({"sites-enabled/mastodon": site(CERT + APP)}, Status.FAIL),
])
def test_a_stock_catch_all_beside_the_site(registry, tmp_path, files, default_verdict):
    found = results(registry, tmp_path, "nginx.http-redirect", {"sites-enabled/default": STOCK_DEFAULT, **files})
    verdict = one([f for f in found if f.subject == "server (default):80"], default_verdict)
    if default_verdict is Status.PASS:
        assert "server social.example.org:80" in verdict.message
    # a catch-all that proxies to the app serves the site: judged as any server
    proxied = STOCK_DEFAULT.replace("try_files $uri $uri/ =404;", "proxy_pass http://backend;")
    found = results(registry, tmp_path / "p", "nginx.http-redirect",
                    {"sites-enabled/default": proxied, "sites-enabled/mastodon": site(REDIRECTS, listen="80")})
    one([f for f in found if f.subject == "server (default):80"], Status.FAIL)


def test_loopback_only_plain_listener_is_not_judged(registry, tmp_path):
    text = "server {\n    listen 127.0.0.1:8080;\n    location /status { stub_status; }\n}\n"
    found = results(registry, tmp_path, "nginx.http-redirect", {"sites-enabled/x": text})
    assert statuses(found) == ["skip"]


# --- information leaks ---------------------------------------------------------------------------


def test_server_tokens_location_override(registry, tmp_path):
    conf = ("events {}\nhttp {\n    server_tokens off;\n    server {\n        listen 80;\n"
            "        location /x { server_tokens on; }\n    }\n}\n")
    found = results(registry, tmp_path, "nginx.server-tokens", {"nginx.conf": conf})
    assert one(found, Status.FAIL).location.line == 6


def test_autoindex(registry, tmp_path):
    body = "    location /a/ { autoindex on; }\n    location /b/ { autoindex off; }\n"
    found = results(registry, tmp_path, "nginx.autoindex", {"sites-enabled/x": site(body)})
    assert statuses(found) == ["fail"] and found[0].location.line == 7


# --- media ---------------------------------------------------------------------------------------


SYSTEM_HEADERS = ("        add_header X-Content-Type-Options nosniff;\n"
                  "        add_header Content-Security-Policy \"default-src 'none'; form-action 'none'\";\n")


@pytest.mark.parametrize(("system", "csp", "nosniff"), [
    ("", Status.FAIL, Status.FAIL),  # no /system location: "/" serves the files from disk, without headers
    ("    location /system/ { proxy_pass http://backend; }\n", Status.PASS, Status.PASS),  # the app answers
    ("    location ~ ^/system/ {\n" + SYSTEM_HEADERS + "        try_files $uri =404;\n    }\n",
     Status.PASS, Status.PASS),
    ("    location ~ ^/system/ {\n        try_files $uri =404;\n    }\n", Status.FAIL, Status.FAIL),
    ("    location ~ ^/system/ {\n        add_header Content-Security-Policy \"default-src 'self'\";\n"
     "        add_header X-Content-Type-Options sniff-me;\n        try_files $uri =404;\n    }\n",
     Status.FAIL, Status.FAIL),
    ("    location ~ ^/system/ {\n        add_header Content-Security-Policy \"sandbox; default-src 'self'\";\n"
     "        add_header X-Content-Type-Options nosniff;\n        try_files $uri =404;\n    }\n",
     Status.PASS, Status.PASS),
])
def test_media_headers(registry, tmp_path, system, csp, nosniff):
    files = {"sites-enabled/x": site(CERT + "    root /home/mastodon/live/public;\n" + APP + system)}
    one(results(registry, tmp_path / "csp", "nginx.media-csp", files), csp)
    one(results(registry, tmp_path / "nosniff", "nginx.media-nosniff", files), nosniff)


def test_media_headers_on_the_object_storage_proxy(registry, tmp_path):
    found = lint(registry, FIXTURES / "nginx" / "object-storage", select=["nginx.media-*"]).findings
    media = [f for f in found if "files.example.org" in (f.subject or "")]
    assert {f.check_id: f.status for f in media} == {"nginx.media-csp": Status.PASS, "nginx.media-nosniff": Status.PASS}
    # the Mastodon server proxies /system to the app (media is in object storage): the app's headers
    assert all(f.status is Status.PASS for f in found)
    stripped = (FIXTURES / "nginx" / "object-storage" / "etc/nginx/sites-enabled/files").read_text()
    stripped = "\n".join(line for line in stripped.splitlines()
                         if "nosniff" not in line and "Security-Policy" not in line)
    found = results(registry, tmp_path, "nginx.media-csp", {"sites-enabled/files": stripped})
    assert one(found, Status.FAIL).subject == "server files.example.org:443 location @s3"


@pytest.mark.parametrize(("value", "blocks"), [
    ("default-src 'none'; form-action 'none'", True),
    ("script-src 'none'", True),
    ("sandbox", True),
    ("sandbox allow-scripts", False),
    ("default-src 'self'", False),
    ("form-action 'none'", False),
])
def test_csp_blocks_scripts(value, blocks):
    assert csp_blocks_scripts(value) is blocks


# --- the proxy to the app ------------------------------------------------------------------------


def test_proxy_set_header_inheritance_trap(registry, tmp_path):
    body = CERT + PROXY + ("    location / {\n        proxy_set_header Upgrade $http_upgrade;\n"
                           "        proxy_pass http://backend;\n    }\n")
    found = results(registry, tmp_path, "nginx.proxy-headers", {"sites-enabled/x": site(body)})
    f = one(found, Status.FAIL)
    assert f.observed == 'missing: Host, X-Forwarded-For, X-Forwarded-Proto, Proxy ""'


def test_proxy_headers_from_debian_proxy_params(registry, tmp_path):
    files = {
        "etc/nginx/nginx.conf": "events {}\nhttp { include /etc/nginx/sites-enabled/*; }\n",
        "etc/nginx/proxy_params": "proxy_set_header Host $http_host;\nproxy_set_header X-Real-IP $remote_addr;\n"
                                  "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                                  "proxy_set_header X-Forwarded-Proto $scheme;\n",
        "etc/nginx/sites-enabled/x": site(CERT + "    location / {\n        include proxy_params;\n"
                                                 "        proxy_set_header Proxy \"\";\n"
                                                 "        proxy_pass http://backend;\n    }\n"),
    }
    one(results(registry, tmp_path, "nginx.proxy-headers", files), Status.PASS)


def test_proxy_headers_wrong_proto_and_unseen_include(registry, tmp_path):
    body = CERT + ("    location / {\n        proxy_set_header Host $host;\n"
                   "        proxy_set_header X-Forwarded-For $remote_addr;\n"
                   "        proxy_set_header X-Forwarded-Proto http;\n        proxy_set_header Proxy \"\";\n"
                   "        proxy_pass http://backend;\n    }\n")
    found = results(registry, tmp_path / "a", "nginx.proxy-headers", {"sites-enabled/x": site(body)})
    assert one(found, Status.FAIL).observed == "missing: X-Forwarded-Proto (http)"
    body = CERT + "    location / {\n        include /etc/nginx/missing_params;\n"
    body += "        proxy_pass http://backend;\n    }\n"
    found = results(registry, tmp_path / "b", "nginx.proxy-headers", {"sites-enabled/x": site(body)})
    one(found, Status.WARN)


@pytest.mark.parametrize(("server", "want"), [
    ("127.0.0.1:3000", Status.PASS),
    ("unix:/run/mastodon/web.sock", Status.PASS),
    ("web:3000", Status.PASS),
    ("10.0.0.5:3000", Status.WARN),
    ("app.internal.example:3000", Status.WARN),
    ("203.0.113.10:3000", Status.FAIL),
    ("0.0.0.0:3000", Status.FAIL),
])
def test_upstream_addresses(registry, tmp_path, server, want):
    text = (f"upstream backend {{ server {server}; }}\n"
            "server {\n    listen 80;\n    location / { proxy_pass http://backend; }\n}\n")
    found = results(registry, tmp_path, "nginx.upstream-loopback", {"sites-enabled/x": text})
    one(found, want)


def test_direct_proxy_pass_and_object_storage(registry, tmp_path):
    text = ("server {\n    listen 80;\n    location / { proxy_pass http://203.0.113.7:3000; }\n"
            "    location /media/ { proxy_pass https://bucket.s3.example.net; }\n}\n")
    found = results(registry, tmp_path, "nginx.upstream-loopback", {"sites-enabled/x": text})
    assert statuses(found) == ["fail"] and found[0].location.line == 3


@pytest.mark.parametrize(("lines", "want", "observed"), [
    ("    client_max_body_size 99m;\n", Status.PASS, "99m"),
    ("    client_max_body_size 2g;\n", Status.PASS, "2g"),  # large bodies are Mastodon's business
    ("", Status.PASS, "unset (1m)"),
    ("    client_max_body_size 0;\n", Status.FAIL, "0"),
    ("    client_max_body_size 80m;\n"
     "    location /api/v2/media { client_max_body_size 0; proxy_pass http://backend; }\n", Status.FAIL, "0"),
])
def test_client_max_body_size(registry, tmp_path, lines, want, observed):
    found = results(registry, tmp_path, "nginx.client-max-body-size", {"sites-enabled/x": site(CERT + lines + APP)})
    assert one(found, want).observed == observed


def test_streaming_through_the_app_fallback(registry, tmp_path):
    body = CERT + ("    location / { try_files $uri @proxy; }\n    location @proxy {\n" + PROXY
                   + "        proxy_http_version 1.1;\n        proxy_set_header Upgrade $http_upgrade;\n"
                   "        proxy_set_header Connection $connection_upgrade;\n"
                   "        proxy_pass http://backend;\n    }\n")
    one(results(registry, tmp_path / "ok", "nginx.streaming-upgrade", {"sites-enabled/x": site(body)}), Status.PASS)
    body = CERT + APP + "    location /api/v1/streaming { root /srv/nothing; }\n"
    found = results(registry, tmp_path / "static", "nginx.streaming-upgrade", {"sites-enabled/x": site(body)})
    assert one(found, Status.FAIL).observed == "static"


@pytest.mark.parametrize(("lines", "want"), [
    ("", Status.PASS),
    ("proxy_hide_header Content-Security-Policy;", Status.FAIL),
    ("add_header Content-Security-Policy \"script-src 'self' 'unsafe-inline'\";", Status.WARN),
    ("proxy_hide_header Content-Security-Policy; add_header Content-Security-Policy \"default-src 'none'\";",
     Status.PASS),
    ("proxy_hide_header Content-Security-Policy; add_header Content-Security-Policy \"default-src *\";", Status.FAIL),
    # headers-more: more_set_headers replaces the app's own policy, more_clear_headers removes it
    ("more_set_headers \"Content-Security-Policy: script-src 'self' 'unsafe-eval'\";", Status.FAIL),
    ("more_set_headers \"Content-Security-Policy: default-src 'self'\";", Status.WARN),
    ("more_clear_headers Content-Security-Policy;", Status.FAIL),
    ("more_clear_headers 'Content-Security-*';", Status.FAIL),
    ("more_set_headers -a \"Content-Security-Policy: script-src *\";", Status.WARN),  # beside the app's
    ("more_set_headers -s 404 \"Content-Security-Policy: script-src *\";", Status.PASS),  # error pages only
])
def test_app_csp(registry, tmp_path, lines, want):
    body = CERT + f"    location / {{\n{PROXY}        {lines}\n        proxy_pass http://backend;\n    }}\n"
    one(results(registry, tmp_path, "nginx.app-csp", {"sites-enabled/x": site(body)}), want)


@pytest.mark.parametrize(("value", "weak"), [
    ("script-src 'self' 'unsafe-inline'", ["'unsafe-inline'"]),
    ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'", []),
    ("style-src 'self'", ["no script-src or default-src"]),
    ("script-src 'nonce-abc' 'strict-dynamic' https:", []),
])
def test_csp_script_weakness(value, weak):
    assert csp_script_weakness(value) == weak


def test_rate_limit_from_the_http_level(registry, tmp_path):
    conf = ("events {}\nhttp {\n    limit_req_zone $binary_remote_addr zone=m:10m rate=10r/s;\n"
            "    limit_req zone=m burst=20;\n" + site(CERT + APP).replace("\n", "\n    ") + "\n}\n")
    found = results(registry, tmp_path, "nginx.rate-limit", {"nginx.conf": conf})
    assert one(found, Status.PASS).location.line == 4


@pytest.mark.parametrize(("line", "want"), [
    ("root /home/mastodon/live/public;", Status.PASS),
    ("root /home/mastodon/live;", Status.FAIL),
    ("root /home/mastodon/live/;", Status.FAIL),
    ("root /home/mastodon;", Status.FAIL),
    ("root /var/www/html;", Status.PASS),
    ("root /opt/mastodon;", Status.FAIL),
    ("root {{ mastodon_root }};", None),  # a template: not audited at all
])
def test_document_root(registry, tmp_path, line, want):
    found = results(registry, tmp_path, "nginx.document-root", {"sites-enabled/x": site(f"    {line}\n" + CERT + APP)})
    if want is None:
        assert statuses(found) == ["skip"]
    else:
        one(found, want)


def test_alias_into_the_checkout_fails(registry, tmp_path):
    body = CERT + APP + "    location /files/ { alias /home/mastodon/live/; }\n"
    found = results(registry, tmp_path, "nginx.document-root", {"sites-enabled/x": site(body)})
    assert one(found, Status.FAIL).observed == "/home/mastodon/live/"


def _roots(registry, tmp_path, body: str, extra: dict[str, str] | None = None) -> list[Finding]:
    return results(registry, tmp_path, "nginx.document-root", {"sites-enabled/x": site(body), **(extra or {})})


def test_a_root_is_judged_by_what_it_serves_not_by_its_name(registry, tmp_path):
    """certbot's webroot named after the site serves /.well-known/acme-challenge/ only; a checkout set
    as root where every location proxies serves nothing from disk."""
    acme = "    location ^~ /.well-known/acme-challenge/ { root /var/www/mastodon; }\n"
    found = _roots(registry, tmp_path / "acme", CERT + "    root /home/mastodon/live/public;\n" + APP + acme)
    assert statuses(found) == ["pass", "pass"]
    assert any("/var/www/mastodon/.well-known/acme-challenge" in f.message for f in found)
    proxied = f"    root /home/mastodon/live;\n    location / {{\n{PROXY}        proxy_pass http://backend;\n    }}\n"
    assert "nothing is served from disk" in one(_roots(registry, tmp_path / "proxy", CERT + proxied),
                                                Status.PASS).message


def test_the_checkout_served_says_which_file_downloads(registry, tmp_path):
    f = one(_roots(registry, tmp_path / "open", CERT + "    root /home/mastodon/live;\n" + APP), Status.FAIL)
    assert "GET /.env.production" in f.message and f.severity.value == "critical"
    dotfiles = "    location ~ /\\. { deny all; }\n"
    f = one(_roots(registry, tmp_path / "denied", CERT + "    root /home/mastodon/live;\n" + APP + dotfiles),
            Status.FAIL)
    assert f.severity.value == "high" and "is refused" in f.message


def test_the_checkout_is_where_the_tree_puts_it(registry, tmp_path):
    """A root that is not a documented path is the checkout when the tree shows .env.production there,
    a unit's WorkingDirectory, or the directory above a served public/."""
    env = {"srv/social/.env.production": "LOCAL_DOMAIN=social.example.org\n"}
    f = one(_roots(registry, tmp_path / "env", CERT + "    root /srv/social;\n" + APP, env), Status.FAIL)
    assert "/srv/social" in f.message and ".env.production" in f.message
    unit = {"etc/systemd/system/mastodon-web.service": "[Service]\nUser=social\nWorkingDirectory=/opt/social\n"
                                                       "ExecStart=/opt/social/bin/bundle exec puma\n"}
    f = one(_roots(registry, tmp_path / "unit", CERT + "    root /opt/social;\n" + APP, unit), Status.FAIL)
    assert "WorkingDirectory" in f.message
    body = (CERT + "    root /usr/share/mastodon/public;\n" + APP
            + "    location /app/ { alias /usr/share/mastodon/; }\n")
    found = _roots(registry, tmp_path / "above", body)
    assert "the directory above /usr/share/mastodon/public" in one(found, Status.FAIL).message
    f = one(_roots(registry, tmp_path / "slash", CERT + "    root /;\n" + APP), Status.FAIL)
    assert f.severity.value == "critical" and "GET /home/mastodon/live/.env.production" in f.message
    f = one(_roots(registry, tmp_path / "var", CERT + "    root /var;\n" + APP), Status.FAIL)
    assert f.severity.value == "high"


# --- the demo trees against the real nginx -------------------------------------------------------


def _prepare(src: Path, tmp: Path) -> Path:
    """Copy a demo's etc/nginx, give it a throwaway certificate, and point every path into tmp."""
    conf = tmp / "nginx"
    shutil.copytree(src / "etc" / "nginx", conf, symlinks=True)
    for name in ("log", "cache", "run"):
        (tmp / name).mkdir()
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=social.example.org", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=20)
    for path in conf.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_text()
        text = re.sub(r"(ssl_certificate_key\s+)[^;]+;", rf"\g<1>{key};", text)
        text = re.sub(r"(ssl_certificate\s+)[^;]+;", rf"\g<1>{cert};", text)
        for old, new in (("/etc/nginx/", f"{conf}/"), ("/var/log/nginx/", f"{tmp}/log/"),
                         ("/var/cache/nginx", f"{tmp}/cache"), ("/run/nginx.pid", f"{tmp}/run/nginx.pid")):
            text = text.replace(old, new)
        path.write_text(text)
    return conf


@pytest.mark.needs_nginx
@pytest.mark.skipif(not os.path.exists(NGINX), reason="no nginx binary at /usr/sbin/nginx")
@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command for a test certificate")
@pytest.mark.parametrize("tree", ["hardened", "weak", "official"])
def test_demo_tree_passes_nginx_t(tmp_path, tree):
    conf = _prepare(DEMO / tree, tmp_path)
    done = subprocess.run([NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf / "nginx.conf"),
                           "-e", str(tmp_path / "log" / "error.log")], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr


@pytest.mark.needs_nginx
@pytest.mark.skipif(not os.path.exists(NGINX), reason="no nginx binary at /usr/sbin/nginx")
def test_object_storage_fixture_passes_nginx_t(tmp_path):
    conf = _prepare(FIXTURES / "nginx" / "object-storage", tmp_path)
    for path in conf.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.write_text(path.read_text().replace("/var/cache/nginx-media", f"{tmp_path}/cache/media"))
    done = subprocess.run([NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf / "nginx.conf"),
                           "-e", str(tmp_path / "log" / "error.log")], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr


# --- what an unreadable include may hide ---------------------------------------------------------


CERTBOT_SITE = site(CERT + "    include /etc/letsencrypt/options-ssl-nginx.conf;\n")
CERTBOT_MAIN = ("events {}\nhttp {\n    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n"
                "    include /etc/nginx/sites-enabled/*;\n}\n")


@pytest.mark.parametrize("check_id", ["nginx.tls-protocols", "nginx.tls-session-tickets"])
def test_missing_certbot_include_turns_failures_into_warnings(registry, tmp_path, check_id):
    files = {"etc/nginx/nginx.conf": CERTBOT_MAIN, "etc/nginx/sites-enabled/x": CERTBOT_SITE}
    f = one(results(registry, tmp_path, check_id, files), Status.WARN)
    assert "options-ssl-nginx.conf" in f.message and "may set it" in f.message


def test_certbot_include_inside_the_tree_is_read(registry, tmp_path):
    files = {"etc/nginx/nginx.conf": CERTBOT_MAIN, "etc/nginx/sites-enabled/x": CERTBOT_SITE,
             "etc/letsencrypt/options-ssl-nginx.conf": "ssl_session_cache shared:le_nginx_SSL:10m;\n"
                                                       "ssl_session_tickets off;\nssl_protocols TLSv1.2 TLSv1.3;\n"}
    found = results(registry, tmp_path, "nginx.tls-protocols", files)
    assert one(found, Status.PASS).location.file.endswith("etc/letsencrypt/options-ssl-nginx.conf")
    run = lint(registry, tmp_path, select=["nginx.tls-session-tickets"])
    assert [f.status for f in run.findings if f.check_id == "nginx.tls-session-tickets"] == [Status.PASS]


def test_hostile_values_stay_data(registry):
    """Markup, shell and escape sequences in values are carried as data; includes cannot escape."""
    run = lint(registry, FIXTURES / "nginx" / "hostile", select=["nginx.*"])
    assert run.complete
    problems = [f for f in run.findings if f.check_id == "input.nginx"]
    assert sorted(f.location.line for f in problems) == [8, 9]  # both includes: not found in the tree
    assert all(f.status is Status.WARN for f in problems)
    cert = [f for f in run.findings if f.check_id == "nginx.tls-certificate"]
    assert cert[0].observed == "/etc/ssl/<img src=x onerror=alert(1)>.pem"
    assert any("<script>" in (f.subject or "") for f in run.findings)
    redirect = [f for f in run.findings if f.check_id == "nginx.http-redirect"]
    assert [f.status for f in redirect] == [Status.PASS] and "\x1b[31m" in redirect[0].subject


def test_a_local_object_storage_proxy_is_not_judged_as_the_app(registry, tmp_path):
    """A media host proxying a bucket on this machine (a local MinIO, Mastodon's object-storage
    proxy pointed at 127.0.0.1) sets a literal Host: the app's proxy and WebSocket headers are not
    expected there, but the media headers are."""
    media = ("    location / {\n        proxy_set_header Host 127.0.0.1:9000;\n"
             "        proxy_pass http://127.0.0.1:9000/mastodon-media/;\n    }\n")
    media_server = ("server {\n    listen 443 ssl;\n    server_name media.social.example.org;\n" + CERT + media
                    + "}\n")
    files = {"sites-enabled/mastodon": site(CERT + APP) + media_server}
    for check_id in ("nginx.proxy-headers", "nginx.streaming-upgrade"):
        found = results(registry, tmp_path / check_id, check_id, files)
        on_media = [f for f in found if "media." in (f.subject or "")]
        assert not [f for f in on_media if f.status in (Status.FAIL, Status.WARN)], on_media
    nosniff = results(registry, tmp_path / "nosniff", "nginx.media-nosniff", files)
    assert "fail" in statuses([f for f in nosniff if "media." in (f.subject or "")])
    # the same location with Host $host is the app, and its missing headers are found
    app_like = media.replace("Host 127.0.0.1:9000", "Host $host")
    found = results(registry, tmp_path / "app", "nginx.proxy-headers",
                    {"sites-enabled/mastodon": site(CERT + APP) + media_server.replace(media, app_like)})
    assert "fail" in statuses([f for f in found if "media." in (f.subject or "")])


def test_app_csp_replaced_at_the_server_level_by_headers_more(registry, tmp_path):
    """Unlike add_header, more_set_headers at the server level reaches every location, however many
    headers the location adds itself, and replaces what the app sends."""
    body = (CERT + "    more_set_headers \"Content-Security-Policy: default-src 'self' 'unsafe-inline'\";\n"
            + f"    location / {{\n{PROXY}        add_header X-Cached $upstream_cache_status;\n"
            "        proxy_pass http://backend;\n    }\n")
    f = one(results(registry, tmp_path, "nginx.app-csp", {"sites-enabled/x": site(body)}), Status.FAIL)
    assert "replaced (more_set_headers)" in f.message and "'unsafe-inline'" in f.message and f.location.line == 9


def test_headers_more_sets_hsts_and_media_headers(registry, tmp_path):
    """HSTS, nosniff and the media CSP set with more_set_headers count, whatever add_header lines the
    locations have; a header limited to some content types (-t) covers the others not."""
    media = ("    location ~ ^/system/ {\n        add_header Cache-Control public;\n"
             "        more_set_headers \"Content-Security-Policy: default-src 'none'; form-action 'none'\";\n"
             "        try_files $uri =404;\n    }\n")
    body = (CERT + '    more_set_headers "Strict-Transport-Security: max-age=63072000";\n'
            "    root /home/mastodon/live/public;\n" + APP + media)
    files = {"etc/nginx/nginx.conf": "events {}\nhttp {\n  more_set_headers 'X-Content-Type-Options: nosniff';\n"
                                     "  include /etc/nginx/sites-enabled/*;\n}\n",
             "etc/nginx/sites-enabled/x": site(body)}
    hsts = one(results(registry, tmp_path, "nginx.hsts", files), Status.PASS)
    assert "headers-more" in hsts.message
    assert one(results(registry, tmp_path, "nginx.media-csp", files), Status.PASS)
    assert one(results(registry, tmp_path, "nginx.media-nosniff", files), Status.PASS)
    files["etc/nginx/nginx.conf"] = files["etc/nginx/nginx.conf"].replace("more_set_headers '", "more_set_headers -t "
                                                                          "text/html '")
    f = one(results(registry, tmp_path / "typed", "nginx.media-nosniff", files), Status.WARN)
    assert "only for text/html" in f.message


def test_headers_more_clearing_the_apps_hsts_fails(registry, tmp_path):
    body = CERT + f"    location / {{\n{PROXY}        more_clear_headers Strict-Transport-Security;\n" \
        "        proxy_pass http://backend;\n    }\n"
    f = one(results(registry, tmp_path, "nginx.hsts", {"sites-enabled/x": site(body)}), Status.FAIL)
    assert "the app's own HSTS header is removed" in f.message


# --- words that are true for the versions in front of them -----------------------------------------


def _with_packages(tmp_path: Path, body: str, versions: dict[str, str] | None):
    from mastoaudit.parsers.live import Packages
    from mastoaudit.sources.local import collect_tree

    (tmp_path / "sites-enabled").mkdir(parents=True, exist_ok=True)
    (tmp_path / "sites-enabled/x").write_text(site(CERT + body))
    facts = collect_tree(tmp_path)
    if versions is not None:
        facts.add("packages", Packages("web1", versions))
    return facts


@pytest.mark.parametrize(("versions", "cache", "want", "words"), [
    (None, "shared:SSL:10m", Status.WARN, "nginx's version is not known from the files"),
    (None, "builtin", Status.FAIL, "no shared ssl_session_cache"),
    ({"nginx": "1.22.1-9+deb12u1"}, "shared:SSL:10m", Status.FAIL, "nginx 1.22.1-9+deb12u1 predates key rotation"),
    ({"nginx": "1.26.3-3~bookworm"}, "shared:SSL:10m", Status.PASS, "rotates their key itself"),
    ({"nginx-core": "1.24.0-2ubuntu7"}, "builtin", Status.FAIL, "without a shared ssl_session_cache"),
])
def test_session_tickets_know_that_nginx_1_23_2_rotates_their_key(tmp_path, versions, cache, want, words):
    facts = _with_packages(tmp_path, f"    ssl_session_cache {cache};\n", versions)
    [f] = check_fn("nginx.tls-session-tickets")(facts)
    assert f.status is want and words in f.message, f.message


def test_the_cipher_string_names_the_hosts_openssl_when_it_is_known(tmp_path):
    facts = _with_packages(tmp_path, "    ssl_ciphers HIGH:!aNULL:!MD5;\n", {"libssl3": "3.0.15-1~deb12u1"})
    [f] = check_fn("nginx.tls-ciphers")(facts)
    assert "the host has libssl3 3.0.15-1~deb12u1" in f.message and ssl.OPENSSL_VERSION in f.message


def test_plain_http_behind_a_tls_terminating_proxy(registry, tmp_path):
    """A sidecar behind an ingress (Helm) or a load balancer: it takes client addresses from the proxy
    and passes the proxy's X-Forwarded-Proto on. Its plain HTTP is that proxy's hop, not the visitor's."""
    proxied = ("    set_real_ip_from 10.0.0.0/8;\n    real_ip_header X-Forwarded-For;\n    location / {\n"
               "        proxy_set_header Host $host;\n"
               "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
               "        proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;\n"
               "        proxy_set_header Proxy \"\";\n        proxy_pass http://backend;\n    }\n")
    files = {"sites-enabled/x": site(proxied, listen="8080")}
    redirect = one(results(registry, tmp_path, "nginx.http-redirect", files), Status.PASS)
    assert "terminates TLS" in redirect.message and "set_real_ip_from" in redirect.message
    headers = one(results(registry, tmp_path, "nginx.proxy-headers", files), Status.PASS)
    assert "$http_x_forwarded_proto" in headers.message
    # where TLS ends here, the client's own X-Forwarded-Proto is no truth: $scheme is
    tls = {"sites-enabled/x": site(CERT + proxied)}
    one(results(registry, tmp_path / "tls", "nginx.proxy-headers", tls), Status.FAIL)
