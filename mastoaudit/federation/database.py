"""`--db DSN`: the fixed queries run with psycopg 3, read-only, each within a time limit.

Every query runs in a transaction of its own, begun READ ONLY, with `statement_timeout` set for
that transaction only (`set_config(..., true)`, which also holds behind pgbouncer's transaction
pooling), and with its values passed as parameters. One failing query (a role without SELECT on a
table) is reported by name; the others still answer.

`statement_timeout` needs a server that runs: a backend that is stopped, a pooler that holds the
query, a network that drops the packets never answer it. So each query also has a client-side
deadline (`_Watchdog`): CANCEL_GRACE_S after its timeout it is cancelled as psql's Ctrl-C does, and
if it has still not returned CANCEL_GRACE_S later, the connection's socket is shut down, the
blocked read returns, and that query and the ones after it are errors: the run is incomplete, and
ends within about `timeout + 2 * CANCEL_GRACE_S` of the stalled query's start. The connection
itself has `connect_timeout` (the TCP connection and the whole start-up, authentication included).

The DSN's password never leaves this module: reports name the database as `describe_dsn()` writes
it, and every error message has the password scrubbed before it is shown. Prefer a DSN without a
password (libpq reads PGPASSWORD or ~/.pgpass), so it does not sit in the process list either.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections.abc import Iterable

from .queries import QUERIES, DatabaseFacts, QueryFailed, collect, psycopg_sql

DEFAULT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
CANCEL_GRACE_S = 2.0  # after a query's timeout: cancel it; as long again: close the connection


class DatabaseUnreachable(Exception):
    """The database could not be reached or refused the login (message scrubbed of secrets)."""


class BadDsn(DatabaseUnreachable):
    """The DSN itself cannot be read (an input error): the message never quotes it."""


_QUOTED = re.compile(r'"[^"]*"')


def _conninfo(dsn: str) -> dict:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg raises ProgrammingError for a malformed DSN
        # libpq quotes the token it could not read, which may be (part of) the password: the kind
        # of problem is kept, the quoted text is not. (The DSN cannot be described: it did not parse.)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        shown = _QUOTED.sub(lambda m: m[0] if m[0] == '"="' else '"…"', first)[:200]
        raise BadDsn(f"not a PostgreSQL connection string: {shown}") from None


def _scrub_text(text: str, dsn: str, password: str | None = None) -> str:
    out = text.replace(dsn, describe_dsn_loose(dsn))
    if password:
        out = out.replace(password, "***")
    return out


def describe_dsn_loose(dsn: str) -> str:
    try:
        return describe_dsn(dsn)
    except DatabaseUnreachable:
        return "the given DSN"


def describe_dsn(dsn: str) -> str:
    """'postgresql://user@host:port/dbname', never the password."""
    info = _conninfo(dsn)
    user = info.get("user") or ""
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    name = info.get("dbname") or user or "postgres"
    if "," in host or host.startswith("/"):
        where = f"{host}" if host.startswith("/") else host
        return f"postgresql://{user + '@' if user else ''}[{where}]:{port}/{name}"
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{name}"


def password_of(dsn: str) -> str | None:
    try:
        return _conninfo(dsn).get("password") or None
    except DatabaseUnreachable:
        return None


class _Watchdog:
    """The client side of one query's deadline: `after_s` seconds in, cancel the query; `grace_s`
    later, shut the connection's socket down (its blocked read then returns with an error).
    `closed` tells whether it came to that."""

    def __init__(self, conn, after_s: float, grace_s: float) -> None:
        self.conn = conn
        self.grace_s = grace_s
        self.closed = False
        self._lock = threading.Lock()
        self._active = True
        self._timers = [threading.Timer(after_s, self._cancel), threading.Timer(after_s + grace_s, self._close)]
        for timer in self._timers:
            timer.daemon = True

    def __enter__(self) -> _Watchdog:
        for timer in self._timers:
            timer.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._active = False
        for timer in self._timers:
            timer.cancel()
            timer.join()

    def _cancel(self) -> None:
        with self._lock:
            if not self._active:
                return
        with contextlib.suppress(Exception):  # a cancel that cannot be sent: the close below answers it
            self.conn.cancel_safe(timeout=self.grace_s)

    def _close(self) -> None:
        with self._lock:
            if not self._active:
                return
            # shutdown() acts on the socket, not on this descriptor: the read psycopg is blocked in
            # returns, and its own descriptor stays valid until it closes the connection. (Already
            # closed: nothing left to unblock.)
            with contextlib.suppress(Exception), socket.socket(fileno=os.dup(self.conn.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
                self.closed = True


def read_database(dsn: str, domains: Iterable[str] = (), names: Iterable[str] | None = None,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> DatabaseFacts:
    """Run the queries (all, or `names`) and read their rows into facts. DatabaseUnreachable when
    no connection could be made; a failing query becomes an error in the facts."""
    import psycopg

    source = describe_dsn(dsn)
    password = password_of(dsn)
    domain_list = sorted(set(domains))
    wanted = [q for q in QUERIES if (names is None or q.name in names) and (domain_list or not q.needs_domains)]
    try:
        conn = psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=False,
                               application_name="mastoaudit")
    except psycopg.Error as exc:
        message = _scrub_text(str(exc).strip(), dsn, password) or type(exc).__name__
        raise DatabaseUnreachable(f"{source}: {message}") from None
    results: dict[str, list[tuple] | QueryFailed] = {}
    timeout_ms = str(max(1, int(timeout_s * 1000)))
    stalled = False
    try:
        conn.read_only = True
        for query in wanted:
            if stalled:
                results[query.name] = QueryFailed(query.name, "not run: the database stopped answering an "
                                                  "earlier query and the connection was closed")
                continue
            watchdog = _Watchdog(conn, timeout_s + CANCEL_GRACE_S, CANCEL_GRACE_S)
            try:
                with watchdog, conn.transaction():
                    cur = conn.execute("SELECT set_config('statement_timeout', %s, true)", (timeout_ms,))
                    cur.execute(psycopg_sql(query), {"domains": domain_list})
                    results[query.name] = [tuple(row[1:]) for row in cur.fetchall()]
            except psycopg.errors.QueryCanceled:
                results[query.name] = QueryFailed(query.name, f"took longer than the {timeout_s:g} s statement timeout")
            except psycopg.Error as exc:
                if watchdog.closed:
                    stalled = True
                    results[query.name] = QueryFailed(query.name, (
                        f"no answer {timeout_s + 2 * CANCEL_GRACE_S:g} s after the query began, even to a cancel "
                        "(a stalled server, pooler or network): mastoaudit closed the connection"))
                    continue
                text = (exc.diag.message_primary or str(exc)).strip() if hasattr(exc, "diag") else str(exc)
                results[query.name] = QueryFailed(query.name, _scrub_text(text, dsn, password))
                if conn.closed:
                    break
            if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                # a cancel that arrived as the query ended leaves the rollback failed: start clean
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
    finally:
        conn.close()
    facts = collect(source, results, expected=[q.name for q in wanted])
    facts.stalled = stalled
    return facts
