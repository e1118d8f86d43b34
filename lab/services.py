"""The lab's services: how each starts, how its readiness is judged, how it stops (by pid)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

from . import config as C
from . import probe, render
from .procs import LabError, alive, fail, read_pid, run, spawn, stop_pid, wait_until
from .render import Context


def chown(path: Path, owner: str) -> None:
    user, _, group = owner.partition(":")
    shutil.chown(path, user=user, group=group or None)


def chown_tree(top: Path, owner: str) -> None:
    chown(top, owner)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            chown(Path(dirpath) / name, owner)


def mkdirs(*paths: Path, owner: str | None = None, mode: int = 0o755) -> None:
    for p in paths:
        p.mkdir(parents=True, exist_ok=True)
        os.chmod(p, mode)
        if owner:
            chown(p, owner)


def port_free(address: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


class Service:
    name = ""
    marker = ""          # a string in the process's command line (guards against pid reuse)
    stop_signal = signal.SIGTERM
    needs: tuple[str, ...] = ()  # executables

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- description ------------------------------------------------------------------------------
    @property
    def log(self) -> Path:
        return render.log(self.name)

    @property
    def pidfile(self) -> Path:
        return render.var("run", f"{self.name}.pid")

    def listens(self) -> list[tuple[str, int]]:
        """(address, port) pairs the service binds (checked for conflicts before a start)."""
        return []

    def shown_address(self) -> tuple[str | None, int | None]:
        listens = self.listens()
        return listens[0] if listens else (None, None)

    def argv(self) -> list[str]:
        raise NotImplementedError

    def config_files(self) -> list[Path]:
        return []

    def fingerprint(self) -> str:
        h = hashlib.sha256(repr(self.argv()).encode())
        for p in self.config_files():
            h.update(str(p).encode())
            h.update(p.read_bytes() if p.exists() else b"-")
        return h.hexdigest()[:16]

    # -- lifecycle --------------------------------------------------------------------------------
    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    def running(self) -> bool:
        return alive(self.pid(), self.marker)

    def prepare(self) -> None:
        """Directories and ownership; runs before every start."""

    def check_ports(self) -> None:
        for address, port in self.listens():
            if not port_free(address, port):
                raise LabError(f"{self.name}: {address}:{port} is already in use by a program that is not "
                               f"this lab's {self.name} (see `ss -ltnp`); stop it or free the port")

    def start(self) -> None:
        run(self.argv(), log=self.log, service=self.name)

    def ready(self) -> bool:
        raise NotImplementedError

    def wait_ready(self, timeout: float = C.READY_TIMEOUT) -> None:
        try:
            wait_until(self.ready, timeout)
        except Exception as e:
            state = "running" if self.running() else "not running"
            raise fail(self.name, f"not ready after {timeout:.0f} s ({state}; last probe: {e!r})",
                       self.log) from e

    def configure(self) -> None:
        """Runs after every `up` once the service is ready (idempotent)."""

    def stop(self) -> bool:
        return stop_pid(self.pid(), self.marker, self.stop_signal, C.STOP_TIMEOUT)

    def healthy(self) -> bool:
        try:
            return bool(self.ready())
        except Exception:
            return False


class Sshd(Service):
    name = "ssh"
    marker = "sshd"
    needs = ("/usr/sbin/sshd", "ssh-keygen")

    @property
    def conf(self) -> Path:
        return self.ctx.root / "etc/ssh/sshd_config"

    @property
    def pidfile(self):
        return render.var("run", "sshd.pid")

    def listens(self):
        return [(self.ctx.pub, C.PORTS["ssh"])]

    def argv(self):
        return ["/usr/sbin/sshd", "-f", str(self.conf), "-E", str(self.log)]

    def config_files(self):
        return [self.conf, render.AUTHORIZED_KEYS]

    def prepare(self):
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory

    def start(self):
        run(["/usr/sbin/sshd", "-t", "-f", str(self.conf)], log=self.log, service=self.name)
        super().start()

    def ready(self):
        return probe.banner(*self.listens()[0], timeout=1).startswith("SSH-2.0-")


class Nginx(Service):
    name = "nginx"
    marker = "nginx: master"
    needs = ("/usr/sbin/nginx",)

    @property
    def paths(self):
        return render.nginx_paths(self.ctx.profile)

    @property
    def pidfile(self):
        return self.paths["pid"]

    @property
    def log(self):
        return self.paths["error_log"]

    def listens(self):
        return [(self.ctx.pub, C.PORTS["https"]), (self.ctx.pub, C.PORTS["http"])]

    def argv(self):
        return ["/usr/sbin/nginx", "-p", str(self.paths["base"]), "-c",
                str(self.ctx.root / "etc/nginx/nginx.conf"), "-e", str(self.paths["error_log"])]

    def config_files(self):
        return [self.ctx.root / "etc/nginx/nginx.conf", self.ctx.root / "etc/nginx/sites-enabled/mastodon",
                self.ctx.cert["fullchain"]]

    def prepare(self):
        p = self.paths
        mkdirs(p["base"], p["temp"], p["cache"], owner="www-data:www-data")
        self.log.parent.mkdir(parents=True, exist_ok=True)

    def start(self):
        run([*self.argv(), "-t", "-q"], log=self.log, service=self.name)
        super().start()

    def ready(self):
        r = probe.http_request(self.ctx.pub, C.PORTS["https"], "/500.html", host=C.DOMAIN, tls=True,
                               cafile=str(self.ctx.ca_cert), timeout=1)
        return r.status == 200


class Postgres(Service):
    name = "postgres"
    marker = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown
    needs = ("/usr/lib/postgresql/15/bin/postgres", "/usr/lib/postgresql/15/bin/initdb",
             "/usr/lib/postgresql/15/bin/pg_ctl", "psql", "runuser")
    bindir = Path("/usr/lib/postgresql/15/bin")

    @property
    def pidfile(self):
        return render.PG_DATA / "postmaster.pid"

    def listens(self):
        addr = "127.0.0.1" if self.ctx.hardened else "0.0.0.0"
        return [(addr, C.PORTS["postgres"])]

    def argv(self):
        return ["runuser", "-u", "postgres", "--", str(self.bindir / "pg_ctl"), "-D",
                str(render.pg_confdir(self.ctx.profile)), "-l", str(self.log), "-w", "-t", "20", "-s", "start"]

    def config_files(self):
        d = render.pg_confdir(self.ctx.profile)
        return [d / "postgresql.conf", d / "pg_hba.conf", d / "pg_ident.conf", self.ctx.cert["cert"]]

    def prepare(self):
        pg = "postgres:postgres"
        mkdirs(render.var("lib", "postgresql"), render.PG_RUN, owner=pg, mode=0o755)
        ssl_dir = render.var("lib", "postgresql", "ssl")
        mkdirs(ssl_dir, owner=pg, mode=0o700)
        for src, dst, mode in ((self.ctx.cert["fullchain"], "server.crt", 0o644),
                               (self.ctx.cert["key"], "server.key", 0o600)):
            shutil.copyfile(src, ssl_dir / dst)
            os.chmod(ssl_dir / dst, mode)
            chown(ssl_dir / dst, pg)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        chown(self.log, pg)
        if not (render.PG_DATA / "PG_VERSION").exists():
            mkdirs(render.PG_DATA, owner=pg, mode=0o700)
            run(["runuser", "-u", "postgres", "--", str(self.bindir / "initdb"), "-D", str(render.PG_DATA),
                 "-U", "postgres", "-E", "UTF8", "--locale=C", "--auth-local=peer",
                 "--auth-host=scram-sha-256", "--no-instructions"],
                log=self.log, service=self.name, timeout=60)

    def ready(self):
        return probe.tcp_open("127.0.0.1", C.PORTS["postgres"]) and self.running()

    def psql(self, sql: str) -> None:
        run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-h", str(render.PG_RUN), "-p",
             str(C.PORTS["postgres"]), "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-f", "-"],
            log=self.log, service=self.name, input=sql)

    def configure(self):
        if self.ctx.hardened:
            password = self.ctx.secrets["postgres_password"].replace("'", "''")
            attrs = f"LOGIN NOSUPERUSER CREATEDB NOCREATEROLE PASSWORD '{password}'"
        else:
            attrs = "LOGIN SUPERUSER CREATEDB CREATEROLE PASSWORD 'mastodon'"
        self.psql(f"""
SET client_min_messages = warning;
DO $$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{C.DB_USER}') THEN CREATE ROLE {C.DB_USER} LOGIN; END IF;
END$$;
ALTER ROLE {C.DB_USER} WITH {attrs};
SELECT 'CREATE DATABASE {C.DB_NAME} OWNER {C.DB_USER}'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{C.DB_NAME}')\\gexec
""")


class Redis(Service):
    """Hardened: runs as the redis user (Debian's package creates it); weak: as root."""
    name = "redis"
    marker = "redis-server"
    needs = ("/usr/bin/redis-server", "runuser")

    @property
    def pidfile(self):
        return render.var("run", "redis", "redis-server.pid")

    def listens(self):
        return [("127.0.0.1" if self.ctx.hardened else "0.0.0.0", C.PORTS["redis"])]

    def argv(self):
        cmd = ["/usr/bin/redis-server", str(self.ctx.root / "etc/redis/redis.conf")]
        return ["runuser", "-u", "redis", "--", *cmd] if self.ctx.hardened else cmd

    def config_files(self):
        return [self.ctx.root / "etc/redis/redis.conf"]

    def prepare(self):
        owner = "redis:redis" if self.ctx.hardened else "root:root"
        mkdirs(render.var("lib", "redis"), owner=owner, mode=0o700)
        mkdirs(render.var("run", "redis"), owner=owner, mode=0o755)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        chown(self.log, owner)

    def ready(self):
        pw = self.ctx.secrets["redis_password"] if self.ctx.hardened else None
        return probe.redis_command("127.0.0.1", C.PORTS["redis"], "PING", password=pw, timeout=1)[-1] == "+PONG"


class Knot(Service):
    name = "dns"
    marker = "knotd"
    needs = ("/usr/sbin/knotd",)

    @property
    def paths(self):
        return render.knot_paths(self.ctx.profile)

    @property
    def pidfile(self):
        return self.paths["pid"]

    @property
    def log(self):
        return self.paths["log"]

    def listens(self):
        return [(C.DNS_ADDRESS, C.DNS_PORT)]

    def check_ports(self):
        super().check_ports()
        if not port_free(C.DNS_ADDRESS, C.DNS_PORT, socket.SOCK_DGRAM):
            raise LabError(f"dns: UDP {C.DNS_ADDRESS}:{C.DNS_PORT} is in use by another program "
                           "(set MASTOAUDIT_LAB_DNS_PORT to move the lab's DNS)")

    def argv(self):
        return ["/usr/sbin/knotd", "-c", str(self.ctx.root / "etc/knot/knot.conf"), "-d"]

    def config_files(self):
        return [self.ctx.root / "etc/knot/knot.conf", self.ctx.root / "var/lib/knot" / f"{C.DOMAIN}.zone"]

    def prepare(self):
        # Hardened: knotd drops to the knot user (server.user); weak: stays root.
        owner = "knot:knot" if self.ctx.hardened else "root:root"
        mkdirs(self.paths["rundir"], self.paths["storage"], owner=owner, mode=0o755)
        chown_tree(self.paths["storage"], owner)  # journal, timers and DNSSEC keys
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        chown(self.log, owner)

    def start(self):
        run(["knotc", "-c", str(self.ctx.root / "etc/knot/knot.conf"), "conf-check"], log=self.log,
            service=self.name)
        super().start()

    def ready(self):
        rcode, answers, aa = probe.dns_query(C.DNS_ADDRESS, C.DNS_PORT, C.DOMAIN, 6, timeout=0.5)
        return rcode == 0 and answers >= 1 and aa


class Postfix(Service):
    name = "postfix"
    marker = "master"
    needs = ("/usr/sbin/postfix",)

    @property
    def pidfile(self):
        return render.POSTFIX_QUEUE / "pid" / "master.pid"

    def listens(self):
        return [(self.ctx.pub, C.PORTS["smtp"]), ("127.0.0.1", C.PORTS["smtp"])]

    def argv(self):
        return ["/usr/sbin/postfix", "-c", str(render.postfix_confdir(self.ctx.profile)), "start"]

    def config_files(self):
        d = render.postfix_confdir(self.ctx.profile)
        return [d / "main.cf", d / "master.cf", self.ctx.cert["fullchain"]]

    def prepare(self):
        mkdirs(render.POSTFIX_QUEUE, mode=0o755)
        mkdirs(render.POSTFIX_DATA, owner="postfix:postfix", mode=0o700)
        self.log.parent.mkdir(parents=True, exist_ok=True)

    def start(self):
        run(self.argv(), log=self.log, service=self.name, tty_stderr=True)

    def ready(self):
        return probe.banner(self.ctx.pub, C.PORTS["smtp"], timeout=1).startswith("220 ")


class Moto(Service):
    """Moto's S3 server: a real S3 API implementation, in memory (buckets are re-created each `up`)."""
    name = "s3"
    marker = "moto.server"

    def listens(self):
        return [("127.0.0.1", C.PORTS["s3"])]

    def argv(self):
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(C.PORTS["s3"])]

    def start(self):
        try:
            import moto.server  # noqa: F401
        except ImportError as e:
            raise LabError('s3: moto is not installed (pip install "moto[server]")') from e
        spawn(self.argv(), log=self.log, pidfile=self.pidfile)

    def ready(self):
        return probe.http_request("127.0.0.1", C.PORTS["s3"], "/", timeout=1).status == 200

    def configure(self):
        import boto3  # moto depends on boto3
        from botocore.config import Config

        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{C.PORTS['s3']}", region_name=C.S3_REGION,
                          aws_access_key_id=self.ctx.secrets["s3_access_key"],
                          aws_secret_access_key=self.ctx.secrets["s3_secret_key"],
                          config=Config(s3={"addressing_style": "path"}))
        bucket = C.S3_BUCKET
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket in existing:
            # Every version and delete marker goes (the hardened bucket keeps versions).
            listing = s3.list_object_versions(Bucket=bucket)
            for item in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
            for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
            s3.delete_bucket(Bucket=bucket)
        s3.create_bucket(Bucket=bucket)
        media = "media_attachments/files/000/000/001/original/lab.png"
        png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                            "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")
        s3.put_object(Bucket=bucket, Key=media, Body=png, ContentType="image/png", ACL="public-read")
        if self.ctx.hardened:
            s3.put_bucket_acl(Bucket=bucket, ACL="private")
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            s3.put_object(Bucket=bucket, Key="private/not-public.txt", Body=b"private\n", ACL="private")
        else:
            s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
            s3.put_bucket_policy(Bucket=bucket, Policy=(
                '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
                '"Action":["s3:GetObject","s3:ListBucket","s3:PutObject"],'
                f'"Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}'))
            s3.put_object(Bucket=bucket, Key="backups/mastodon_production.sql.gz", Body=b"\x1f\x8b lab dump",
                          ACL="public-read")


SYSTEM_PYTHON = "/usr/bin/python3"


class StandIn(Service):
    """A stand-in from lab/standins.py (Mastodon web, streaming, Sidekiq, Elasticsearch).

    Hardened: runs as its own unprivileged user (with Debian's /usr/bin/python3: the stand-ins
    need only the standard library, and another interpreter may sit where that user cannot read);
    weak: runs as root. `--title` puts what it stands for into the process listing."""
    role = ""
    port_key = ""
    run_as = "mastodon"
    title = ""

    @property
    def marker(self):  # type: ignore[override]
        return f"lab.standins {self.role}"

    @property
    def user(self) -> str | None:
        return self.run_as if self.ctx.hardened else None

    @property
    def bind(self) -> str:
        return "127.0.0.1" if self.ctx.hardened else "0.0.0.0"

    def listens(self):
        return [(self.bind, C.PORTS[self.port_key])] if self.port_key else []

    def extra_args(self) -> list[str]:
        return []

    def python(self) -> str:
        if self.user and os.access(SYSTEM_PYTHON, os.X_OK):
            return SYSTEM_PYTHON
        return sys.executable

    def argv(self):
        net = ["--bind", self.bind, "--port", str(C.PORTS[self.port_key])] if self.port_key else []
        return [self.python(), "-m", "lab.standins", self.role, "--profile", self.ctx.profile, *net,
                "--title", self.title, *self.extra_args()]

    def config_files(self):
        return [Path(__file__).with_name("standins.py")]

    def start(self):
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(C.REPO), os.environ.get("PYTHONPATH")])),
               "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        spawn(self.argv(), log=self.log, pidfile=self.pidfile, env=env, cwd=C.REPO, user=self.user)


class Web(StandIn):
    name = "web"
    role = "web"
    port_key = "web"
    title = "puma 6.5.0 (tcp://127.0.0.1:3000) [live] (stand-in)"

    def ready(self):
        return probe.http_request("127.0.0.1", C.PORTS["web"], "/health", host=C.DOMAIN, timeout=1).status == 200


class Streaming(StandIn):
    name = "streaming"
    role = "streaming"
    port_key = "streaming"
    title = "node ./streaming (stand-in)"

    def ready(self):
        r = probe.http_request("127.0.0.1", C.PORTS["streaming"], "/api/v1/streaming/health", timeout=1)
        return r.status == 200


class Sidekiq(StandIn):
    name = "sidekiq"
    role = "sidekiq"
    port_key = ""
    title = "sidekiq 7.3.9 live [0 of 25 busy] (stand-in)"

    def ready(self):
        return self.running()


class Elasticsearch(StandIn):
    name = "elasticsearch"
    role = "elasticsearch"
    port_key = "elasticsearch"
    run_as = "elasticsearch"
    title = "elasticsearch (stand-in)"

    @property
    def secrets_dir(self) -> Path:
        return render.var("lib", "elasticsearch")

    def prepare(self):
        if not self.ctx.hardened:
            return
        # The stand-in's own copies of its certificate, key and password, readable by its user only.
        owner = "elasticsearch:elasticsearch"
        mkdirs(self.secrets_dir, owner=owner, mode=0o700)
        for src, name in ((self.ctx.cert["fullchain"], "http.crt"), (self.ctx.cert["key"], "http.key"),
                          (C.RUN / "secrets" / "es_password", "password")):
            shutil.copyfile(src, self.secrets_dir / name)
            os.chmod(self.secrets_dir / name, 0o600)
            chown(self.secrets_dir / name, owner)

    def extra_args(self):
        if not self.ctx.hardened:
            return []
        d = self.secrets_dir
        return ["--tls-cert", str(d / "http.crt"), "--tls-key", str(d / "http.key"),
                "--es-password-file", str(d / "password")]

    def config_files(self):
        return [*super().config_files(), self.ctx.cert["fullchain"]]

    def ready(self):
        r = probe.http_request("127.0.0.1", C.PORTS["elasticsearch"], "/", tls=self.ctx.hardened,
                               cafile=str(self.ctx.ca_cert), timeout=1)
        return r.status == (401 if self.ctx.hardened else 200)


SERVICES: list[type[Service]] = [Sshd, Nginx, Postgres, Redis, Knot, Postfix, Moto, Web, Streaming, Sidekiq,
                                 Elasticsearch]

# System users the lab's hardened services run as (created when missing; Debian's packages create
# postgres, redis, knot, postfix and www-data).
SYSTEM_USERS = ("mastodon", "elasticsearch")


def make_all(ctx: Context) -> list[Service]:
    return [cls(ctx) for cls in SERVICES]
