"""Seed 000 replayed: a throwaway PostgreSQL with Mastodon's schema, filled the way Hachyderm's
database looked when its moderators counted by hand (lab/mastodon_db.py); its peers served by a real
nginx on a loopback address, each publishing NodeInfo the way its software does (lab/peers.py); and
the one command that sweeps them, prints the seed's numbers and writes the domain-block CSV.

    python3 -m lab.seed000            # as root (the cluster runs as postgres, nginx on port 443)
    python3 -m lab.seed000 --keep     # leave the database and the peers running

The peers are reached through an explicit resolver map (`--resolve-file`, every name at nginx's
loopback address, `--no-dns`), and only that one address is allowed (`--allow-private ADDR/32`):
the sweep may not reach any other loopback or private address. Four peers are down the ways real
ones are: gone1 does not resolve, gone2 trickles (timeout), gone3 refuses connections, flaky has a
certificate from an unknown CA.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import mastodon_db, pgcluster
from .peers import PeerServer, ServedPeer, free_loopback
from .peers import can_run as peers_can_run

AUDIT_ROLE = "mastoaudit"
# The audit role reads what the queries need and nothing else: no email, no password hash, no OTP secret.
GRANTS = f"""
CREATE ROLE {AUDIT_ROLE} LOGIN PASSWORD '%s';
GRANT SELECT ON accounts, follows, domain_blocks, domain_allows, unavailable_domains, settings, user_roles,
  webauthn_credentials, instances TO {AUDIT_ROLE};
GRANT SELECT (id, account_id, role_id, otp_required_for_login, disabled) ON users TO {AUDIT_ROLE};
"""
# How each unreachable peer of the seed is down (lab/mastodon_db.py gives the error it stands for).
DOWN = {"timeout": "slow", "tls": "bad-tls", "http-status": "none"}


def build(cluster: pgcluster.Cluster, dbname: str = "mastodon_production", password: str = "demo-password",
          seed: int = 0) -> mastodon_db.Seed000:
    data = mastodon_db.seed_000(seed)
    mastodon_db.connect_fill(cluster, dbname, data.data)
    cluster.psql(GRANTS % password.replace("'", "''"), dbname)
    return data


def shape(software: str | None, version: str | None) -> str:
    if software == "lemmy" and (version or "").startswith("v0.1"):
        return "lemmy-old"
    return software or "none"


def served_peers(seed: mastodon_db.Seed000) -> tuple[list[ServedPeer], list[str]]:
    """The seed's peers as nginx serves them, and the names that must not resolve or answer."""
    served, refused = [], []
    for peer in seed.peers:
        domain, error = peer["domain"], peer.get("error")
        if error in DOWN:
            served.append(ServedPeer(domain, DOWN[error]))
        elif error == "refused":
            refused.append(domain)
        elif error is None:
            served.append(ServedPeer(domain, shape(peer["software"], peer["version"]), peer["version"],
                                     f"admin@{domain}"))
    return served, refused


def serve(seed: mastodon_db.Seed000, directory: Path) -> tuple[PeerServer, Path, str]:
    """Start nginx with the seed's peers; (the server, its resolver map, the address where nothing listens)."""
    served, refused = served_peers(seed)
    address = free_loopback()
    server = PeerServer(served, address, directory).start()
    nowhere = free_loopback(avoid=(address,))  # nothing listens there: connection refused
    hosts = directory / "peers.hosts"
    hosts.write_text(server.hosts_file({name: nowhere for name in refused}))
    return server, hosts, nowhere


def command(cluster_port: int, server: PeerServer, hosts: Path, nowhere: str, out: Path, env: Path) -> list[str]:
    return [sys.executable, "-m", "mastoaudit", "federation", "peers",
            "--db", f"postgresql://{AUDIT_ROLE}@127.0.0.1:{cluster_port}/mastodon_production",
            "--resolve-file", str(hosts), "--no-dns", "--ca-bundle", str(server.ca),
            "--allow-private", f"{server.address}/32", "--allow-private", f"{nowhere}/32", "--peer-timeout", "3",
            "--impact", "threads.net", "--impact", "pixelfed.social", "--env", str(env),
            "--block-for", "CVE-2025-30741", "--blocklist", str(out / "domain_blocks.csv"),
            "-o", str(out), "-f", "terminal", "-f", "json", "-f", "html"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.seed000", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the database and the peers running")
    parser.add_argument("--out", type=Path, default=Path("reports/demo-federation"), help="where reports go")
    args = parser.parse_args(argv)
    problem = pgcluster.can_run() or peers_can_run()
    if problem:
        print(f"seed000: {problem}", file=sys.stderr)
        return 2
    cluster = pgcluster.start()
    server = None
    try:
        seed = build(cluster)
        args.out.mkdir(parents=True, exist_ok=True)
        server, hosts, nowhere = serve(seed, Path(tempfile.mkdtemp(prefix="mastoaudit-peers-")))
        env = args.out / ".env.production"
        env.write_text("LOCAL_DOMAIN=hachyderm.example\nAUTHORIZED_FETCH=false\nLIMITED_FEDERATION_MODE=false\n")
        run = command(cluster.port, server, hosts, nowhere, args.out, env)
        shown = ["mastoaudit", *run[3:]] if run[1:3] == ["-m", "mastoaudit"] else run
        print("$ " + " ".join(shown), file=sys.stderr)
        done = subprocess.run(run, env={**os.environ, "PGPASSWORD": "demo-password"})
        if args.keep:
            print(f"database left running: postgresql://{AUDIT_ROLE}:demo-password@127.0.0.1:{cluster.port}/"
                  f"mastodon_production (stop: pg_ctl -D {cluster.directory}/data stop); peers: nginx on "
                  f"{server.address}:443 (pid {server.proc.pid}), map {hosts}", file=sys.stderr)
        return done.returncode
    finally:
        if not args.keep:
            if server is not None:
                server.stop()
            cluster.stop()


if __name__ == "__main__":
    tempfile.tempdir = None
    raise SystemExit(main())
