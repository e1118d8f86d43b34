"""STAND-INS for what cannot run in the lab: Mastodon's web app (Puma), its streaming server and
Elasticsearch. They are small threaded stdlib HTTP servers that answer the endpoints an audit
probes the way the real software does (status codes, headers, JSON shapes), nothing more. They
hold no data, run no Rails and do no ActivityPub; a finding against them says what the probe saw,
not how the real software would behave in every respect.

    python -m lab.standins web|streaming|elasticsearch --profile hardened|weak --bind ADDR --port N
    python -m lab.standins sidekiq --profile hardened|weak      (an idle process, no port)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import json
import signal
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import config as C

DOMAIN = C.DOMAIN
MEDIA = C.HOSTNAMES["media"]
STANDIN_HEADER = ("X-Mastoaudit-Lab", "stand-in")  # marks every stand-in response as such

# Mastodon's CSP (app/config/initializers/content_security_policy.rb) with the lab's hosts. Versions
# before 4.2 allowed inline styles.
CSP = {
    "hardened": (
        f"base-uri 'none'; default-src 'none'; frame-ancestors 'none'; font-src 'self' https://{DOMAIN}; "
        f"img-src 'self' data: blob: https://{DOMAIN} https://{MEDIA}; "
        f"media-src 'self' data: https://{DOMAIN} https://{MEDIA}; manifest-src 'self' https://{DOMAIN}; "
        f"form-action 'self'; child-src 'self' blob: https://{DOMAIN}; worker-src 'self' blob: https://{DOMAIN}; "
        f"connect-src 'self' data: blob: https://{DOMAIN} https://{MEDIA} wss://{DOMAIN}; "
        f"script-src 'self' https://{DOMAIN} 'wasm-unsafe-eval'; frame-src 'self' https:; "
        f"style-src 'self' https://{DOMAIN} 'nonce-bGFic3RhbmRpbg=='"
    ),
    "weak": (
        f"base-uri 'none'; default-src 'none'; frame-ancestors 'none'; font-src 'self' https://{DOMAIN}; "
        f"img-src 'self' https: data: blob: https://{DOMAIN}; style-src 'self' https://{DOMAIN} 'unsafe-inline'; "
        f"media-src 'self' https: data: https://{DOMAIN}; frame-src 'self' https:; "
        f"manifest-src 'self' https://{DOMAIN}; form-action 'self'; "
        f"connect-src 'self' data: blob: https://{DOMAIN} https://{MEDIA} wss://{DOMAIN}; "
        f"script-src 'self' https://{DOMAIN} 'wasm-unsafe-eval'; child-src 'self' blob: https://{DOMAIN}; "
        f"worker-src 'self' blob: https://{DOMAIN}"
    ),
}
HSTS = "max-age=63072000; includeSubDomains"

THUMBNAIL = f"https://{DOMAIN}/system/media_attachments/files/000/000/001/original/lab.txt"
PEERS = ["mastodon.social", "fosstodon.org", "hachyderm.io", "infosec.exchange", "chaos.social"]
DOMAIN_BLOCKS = [{"domain": "spam.example", "digest": "0" * 64, "severity": "suspend",
                  "comment": "spam"}]


class Handler(BaseHTTPRequestHandler):
    server_version = "lab-standin"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    profile = "hardened"
    role = "web"
    es_auth: str | None = None

    def log_message(self, fmt, *args):  # access log to the service's log file (stderr)
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    # -- plumbing ---------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes | str | dict | list, ctype: str | None = None,
              headers: dict[str, str] | None = None) -> None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            ctype = ctype or "application/json; charset=utf-8"
        elif isinstance(body, str):
            body = body.encode()
        # Like Puma: no Server header (send_response would add one).
        self.log_request(status)
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", ctype or "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header(*STANDIN_HEADER)
        for k, v in self._common_headers().items():
            self.send_header(k, v)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _common_headers(self) -> dict[str, str]:
        if self.role != "web":
            return {}
        h = {
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "X-Permitted-Cross-Domain-Policies": "none",
            "Content-Security-Policy": CSP[self.profile],
            "Vary": "Accept, Accept-Encoding, Origin",
        }
        # Rails' force_ssl adds HSTS to responses for HTTPS requests (as nginx reports them).
        if self.headers.get("X-Forwarded-Proto", "") == "https":
            h["Strict-Transport-Security"] = HSTS
        return h

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        self._send(404, {"error": "Not Found"})

    def do_GET(self):
        url = urlsplit(self.path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            getattr(self, f"_{self.role}")(url.path, parse_qs(url.query))

    # -- Mastodon web (Puma) -------------------------------------------------------------------------

    def _web(self, path: str, query: dict[str, list[str]]) -> None:
        hardened = self.profile == "hardened"
        version = C.MASTODON_VERSION[self.profile]
        accept = self.headers.get("Accept", "")
        if path == "/health":
            return self._send(200, "OK")
        if path == "/":
            return self._send(200, f"<!DOCTYPE html><title>{DOMAIN}</title><p>Mastodon (lab stand-in)</p>",
                              "text/html; charset=utf-8")
        if path == "/auth/sign_in":
            return self._send(200, "<!DOCTYPE html><title>Log in</title><form method=post></form>",
                              "text/html; charset=utf-8")
        if path in ("/api/v2/instance", "/api/v1/instance"):
            return self._send(200, self._instance(version, v2=path.endswith("v2/instance")))
        if path == "/.well-known/nodeinfo":
            return self._send(200, {"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0",
                                               "href": f"https://{DOMAIN}/nodeinfo/2.0"}]})
        if path == "/nodeinfo/2.0":
            return self._send(200, {
                "version": "2.0", "software": {"name": "mastodon", "version": version},
                "protocols": ["activitypub"], "services": {"outbound": [], "inbound": []},
                "usage": {"users": {"total": 3, "activeMonth": 2, "activeHalfyear": 3}, "localPosts": 42},
                "openRegistrations": not hardened, "metadata": {"nodeName": "mastoaudit lab",
                                                                "nodeDescription": "lab stand-in"}},
                "application/json; profile=\"http://nodeinfo.diaspora.software/ns/schema/2.0#\"")
        if path == "/.well-known/host-meta":
            return self._send(200, (
                '<?xml version="1.0" encoding="UTF-8"?>\n<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">'
                f'<Link rel="lrdd" template="https://{DOMAIN}/.well-known/webfinger?resource={{uri}}"/></XRD>\n'),
                "application/xrd+xml; charset=utf-8")
        if path == "/.well-known/webfinger":
            resource = (query.get("resource") or [""])[0]
            if resource not in (f"acct:admin@{DOMAIN}", f"https://{DOMAIN}/users/admin"):
                return self._send(404, "", "application/jrd+json; charset=utf-8")
            return self._send(200, {
                "subject": f"acct:admin@{DOMAIN}",
                "aliases": [f"https://{DOMAIN}/@admin", f"https://{DOMAIN}/users/admin"],
                "links": [{"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
                           "href": f"https://{DOMAIN}/@admin"},
                          {"rel": "self", "type": "application/activity+json",
                           "href": f"https://{DOMAIN}/users/admin"}]}, "application/jrd+json; charset=utf-8")
        if path == "/api/v1/instance/peers":
            if hardened:
                return self._send(404, {"error": "Record not found"})
            return self._send(200, PEERS)
        if path == "/api/v1/instance/domain_blocks":
            if hardened:
                return self._send(404, {"error": "Record not found"})
            return self._send(200, DOMAIN_BLOCKS)
        if path == "/api/v1/instance/activity":
            if hardened:
                return self._send(401, {"error": "This API requires an authenticated user"})
            return self._send(200, [{"week": "1767225600", "statuses": "42", "logins": "2", "registrations": "1"}])
        if path in ("/api/v1/timelines/public", "/api/v1/timelines/tag/mastodon", "/api/v1/directory",
                    "/api/v1/trends/statuses"):
            if hardened:
                return self._send(401, {"error": "This API requires an authenticated user"})
            return self._send(200, [self._status()])
        if path.startswith("/api/v1/accounts/verify_credentials") or path.startswith("/api/v1/admin"):
            return self._send(401, {"error": "The access token is invalid"})
        if path == "/actor":  # the instance actor: served unsigned even with AUTHORIZED_FETCH
            return self._send(200, self._actor("mastodon.internal", "Application"),
                              "application/activity+json; charset=utf-8")
        if path.startswith("/users/") or path.startswith("/@"):
            name = path.split("/")[2] if path.startswith("/users/") else path[2:].split("/")[0]
            if name != "admin":
                return self._send(404, {"error": "Record not found"})
            if "json" not in accept:
                return self._send(200, "<!DOCTYPE html><title>admin</title>", "text/html; charset=utf-8")
            if hardened and "Signature" not in self.headers:
                return self._send(401, {"error": "Request not signed"}, headers={"Vary": "Accept, Signature"})
            return self._send(200, self._actor("admin", "Person"), "application/activity+json; charset=utf-8")
        if path.startswith("/sidekiq") or path.startswith("/pghero"):
            if hardened:
                return self._send(302, "", "text/html; charset=utf-8",
                                  {"Location": f"https://{DOMAIN}/auth/sign_in"})
            title = "Sidekiq" if path.startswith("/sidekiq") else "PgHero"
            return self._send(200, (
                f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
                f"<h1>{title}</h1><p>Dashboard (lab stand-in)</p>"
                "<table><tr><td>Processed</td><td>12345</td></tr><tr><td>Failed</td><td>7</td></tr>"
                "<tr><td>Busy</td><td>1</td></tr><tr><td>Enqueued</td><td>0</td></tr></table>"
                "</body></html>"), "text/html; charset=utf-8")
        return self._send(404, {"error": "Not Found"})

    def _instance(self, version: str, v2: bool) -> dict:
        hardened = self.profile == "hardened"
        doc = {
            "domain" if v2 else "uri": DOMAIN,
            "title": "mastoaudit lab",
            "version": version,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "A stand-in for Mastodon in the mastoaudit lab.",
            "languages": ["en"],
            "registrations": ({"enabled": not hardened, "approval_required": hardened, "message": None}
                              if v2 else not hardened),
            "contact": {"email": f"admin@{DOMAIN}"} if v2 else None,
            # a locally stored upload (nginx serves /system/ itself), as the site thumbnail links one
            "thumbnail": {"url": THUMBNAIL} if v2 else THUMBNAIL,
        }
        if v2:
            doc["usage"] = {"users": {"active_month": 2}}
            doc["configuration"] = {"urls": {"streaming": f"wss://{DOMAIN}"},
                                    "limited_federation": False,
                                    "accounts": {"max_featured_tags": 10},
                                    "statuses": {"max_characters": 500}}
        else:
            doc.update({"urls": {"streaming_api": f"wss://{DOMAIN}"},
                        "stats": {"user_count": 3, "status_count": 42, "domain_count": 5},
                        "email": f"admin@{DOMAIN}"})
        return doc

    def _actor(self, name: str, kind: str) -> dict:
        base = f"https://{DOMAIN}/users/{name}" if kind == "Person" else f"https://{DOMAIN}/actor"
        return {
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": base, "type": kind, "preferredUsername": name,
            "inbox": f"{base}/inbox", "outbox": f"{base}/outbox",
            "publicKey": {"id": f"{base}#main-key", "owner": base,
                          "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nlab-stand-in\n-----END PUBLIC KEY-----\n"},
        }

    def _status(self) -> dict:
        return {"id": "1", "created_at": "2026-01-01T00:00:00.000Z", "visibility": "public",
                "uri": f"https://{DOMAIN}/users/admin/statuses/1", "content": "<p>hello from the lab</p>",
                "account": {"id": "1", "username": "admin", "acct": "admin"}}

    # -- streaming (node) ----------------------------------------------------------------------------

    def _streaming(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/api/v1/streaming/health":
            return self._send(200, "OK")
        if path == "/metrics":
            return self._send(200, (
                "# HELP connected_clients The number of clients connected to the streaming server\n"
                "# TYPE connected_clients gauge\n"
                'connected_clients{type="websocket"} 0\nconnected_clients{type="eventsource"} 0\n'
                "# HELP redis_subscriptions The number of Redis channels the streaming server is subscribed to\n"
                "# TYPE redis_subscriptions gauge\nredis_subscriptions 0\n"
                "# HELP mastodon_streaming_messages_sent_total The number of messages sent\n"
                "# TYPE mastodon_streaming_messages_sent_total counter\n"
                "mastodon_streaming_messages_sent_total 0\n"),
                "text/plain; version=0.0.4; charset=utf-8")
        if path.startswith("/api/v1/streaming"):
            return self._send(401, {"error": "Missing access token"})
        return self._send(404, {"error": "Not found"})

    # -- Elasticsearch -------------------------------------------------------------------------------

    def _elasticsearch(self, path: str, query: dict[str, list[str]]) -> None:
        if self.es_auth is not None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), self.es_auth.encode()):
                reason = ("missing authentication credentials for REST request [" + path + "]" if not given
                          else "unable to authenticate user [mastodon] for REST request [" + path + "]")
                err = {"type": "security_exception", "reason": reason,
                       "header": {"WWW-Authenticate": ['Basic realm="security" charset="UTF-8"']}}
                return self._send(401, {"error": {"root_cause": [err], **err}, "status": 401},
                                  headers={"WWW-Authenticate": 'Basic realm="security" charset="UTF-8"'})
        version = "7.17.29" if self.profile == "hardened" else "6.8.23"
        if path == "/":
            return self._send(200, {
                "name": "mastodon-lab", "cluster_name": "mastodon", "cluster_uuid": "bGFiLXN0YW5kLWluLTAwMQ",
                "version": {"number": version, "build_flavor": "default", "build_type": "deb",
                            "lucene_version": "8.11.3" if self.profile == "hardened" else "7.7.3",
                            "minimum_wire_compatibility_version": "6.8.0",
                            "minimum_index_compatibility_version": "6.0.0-beta1"},
                "tagline": "You Know, for Search"})
        if path == "/_cat/indices":
            return self._send(200, "green open accounts_production 1 0 3 0 10kb 10kb\n"
                                   "green open statuses_production 1 0 42 0 80kb 80kb\n")
        if path == "/_cluster/health":
            return self._send(200, {"cluster_name": "mastodon", "status": "green", "number_of_nodes": 1})
        return self._send(404, {"error": {"type": "index_not_found_exception"}, "status": 404})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, tls: ssl.SSLContext | None):
        self.tls = tls
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        # The TLS handshake happens in the connection's thread, so a silent client blocks no one.
        if self.tls is not None:
            request.settimeout(10)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
            try:
                super().finish_request(request, client_address)
            finally:
                request.close()
            return
        super().finish_request(request, client_address)


def serve(role: str, profile: str, bind: str, port: int, tls_cert: str | None, tls_key: str | None,
          es_password_file: str | None) -> None:
    attrs = {"role": role, "profile": C.check_profile(profile)}
    if es_password_file:
        with open(es_password_file) as fh:
            token = base64.b64encode(b"mastodon:" + fh.read().strip().encode()).decode()
        attrs["es_auth"] = "Basic " + token
    attrs["timeout"] = 30
    handler = type(f"{role.title()}Handler", (Handler,), attrs)
    ctx = None
    if tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(tls_cert, tls_key)
    server = _Server((bind, port), handler, ctx)
    sys.stderr.write(f"lab stand-in {role} ({profile}) listening on {bind}:{port}\n")
    sys.stderr.flush()
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lab.standins", description=__doc__.split("\n\n")[0])
    ap.add_argument("role", choices=["web", "streaming", "elasticsearch", "sidekiq"])
    ap.add_argument("--profile", required=True, choices=C.PROFILES)
    ap.add_argument("--bind")
    ap.add_argument("--port", type=int)
    ap.add_argument("--title", help="what this stands in for, as a process listing would show it (ignored)")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--es-password-file", help="require HTTP basic auth as user mastodon with this password")
    a = ap.parse_args(argv)
    if a.role == "sidekiq":
        # Sidekiq has no port: the stand-in is a process that exists (for process and user checks).
        sys.stderr.write(f"lab stand-in sidekiq ({a.profile}) idle\n")
        sys.stderr.flush()
        while True:
            signal.pause()
    if a.bind is None or a.port is None:
        ap.error("--bind and --port are required for this role")
    serve(a.role, a.profile, a.bind, a.port, a.tls_cert, a.tls_key, a.es_password_file)


if __name__ == "__main__":
    main()
