"""Fediverse peers served by a real nginx: NodeInfo and instance documents for many peer names, in
the shapes real servers publish them, and hostile peers among them. Used by the sweep's tests, the
seed 000 demo (`python -m lab.seed000`) and bench/bench_sweep.py.

One nginx serves every peer name on one address (HTTPS with a test CA; a name's shape and version
come from `map $host` tables, so 30,000 peers cost one config of maps, not 30,000 server blocks).
What each software publishes, as its own code writes it:

- mastodon (glitch-soc and nightlies differ only in the version): links 2.0 -> /nodeinfo/2.0;
  contact in /api/v2/instance `contact` (and v1's `email`);
- pixelfed: 2.0 -> /api/nodeinfo/2.0.json (`metadata.software`, `config`); /api/v1/instance `email`
  (its v2 answers 404);
- misskey: 2.1 -> /nodeinfo/2.1 and 2.0 -> /nodeinfo/2.0; contact in `metadata.maintainer.email`;
- gotosocial: 2.0 -> /nodeinfo/2.0 (user counts zero); contact in /api/v2/instance;
- lemmy (0.19): 2.0 -> /nodeinfo/2.0.json and 2.1 -> /nodeinfo/2.1.json; no contact;
- lemmy-old (0.16): `links` as ONE object, not a list; 2.0 -> /nodeinfo/2.0.json; versions "v0.16.x";
- akkoma, pleroma: 2.0 -> /nodeinfo/2.0.json and 2.1 -> /nodeinfo/2.1.json; `metadata.staffAccounts`.

Hostile shapes: `huge` (20 MB), `bomb` (gzip: 200 MB of zeros in 200 KB), `slow` (one byte a
second), `redirect-loopback`, `redirect-metadata` (169.254.169.254), `redirect-private` (a name
resolving to a private address), `link-metadata`, `link-private` (the NodeInfo link points there),
`invalid-json`, `deep` (nested 5,000 deep), `loop` (redirects to itself), `html`, `error-500`,
`none` (404, no NodeInfo) and `bad-tls` (a certificate from another CA). Every request nginx
receives is logged (JSON lines: address, port, host, URI, status, client).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

NGINX = "/usr/sbin/nginx"
SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/{}"


def can_run(port: int = 443) -> str | None:
    if not (shutil.which("nginx") or os.path.exists(NGINX)):
        return "nginx is not installed (scripts/setup.sh installs it)"
    if port < 1024 and os.geteuid() != 0:
        return f"nginx on port {port} needs root"
    return None


def _link(version: str, path: str) -> dict:
    return {"rel": SCHEMA.format(version), "href": f"https://$host{path}"}


def _nodeinfo(version: str, software: dict, metadata: dict, users: int = 42) -> dict:
    return {"version": version, "software": software, "protocols": ["activitypub"],
            "services": {"outbound": [], "inbound": []},
            "usage": {"users": {"total": users, "activeMonth": users // 2, "activeHalfyear": users - 1},
                      "localPosts": users * 31},
            "openRegistrations": False, "metadata": metadata}


def _mastodon_instance_v2() -> dict:
    return {"domain": "$host", "title": "$host", "version": "$peer_version",
            "source_url": "https://github.com/mastodon/mastodon", "description": "A Mastodon server",
            "usage": {"users": {"active_month": 21}},
            "registrations": {"enabled": False, "approval_required": True},
            "contact": {"email": "$peer_contact", "account": {"id": "1", "username": "admin", "acct": "admin",
                                                              "url": "https://$host/@admin"}},
            "rules": []}


def _mastodon_instance_v1() -> dict:
    return {"uri": "$host", "title": "$host", "version": "$peer_version", "email": "$peer_contact",
            "contact_account": {"id": "1", "username": "admin", "acct": "admin"}}


MASTODON_META = {"nodeName": "$host", "nodeDescription": "A Mastodon server"}
# Each shape: the documents it serves, by path: (content type, JSON); a path it lacks answers 404.
SHAPES: dict[str, dict[str, tuple[str, dict | list]]] = {
    "mastodon": {
        "/.well-known/nodeinfo": ("application/json", {"links": [_link("2.0", "/nodeinfo/2.0")]}),
        "/nodeinfo/2.0": ('application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.0#"',
                          _nodeinfo("2.0", {"name": "mastodon", "version": "$peer_version"}, MASTODON_META)),
        "/api/v2/instance": ("application/json", _mastodon_instance_v2()),
        "/api/v1/instance": ("application/json", _mastodon_instance_v1()),
    },
    "pixelfed": {
        "/.well-known/nodeinfo": ("application/json", {"links": [_link("2.0", "/api/nodeinfo/2.0.json")]}),
        "/api/nodeinfo/2.0.json": ("application/json", {
            "metadata": {"nodeName": "$host", "software": {"homepage": "https://pixelfed.org",
                                                           "repo": "https://github.com/pixelfed/pixelfed"},
                         "config": {"features": {"timelines": {"local": True, "network": True}, "mobile_apis": True,
                                                 "stories": True, "video": True}}},
            "protocols": ["activitypub"], "services": {"inbound": [], "outbound": []},
            "software": {"name": "pixelfed", "version": "$peer_version"},
            "usage": {"localPosts": 1200, "localComments": 0, "users": {"total": 40, "activeHalfyear": 30,
                                                                        "activeMonth": 12}},
            "version": "2.0", "openRegistrations": True}),
        "/api/v1/instance": ("application/json", {
            "uri": "$host", "title": "$host", "version": "3.5.3 (compatible; Pixelfed $peer_version)",
            "email": "$peer_contact", "contact_account": {"id": "1", "username": "admin", "acct": "admin"}}),
    },
    "misskey": {
        "/.well-known/nodeinfo": ("application/json", {"links": [_link("2.1", "/nodeinfo/2.1"),
                                                                 _link("2.0", "/nodeinfo/2.0")]}),
        "/nodeinfo/2.1": ("application/json; charset=utf-8", _nodeinfo("2.1", {
            "name": "misskey", "version": "$peer_version", "homepage": "https://misskey-hub.net/",
            "repository": "https://github.com/misskey-dev/misskey"},
            {"nodeName": "$host", "maintainer": {"name": "admin", "email": "$peer_contact"}, "langs": [],
             "disableRegistration": True, "emailRequiredForSignup": True})),
        "/nodeinfo/2.0": ("application/json; charset=utf-8", _nodeinfo("2.0", {
            "name": "misskey", "version": "$peer_version"},
            {"nodeName": "$host", "maintainer": {"name": "admin", "email": "$peer_contact"}})),
    },
    "gotosocial": {
        "/.well-known/nodeinfo": ("application/json", {"links": [_link("2.0", "/nodeinfo/2.0")]}),
        "/nodeinfo/2.0": ("application/json", _nodeinfo("2.0", {"name": "gotosocial", "version": "$peer_version"},
                                                        {"nodeName": "$host", "nodeDescription": ""}, users=0)),
        "/api/v2/instance": ("application/json", _mastodon_instance_v2()),
    },
    "lemmy": {
        "/.well-known/nodeinfo": ("application/json", {"links": [_link("2.0", "/nodeinfo/2.0.json"),
                                                                 _link("2.1", "/nodeinfo/2.1.json")]}),
        "/nodeinfo/2.0.json": ("application/json", _nodeinfo("2.0", {"name": "lemmy", "version": "$peer_version"}, {})),
        "/nodeinfo/2.1.json": ("application/json", _nodeinfo("2.1", {
            "name": "lemmy", "version": "$peer_version", "repository": "https://github.com/LemmyNet/lemmy",
            "homepage": "https://join-lemmy.org/"}, {})),
    },
    "lemmy-old": {
        "/.well-known/nodeinfo": ("application/json", {"links": _link("2.0", "/nodeinfo/2.0.json")}),
        "/nodeinfo/2.0.json": ("application/json", _nodeinfo("2.0", {"name": "lemmy", "version": "$peer_version"}, {})),
    },
    "akkoma": {
        "/.well-known/nodeinfo": ("application/json", {"links": [_link("2.0", "/nodeinfo/2.0.json"),
                                                                 _link("2.1", "/nodeinfo/2.1.json")]}),
        "/nodeinfo/2.0.json": ("application/json", _nodeinfo("2.0", {"name": "akkoma", "version": "$peer_version"},
                                                              {"nodeName": "$host",
                                                               "staffAccounts": ["https://$host/users/admin"]})),
        "/nodeinfo/2.1.json": ("application/json", _nodeinfo("2.1", {
            "name": "akkoma", "version": "$peer_version", "repository": "https://akkoma.dev/AkkomaGang/akkoma"},
            {"nodeName": "$host", "staffAccounts": ["https://$host/users/admin"], "federation": {"enabled": True}})),
    },
}
SHAPES["pleroma"] = {path: (ctype, json.loads(json.dumps(doc).replace('"akkoma"', '"pleroma"')))
                     for path, (ctype, doc) in SHAPES["akkoma"].items()}

# What the sweep must make of each hostile shape (the error kind in the report).
HOSTILE = {
    "huge": "too-large", "bomb": "too-large", "slow": "timeout", "redirect-loopback": "redirect-refused",
    "redirect-metadata": "redirect-refused", "redirect-private": "redirect-refused",
    "link-metadata": "link-refused", "link-private": "link-refused", "invalid-json": "invalid-json",
    "deep": "too-deep", "loop": "redirect-loop", "html": "not-nodeinfo", "error-500": "http-status",
    "none": "http-status", "bad-tls": "tls",
}
PATHS = sorted({path for shape in SHAPES.values() for path in shape})


@dataclass(frozen=True)
class ServedPeer:
    domain: str
    shape: str  # a key of SHAPES or HOSTILE
    version: str = ""
    contact: str = ""  # the admin email the shape publishes (where it publishes one)


def _quote(text: str) -> str:
    """A JSON text as an nginx single-quoted string (variables stay live)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PeerServer:
    """nginx serving `peers` on `address:port` (HTTPS). `targets` are where the hostile shapes point:
    {"loopback": URL, "metadata": URL, "private": URL}. Use as a context manager."""

    def __init__(self, peers: list[ServedPeer], address: str, directory: Path, *, port: int = 443,
                 targets: dict[str, str] | None = None, tls_names: list[str] | None = None,
                 instance_peers: list[str] | None = None, more_addresses: list[str] | None = None,
                 netns: str | None = None) -> None:
        self.peers = peers
        self.address = address
        self.port = port
        self.dir = Path(directory)
        self.targets = {"loopback": "http://127.0.0.1:9/", "metadata": "http://169.254.169.254/latest/meta-data/",
                        "private": "https://private.peers.test/.well-known/nodeinfo", **(targets or {})}
        self.tls_names = tls_names
        self.instance_peers = instance_peers or []
        self.more_addresses = more_addresses or []  # nginx listens on these too (the bench spreads peers)
        self.netns = netns  # run nginx inside this network namespace (the tests' "public" network)
        self.proc: subprocess.Popen | None = None
        self.access_log = self.dir / "access.jsonl"

    # --- files ---------------------------------------------------------------------------------

    def _certificates(self) -> None:
        from tests.netlab import make_ca_and_cert

        good = [p.domain.split(":")[0] for p in self.peers if p.shape != "bad-tls"]
        names = self.tls_names or sorted(set(good)) or ["peers.test"]
        self.ca, self.cert, self.key = make_ca_and_cert(self.dir / "pki", names)
        bad = [p.domain.split(":")[0] for p in self.peers if p.shape == "bad-tls"] or ["bad-tls.peers.test"]
        _, self.bad_cert, self.bad_key = make_ca_and_cert(self.dir / "pki-untrusted", bad)

    def _files(self) -> None:
        files = self.dir / "files"
        files.mkdir(parents=True, exist_ok=True)
        (files / "huge.json").write_bytes(b'{"links":[' + b" " * (20 * 1024 * 1024) + b"]}")
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        zeros = b" " * (1024 * 1024)
        (files / "bomb.json").write_bytes(b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush())
        (files / "slow.json").write_bytes(b"{" + b" " * 100_000 + b"}")
        (files / "deep.json").write_bytes(b"[" * 5000 + b"]" * 5000)
        # What a Mastodon peer answers at /api/v1/instance/peers (every name serves it here).
        (files / "instance-peers.json").write_text(json.dumps(self.instance_peers))

    def _maps(self) -> str:
        rows = {"shape": [], "version": [], "contact": []}
        for p in self.peers:
            host = p.domain.split(":")[0]
            rows["shape"].append(f"{host} {p.shape};")
            if p.version:
                rows["version"].append(f"{host} {json.dumps(p.version)};")
            if p.contact:
                rows["contact"].append(f"{host} {json.dumps(p.contact)};")
        for name, lines in rows.items():
            (self.dir / f"{name}.map").write_text("\n".join(lines) + "\n")
        return "\n".join(
            f"    map $host $peer_{name} {{ hostnames; default {default}; include {self.dir}/{name}.map; }}"
            for name, default in (("shape", "unknown"), ("version", '""'), ("contact", '""')))

    def _locations(self) -> str:
        out = []
        for path in PATHS:
            out.append(f"        location = {path} {{ rewrite ^ /_peer/$peer_shape{path} last; }}")
        for shape, documents in sorted(SHAPES.items()):
            for path, (ctype, doc) in sorted(documents.items()):
                body = json.dumps(doc, separators=(",", ":"))
                out.append(f"        location = /_peer/{shape}{path} {{ internal; default_type {json.dumps(ctype)}; "
                           f"return 200 {_quote(body)}; }}")
        t = self.targets
        index = "/_peer/{}/.well-known/nodeinfo"
        hostile = {
            "huge": "rewrite ^ /_files/huge.json last;",
            "bomb": "rewrite ^ /_files/bomb.json last;",
            "slow": "rewrite ^ /_files/slow.json last;",
            "deep": "rewrite ^ /_files/deep.json last;",
            "redirect-loopback": f"return 302 {t['loopback']};",
            "redirect-metadata": f"return 302 {t['metadata']};",
            "redirect-private": f"return 302 {t['private']};",
            "link-metadata": "return 200 " + _quote(json.dumps({"links": [{"rel": SCHEMA.format("2.0"),
                                                                           "href": t["metadata"]}]})) + ";",
            "link-private": "return 200 " + _quote(json.dumps({"links": [{"rel": SCHEMA.format("2.1"),
                                                                          "href": t["private"]}]})) + ";",
            "invalid-json": "return 200 '{\"links\": [{\"rel\": ';",
            "loop": "return 302 https://$host/.well-known/nodeinfo;",
            "html": "default_type text/html; return 200 '<!DOCTYPE html><html><body>Welcome to nginx!</body></html>';",
            "error-500": "return 500;",
        }
        for shape, action in hostile.items():
            ctype = "" if "default_type" in action else "default_type application/json; "
            out.append(f"        location = {index.format(shape)} {{ internal; {ctype}{action} }}")
        out.append("        location /_peer/ { internal; return 404; }")
        out.append(f"        location = /api/v1/instance/peers {{ alias {self.dir}/files/instance-peers.json; "
                   "default_type application/json; }")
        out.append(f"        location = /_files/slow.json {{ internal; alias {self.dir}/files/slow.json; "
                   "default_type application/json; limit_rate 1; gzip off; }")
        out.append(f"        location = /_files/bomb.json {{ internal; alias {self.dir}/files/bomb.json; "
                   "default_type application/json; add_header Content-Encoding gzip; gzip off; }")
        out.append(f"        location /_files/ {{ internal; alias {self.dir}/files/; default_type application/json; "
                   "gzip off; }")
        return "\n".join(out)

    def config(self) -> str:
        user = "user root;" if os.geteuid() == 0 else ""
        listens = [f"{a}:{self.port}" if ":" not in a else f"[{a}]:{self.port}"
                   for a in [self.address, *self.more_addresses]]
        bad = " ".join(sorted({p.domain.split(':')[0] for p in self.peers if p.shape == "bad-tls"})) or \
            "bad-tls.peers.test"
        d = self.dir
        return f"""daemon off;
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    log_format peers escape=json '{{"addr":"$server_addr","port":"$server_port","host":"$host",'
                                 '"uri":"$request_uri","status":$status,"client":"$remote_addr"}}';
    access_log {self.access_log} peers buffer=64k flush=100ms;
    keepalive_requests 1000;
    server_tokens off;
    gzip on; gzip_types application/json; gzip_min_length 256;
    map_hash_max_size 262144; map_hash_bucket_size 128;
    server_names_hash_max_size 262144; server_names_hash_bucket_size 128;
{self._maps()}
    server {{
{chr(10).join(f"        listen {x} ssl default_server;" for x in listens)}
        server_name _;
        ssl_certificate {self.cert}; ssl_certificate_key {self.key};
        ssl_protocols TLSv1.2 TLSv1.3;
{self._locations()}
        location / {{ return 404; }}
    }}
    server {{
{chr(10).join(f"        listen {x} ssl;" for x in listens)}
        server_name {bad};
        ssl_certificate {self.bad_cert}; ssl_certificate_key {self.bad_key};
        location / {{ default_type application/json; return 200 '{{}}'; }}
    }}
}}
"""

    # --- running -------------------------------------------------------------------------------

    def start(self) -> PeerServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._certificates()
        self._files()
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config())
        nginx = shutil.which("nginx") or NGINX
        wrap = ["ip", "netns", "exec", self.netns] if self.netns else []
        checked = subprocess.run([*wrap, nginx, "-t", "-q", "-c", str(conf), "-p", str(self.dir)],
                                 capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t refused the peers' config: {checked.stderr.strip()[-2000:]}")
        self.proc = subprocess.Popen([*wrap, nginx, "-c", str(conf), "-p", str(self.dir)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            if self._listening(wrap):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.address}:{self.port}")

    def _listening(self, wrap: list[str]) -> bool:
        if not wrap:
            try:
                socket.create_connection((self.address, self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        return (self.dir / "nginx.pid").exists() and subprocess.run(
            [*wrap, "python3", "-c", f"import socket; socket.create_connection(('{self.address}', {self.port}), 1)"],
            capture_output=True).returncode == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> PeerServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def cpu_seconds(self) -> float:
        """CPU time nginx's workers used so far (user and system)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for task in Path("/proc").iterdir():
            if not task.name.isdigit():
                continue
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if self.proc is not None and fields[1] == str(self.proc.pid):  # a worker of this master
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def hosts_file(self, extra: dict[str, str] | None = None) -> str:
        """A resolver map (`--resolve-file`): every served name at the server's address, plus `extra`."""
        lines = [f"{self.address} {p.domain.split(':')[0]}" for p in self.peers]
        lines += [f"{address} {name}" for name, address in (extra or {}).items()]
        return "\n".join(lines) + "\n"

    def requests(self) -> list[dict]:
        """Every request nginx logged (the log is flushed every 100 ms; this waits for it)."""
        time.sleep(0.3)
        if not self.access_log.exists():
            return []
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]


def free_loopback(port: int = 443, avoid: tuple[str, ...] = ()) -> str:
    """A loopback address (127.88.x.y) where `port` is free: one checkout's peers never meet another's."""
    import random

    rng = random.SystemRandom()
    for _ in range(200):
        address = f"127.88.{rng.randint(1, 254)}.{rng.randint(1, 254)}"
        if address in avoid:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
                return address
            except OSError:
                continue
    raise RuntimeError(f"no free loopback address for port {port}")
