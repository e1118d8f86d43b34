"""The network half of a live audit, run beside the SSH collection instead of after it.

What an outsider sees of the instance (TLS, headers, exposure, ports, mail DNS, the relay, the
media bucket) is probed with expectations taken from the web host's .env.production (the bucket,
the relay, secure mode). The SSH worker reads that file first, in a round trip of its own
(sources/ssh.py EARLY_KEYS); as soon as it is in, the probes start in a thread of their own while
the other commands still run on the hosts. Their facts go to a set of their own, joined to the
first web host's facts when both halves are done, so the findings are the same as when the probes
ran after the SSH collection (a host without the file, or whose read failed, starts them at the
end with what the collection found, as before).

Meanwhile, before anything is read: the probe modules are imported in the background, and the TLS
scans of the web domain (which need nothing from the hosts) start in the TLS worker
(net/workers.py); the TLS probe takes their results when it gets there.

Which .env.production counts is the one the collection would give: the first audited host (in
inventory order) whose file could be read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .. import kinds
from ..facts import FactSet
from ..inventory import Host, Inventory
from ..kinds import APP_ROLES
from ..net import workers
from ..net.runner import Probe, all_probes
from .ssh import EARLY_KEYS, env_from_result

TargetFn = Callable[[object], object]  # env (MastodonEnv or None) -> ScanTarget

# Probes that read nothing .env.production changes (the port scan reads the hosts' addresses, the
# ports and the timeout; sources.network.with_env sets none of them): they start at once, beside
# SSH. tests/test_overlap.py holds with_env to that.
ENV_FREE = frozenset({"ports"})


class NetworkHalf:
    def __init__(self, inventory: Inventory, audited: list[Host], home: Host | None, make_target: TargetFn,
                 clock: float, progress=None) -> None:
        """`audited`: this run's hosts (inventory order); `home`: the host whose facts the network
        findings join (None: not in this run, nothing to probe); `make_target(env)`: the scan
        target given the env; `clock`: the command's start (perf_counter), for the timings."""
        self.inventory = inventory
        self.home = home
        self.make_target = make_target
        self.clock = clock
        self.progress = progress
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.facts: FactSet | None = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.done = 0
        self.total = 0
        self.staged = False
        # Hosts that may hold the env, in order, and what each gave: env, None (no file), or unknown.
        self.candidates = [h for h in audited if set(h.roles) & APP_ROLES]
        self.envs: dict[str, object] = {}
        self.probes: list[Probe] = []
        self.early_facts: FactSet | None = None
        self.early_thread: threading.Thread | None = None
        self.early_timings: dict[str, float] = {}
        if home is not None:
            # The web domain's TLS scans need nothing from the hosts: they start now, beside SSH.
            from ..probes import tls

            tls.prefetch(make_target(None))
            self.loading = threading.Thread(target=self._load, name="probe-imports", daemon=True)
            self.loading.start()

    def _load(self) -> None:
        from ..net.runner import run_probes

        self.probes = all_probes()
        early = [p for p in self.probes if p.name in ENV_FREE]
        if early:
            assert self.home is not None
            self.early_facts = FactSet(target=self.home.name)
            target = self.make_target(None)

            def run() -> None:
                self.early_timings = run_probes(target, self.early_facts, early, on_done=self._probe_done)

            self.early_thread = threading.Thread(target=run, name="network-early", daemon=True)
            self.early_thread.start()

    def _seconds(self, at: float | None) -> float | None:
        return None if at is None else round(at - self.clock, 3)

    # --- fed by the SSH collection ------------------------------------------------------------

    def on_result(self, host: str, key: str, result: dict) -> None:
        if self.home is None or key not in EARLY_KEYS:
            return
        spec = next((h for h in self.candidates if h.name == host), None)
        if spec is None:
            return
        env = env_from_result(self.inventory, spec, result) if "error" not in result else None
        with self.lock:
            self.envs[host] = env
        self._maybe_start()

    def on_host(self, host: str, event: str) -> None:
        """A host that failed or finished without an env result has none to give."""
        if self.home is None or not event.startswith(("failed", "done")):
            return
        with self.lock:
            self.envs.setdefault(host, None)
        self._maybe_start()

    def _maybe_start(self) -> None:
        with self.lock:
            if self.thread is not None:
                return
            for h in self.candidates:
                if h.name not in self.envs:
                    return  # an earlier host may still give the env that counts
                if self.envs[h.name] is not None:
                    self._start(self.envs[h.name])
                    return
            self._start(None)

    def _start(self, env: object) -> None:
        """Under self.lock."""
        assert self.home is not None
        self.loading.join()
        target = self.make_target(env)
        self.facts = FactSet(target=self.home.name)
        self.total = len(self.probes)  # the early ones count too
        self.started_at = time.perf_counter()
        if self.progress is not None:
            self.progress.update("probing from the network too")
        self.thread = threading.Thread(target=self._run, args=(target,), name="network-half", daemon=True)
        self.thread.start()

    def _run(self, target) -> None:
        from .network import collect_network

        try:
            collect_network(target, facts=self.facts, probes=[p for p in self.probes if p.name not in ENV_FREE],
                            on_done=self._probe_done)
        except BaseException as exc:  # reported by finish() in the main thread
            self.error = exc
        finally:
            self.ended_at = time.perf_counter()

    def _probe_done(self, name: str) -> None:
        with self.lock:
            self.done += 1
            if self.progress is not None and self.staged:
                self.progress.advance(f"{name} done")

    # --- after the SSH collection -------------------------------------------------------------

    def finish(self, targets: list[FactSet]) -> dict | None:
        """Wait for the probes (starting them now if the env never came early), join their facts
        to the home host's, and return the timings of the network half."""
        if self.home is None:
            return None
        home = next((f for f in targets if f.target == self.home.name), None)
        if home is None:
            return None
        with self.lock:
            if self.thread is None:
                env = next((f.first(kinds.MASTODON_ENV) for f in targets if f.has(kinds.MASTODON_ENV)), None)
                self._start(env)
            if self.progress is not None and self.thread.is_alive():
                self.progress.stage(f"probing {self.inventory.web_domain} from the network", total=self.total)
                self.progress.advance(by=self.done)
                self.staged = True
        assert self.thread is not None and self.facts is not None
        self.thread.join()
        if self.early_thread is not None:
            self.early_thread.join()
        workers.forget_prefetched()
        if self.error is not None:
            raise self.error
        timings = self.facts.first(kinds.PROBE_TIMINGS)
        if isinstance(timings, dict):
            timings.update(self.early_timings)
        for found in (self.facts, self.early_facts):
            if found is None:
                continue
            for kind in found.kinds():
                if kind == kinds.HOST_INFO.name and home.has(kinds.HOST_INFO):
                    continue
                for fact in found.all(kind):
                    home.add(kind, fact)
            home.problems.extend(found.problems)
            home.secrets.update(found.secrets)
        return {"start_s": self._seconds(self.started_at), "end_s": self._seconds(self.ended_at),
                "probes": dict(sorted((self.facts.first(kinds.PROBE_TIMINGS) or {}).items(), key=lambda kv: -kv[1]))}
