"""The fixed, read-only SQL both ways in share, and reading its rows into facts.

`--db DSN` runs these statements with psycopg, `-i INVENTORY` runs the very same text with psql on
the database host (remote_commands' `mastodon-db-federation`). Each statement starts its rows with
a tag, so psql's unaligned output and psycopg's tuples read back through one parser (`collect`):
the two ways give identical facts by construction, and the tests hold them to it.

Counting follows the way seed 000's Rails queries and Mastodon's admin dashboard do:
- the four deduplicated counts are `Follow.joins(:target_account or :account).merge(Account.where(
  domain: D)).group(:account_id or :target_account_id).count.keys.size`;
- the dashboard's two counts are the same joins with a plain `.count` (follow rows): "instance_follows"
  (followed account on D) and "instance_followers" (follower on D),
  app/lib/admin/metrics/measure/instance_follows_measure.rb and instance_followers_measure.rb;
- with subdomains, Mastodon takes the names from the `instances` materialized view:
  `Instance.by_domain_and_subdomains(D)` is `reverse('.' || domain) LIKE reverse('%.' || D)`, which
  holds D itself and every name ending in '.D' (and, as in Mastodon, only names the view holds: a
  stale view is as stale here as on the dashboard). The daily series' helper in
  admin/metrics/measure/query_helper.rb writes the pattern without '%', which matches D alone;
  the totals shown (and counted here) use the scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

DOMAINS = "@DOMAINS@"  # where the list of domains goes: %(domains)s (psycopg) or :'domains' (psql)

# Mastodon's UserRole::FLAGS: administrator, and the permissions that make a moderator.
ADMINISTRATOR = 1 << 0
MODERATION_FLAGS = {
    "view_devops": 1 << 1, "manage_reports": 1 << 4, "manage_federation": 1 << 5, "manage_settings": 1 << 6,
    "manage_blocks": 1 << 7, "manage_appeals": 1 << 9, "manage_users": 1 << 10, "manage_roles": 1 << 17,
    "manage_user_access": 1 << 18, "delete_user_data": 1 << 19,
}
STAFF_MASK = ADMINISTRATOR | sum(MODERATION_FLAGS.values())


@dataclass(frozen=True)
class Query:
    name: str
    tag: str  # the first column of every row
    types: tuple[type, ...]  # of the columns after the tag
    sql: str
    needs_domains: bool = False


def _clean(expr: str, limit: int) -> str:
    """A text column made safe for psql's unaligned output: no newlines, no field separator."""
    return f"left(translate(coalesce({expr}, ''), E'\\n\\r|', '   '), {limit})"


# The setting's value as Mastodon stores it (YAML, "--- open\n"), reduced to the bare word.
_MODE = _clean("btrim(replace(value, '---', ''), E' \\n\\r\\t''\"')", 40)

def _follow_counts(joined_on: str, alias: str) -> str:
    """The follow rows whose account on `joined_on`'s side is on the domain's names: by accounts
    there (target_account_id: they are followed from here; account_id: they follow here), for the
    names and subdomains (k.sub) and for the domain alone (k.query)."""
    return f"""CROSS JOIN LATERAL (
  SELECT count(*) FILTER (WHERE a.domain = ANY (k.sub)) AS follow_rows,
         count(DISTINCT f.account_id) FILTER (WHERE a.domain = ANY (k.sub)) AS followers,
         count(DISTINCT f.target_account_id) FILTER (WHERE a.domain = ANY (k.sub)) AS followed,
         count(*) FILTER (WHERE a.domain = k.query) AS rows_d,
         count(DISTINCT f.account_id) FILTER (WHERE a.domain = k.query) AS followers_d,
         count(DISTINCT f.target_account_id) FILTER (WHERE a.domain = k.query) AS followed_d
  FROM accounts a JOIN follows f ON f.{joined_on} = a.id WHERE a.domain = ANY (k.sub || k.query)) {alias}"""


QUERIES: tuple[Query, ...] = (
    Query("peers", "peer", (str, bool), """
SELECT 'peer', d.domain, (u.domain IS NOT NULL)
FROM (SELECT DISTINCT domain FROM accounts WHERE domain IS NOT NULL
      UNION SELECT domain FROM unavailable_domains) d
LEFT JOIN unavailable_domains u ON u.domain = d.domain
ORDER BY 2"""),
    Query("impact", "impact", (str, str, int, int, int, int, int, int), f"""
WITH q(domain) AS (SELECT DISTINCT lower(x) FROM unnest({DOMAINS}::text[]) x),
m(query, scope, domain) AS (
  -- Mastodon's reverse('.' || domain) LIKE reverse('%.' || D), as an equality on each name's suffixes
  -- (fast for thousands of domains); names holding a LIKE wildcard keep the LIKE, so '_' matches
  -- any character exactly as it does in Mastodon.
  SELECT q.domain, 'subdomains', i.domain
  FROM instances i CROSS JOIN LATERAL (
    SELECT array_to_string(p[k:], '.') AS suffix
    FROM (SELECT string_to_array(i.domain, '.') AS p) parts, generate_subscripts(parts.p, 1) k) s
  JOIN q ON q.domain = s.suffix
  WHERE strpos(q.domain, '_') = 0 AND strpos(q.domain, '%') = 0
  UNION ALL
  SELECT q.domain, 'subdomains', i.domain FROM q JOIN instances i
    ON reverse('.' || i.domain) LIKE reverse('%.' || q.domain)
  WHERE strpos(q.domain, '_') > 0 OR strpos(q.domain, '%') > 0
),
k(query, sub) AS (
  SELECT q.domain, coalesce(array_agg(m.domain) FILTER (WHERE m.domain IS NOT NULL), '{{}}')
  FROM q LEFT JOIN m ON m.query = q.domain AND m.scope = 'subdomains'
  GROUP BY q.domain
)
-- One domain's names at a time through the accounts (domain, id) index and the follows indexes
-- (the planner sees each domain's own size), one scan per direction for both readings.
SELECT 'impact', k.query, s.scope,
       CASE s.scope WHEN 'domain' THEN i.followers_d ELSE i.followers END,
       CASE s.scope WHEN 'domain' THEN i.followed_d ELSE i.followed END,
       CASE s.scope WHEN 'domain' THEN o.followers_d ELSE o.followers END,
       CASE s.scope WHEN 'domain' THEN o.followed_d ELSE o.followed END,
       CASE s.scope WHEN 'domain' THEN i.rows_d ELSE i.follow_rows END,
       CASE s.scope WHEN 'domain' THEN o.rows_d ELSE o.follow_rows END
FROM k
{_follow_counts("target_account_id", "i")}
{_follow_counts("account_id", "o")}
CROSS JOIN (VALUES ('domain'), ('subdomains')) s(scope)
ORDER BY 2, 3""", needs_domains=True),
    Query("registrations", "setting", (str, str), f"""
SELECT 'setting', var, {_MODE}
FROM settings WHERE var = 'registrations_mode' ORDER BY id LIMIT 1"""),
    Query("staff", "staff", (str, str, bool, bool), f"""
SELECT 'staff', {_clean("a.username", 64)}, {_clean("r.name", 64)}, (r.permissions & 1) <> 0,
       (u.otp_required_for_login OR EXISTS (SELECT 1 FROM webauthn_credentials w WHERE w.user_id = u.id))
FROM users u JOIN accounts a ON a.id = u.account_id JOIN user_roles r ON r.id = u.role_id
WHERE (r.permissions & {STAFF_MASK}) <> 0 AND NOT u.disabled AND a.suspended_at IS NULL
ORDER BY 2"""),
    Query("allows", "allows", (int,), "SELECT 'allows', count(*) FROM domain_allows"),
    Query("blocks", "block", (str, int, bool, bool, str), f"""
SELECT 'block', domain, coalesce(severity, 0), reject_media, reject_reports, {_clean("public_comment", 500)}
FROM domain_blocks ORDER BY 2"""),
)
BY_NAME = {q.name: q for q in QUERIES}
SEVERITY_NAMES = {0: "silence", 1: "suspend", 2: "noop"}


def psycopg_sql(query: Query) -> str:
    return query.sql.replace("%", "%%").replace(DOMAINS, "%(domains)s")


def psql_script() -> str:
    """Every query for psql, each announced with `@@q NAME` and followed by `@@error NAME MESSAGE`
    when it failed, so one failing statement (a missing privilege) never hides the others."""
    parts = []
    for query in QUERIES:
        sql = query.sql.strip().replace(DOMAINS, ":'domains'")
        if query.needs_domains:
            parts.append(f"\\if :{{?domains}}\n\\echo @@q {query.name}\n{sql};\n"
                         f"\\if :ERROR\n\\echo @@error {query.name} :LAST_ERROR_MESSAGE\n\\endif\n\\endif")
        else:
            parts.append(f"\\echo @@q {query.name}\n{sql};\n"
                         f"\\if :ERROR\n\\echo @@error {query.name} :LAST_ERROR_MESSAGE\n\\endif")
    return "\n".join(parts) + "\n"


# --- facts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactCounts:
    """One domain's follows across, with or without its subdomains (Mastodon's two readings)."""

    domain: str
    scope: str  # "domain" (D alone) or "subdomains" (D and every *.D the instances view holds)
    local_followers: int  # distinct accounts here following >= 1 account on D
    their_followed: int  # distinct accounts on D followed from here
    their_followers: int  # distinct accounts on D following >= 1 account here
    local_followed: int  # distinct accounts here followed from D
    dashboard_follows: int  # follow rows whose followed account is on D ("instance_follows")
    dashboard_followers: int  # follow rows whose follower is on D ("instance_followers")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @property
    def most(self) -> int:
        """The larger of the two directions, in distinct accounts (seed 000's "N following in
        either direction")."""
        return max(self.local_followers, self.their_followers)


@dataclass(frozen=True)
class Block:
    domain: str
    severity: str  # silence, suspend, noop
    reject_media: bool
    reject_reports: bool
    public_comment: str


@dataclass(frozen=True)
class StaffMember:
    username: str  # the local account's username (never an email address)
    role: str
    administrator: bool
    two_factor: bool


@dataclass
class DatabaseFacts:
    """Everything the federation commands and posture checks read from Mastodon's database."""

    source: str  # where from, shown in reports: "postgresql://mastodon@db:5432/mastodon_production" (no password)
    peers: list[tuple[str, bool]] | None = None
    impact: dict[tuple[str, str], ImpactCounts] = field(default_factory=dict)
    registrations_mode: str | None = None  # open, approved, none; None when not read
    registrations_set: bool = False  # False: no row, Mastodon's default ('none') applies
    staff: list[StaffMember] | None = None
    allows: int | None = None
    blocks: list[Block] | None = None
    errors: dict[str, str] = field(default_factory=dict)  # query name -> what went wrong
    ran: tuple[str, ...] = ()
    stalled: bool = False  # the database stopped answering (a client-side deadline closed the connection)

    def unavailable(self) -> set[str]:
        return {d for d, u in self.peers or () if u}

    def block_for(self, domain: str) -> Block | None:
        """Mastodon's DomainBlock.rule_for: the block on the domain or its nearest parent."""
        if not self.blocks:
            return None
        host = domain.split(":", 1)[0].rstrip(".").lower()
        by_domain = {b.domain: b for b in self.blocks}
        labels = host.split(".")
        for i in range(len(labels)):
            found = by_domain.get(".".join(labels[i:]))
            if found is not None:
                return found
        return None

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "peers": None if self.peers is None else len(self.peers),
            "unavailable_domains": sorted(self.unavailable()) if self.peers is not None else None,
            "registrations_mode": self.registrations_mode,
            "staff": None if self.staff is None else [
                {"username": s.username, "role": s.role, "administrator": s.administrator,
                 "two_factor": s.two_factor} for s in self.staff],
            "domain_allows": self.allows,
            "domain_blocks": None if self.blocks is None else len(self.blocks),
            "errors": dict(self.errors),
        }


class QueryFailed(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def typed(query: Query, fields: list[str]) -> tuple:
    """A psql row (text fields after the tag) as the values psycopg would give."""
    if len(fields) != len(query.types):
        raise ValueError(f"{query.name}: expected {len(query.types)} columns, got {len(fields)}")
    out: list = []
    for kind, text in zip(query.types, fields, strict=True):
        if kind is bool:
            if text not in ("t", "f"):
                raise ValueError(f"{query.name}: not a boolean: {text[:20]!r}")
            out.append(text == "t")
        elif kind is int:
            out.append(int(text))
        else:
            out.append(text)
    return tuple(out)


def parse_psql(text: str) -> dict[str, list[tuple] | QueryFailed]:
    """psql's output of `psql_script()`: rows per query, or the error a query ended with."""
    results: dict[str, list[tuple] | QueryFailed] = {}
    current: Query | None = None
    for line in text.split("\n"):
        if line.startswith("@@q "):
            current = BY_NAME.get(line[4:].strip())
            if current is not None:
                results[current.name] = []
            continue
        if line.startswith("@@error "):
            name, _, message = line[8:].partition(" ")
            if name in BY_NAME:
                results[name] = QueryFailed(name, message.strip() or "failed")
            continue
        if current is None or not line.startswith(current.tag + "|"):
            continue
        rows = results.get(current.name)
        if isinstance(rows, list):
            try:
                rows.append(typed(current, line.split("|")[1:]))
            except ValueError as exc:
                results[current.name] = QueryFailed(current.name, f"unreadable answer: {exc}")
    return results


def collect(source: str, results: dict[str, list[tuple] | QueryFailed],
            expected: Iterable[str] = ()) -> DatabaseFacts:
    """Facts from the rows of each query (from either way in). A query in `expected` with no
    answer at all is an error too: the run must not pass what it could not read."""
    facts = DatabaseFacts(source, ran=tuple(results))
    for name in expected:
        if name not in results:
            facts.errors[name] = "no answer (the database session ended before this query)"
    for name, rows in results.items():
        if isinstance(rows, QueryFailed):
            facts.errors[name] = rows.message
            continue
        if name == "peers":
            facts.peers = [(d, u) for d, u in rows]
        elif name == "impact":
            for row in rows:
                counts = ImpactCounts(*row)
                facts.impact[(counts.domain, counts.scope)] = counts
        elif name == "registrations":
            facts.registrations_set = bool(rows)
            facts.registrations_mode = rows[0][1] if rows else "none"
        elif name == "staff":
            facts.staff = [StaffMember(*row) for row in rows]
        elif name == "allows":
            facts.allows = rows[0][0] if rows else 0
        elif name == "blocks":
            facts.blocks = [Block(d, SEVERITY_NAMES.get(s, f"unknown ({s})"), rm, rr, c) for d, s, rm, rr, c in rows]
    return facts
