"""A throwaway PostgreSQL cluster in a temporary folder, for tests, benches and the federation demo.

Never the system cluster: `initdb` into a fresh folder owned by the postgres user, `pg_ctl start`
on a free loopback port with the socket in that folder, `stop()` removes it all. Several checkouts
can run one each at the same time. Needs root (to run as postgres) or to be the postgres user, and
Debian's PostgreSQL binaries (scripts/setup.sh installs them).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def can_run() -> str | None:
    if bindir() is None:
        return "PostgreSQL is not installed (scripts/setup.sh installs it)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        return "needs root (to run a cluster as the postgres user)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    directory: Path
    port: int
    bindir: Path

    @property
    def socket_dir(self) -> str:
        return str(self.directory)

    def dsn(self, dbname: str = "postgres", user: str = "postgres", password: str | None = None,
            host: str = "127.0.0.1") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{host}:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        done = _as_postgres([str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                             "-h", self.socket_dir, "-p", str(self.port), "-d", dbname, "-f", "-"], input=sql)
        return done.stdout

    def stop(self) -> None:
        _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate",
                      "-w", "stop"], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_postgres(argv: list[str], input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, input=input, capture_output=True, text=True, cwd="/", timeout=300)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}... failed: {(done.stderr or done.stdout)[-800:]}")
    return done


def start(settings: dict[str, str] | None = None) -> Cluster:
    """initdb and start a cluster listening on 127.0.0.1:<free port>; trust for the postgres
    superuser over the socket, scram-sha-256 over TCP."""
    binaries = bindir()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed")
    directory = Path(tempfile.mkdtemp(prefix="mastoaudit-pg-"))
    os.chmod(directory, 0o755)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    _as_postgres([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--locale=C",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions"])
    port = free_port()
    conf = {"listen_addresses": "'127.0.0.1'", "port": str(port), "unix_socket_directories": f"'{directory}'",
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "30",
            "shared_buffers": "128MB", **(settings or {})}
    with open(data / "postgresql.auto.conf", "a") as fh:
        fh.writelines(f"{k} = {v}\n" for k, v in conf.items())
    _as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(directory / "log"), "-w", "-t", "60",
                  "-s", "start"])
    return Cluster(directory, port, binaries)
