"""What answered on the internal services' ports from the auditor's side (probe: ports), per address
and service, for the checks of each service (ports.exposed, ports.redis-noauth, ...).

A scan address in 127.0.0.0/8 is what the user pointed the scan at (the lab's public address), so it
is the outside view; an extra address that is private (RFC 1918) only warns: the auditor may be
inside the network the app hosts share.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .. import kinds
from ..checkdef import passed, skipped
from ..facts import FactSet
from ..facts.ports import PortResult, PortScan
from ..model import Location, Outcome


def scanned(facts: FactSet) -> tuple[PortScan | None, list[PortResult]]:
    return facts.first(kinds.PORT_SCAN), facts.all(kinds.PORT)


def by_address(scan: PortScan, results: list[PortResult]) -> Iterator[tuple[str, list[PortResult]]]:
    for address in scan.addresses:
        yield address, [r for r in results if r.address == address]


def port_list(scan: PortScan) -> str:
    return ", ".join(map(str, scan.ports))


def nothing_answers(scan: PortScan, address: str, rows: list[PortResult], what: str = "") -> Outcome:
    """The pass (or skip) when nothing of interest answered on an address."""
    states = {s: sum(1 for r in rows if r.state == s) for s in ("open", "closed", "filtered", "unreachable")}
    observed = ", ".join(f"{n} {s}" for s, n in states.items() if n)
    if rows and states["unreachable"] == len(rows):
        return skipped(f"{address} could not be reached at all ({rows[0].reason}): nothing could be judged",
                       at=Location(address), subject=address, observed=observed, expected="an answer or a refusal")
    opened = [str(r.port) for r in rows if r.state == "open"]
    head = f"no {what} answered" if what and opened else "nothing answered"
    extra = f" (open: {', '.join(opened)})" if opened else ""
    return passed(f"{head} on ports {port_list(scan)} of {address}{extra}", at=Location(address), subject=address,
                  observed=observed or "no answer", expected="nothing reachable from outside")


Row = tuple[PortResult | None, Outcome | None]


def per_service(facts: FactSet, services: Iterable[str], what: str) -> Iterator[Row]:
    """Each scanned address: its rows of the given services, or the pass saying none answered."""
    scan, results = scanned(facts)
    if scan is None:
        return
    for address, rows in by_address(scan, results):
        found = [r for r in rows if r.state == "open" and r.service in services]
        if not found:
            yield None, nothing_answers(scan, address, rows, what)
        for row in found:
            yield row, None
