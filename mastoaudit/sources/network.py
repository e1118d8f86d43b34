"""The network collector: everything an outsider can see of an instance, as facts.

The target comes from mastoaudit/targets.py (`scan`: the options; `audit`: the inventory and the
web host's own .env.production, so the network checks can compare what the configuration promises
with what the network shows).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import kinds
from ..facts import FactSet, HostInfo
from ..net.runner import Probe, all_probes, run_probes
from ..net.target import ScanTarget

# Seconds for all the probes of one scan: they run at once, the longest may take 60 s; past this no
# request or socket of the scan is left open (issue 7: the run ends when its deadline says so).
RUN_BUDGET = 90.0


def collect_network(target: ScanTarget, facts: FactSet | None = None, probes: list[Probe] | None = None,
                    on_done: Callable[[str], None] | None = None) -> FactSet:
    """Run every probe against the target; add the facts to `facts` (a live host's) or a new set.
    `on_done(name)` is called as each probe ends."""
    facts = facts if facts is not None else FactSet(target=target.name)
    if not facts.has(kinds.HOST_INFO):
        facts.add(kinds.HOST_INFO, HostInfo(target.name, target.addresses[0] if target.addresses else "", ("web",),
                                            target.local_domain, target.web_domain))
    facts.add(kinds.SCAN_TARGET, target)
    durations = run_probes(target, facts, probes if probes is not None else all_probes(), run_timeout=RUN_BUDGET,
                           on_done=on_done)
    facts.add(kinds.PROBE_TIMINGS, durations)
    return facts
