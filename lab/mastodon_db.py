"""The part of Mastodon's database schema the federation queries read, and data to fill it.

The tables and columns are Mastodon's (db/schema.rb, 4.x): accounts, follows, domain_blocks,
domain_allows, unavailable_domains, settings, users, user_roles, webauthn_credentials, and the
`instances` materialized view with Mastodon's own definition. Only these columns exist here; the
queries must not need more. Mastodon itself cannot run here: this is its schema, not the app.

`seed_000()` builds a database shaped like seed 000 (the Hachyderm posts): 96 Pixelfed peers (33 on
0.12.5, 46 on 0.12.4, 17 older) of which 93 have at most 5 follows across either way, 2 between 6
and 10, and pixelfed.social 1073/956/864/651; threads.net 2033/919/26/22 with the dashboard's 6014
and 27. The peer versions it returns are what nginx serves to the NodeInfo sweep in the demo
(lab/seed000.py, lab/peers.py), and what `federation impact --peers` reads in the tests.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

SCHEMA = """
CREATE TABLE accounts (
  id bigserial PRIMARY KEY, username varchar NOT NULL DEFAULT '', domain varchar, uri varchar NOT NULL DEFAULT '',
  locked boolean NOT NULL DEFAULT false, silenced_at timestamp, suspended_at timestamp,
  created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now());
CREATE INDEX index_accounts_on_domain_and_id ON accounts (domain, id);
CREATE TABLE follows (
  id bigserial PRIMARY KEY, account_id bigint NOT NULL, target_account_id bigint NOT NULL,
  show_reblogs boolean NOT NULL DEFAULT true, notify boolean NOT NULL DEFAULT false,
  created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now());
CREATE TABLE domain_blocks (
  id bigserial PRIMARY KEY, domain varchar NOT NULL DEFAULT '', severity integer DEFAULT 0,
  reject_media boolean NOT NULL DEFAULT false, reject_reports boolean NOT NULL DEFAULT false,
  private_comment text, public_comment text, obfuscate boolean NOT NULL DEFAULT false,
  created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now());
CREATE UNIQUE INDEX index_domain_blocks_on_domain ON domain_blocks (domain);
CREATE TABLE domain_allows (id bigserial PRIMARY KEY, domain varchar NOT NULL DEFAULT '',
  created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now());
CREATE UNIQUE INDEX index_domain_allows_on_domain ON domain_allows (domain);
CREATE TABLE unavailable_domains (id bigserial PRIMARY KEY, domain varchar NOT NULL DEFAULT '',
  created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now());
CREATE UNIQUE INDEX index_unavailable_domains_on_domain ON unavailable_domains (domain);
CREATE TABLE settings (id bigserial PRIMARY KEY, var varchar NOT NULL, value text,
  created_at timestamp, updated_at timestamp);
CREATE UNIQUE INDEX index_settings_on_var ON settings (var);
CREATE TABLE user_roles (id bigserial PRIMARY KEY, name varchar NOT NULL DEFAULT '', color varchar NOT NULL DEFAULT '',
  position integer NOT NULL DEFAULT 0, permissions bigint NOT NULL DEFAULT 0,
  highlighted boolean NOT NULL DEFAULT false,
  created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now());
CREATE TABLE users (
  id bigserial PRIMARY KEY, email varchar NOT NULL DEFAULT '', account_id bigint NOT NULL,
  encrypted_password varchar NOT NULL DEFAULT '', otp_required_for_login boolean NOT NULL DEFAULT false,
  otp_secret varchar, disabled boolean NOT NULL DEFAULT false, approved boolean NOT NULL DEFAULT true,
  role_id bigint, created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now());
CREATE TABLE webauthn_credentials (id bigserial PRIMARY KEY, external_id varchar NOT NULL, public_key varchar NOT NULL,
  nickname varchar NOT NULL, sign_count bigint NOT NULL DEFAULT 0, user_id bigint,
  created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now());
CREATE MATERIALIZED VIEW instances AS
  WITH domain_counts(domain, accounts_count) AS (
    SELECT accounts.domain, count(*) AS accounts_count FROM accounts
    WHERE accounts.domain IS NOT NULL GROUP BY accounts.domain)
  SELECT domain_counts.domain, domain_counts.accounts_count FROM domain_counts
  UNION
  SELECT domain_blocks.domain, COALESCE(domain_counts.accounts_count, (0)::bigint) AS accounts_count
  FROM (domain_blocks LEFT JOIN domain_counts ON (((domain_counts.domain)::text = (domain_blocks.domain)::text)))
  UNION
  SELECT domain_allows.domain, COALESCE(domain_counts.accounts_count, (0)::bigint) AS accounts_count
  FROM (domain_allows LEFT JOIN domain_counts ON (((domain_counts.domain)::text = (domain_allows.domain)::text)))
  WITH NO DATA;
CREATE UNIQUE INDEX index_instances_on_domain ON instances (domain);
"""

# Added after bulk loading (as a restore would): the indexes the queries use.
INDEXES = """
CREATE UNIQUE INDEX index_follows_on_account_id_and_target_account_id ON follows (account_id, target_account_id);
CREATE UNIQUE INDEX index_follows_on_target_account_id_and_account_id ON follows (target_account_id, account_id);
REFRESH MATERIALIZED VIEW instances;
ANALYZE;
"""

# Mastodon's default roles (config/roles.yml): Moderator and Admin by their permission bits.
MODERATOR_PERMISSIONS = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 7) | (1 << 9) | (1 << 10) | (1 << 8) | (1 << 18)
ADMIN_PERMISSIONS = MODERATOR_PERMISSIONS | (1 << 5) | (1 << 6) | (1 << 12) | (1 << 13) | (1 << 14)
OWNER_PERMISSIONS = 1  # administrator: every permission


@dataclass
class Dataset:
    """What to load, as rows; `follows` holds (follower id, followed id) pairs."""

    accounts: list[tuple[int, str, str | None]] = field(default_factory=list)  # id, username, domain
    follows: list[tuple[int, int]] = field(default_factory=list)
    blocks: list[tuple[str, int, str]] = field(default_factory=list)  # domain, severity, public comment
    allows: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # var -> value as Mastodon stores it (YAML)
    roles: list[tuple[int, str, int]] = field(default_factory=list)  # id, name, permissions
    users: list[tuple[int, int, int | None, bool, str]] = field(default_factory=list)  # id, account, role, otp, email
    webauthn_users: list[int] = field(default_factory=list)
    versions: dict[str, tuple[str, str]] = field(default_factory=dict)  # domain -> (software, version)
    _next_id: int = 1

    def account(self, username: str, domain: str | None) -> int:
        aid = self._next_id
        self._next_id += 1
        self.accounts.append((aid, username, domain))
        return aid

    def many(self, domain: str | None, n: int, prefix: str = "user") -> list[int]:
        return [self.account(f"{prefix}{i}", domain) for i in range(n)]


def _copy(cur, table: str, columns: str, rows) -> None:
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load(conn, data: Dataset) -> None:
    """Create the schema and load `data` (psycopg connection, autocommit or not)."""
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
        _copy(cur, "accounts", "id, username, domain", data.accounts)
        _copy(cur, "follows", "account_id, target_account_id", data.follows)
        _copy(cur, "domain_blocks", "domain, severity, public_comment", data.blocks)
        _copy(cur, "domain_allows", "domain", ((d,) for d in data.allows))
        _copy(cur, "unavailable_domains", "domain", ((d,) for d in data.unavailable))
        _copy(cur, "settings", "var, value", data.settings.items())
        _copy(cur, "user_roles", "id, name, permissions", data.roles)
        _copy(cur, "users", "id, account_id, role_id, otp_required_for_login, email", data.users)
        _copy(cur, "webauthn_credentials", "external_id, public_key, nickname, user_id",
              ((f"k{u}", "pk", "key", u) for u in data.webauthn_users))
        cur.execute("SELECT setval('accounts_id_seq', (SELECT coalesce(max(id), 1) FROM accounts))")
        cur.execute(INDEXES)
    conn.commit()


def connect_fill(cluster, dbname: str, data: Dataset):
    """Create database `dbname` in the cluster and load `data` into it."""
    import psycopg

    cluster.psql(f"CREATE DATABASE {dbname}")
    with psycopg.connect(f"host={cluster.socket_dir} port={cluster.port} user=postgres dbname={dbname}") as conn:
        load(conn, data)


def cross(rng: random.Random, sources: list[int], targets: list[int], rows: int) -> list[tuple[int, int]]:
    """`rows` distinct follow pairs in which every source follows and every target is followed:
    exactly len(sources) distinct followers and len(targets) distinct followed accounts."""
    if not sources or not targets:
        if rows:
            raise ValueError("follows need both sides")
        return []
    if not max(len(sources), len(targets)) <= rows <= len(sources) * len(targets):
        raise ValueError(f"cannot make {rows} follows between {len(sources)} and {len(targets)} accounts")
    pairs = {(sources[i % len(sources)], targets[i % len(targets)]) for i in range(max(len(sources), len(targets)))}
    while len(pairs) < rows:
        pairs.add((rng.choice(sources), rng.choice(targets)))
    return sorted(pairs)


# --- seed 000 -----------------------------------------------------------------------------------

SEED_DOMAIN = "hachyderm.example"
THREADS = {"domain": "threads.net", "accounts": 10_000, "in": (2033, 919, 6014), "out": (26, 22, 27)}
PIXELFED_SOCIAL = {"domain": "pixelfed.social", "accounts": 3_000, "in": (1073, 956, 1498), "out": (864, 651, 1127)}
PIXELFED_ADVISORY = "GHSA-7287-grhx-542x"


@dataclass
class Seed000:
    data: Dataset
    pixelfed: dict[str, str]  # the 96 Pixelfed peers: domain -> version
    peers: list[dict]  # peer results as the sweep would write them (stand-in for NodeInfo)
    expected: dict  # what `federation impact` must print


def seed_000(seed: int = 0) -> Seed000:
    rng = random.Random(seed)
    data = Dataset()
    locals_ = data.many(None, 5000, "local")
    for big in (THREADS, PIXELFED_SOCIAL):
        remote = data.many(big["domain"], big["accounts"], "acct")
        lf, tf, rows = big["in"]
        data.follows += cross(rng, rng.sample(locals_, lf), rng.sample(remote, tf), rows)
        rf, ld, rows = big["out"]
        data.follows += cross(rng, rng.sample(remote, rf), rng.sample(locals_, ld), rows)
    versions = ["0.12.5"] * 32 + ["0.12.4"] * 46 + ["0.12.3"] * 9 + ["0.12.1"] * 4 + ["0.11.13"] * 3 + ["0.11.9"] * 1
    pixelfed = {"pixelfed.social": "0.12.5"}
    small_counts: dict[str, int] = {}
    for i, version in enumerate(versions):
        domain = f"pix{i + 1:02d}.example"
        pixelfed[domain] = version
        band = 10 if i in (5, 40) else 5  # two peers (one fixed, one not) with 6 to 10 follows across
        remote = data.many(domain, 12, "p")
        n_in = rng.randint(6, band) if band == 10 else rng.randint(0, band)
        n_out = rng.randint(0, min(band, 5))
        small_counts[domain] = max(n_in, n_out)
        if n_in:
            data.follows += cross(rng, rng.sample(locals_, n_in), rng.sample(remote, rng.randint(1, n_in)), n_in)
        if n_out:
            data.follows += cross(rng, rng.sample(remote, n_out), rng.sample(locals_, rng.randint(1, n_out)), n_out)
    # Other peers: current Mastodon and friends, a few long gone.
    others = {"mastodon.social": ("mastodon", "4.5.11"), "glitch.example": ("mastodon", "4.5.11+glitch"),
              "nightly.example": ("mastodon", "4.6.0-nightly.2026-06-01"), "misskey.example": ("misskey", "2026.5.0"),
              "lemmy.example": ("lemmy", "0.19.17"), "gts.example": ("gotosocial", "0.19.1+git-abc1234"),
              # An old Lemmy (NodeInfo links as one object, "v" versions) still federating: affected
              # by Lemmy's SSRF advisory, not by the Pixelfed one the moderators block for.
              "lemmy-old.example": ("lemmy", "v0.16.7"), "akkoma.example": ("akkoma", "3.13.2")}
    gone = ["gone1.example", "gone2.example", "gone3.example", "flaky.example"]
    for domain in [*others, *gone]:
        remote = data.many(domain, 5, "m")
        data.follows += cross(rng, rng.sample(locals_, 3), remote[:2], 3)
    data.unavailable = ["gone1.example", "gone2.example", "gone3.example"]
    # Two Pixelfed servers blocked earlier for the advisory that have since upgraded.
    for domain in ("upgraded1.example", "upgraded2.example"):
        data.many(domain, 3, "u")
    data.blocks = [("upgraded1.example", 1, f"Pixelfed below 0.12.5 ({PIXELFED_ADVISORY}); we will federate again "
                                            "once the server is upgraded"),
                   ("upgraded2.example", 1, "CVE-2025-30741"),
                   ("spam-wave.example", 0, "crypto spam wave"), ("badactors.example", 1, "harassment")]
    data.settings = {"registrations_mode": "--- open\n"}
    data.roles = [(-99, "", 1 << 16), (1, "Moderator", MODERATOR_PERMISSIONS), (2, "Admin", ADMIN_PERMISSIONS),
                  (3, "Owner", OWNER_PERMISSIONS)]
    data.users = [(1, locals_[0], 3, True, "owner@hachyderm.example"),
                  (2, locals_[1], 2, True, "admin@hachyderm.example"),
                  (3, locals_[2], 1, False, "mod@hachyderm.example"),
                  (4, locals_[3], None, False, "user@hachyderm.example")]
    peers = [{"domain": d, "software": "pixelfed", "version": v} for d, v in pixelfed.items()]
    peers += [{"domain": d, "software": "pixelfed", "version": "0.12.5"}
              for d in ("upgraded1.example", "upgraded2.example")]
    peers += [{"domain": d, "software": s, "version": v} for d, (s, v) in others.items()]
    # Threads publishes no NodeInfo for the sweep to read (404): up, software unknown.
    peers += [{"domain": "threads.net", "error": "http-status", "detail": "answered 404"}]
    peers += [{"domain": "gone1.example", "error": "dns", "detail": "NXDOMAIN"},
              {"domain": "gone2.example", "error": "timeout", "detail": "no answer within 10 s"},
              {"domain": "gone3.example", "error": "refused"},
              {"domain": "flaky.example", "error": "tls", "detail": "certificate has expired"}]
    for p in peers:
        data.versions[p["domain"]] = (p.get("software"), p.get("version"))
    expected = {
        "pixelfed_peers": 96, "by_version": {"0.12.5": 33, "0.12.4": 46, "older": 17}, "vulnerable": 63,
        "bands": {"5 or fewer": 93, "6 to 10": 2, "more than 10": 1},
        "threads.net": {"local_followers": 2033, "their_followed": 919, "their_followers": 26, "local_followed": 22,
                        "dashboard_follows": 6014, "dashboard_followers": 27},
        "pixelfed.social": {"local_followers": 1073, "their_followed": 956, "their_followers": 864,
                            "local_followed": 651},
        "unreachable_and_unavailable": ["gone1.example", "gone2.example", "gone3.example"],
        "unreachable_only": ["flaky.example"],
        "refederate": ["upgraded1.example", "upgraded2.example"],
        "other_vulnerable": {"lemmy-old.example": "CVE-2026-29178"},
        "small_counts": small_counts,
    }
    return Seed000(data, pixelfed, peers, expected)


def peers_document(seed: Seed000) -> str:
    """The peer results as a federation JSON section (what `--peers FILE` reads)."""
    return json.dumps({"schema_version": "1.0", "peers": seed.peers}, indent=1) + "\n"

