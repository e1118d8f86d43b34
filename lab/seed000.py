"""Seed 000 replayed: a throwaway PostgreSQL with Mastodon's schema, filled the way Hachyderm's
database looked when its moderators counted by hand (lab/mastodon_db.py), and the one command that
prints their numbers and writes the domain-block CSV.

    sudo python -m lab.seed000            # as root (the cluster runs as the postgres user)
    sudo python -m lab.seed000 --keep     # leave the database running and print its DSN

The peer versions come from a peer-results file standing in for the NodeInfo sweep.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import mastodon_db, pgcluster

AUDIT_ROLE = "mastoaudit"
# The audit role reads what the queries need and nothing else: no email, no password hash, no OTP secret.
GRANTS = f"""
CREATE ROLE {AUDIT_ROLE} LOGIN PASSWORD '%s';
GRANT SELECT ON accounts, follows, domain_blocks, domain_allows, unavailable_domains, settings, user_roles,
  webauthn_credentials, instances TO {AUDIT_ROLE};
GRANT SELECT (id, account_id, role_id, otp_required_for_login, disabled) ON users TO {AUDIT_ROLE};
"""


def build(cluster: pgcluster.Cluster, dbname: str = "mastodon_production", password: str = "demo-password",
          seed: int = 0) -> mastodon_db.Seed000:
    data = mastodon_db.seed_000(seed)
    mastodon_db.connect_fill(cluster, dbname, data.data)
    cluster.psql(GRANTS % password.replace("'", "''"), dbname)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.seed000", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--out", type=Path, default=Path("reports/demo-federation"), help="where reports go")
    args = parser.parse_args(argv)
    problem = pgcluster.can_run()
    if problem:
        print(f"seed000: {problem}", file=sys.stderr)
        return 2
    cluster = pgcluster.start()
    try:
        seed = build(cluster)
        args.out.mkdir(parents=True, exist_ok=True)
        peers = args.out / "peers.json"
        peers.write_text(mastodon_db.peers_document(seed))
        env = args.out / ".env.production"
        env.write_text("LOCAL_DOMAIN=hachyderm.example\nAUTHORIZED_FETCH=false\nLIMITED_FEDERATION_MODE=false\n")
        command = [sys.executable, "-m", "mastoaudit", "federation", "impact", "threads.net", "pixelfed.social",
                   "--db", f"postgresql://{AUDIT_ROLE}@127.0.0.1:{cluster.port}/mastodon_production",
                   "--peers", str(peers), "--env", str(env), "--block-for", "CVE-2025-30741",
                   "--blocklist", str(args.out / "domain_blocks.csv"), "-o", str(args.out),
                   "-f", "terminal", "-f", "json", "-f", "html"]
        print("$ " + " ".join(command[1:]).replace(sys.executable, "python"), file=sys.stderr)
        done = subprocess.run(command, env={**os.environ, "PGPASSWORD": "demo-password"})
        if args.keep:
            print(f"database left running: postgresql://{AUDIT_ROLE}:demo-password@127.0.0.1:{cluster.port}/"
                  f"mastodon_production (stop: pg_ctl -D {cluster.directory}/data stop)", file=sys.stderr)
        return done.returncode
    finally:
        if not args.keep:
            cluster.stop()


if __name__ == "__main__":
    tempfile.tempdir = None
    raise SystemExit(main())
