"""Bench: a live audit over SSH of one host, then of a fleet of 20 sshd targets on loopback.

    python3 bench/bench_audit.py [--hosts 20] [--lab-inventory PATH]

Each target is a real sshd on 127.0.0.1 (its own port and host key) serving the demo/hardened tree
through the inventory's path_prefix, so every allow-listed command runs for real. With
--lab-inventory it also times the lab's inventory (see lab/README.md). Prints wall time and peak
RSS of the whole audit (the CLI and its SSH worker). Targets (issue 3): one host under 5 s; 20 hosts
under twice the one-host time and under 300 MB. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import sshhost  # noqa: E402  (the tests' real-sshd helper)


def inventory(hosts: list[sshhost.SshHost], path: Path) -> Path:
    lines = ["instance:", "  local_domain: bench.example", "hosts:"]
    for n, host in enumerate(hosts):
        lines += [
            f"  host{n}:", "    address: 127.0.0.1", "    roles: [app, db, redis, search]",
            f"    path_prefix: {ROOT / 'demo/hardened'}",
            f"    ssh: {{user: {sshhost.AUDIT_USER}, sudo: true, port: {host.port}, key: {host.client_key}, "
            f"known_hosts: {host.known_hosts}}}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def timed_audit(inv: Path, out: Path) -> tuple[float, float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mastoaudit", "audit", "-i", str(inv), "-q", "-f", "json",
                           "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode == 2:
        raise SystemExit(done.stderr)
    # ru_maxrss of children is the largest single process (the CLI or its SSH worker); CPU is both.
    return wall, max(usage.ru_maxrss, before) / 1024, usage.ru_utime + usage.ru_stime - cpu_before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--lab-inventory", type=Path)
    args = parser.parse_args()
    if (reason := sshhost.can_run()) is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mastoaudit-bench-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        sshhost.ensure_test_users()
        fleet = [sshhost.start(base / f"sshd{n}") for n in range(args.hosts)]
        try:
            one_wall, one_rss, one_cpu = timed_audit(inventory(fleet[:1], base / "one.yaml"), base / "one.json")
            many_wall, many_rss, many_cpu = timed_audit(inventory(fleet, base / "many.yaml"), base / "many.json")
        finally:
            for host in fleet:
                host.stop()
        print(f"one host:  {one_wall:5.2f} s wall, {one_cpu:4.2f} s CPU (auditor), peak RSS {one_rss:.0f} MB"
              "   (target < 5 s)")
        print(f"{args.hosts:2d} hosts:  {many_wall:5.2f} s wall, {many_cpu:4.2f} s CPU (auditor), "
              f"peak RSS {many_rss:.0f} MB   (target < {2 * one_wall:.2f} s = 2 x one host, < 300 MB)")
        print(f"({os.cpu_count()} cores, shared by the auditor, the {args.hosts} sshd targets and their commands)")
        if args.lab_inventory:
            lab_wall, lab_rss, lab_cpu = timed_audit(args.lab_inventory, base / "lab.json")
            print(f"lab:       {lab_wall:5.2f} s wall, {lab_cpu:4.2f} s CPU (auditor), peak RSS {lab_rss:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
