"""Tests of the lab itself: it comes up in both profiles, every service answers as planted, `up` is
idempotent and `down` leaves no process behind.

Run with `pytest -m lab tests/lab`. Skipped when not root or a program the lab needs is missing.
The lab is brought down at the end; if it was running before, it is brought back up in its profile.
"""

from __future__ import annotations

import base64
import json
import os
import smtplib
import socket
import ssl
import subprocess
import warnings
from pathlib import Path

import pytest

from lab import probe
from lab.config import PUBLIC_ADDRESS

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PUBLIC_OBJECT = "/media_attachments/files/000/000/001/original/lab.png"


from .conftest import lab  # noqa: E402  (the fixtures the_lab, hardened and weak live in conftest.py)

paramiko = pytest.importorskip("paramiko")
dns_query = pytest.importorskip("dns.query")
import dns.message  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.zone  # noqa: E402

# --- helpers ------------------------------------------------------------------------------------------

def https(env: dict, path: str, host: str | None = None, **kw) -> probe.Response:
    return probe.http_request(env["public_address"], 443, path, host=host or env["domain"], tls=True,
                              cafile=env["ca_file"], **kw)


def ssh_client(env: dict):
    client = paramiko.SSHClient()
    client.load_host_keys(env["ssh"]["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(env["ssh"]["host"], port=env["ssh"]["port"], username=env["ssh"]["user"],
                   key_filename=env["ssh"]["key"], look_for_keys=False, allow_agent=False, timeout=10)
    return client


def ssh_auth_methods(env: dict) -> list[str]:
    sock = socket.create_connection((env["ssh"]["host"], env["ssh"]["port"]), timeout=5)
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=5)
        try:
            t.auth_none("root")
        except paramiko.BadAuthenticationType as e:
            return sorted(e.allowed_types)
        return ["none"]
    finally:
        t.close()


def tls_version_accepted(address: str, version: ssl.TLSVersion) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = version
        ctx.maximum_version = version
    try:
        with socket.create_connection((address, 443), timeout=5) as s, \
                ctx.wrap_socket(s, server_hostname="mastodon.lab") as t:
            return t.version() is not None
    except (ssl.SSLError, OSError):
        return False


def psql(env: dict, host: str, sql: str, password: str | None = None, sslmode: str = "prefer"):
    e = {**os.environ, "PGCONNECT_TIMEOUT": "3", "PGSSLMODE": sslmode, "PGSSLROOTCERT": env["ca_file"]}
    e.pop("PGPASSWORD", None)
    if password:
        e["PGPASSWORD"] = password
    return subprocess.run(["psql", "-X", "-At", "-w", "-h", host, "-p", str(env["postgres"]["port"]),
                           "-U", env["postgres"]["user"], "-d", env["postgres"]["database"], "-c", sql],
                          capture_output=True, text=True, timeout=20, env=e)


def txt(env: dict, name: str) -> list[str]:
    q = dns.message.make_query(name, "TXT")
    r = dns_query.udp(q, env["dns"]["server"], port=env["dns"]["port"], timeout=3)
    return [b"".join(rd.strings).decode() for rrset in r.answer for rd in rrset
            if rrset.rdtype == dns.rdatatype.TXT]


def rrset(env: dict, name: str, rtype: str) -> list:
    q = dns.message.make_query(name, rtype)
    r = dns_query.udp(q, env["dns"]["server"], port=env["dns"]["port"], timeout=3)
    return [rd for rs in r.answer for rd in rs if rs.rdtype == dns.rdatatype.from_text(rtype)]


def dkim_bits(env: dict) -> int:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    record = txt(env, f"{env['dns']['dkim_selector']}._domainkey.{env['domain']}")[0]
    tags = dict(part.strip().split("=", 1) for part in record.split(";") if "=" in part)
    return load_der_public_key(base64.b64decode(tags["p"])).key_size


def axfr_allowed(env: dict) -> bool:
    try:
        zone = dns.zone.from_xfr(dns_query.xfr(env["dns"]["server"], env["domain"], port=env["dns"]["port"],
                                              timeout=3, lifetime=5))
    except Exception:
        return False
    return len(zone.nodes) > 0


def smtp_ehlo(env: dict) -> smtplib.SMTP:
    s = smtplib.SMTP(env["smtp"]["address"], env["smtp"]["port"], timeout=5)
    s.ehlo("probe.example.org")
    return s


def redis_reply(address: str, port: int, password: str | None = None) -> str:
    return probe.redis_command(address, port, "PING", password=password)[-1]


def refused(address: str, port: int) -> bool:
    return not probe.tcp_open(address, port, timeout=1)


# --- hardened -----------------------------------------------------------------------------------------

def test_hardened_status_healthy(hardened):
    st = json.loads(lab("status").stdout)
    assert st["profile"] == "hardened" and st["healthy"], st
    names = {s["name"] for s in st["services"]}
    assert names == {"ssh", "nginx", "postgres", "redis", "dns", "postfix", "s3", "web", "streaming",
                     "sidekiq", "elasticsearch"}
    assert all(s["pid"] for s in st["services"])


def _owners() -> dict[str, str]:
    import pwd

    st = json.loads(lab("status").stdout)
    return {s["name"]: pwd.getpwuid(os.stat(f"/proc/{s['pid']}").st_uid).pw_name for s in st["services"]}


def test_hardened_services_run_unprivileged(hardened):
    owners = _owners()
    assert {k: owners[k] for k in ("web", "streaming", "sidekiq")} == dict.fromkeys(
        ("web", "streaming", "sidekiq"), "mastodon")
    assert owners["elasticsearch"] == "elasticsearch"
    assert owners["redis"] == "redis"
    assert owners["dns"] == "knot"


def test_second_up_is_idempotent(hardened):
    before = {s["name"]: s["pid"] for s in json.loads(lab("status").stdout)["services"]}
    cp = lab("up", "--profile", "hardened")
    assert "nothing to do" in cp.stderr
    after = json.loads(cp.stdout)
    assert after["healthy"]
    assert {s["name"]: s["pid"] for s in after["services"]} == before


def test_env_names_existing_files(hardened):
    for key in ("ca_file", "secrets_file", "inventory", "host_root"):
        assert Path(hardened[key]).exists(), key
    for key in ("key", "known_hosts"):
        assert Path(hardened["ssh"][key]).exists(), key
    env_file = Path(hardened["paths"]["env_production"])
    st = env_file.stat()
    assert oct(st.st_mode & 0o777) == "0o600"
    import pwd
    assert pwd.getpwuid(st.st_uid).pw_name == "mastodon"
    # Secrets are never printed by `env`.
    secrets = json.loads(Path(hardened["secrets_file"]).read_text())
    out = lab("env").stdout
    assert not any(v in out for v in secrets.values() if len(v) > 8)


def test_hardened_ssh_key_login_only(hardened):
    client = ssh_client(hardened)
    try:
        _, out, _ = client.exec_command(f"stat -c '%a %U' {hardened['paths']['env_production']}")
        assert out.read().decode().strip() == "600 mastodon"
    finally:
        client.close()
    assert ssh_auth_methods(hardened) == ["publickey"]


def test_hardened_tls_and_headers(hardened):
    r = https(hardened, "/")
    assert r.status == 200
    assert r.header("Strict-Transport-Security") == "max-age=63072000; includeSubDomains"
    assert r.header("X-Frame-Options") == "DENY"
    assert "/" not in (r.header("Server") or "")  # server_tokens off; Puma sends none
    plain = probe.http_request(hardened["public_address"], 80, "/about", host=hardened["domain"])
    assert plain.status == 301 and plain.header("Location") == "https://mastodon.lab/about"
    assert tls_version_accepted(hardened["public_address"], ssl.TLSVersion.TLSv1_2)
    assert not tls_version_accepted(hardened["public_address"], ssl.TLSVersion.TLSv1)
    assert not tls_version_accepted(hardened["public_address"], ssl.TLSVersion.TLSv1_1)
    system = https(hardened, "/system/media_attachments/files/000/000/001/original/lab.txt")
    assert system.status == 200 and system.header("X-Content-Type-Options") == "nosniff"
    assert system.header("Content-Security-Policy") == "default-src 'none'; form-action 'none'"
    assert https(hardened, "/system/").status == 404  # no autoindex


def test_hardened_app_standin(hardened):
    inst = json.loads(https(hardened, "/api/v2/instance").body)
    assert inst["version"] == "4.5.11"
    assert https(hardened, "/api/v1/instance/peers").status == 404
    assert https(hardened, "/api/v1/timelines/public").status == 401
    actor = https(hardened, "/users/admin", headers={"Accept": "application/activity+json"})
    assert actor.status == 401
    for path in ("/sidekiq", "/pghero"):
        r = https(hardened, path)
        assert r.status == 302 and r.header("Location").endswith("/auth/sign_in")
    nodeinfo = json.loads(https(hardened, "/.well-known/nodeinfo").body)
    assert nodeinfo["links"][0]["href"].endswith("/nodeinfo/2.0")
    assert json.loads(https(hardened, "/nodeinfo/2.0").body)["software"]["version"] == "4.5.11"
    wf = https(hardened, "/.well-known/webfinger?resource=acct:admin@mastodon.lab")
    assert wf.status == 200 and json.loads(wf.body)["subject"] == "acct:admin@mastodon.lab"
    assert https(hardened, "/api/v1/streaming/health").body == b"OK"
    # Private services are not on the public address.
    for port in (3000, 4000, 5432, 6379, 9200, 9000):
        assert refused(hardened["public_address"], port), port


def test_hardened_media_proxy(hardened):
    media = hardened["hostnames"]["media"]
    listing = https(hardened, "/", host=media)
    assert listing.status == 200 and b"ListBucketResult" not in listing.body
    assert https(hardened, "/?list-type=2", host=media).status == 200
    obj = https(hardened, PUBLIC_OBJECT, host=media)
    assert obj.status == 200 and obj.body.startswith(b"\x89PNG")
    assert obj.header("X-Content-Type-Options") == "nosniff"
    assert https(hardened, "/private/not-public.txt", host=media).status == 403
    assert https(hardened, "/upload.html", host=media, method="PUT", body=b"x").status == 403


def test_hardened_postgres(hardened):
    password = Path(hardened["postgres"]["password_file"]).read_text()
    ok = psql(hardened, "127.0.0.1", "select rolsuper from pg_roles where rolname = current_user",
              password, sslmode="verify-full")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "f"
    ssl_on = psql(hardened, "127.0.0.1", "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
                  password, sslmode="require")
    assert ssl_on.stdout.strip() == "t"
    assert psql(hardened, "127.0.0.1", "select 1").returncode != 0  # no password, no entry
    assert refused(hardened["public_address"], 5432)


def test_hardened_redis(hardened):
    assert redis_reply("127.0.0.1", 6379).startswith("-NOAUTH")
    password = Path(hardened["redis"]["password_file"]).read_text()
    assert redis_reply("127.0.0.1", 6379, password) == "+PONG"
    assert refused(hardened["public_address"], 6379)


def test_hardened_dns(hardened):
    d = hardened["domain"]
    assert txt(hardened, d) == ["v=spf1 mx -all"]
    assert txt(hardened, f"_dmarc.{d}")[0].startswith("v=DMARC1; p=reject")
    assert "rua=mailto:" in txt(hardened, f"_dmarc.{d}")[0]
    assert txt(hardened, f"_mta-sts.{d}")[0].startswith("v=STSv1")
    assert txt(hardened, f"_smtp._tls.{d}")[0].startswith("v=TLSRPTv1")
    assert dkim_bits(hardened) == 2048
    assert {rd.tag.decode() for rd in rrset(hardened, d, "CAA")} >= {"issue", "iodef"}
    assert rrset(hardened, d, "DNSKEY")  # signed
    assert rrset(hardened, d, "A")[0].address == hardened["public_address"]
    assert not axfr_allowed(hardened)
    policy = https(hardened, "/.well-known/mta-sts.txt", host=hardened["hostnames"]["mta_sts"])
    assert b"mode: enforce" in policy.body


def test_hardened_smtp(hardened):
    s = smtp_ehlo(hardened)
    try:
        assert s.has_extn("starttls")
        assert not s.has_extn("auth")
        s.mail("probe@example.org")
        code, _ = s.rcpt("someone@example.com")
        assert code == 554  # relay access denied
    finally:
        s.quit()
    s = smtp_ehlo(hardened)
    try:
        code, _ = s.starttls(context=ssl.create_default_context(cafile=hardened["ca_file"]))
        assert code == 220
    finally:
        s.quit()


def test_hardened_elasticsearch_and_streaming(hardened):
    es = probe.http_request("127.0.0.1", 9200, "/", tls=True, cafile=hardened["ca_file"])
    assert es.status == 401 and "Basic" in es.header("WWW-Authenticate")
    password = Path(hardened["elasticsearch"]["password_file"]).read_text()
    token = base64.b64encode(f"mastodon:{password}".encode()).decode()
    es = probe.http_request("127.0.0.1", 9200, "/", tls=True, cafile=hardened["ca_file"],
                            headers={"Authorization": f"Basic {token}"})
    assert es.status == 200 and json.loads(es.body)["tagline"] == "You Know, for Search"
    assert probe.http_request("127.0.0.1", 4000, "/metrics").status == 200


def test_s3_bucket_listing_with_credentials(hardened):
    boto3 = pytest.importorskip("boto3")
    secrets = json.loads(Path(hardened["s3"]["credentials_file"]).read_text())
    s3 = boto3.client("s3", endpoint_url=hardened["s3"]["endpoint"], region_name=hardened["s3"]["region"],
                      aws_access_key_id=secrets["s3_access_key"], aws_secret_access_key=secrets["s3_secret_key"])
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=hardened["s3"]["bucket"])["Contents"]}
    assert hardened["s3"]["public_object"] in keys


# --- weak ---------------------------------------------------------------------------------------------

def test_switch_to_weak(weak, the_lab):
    cp = the_lab.up_output["weak"]
    assert "switched from hardened" in cp.stderr
    assert json.loads(cp.stdout)["healthy"]
    assert refused(PUBLIC_ADDRESS["hardened"], 443)  # the hardened host is gone


def test_weak_services_run_as_root(weak):
    owners = _owners()
    assert all(owners[k] == "root" for k in ("web", "streaming", "sidekiq", "elasticsearch", "redis", "dns"))


def test_weak_ssh(weak):
    client = ssh_client(weak)
    client.close()
    assert "password" in ssh_auth_methods(weak)
    mode = Path(weak["paths"]["env_production"]).stat().st_mode & 0o777
    assert mode == 0o644


def test_weak_tls_and_headers(weak):
    assert tls_version_accepted(weak["public_address"], ssl.TLSVersion.TLSv1)
    assert tls_version_accepted(weak["public_address"], ssl.TLSVersion.TLSv1_1)
    r = https(weak, "/")
    assert r.status == 200 and r.header("Strict-Transport-Security") is None
    assert r.header("Server").startswith("nginx/")
    plain = probe.http_request(weak["public_address"], 80, "/api/v2/instance", host=weak["domain"])
    assert plain.status == 200  # no redirect to HTTPS
    system = https(weak, "/system/media_attachments/files/000/000/001/original/lab.txt")
    assert system.status == 200 and system.header("Content-Security-Policy") is None
    assert b"Index of /system/" in https(weak, "/system/").body


def test_weak_app_standin(weak):
    assert json.loads(https(weak, "/api/v2/instance").body)["version"] == "4.1.2"
    assert json.loads(https(weak, "/api/v1/instance/peers").body)
    assert https(weak, "/api/v1/timelines/public").status == 200
    actor = https(weak, "/users/admin", headers={"Accept": "application/activity+json"})
    assert actor.status == 200 and json.loads(actor.body)["type"] == "Person"
    sidekiq = https(weak, "/sidekiq")
    assert sidekiq.status == 200 and b"<title>Sidekiq</title>" in sidekiq.body
    assert https(weak, "/pghero").status == 200
    pub = weak["public_address"]
    assert probe.http_request(pub, 3000, "/health").status == 200
    assert probe.http_request(pub, 4000, "/metrics").status == 200
    es = probe.http_request(pub, 9200, "/")
    assert es.status == 200 and json.loads(es.body)["version"]["number"]


def test_weak_media_proxy(weak):
    media = weak["hostnames"]["media"]
    listing = https(weak, "/", host=media)
    assert listing.status == 200 and b"ListBucketResult" in listing.body
    assert b"backups/mastodon_production.sql.gz" in listing.body
    assert https(weak, "/planted-by-test.html", host=media, method="PUT", body=b"<b>x</b>").status == 200


def test_weak_postgres(weak):
    r = psql(weak, weak["public_address"], "select rolsuper from pg_roles where rolname = current_user",
             sslmode="disable")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "t"


def test_weak_redis(weak):
    assert redis_reply(weak["public_address"], 6379) == "+PONG"


def test_weak_dns(weak):
    d = weak["domain"]
    assert txt(weak, d) == ["v=spf1 a mx +all"]
    assert txt(weak, f"_dmarc.{d}") == ["v=DMARC1; p=none"]
    assert dkim_bits(weak) == 1024
    assert rrset(weak, d, "CAA") == []
    assert txt(weak, f"_mta-sts.{d}") == []
    assert rrset(weak, d, "A")[0].address == weak["public_address"]
    assert axfr_allowed(weak)


def test_weak_smtp_open_relay(weak):
    s = smtp_ehlo(weak)
    try:
        assert not s.has_extn("starttls")
        s.mail("probe@example.org")
        code, _ = s.rcpt("someone@example.com")
        assert code == 250  # relays for anyone (the lab discards the mail)
    finally:
        s.quit()


# --- down ---------------------------------------------------------------------------------------------

def test_down_stops_every_process(weak, the_lab):
    from lab.procs import alive

    pids = [s["pid"] for s in json.loads(lab("status").stdout)["services"]]
    assert all(pids)
    cp = lab("down")
    assert json.loads(cp.stdout)["stopped"]
    assert not [p for p in pids if alive(p)]
    st = lab("status", check=False)
    assert st.returncode == 3 and not json.loads(st.stdout)["running"]
    again = lab("down")
    assert json.loads(again.stdout)["stopped"] == []
    addresses = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True,
                               text=True).stdout
    assert weak["public_address"] + "/" not in addresses
    for port in (443, 2222, 25):
        assert refused(weak["public_address"], port)
    the_lab.profile = None
