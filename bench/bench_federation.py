"""Defederation impact counts at scale: 1,000,000 accounts and 10,000,000 follows in a throwaway
PostgreSQL (lab/pgcluster.py), as root. Prints the data generation time separately, then:
- the counts for one domain (20,000 accounts, its follows both ways), with and without subdomains;
- the counts for 500 peers at once in one pass, against one query per domain.
Target: one domain under 1 s. Nothing is asserted; the figures are printed.

    python3 bench/bench_federation.py [--accounts 1000000] [--follows 10000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab import mastodon_db, pgcluster
from mastoaudit.federation.database import read_database


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--follows", type=int, default=10_000_000)
    parser.add_argument("--peers", type=int, default=500, help="domains counted in the one-pass run")
    args = parser.parse_args()
    if pgcluster.can_run():
        print(f"bench_federation: {pgcluster.can_run()}", file=sys.stderr)
        return 2
    cluster = pgcluster.start({"shared_buffers": "512MB", "work_mem": "64MB", "maintenance_work_mem": "512MB",
                               "max_parallel_workers_per_gather": "2"})
    try:
        locals_n = args.accounts // 10
        began = time.perf_counter()
        cluster.psql("CREATE DATABASE bench")
        schema = mastodon_db.SCHEMA
        cluster.psql(schema + f"""
INSERT INTO accounts (id, username, domain)
  SELECT g, 'u' || g, CASE WHEN g <= {locals_n} THEN NULL
                           WHEN g <= {locals_n} + 20000 THEN 'big.example'
                           WHEN g <= {locals_n} + 22000 THEN 'media.big.example'
                           ELSE 'peer' || (g % 5000) || '.example' END
  FROM generate_series(1, {args.accounts}) g;
INSERT INTO follows (account_id, target_account_id)
  SELECT CASE WHEN r < 0.8 THEN 1 + floor(random() * {locals_n})::bigint
              ELSE {locals_n} + 1 + floor(random() * {args.accounts - locals_n})::bigint END,
         CASE WHEN r < 0.8 THEN {locals_n} + 1 + floor(random() * {args.accounts - locals_n})::bigint
              ELSE 1 + floor(random() * {locals_n})::bigint END
  FROM (SELECT random() AS r FROM generate_series(1, {args.follows})) s;
CREATE INDEX ON follows (account_id, target_account_id);
CREATE INDEX ON follows (target_account_id, account_id);  -- both as in Mastodon's schema
REFRESH MATERIALIZED VIEW instances;
VACUUM ANALYZE;
""", "bench")
        generation = time.perf_counter() - began
        print(f"data: {args.accounts:,} accounts, {args.follows:,} follows, {5002:,} domains; "
              f"generated, indexed and analysed in {generation:.1f} s (not part of the figures below)")
        dsn = f"host={cluster.socket_dir} port={cluster.port} user=postgres dbname=bench"
        t, facts = timed(lambda: read_database(dsn, ["big.example"], names=["impact"]))
        c = facts.impact[("big.example", "domain")]
        s = facts.impact[("big.example", "subdomains")]
        print(f"one domain (big.example, 20,000 accounts; {c.dashboard_follows:,} follows in, "
              f"{c.dashboard_followers:,} out), both scopes: {t * 1000:.0f} ms (median of 3; target < 1000 ms)")
        print(f"  counts: {c.local_followers:,}/{c.their_followed:,}/{c.their_followers:,}/{c.local_followed:,}; "
              f"with media.big.example: {s.local_followers:,}/{s.their_followed:,}")
        domains = [f"peer{i}.example" for i in range(args.peers)]
        t_one, _ = timed(lambda: read_database(dsn, domains, names=["impact"]), repeat=1)
        began = time.perf_counter()
        for d in domains[:50]:
            read_database(dsn, [d], names=["impact"])
        per = (time.perf_counter() - began) / 50
        print(f"{args.peers} peers at once, one pass: {t_one * 1000:.0f} ms; one query per domain: "
              f"{per * 1000:.0f} ms each, {per * args.peers * 1000:.0f} ms for {args.peers} (extrapolated from 50)")
        t_peers, facts = timed(lambda: read_database(dsn, [], names=["peers"]), repeat=1)
        print(f"peer list (distinct accounts.domain with unavailable_domains): {len(facts.peers):,} peers "
              f"in {t_peers * 1000:.0f} ms")
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
