"""The NodeInfo sweep: every peer's software and version, read through the one outbound client.

For each peer: `https://PEER/.well-known/nodeinfo` (redirects followed, each hop judged), the link
of the highest NodeInfo 2.x schema it offers (the old single-object `links` form read too), then
that document's `software.name` and `software.version`; or the kind of error that stopped it
(`PeerError`). Nothing is retried: one attempt per peer per run.

What a hostile peer can do to the run, and what it cannot:

- **Where connections go.** Every address (the peer's, each redirect's, the NodeInfo link's) is
  judged by the `AddressPolicy` of the one client and connected to as the very address judged:
  loopback, private, link-local, CGNAT, metadata and other special addresses are never contacted
  unless the user allowed them by name or network. A name is looked up once per run (the answer is
  cached), so a second look-up cannot answer differently.
- **Time.** Each peer has one time limit for everything it costs (index, document, every redirect,
  the contact look-up), enforced by cancellation: a server trickling a byte a second ends as that
  peer's `timeout`. The limit starts when the peer holds its address slot, not while it queues
  behind other peers on the same address: on shared hosting (thousands of instances behind a few
  addresses) a healthy peer waiting behind slow neighbours is never reported as timed out. What
  bounds the queue is the run's own time limit: a peer whose turn has not come when it ends is
  `not-swept` (unknown, and the run is incomplete), never `timeout`. DNS has its own limit, before
  the slot. So a slow peer adds at most `dns_time + peer_time` to its own result, and holds one of
  `in_flight` slots (and one of `per_address` on its address) for at most `peer_time`.
- **Bounds.** At most `in_flight` peers at once, `per_address` per address, a size cap per
  document (after decompression: a gzip bomb inflates only to the cap), at most `max_redirects`
  redirects, headers bounded by the client; no cookies; a User-Agent naming the tool.
- **Errors are the peer's.** Junk, HTML, invalid or too deeply nested JSON, a huge body, a redirect
  loop or a redirect to a forbidden address end as that peer's error with its kind and an escaped
  excerpt; the sweep goes on. Only the run's time limit makes a run incomplete.

Admin contacts (for the letter seed 000 sent) are looked up only when asked, only for the peers
asked about (those about to be blocked), from NodeInfo metadata or `/api/v2/instance` (then
`/api/v1/instance`); they stay in memory for the contacts file.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..addresses import AddressPolicy, parse_ip, split_host_port
from ..net.client import Client, FetchError, KeyedLimit, Kind, Limits, bounded_map
from ..net.text import excerpt as escape
from ..probes.mastodon_api import NODEINFO_BYTES, parse_nodeinfo_document, parse_nodeinfo_index
from .peers import Contact, Peer, PeerError, PeerResult

INSTANCE_BYTES = 256 * 1024  # /api/v2/instance carries rules and descriptions: larger than NodeInfo
_SOFTWARE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_EMAIL = re.compile(r"^[^\s@<>\"',;]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")
_ACCOUNT = re.compile(r"^@?[A-Za-z0-9_.-]{1,64}(@[A-Za-z0-9.-]{1,190})?$")

# The client's kinds in the sweep's words.
_KINDS = {
    Kind.DNS: PeerError.DNS, Kind.PRIVATE: PeerError.PRIVATE_ADDRESS, Kind.REFUSED: PeerError.REFUSED,
    Kind.UNREACHABLE: PeerError.UNREACHABLE, Kind.TLS: PeerError.TLS, Kind.TIMEOUT: PeerError.TIMEOUT,
    Kind.PROTOCOL: PeerError.PROTOCOL, Kind.RESET: PeerError.RESET, Kind.TOO_LARGE: PeerError.TOO_LARGE,
    Kind.REDIRECTS: PeerError.REDIRECT_LOOP, Kind.REDIRECT_REFUSED: PeerError.REDIRECT_REFUSED,
    Kind.STATUS: PeerError.HTTP_STATUS, Kind.NOT_JSON: PeerError.INVALID_JSON, Kind.BAD_URL: PeerError.NOT_NODEINFO,
}


@dataclass(frozen=True)
class SweepLimits:
    peer_time: float = 10.0  # seconds per peer, from the moment it holds its address slot
    dns_time: float = 5.0  # seconds for the peer's name to resolve (before the slot)
    run_time: float = 1800.0  # seconds for the whole sweep; peers not reached by then are not-swept
    in_flight: int = 256  # peers swept at once
    per_address: int = 4  # peers swept at once on one address
    max_bytes: int = NODEINFO_BYTES  # per document, decompressed
    max_redirects: int = 3  # per request (Mastodon's own outbound requests follow 3)

    def client_limits(self) -> Limits:
        step = min(5.0, self.peer_time)
        # The client's own per-request bounds sit above the sweep's per-peer ones, so that the
        # sweep's limits are the ones that bind (a peer's requests never queue behind its own slot).
        return Limits(connect=step, read=step, total=self.peer_time, max_body=max(self.max_bytes, INSTANCE_BYTES),
                      max_redirects=self.max_redirects, concurrency=self.in_flight * 2,
                      per_address=self.per_address * 2, keepalive=5.0, max_idle=self.in_flight)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --- names to addresses ------------------------------------------------------------------------


class PeerResolver:
    """A peer's name to its addresses, looked up once per run.

    A fixed map first (exact names, and `*.suffix` for every name under a suffix: tests, labs, the
    demo), then DNS: a given server (`server=(ip, port)`), the system's configured resolvers
    (`server="system"`, looked up concurrently with dnspython; /etc/hosts is not read), or none at
    all (`server=None`: a closed world where unmapped names do not resolve). An answer is data from
    the network: the client judges every address before connecting."""

    def __init__(self, fixed: Mapping[str, Sequence[str]] | None = None,
                 server: tuple[str, int] | str | None = "system", timeout: float = 5.0) -> None:
        self.exact: dict[str, tuple[str, ...]] = {}
        self.suffixes: list[tuple[str, tuple[str, ...]]] = []
        for name, addresses in (fixed or {}).items():
            key = name.lower().rstrip(".")
            if key.startswith("*."):
                self.suffixes.append((key[1:], tuple(addresses)))
            else:
                self.exact[key] = tuple(addresses)
        self.suffixes.sort(key=lambda item: -len(item[0]))  # the longest suffix wins
        self.server = server
        self.timeout = timeout
        self._cache: dict[str, asyncio.Future] = {}
        self._dns = None

    def fixed(self, name: str) -> tuple[str, ...] | None:
        if name in self.exact:
            return self.exact[name]
        return next((addresses for suffix, addresses in self.suffixes if name.endswith(suffix)), None)

    async def __call__(self, name: str) -> list[str]:
        key = name.lower().rstrip(".")
        found = self.fixed(key)
        if found is not None:
            return list(found)
        if parse_ip(key) is not None:
            return [key]
        future = self._cache.get(key)
        if future is None:
            future = self._cache[key] = asyncio.ensure_future(self._lookup(key))
        return list(await asyncio.shield(future))

    async def _lookup(self, name: str) -> tuple[str, ...]:
        if self.server is None:
            return ()
        import dns.asyncresolver
        import dns.exception
        import dns.resolver

        if self._dns is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=self.server == "system")
            except dns.resolver.NoResolverConfiguration:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = ["127.0.0.1"]
            if isinstance(self.server, tuple):
                resolver.nameservers = [self.server[0]]
                resolver.port = self.server[1]
            resolver.lifetime = self.timeout
            self._dns = resolver

        async def ask(rdtype: str) -> list[str]:
            try:
                answer = await self._dns.resolve(name, rdtype, raise_on_no_answer=False, search=False)
            except (dns.exception.DNSException, ValueError, OSError):
                return []
            return [r.to_text() for r in answer][:8]

        v4, v6 = await asyncio.gather(ask("A"), ask("AAAA"))
        return tuple(dict.fromkeys([*v4, *v6]))


def read_resolve_entries(entries: Iterable[str]) -> dict[str, list[str]]:
    """`NAME=IP` (or `*.SUFFIX=IP`) entries; ValueError names a bad one."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        name, sep, address = entry.partition("=")
        name = name.strip().lower().rstrip(".")
        ip = parse_ip(address.strip())
        if not sep or not name or ip is None:
            raise ValueError(f"{entry!r}: expected NAME=IP (NAME may be *.SUFFIX)")
        out.setdefault(name, []).append(str(ip))
    return out


def read_hosts_file(text: str, where: str) -> dict[str, list[str]]:
    """A hosts-file map: `IP NAME [NAME...]` a line, '#' comments; NAME may be `*.SUFFIX`."""
    out: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        ip = parse_ip(fields[0])
        if ip is None or len(fields) < 2:
            raise ValueError(f"{where}:{number}: expected 'IP NAME [NAME...]'")
        for name in fields[1:]:
            out.setdefault(name.lower().rstrip("."), []).append(str(ip))
    return out


# --- the sweep ------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What a sweep did, for the report's `sweep` object (the peers' results are kept apart)."""

    peers: int = 0
    duration_s: float = 0.0
    cpu_s: float = 0.0
    requests: int = 0
    errors: Counter = field(default_factory=Counter)
    not_swept: int = 0
    slowest_s: float = 0.0  # the longest a peer took, slot wait excluded
    limits: SweepLimits = field(default_factory=SweepLimits)
    contacts_looked_up: int = 0
    shard: str | None = None
    workers: int = 1  # processes that swept

    def to_dict(self) -> dict:
        return {"peers": self.peers, "duration_s": round(self.duration_s, 3), "cpu_s": round(self.cpu_s, 3),
                "requests": self.requests, "errors": dict(sorted(self.errors.items())), "not_swept": self.not_swept,
                "slowest_peer_s": round(self.slowest_s, 3), "limits": self.limits.to_dict(),
                "worst_case_peer_s": self.limits.dns_time + self.limits.peer_time,
                "contacts_looked_up": self.contacts_looked_up, "shard": self.shard, "workers": self.workers}


class _Failed(Exception):
    def __init__(self, kind: PeerError, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = escape(detail, 300)


class Sweep:
    """One sweep: `await Sweep(...).run(peers)` gives every peer's PeerResult, in the given order."""

    def __init__(self, policy: AddressPolicy, resolver: PeerResolver, limits: SweepLimits | None = None,
                 ca_bundle: str | None = None, on_result: Callable[[PeerResult], None] | None = None) -> None:
        self.policy = policy
        self.resolver = resolver
        self.limits = limits or SweepLimits()
        self.ca_bundle = ca_bundle
        self.on_result = on_result
        self.report = SweepReport(limits=self.limits)
        self._gate = KeyedLimit(self.limits.per_address)
        self._client: Client | None = None
        self._run_deadline = 0.0

    # --- public --------------------------------------------------------------------------------

    async def run(self, peers: Sequence[Peer]) -> list[PeerResult]:
        loop = asyncio.get_running_loop()
        self._client = Client(self.policy, resolve=self.resolver, limits=self.limits.client_limits(),
                              ca_bundle=self.ca_bundle)
        started, cpu = loop.time(), time.process_time()
        self._run_deadline = started + self.limits.run_time
        results: dict[str, PeerResult] = {}
        try:
            async for result in bounded_map(self._peer, peers, self.limits.in_flight):
                results[result.domain] = result
                if result.error is not None:
                    self.report.errors[result.error.value] += 1
                if self.on_result is not None:
                    self.on_result(result)
        finally:
            await self._client.close()
        self.report.peers = len(results)
        self.report.not_swept = self.report.errors.get(PeerError.NOT_SWEPT.value, 0)
        self.report.duration_s = loop.time() - started
        self.report.cpu_s = time.process_time() - cpu
        return [results[p.domain] for p in peers]

    async def contacts(self, results: Sequence[PeerResult]) -> None:
        """Fill `contact` of each result (NodeInfo metadata first, then the instance API); each peer
        within its own time limit, the run's limits as for the sweep."""
        loop = asyncio.get_running_loop()
        self._client = Client(self.policy, resolve=self.resolver, limits=self.limits.client_limits(),
                              ca_bundle=self.ca_bundle)
        self._run_deadline = loop.time() + self.limits.run_time
        try:
            async for _ in bounded_map(self._contact, results, self.limits.in_flight):
                pass
        finally:
            await self._client.close()

    # --- one peer ------------------------------------------------------------------------------

    async def _peer(self, peer: Peer) -> PeerResult:
        result = PeerResult(peer.domain, unavailable=peer.unavailable)
        try:
            await self._slotted(result, self._nodeinfo)
        except _Failed as failed:
            result.error, result.detail = failed.kind, failed.detail
        return result

    async def _slotted(self, result: PeerResult, work) -> None:
        """Resolve the peer's name, wait for a slot on its address, then `work(result, deadline)`
        within the peer's time limit (the wait does not count; the run's limit bounds it)."""
        loop = asyncio.get_running_loop()
        if loop.time() >= self._run_deadline:
            raise _Failed(PeerError.NOT_SWEPT, "the run's time limit ended before this peer's turn")
        host, _ = split_host_port(result.domain)
        try:
            async with asyncio.timeout(self.limits.dns_time):
                addresses = await self.resolver(host)
        except TimeoutError:
            raise _Failed(PeerError.DNS, f"{host}: no DNS answer within {self.limits.dns_time:g} s") from None
        if not addresses:
            raise _Failed(PeerError.DNS, f"{host} does not resolve")
        allowed = [a for a in addresses if self.policy.permits(a, host)]
        if not allowed:
            raise _Failed(PeerError.PRIVATE_ADDRESS,
                          f"{host} resolves to {self.policy.refusal(addresses[0], host) or 'a forbidden address'}")
        result.address = allowed[0]
        began = loop.time()
        try:
            async with asyncio.timeout_at(self._run_deadline):
                async with self._gate.slot(allowed[0]):
                    began = loop.time()
                    try:
                        await work(result, min(began + self.limits.peer_time, self._run_deadline))
                    finally:
                        self.report.slowest_s = max(self.report.slowest_s, loop.time() - began)
        except TimeoutError:
            raise _Failed(PeerError.NOT_SWEPT, "the run's time limit ended while this peer waited for its "
                          f"address ({allowed[0]}, shared with other peers)") from None
        except _Failed as failed:
            if failed.kind is PeerError.TIMEOUT and loop.time() >= self._run_deadline - 0.01 and \
                    loop.time() < began + self.limits.peer_time - 0.01:
                raise _Failed(PeerError.NOT_SWEPT, "the run's time limit ended during this peer's sweep") from None
            raise

    async def _get(self, url: str, deadline: float, max_bytes: int, what: str) -> tuple[bytes, object]:
        """GET a JSON document within the peer's deadline: (body, parsed JSON), or _Failed."""
        assert self._client is not None
        self.report.requests += 1
        try:
            response = await self._client.request(url, headers={"Accept": "application/json"}, follow=True,
                                                  max_body=max_bytes, deadline=deadline, verify="require",
                                                  decompress=True)
        except FetchError as exc:
            raise _Failed(_KINDS.get(exc.kind, PeerError.OTHER), f"{what}: {exc}") from None
        self.report.requests += len(response.redirects)
        if response.blocked_redirect:
            raise _Failed(PeerError.REDIRECT_REFUSED, f"{what}: redirect {response.blocked_redirect}")
        if response.status != 200:
            raise _Failed(PeerError.HTTP_STATUS, f"{what}: {url[:200]} answered {response.status}")
        if response.truncated:
            raise _Failed(PeerError.TOO_LARGE, f"{what}: larger than {max_bytes} bytes")
        try:
            return response.body, json.loads(response.body.decode("utf-8"))
        except RecursionError:
            raise _Failed(PeerError.TOO_DEEP, f"{what}: JSON nested too deeply to read") from None
        except (ValueError, UnicodeDecodeError):
            kind = PeerError.NOT_NODEINFO if response.body.lstrip()[:1] == b"<" else PeerError.INVALID_JSON
            excerpt = response.body[:120].decode("utf-8", "replace")
            raise _Failed(kind, f"{what}: not JSON: {excerpt!r}") from None

    async def _nodeinfo(self, result: PeerResult, deadline: float) -> None:
        index_url = f"https://{result.domain}/.well-known/nodeinfo"
        body, _ = await self._get(index_url, deadline, self.limits.max_bytes, "NodeInfo index")
        href, schema, problem = parse_nodeinfo_index(body)
        if problem or href is None:
            raise _Failed(PeerError.NOT_NODEINFO, f"NodeInfo index: {problem}")
        result.nodeinfo_url, result.schema = escape(href, 300), schema
        try:
            body, doc = await self._get(href, deadline, self.limits.max_bytes, f"NodeInfo {schema}")
        except _Failed as failed:
            if failed.kind is PeerError.PRIVATE_ADDRESS:
                raise _Failed(PeerError.LINK_REFUSED, f"the NodeInfo link was not followed: {failed.detail}") from None
            raise
        parsed = parse_nodeinfo_document(body)
        name = (parsed["software_name"] or "").strip().lower()
        if not _SOFTWARE.match(name):
            raise _Failed(PeerError.NOT_NODEINFO, f"NodeInfo {schema}: {parsed['problem'] or 'no software name'}")
        result.software = name
        result.version = parsed["software_version"]
        contact = _nodeinfo_contact(doc)
        if contact is not None:
            result.extra["nodeinfo_contact"] = contact

    async def _contact(self, result: PeerResult) -> None:
        self.report.contacts_looked_up += 1
        known = result.extra.pop("nodeinfo_contact", None)
        if known is not None:
            result.contact = known
        else:
            try:
                await self._slotted(result, self._instance_contact)
            except _Failed as failed:
                result.extra["contact_problem"] = f"{failed.kind.value}: {failed.detail}"
        result.extra["contact_found"] = result.contact is not None

    async def _instance_contact(self, result: PeerResult, deadline: float) -> None:
        base = f"https://{result.domain}"
        try:
            _, doc = await self._get(f"{base}/api/v2/instance", deadline, INSTANCE_BYTES, "instance API v2")
            contact = _v2_contact(doc)
        except _Failed as failed:
            if failed.kind is not PeerError.HTTP_STATUS:
                raise
            contact = None
        if contact is None:  # Mastodon before 4.0, Pixelfed and others speak the v1 API only
            _, doc = await self._get(f"{base}/api/v1/instance", deadline, INSTANCE_BYTES, "instance API v1")
            contact = _v1_contact(doc)
        result.contact = contact


# --- contacts in the documents peers publish ------------------------------------------------------


def _clean_email(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and _EMAIL.match(value.strip()) else None


def _clean_account(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if value.startswith("https://") and len(value) <= 300 and not any(c.isspace() or ord(c) < 0x20 for c in value):
        return value
    return value if _ACCOUNT.match(value) else None


def _nodeinfo_contact(doc: object) -> Contact | None:
    """Misskey's `metadata.maintainer.email`, others' `metadata.email`/`contactEmail`; Pleroma and
    Akkoma list `metadata.staffAccounts` (actor URLs)."""
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(meta, dict):
        return None
    maintainer = meta.get("maintainer") if isinstance(meta.get("maintainer"), dict) else {}
    email = _clean_email(maintainer.get("email")) or _clean_email(meta.get("email")) or \
        _clean_email(meta.get("contactEmail"))
    staff = meta.get("staffAccounts")
    account = _clean_account(staff[0]) if isinstance(staff, list) and staff else None
    return Contact(email, account, "nodeinfo") if email or account else None


def _v2_contact(doc: object) -> Contact | None:
    contact = doc.get("contact") if isinstance(doc, dict) else None
    if not isinstance(contact, dict):
        return None
    account = contact.get("account") if isinstance(contact.get("account"), dict) else {}
    email, acct = _clean_email(contact.get("email")), _clean_account(account.get("acct"))
    return Contact(email, acct, "api/v2/instance") if email or acct else None


def _v1_contact(doc: object) -> Contact | None:
    if not isinstance(doc, dict):
        return None
    account = doc.get("contact_account") if isinstance(doc.get("contact_account"), dict) else {}
    email, acct = _clean_email(doc.get("email")), _clean_account(account.get("acct"))
    return Contact(email, acct, "api/v1/instance") if email or acct else None


# --- the instance's own peer list ---------------------------------------------------------------

PEER_LIST_BYTES = 64 * 1024 * 1024  # mastodon.social knows about 100,000 domains: a few MB


async def instance_peers(client: Client, domain: str, timeout: float) -> list[str]:
    """GET https://DOMAIN/api/v1/instance/peers (the instance's known domains). FetchError when it
    cannot be read: 404 means the API is switched off or limited federation mode is on."""
    loop = asyncio.get_running_loop()
    url = f"https://{domain}/api/v1/instance/peers"
    response = await client.request(url, headers={"Accept": "application/json"}, follow=True,
                                    max_body=PEER_LIST_BYTES, deadline=loop.time() + timeout, verify="require",
                                    decompress=True)
    if response.blocked_redirect:
        raise FetchError(Kind.REDIRECT_REFUSED, f"{url}: redirect {response.blocked_redirect}")
    if response.status == 404:
        raise FetchError(Kind.STATUS, f"{url} answered 404: the peers API is switched off "
                         "(or limited federation mode is on)")
    if response.status != 200:
        raise FetchError(Kind.STATUS, f"{url} answered {response.status}")
    if response.truncated:
        raise FetchError(Kind.TOO_LARGE, f"{url}: larger than {PEER_LIST_BYTES // (1024 * 1024)} MB")
    try:
        doc = json.loads(response.body.decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise FetchError(Kind.NOT_JSON, f"{url}: not JSON") from None
    if not isinstance(doc, list):
        raise FetchError(Kind.NOT_JSON, f"{url}: not a list of domains")
    return [d for d in doc if isinstance(d, str)]


# --- running it ---------------------------------------------------------------------------------


class SweepFailed(Exception):
    """A worker process of the sweep failed (not a peer: the sweep itself)."""


def run_async(coro):
    """asyncio.run, also from code that already runs an event loop in this thread (a notebook, a
    test driving a browser): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mastoaudit-sweep") as pool:
        return pool.submit(asyncio.run, coro).result()


# --- more than one core -------------------------------------------------------------------------


PEERS_PER_WORKER = 2000  # below this, one process sweeps faster than starting another


def workers_for(peers: int, asked: int | None) -> int:
    """The worker processes to use: as asked, else one per core (at most 4) for large sweeps. A
    sweep is CPU-bound once peers answer fast (TLS handshakes, HTTP, JSON: about 1.5 ms a peer)."""
    import os

    if asked is not None:
        return max(1, min(asked, max(1, peers)))
    return max(1, min(os.cpu_count() or 1, 4, peers // PEERS_PER_WORKER))


def _worker(index: int, peers: list[Peer], policy: AddressPolicy, resolver: PeerResolver, limits: SweepLimits,
            ca_bundle: str | None, ticks, out) -> None:
    """One worker process (forked: its arguments are inherited, not pickled): sweep, then send the
    results back; progress goes up in batches."""
    done = [0]

    def tick(_result: PeerResult) -> None:
        done[0] += 1
        if done[0] % 50 == 0:
            ticks.put(50)

    try:
        sweep = Sweep(policy, resolver, limits, ca_bundle=ca_bundle, on_result=tick)
        results = asyncio.run(sweep.run(peers))
        ticks.put(done[0] % 50)
        out.put((index, results, sweep.report, None))
    except BaseException as exc:  # the parent says which worker failed and why
        out.put((index, [], None, f"{type(exc).__name__}: {exc}"))


def sweep_peers(peers: Sequence[Peer], policy: AddressPolicy, resolver: PeerResolver, limits: SweepLimits,
                ca_bundle: str | None = None, workers: int = 1,
                on_progress: Callable[[int], None] | None = None) -> tuple[list[PeerResult], SweepReport]:
    """Sweep `peers` in this process, or split among `workers` forked processes (each peer goes to
    the worker `shard_of(domain, workers)` names: the --shard rule): the results in the given order,
    and the figures of the whole. The workers share the limits: each keeps its part of the peers in
    flight and of the peers per address, so the whole sweep holds no more than one process would."""
    if workers <= 1:
        sweep = Sweep(policy, resolver, limits, ca_bundle=ca_bundle,
                      on_result=(lambda _r: on_progress(1)) if on_progress else None)
        return run_async(sweep.run(peers)), sweep.report
    import multiprocessing
    import queue

    from ..shard import shard_of

    groups: list[list[Peer]] = [[] for _ in range(workers)]
    for peer in peers:
        groups[shard_of(peer.domain, workers) - 1].append(peer)
    shared = replace(limits, in_flight=max(1, limits.in_flight // workers),
                     per_address=max(1, limits.per_address // workers))
    context = multiprocessing.get_context("fork")  # the resolver map and the policy are inherited, not copied
    ticks, out = context.Queue(), context.Queue()
    started, cpu = time.monotonic(), time.process_time()
    procs = [context.Process(target=_worker, args=(i, group, policy, resolver, shared, ca_bundle, ticks, out),
                             name=f"mastoaudit-sweep-{i + 1}", daemon=True)
             for i, group in enumerate(groups) if group]
    for proc in procs:
        proc.start()
    parts: dict[int, tuple] = {}
    try:
        while len(parts) < len(procs):
            try:
                index, results, report, failure = out.get(timeout=0.1)
                parts[index] = (results, report, failure)
            except queue.Empty:
                if not any(proc.is_alive() for proc in procs) and out.empty():
                    break
            while True:
                try:
                    n = ticks.get_nowait()
                except queue.Empty:
                    break
                if on_progress:
                    on_progress(n)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    failed = [f"worker {i + 1}: {part[2]}" for i, part in parts.items() if part[2]]
    if failed or len(parts) < len(procs):
        raise SweepFailed("the sweep's worker processes failed: " + ("; ".join(failed) or "a worker died"))
    by_domain = {r.domain: r for results, _, _ in parts.values() for r in results}
    report = SweepReport(peers=len(by_domain), limits=limits, workers=workers)
    for _, part, _ in parts.values():
        report.requests += part.requests
        report.errors.update(part.errors)
        report.slowest_s = max(report.slowest_s, part.slowest_s)
        report.cpu_s += part.cpu_s
    report.not_swept = report.errors.get(PeerError.NOT_SWEPT.value, 0)
    report.duration_s = time.monotonic() - started
    report.cpu_s += time.process_time() - cpu
    return [by_domain[p.domain] for p in peers], report
