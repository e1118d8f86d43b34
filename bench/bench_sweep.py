"""Bench: `mastoaudit federation peers` sweeping 30,000 peers (the size of today's fediverse) served
by a local nginx (lab/peers.py) over HTTPS with verified certificates, a tenth of them hostile.

    python3 bench/bench_sweep.py [--peers 30000] [--hostile 0.1] [--addresses 250]
                                     [--in-flight 512] [--per-address 8] [--peer-timeout 5]

The real command runs as a subprocess, end to end: the peer list from a file, the sweep, the
advisory matching, the breakdown and the JSON and HTML reports. Peers are spread over --addresses
loopback addresses (127.89.x.y) so the per-address limit works as on the real fediverse; the
hostile tenth cycles through slow (one byte a second), huge (20 MB), gzip bomb, a redirect to
169.254.169.254, a redirect loop, a NodeInfo link to the metadata address, invalid JSON, JSON
nested 5,000 deep, an HTML page and no NodeInfo at all. Prints the wall time, peers per second,
CPU seconds per peer (the command's own, nginx apart), the command's peak RSS, the error kinds, and
the worst case a slow peer adds (its DNS and per-peer limits, by construction; and as measured).
Figures are printed, never asserted. Only loopback addresses are touched. Needs root (port 443).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.peers import HOSTILE, PeerServer, ServedPeer, can_run  # noqa: E402

KINDS = ("slow", "huge", "bomb", "redirect-metadata", "loop", "link-metadata", "invalid-json", "deep", "html",
         "none")
VERSIONS = [("mastodon", "4.5.11"), ("mastodon", "4.4.3"), ("mastodon", "4.5.11+glitch"), ("pixelfed", "0.12.4"),
            ("pixelfed", "0.12.5"), ("misskey", "2026.5.0"), ("lemmy", "0.19.17"), ("gotosocial", "0.19.1"),
            ("akkoma", "3.13.2")]


def tree_memory(pid: int) -> int:
    """KiB of memory of `pid` and its children (the sweep's workers), as PSS: a page the forked
    workers share with the command is counted once, split between them, not once per process."""
    total = 0
    for task in Path("/proc").iterdir():
        if not task.name.isdigit():
            continue
        try:
            status = (task / "status").read_text()
            if task.name != str(pid) and f"PPid:\t{pid}\n" not in status:
                continue
            rollup = (task / "smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return total


def table(n: int, hostile: float) -> list[ServedPeer]:
    bad = int(n * hostile)
    out = []
    for i in range(n):
        if i % 10 == 0 and i // 10 < bad:  # hostile peers spread through the list, as in the wild
            kind = KINDS[(i // 10) % len(KINDS)]
            out.append(ServedPeer(f"{kind}-{i}.bench.test", kind))
        else:
            software, version = VERSIONS[i % len(VERSIONS)]
            out.append(ServedPeer(f"peer-{i}.bench.test", software, version))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=30_000)
    parser.add_argument("--hostile", type=float, default=0.1)
    parser.add_argument("--addresses", type=int, default=250)
    parser.add_argument("--in-flight", type=int, default=512)
    parser.add_argument("--per-address", type=int, default=8)
    parser.add_argument("--peer-timeout", type=float, default=5.0)
    parser.add_argument("--keep", type=Path, help="copy the reports here")
    args = parser.parse_args()
    problem = can_run()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    peers = table(args.peers, args.hostile)
    addresses = [f"127.89.{1 + i // 250}.{1 + i % 250}" for i in range(args.addresses)]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        server = PeerServer(peers, addresses[0], d / "nginx", tls_names=["*.bench.test"],
                            more_addresses=addresses[1:])
        started = time.perf_counter()
        with server:
            print(f"nginx serving {len(peers)} peers on {len(addresses)} addresses "
                  f"(set up in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
            (d / "peers.txt").write_text("".join(f"{p.domain}\n" for p in peers))
            place = random.Random(0)  # peers spread at random over the addresses, hostile ones too
            (d / "peers.hosts").write_text("".join(f"{place.choice(addresses)} {p.domain}\n" for p in peers))
            out = d / "reports"
            command = [sys.executable, "-m", "mastoaudit", "federation", "peers", "--from-file", str(d / "peers.txt"),
                       "--resolve-file", str(d / "peers.hosts"), "--no-dns", "--ca-bundle", str(server.ca),
                       "--allow-private", "127.89.0.0/16", "--in-flight", str(args.in_flight),
                       "--per-address", str(args.per_address), "--peer-timeout", str(args.peer_timeout),
                       "-f", "json", "-f", "html", "-o", str(out), "--fail-on", "never", "-q"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            nginx_before = server.cpu_seconds()
            began = time.perf_counter()
            proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            peak = 0
            while proc.poll() is None:  # the command and its worker processes, added up
                peak = max(peak, tree_memory(proc.pid))
                time.sleep(0.2)
            stdout, stderr = proc.communicate()
            wall = time.perf_counter() - began
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            nginx_cpu = server.cpu_seconds() - nginx_before
            done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
            if done.returncode not in (0, 1):
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            report = json.loads((out / "mastoaudit-federation.json").read_text())
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for f in out.iterdir():
                    (args.keep / f.name).write_bytes(f.read_bytes())
            nginx_requests = sum(1 for _ in server.access_log.open())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    section = report["extra"]["federation"]
    sweep = section["sweep"]
    kinds = Counter(p["error"] or "ok" for p in section["peers"])
    hostile_kinds = Counter()
    for p in section["peers"]:
        kind = p["domain"].split("-")[0] if not p["domain"].startswith("peer-") else None
        prefix = next((k for k in KINDS if p["domain"].startswith(k + "-")), None)
        if kind and prefix:
            hostile_kinds[(prefix, p["error"])] += 1
    n = len(section["peers"])
    print(f"{n} peers ({sum(1 for p in peers if not p.domain.startswith('peer-'))} hostile) over {len(addresses)} "
          f"addresses, {args.in_flight} in flight, {args.per_address} per address, {args.peer_timeout:g} s per peer, "
          "HTTPS verified; the whole command (list, sweep, matching, JSON and HTML reports)")
    print(f"  wall {wall:.1f} s: {n / wall:.0f} peers/s (the sweep alone: {sweep['duration_s']:.1f} s, "
          f"{n / sweep['duration_s']:.0f} peers/s, {sweep['requests']} requests)")
    print(f"  CPU {cpu:.1f} s ({cpu / n * 1000:.2f} ms per peer; nginx, on the same 2 cores: {nginx_cpu:.1f} s); "
          f"peak memory {peak / 1024:.0f} MB (PSS of the command and its {sweep['workers']} worker processes; "
          f"the largest one's peak RSS {after.ru_maxrss / 1024:.0f} MB)")
    print(f"  results: {dict(kinds.most_common())}")
    shown = ", ".join(f"{k} -> {e} x{c}" for (k, e), c in sorted(hostile_kinds.items()))
    print(f"  hostile peers, by kind -> error: {shown}")
    expected_ok = all(e == HOSTILE[k] for (k, e) in hostile_kinds)
    print(f"  every hostile kind ended as its own error: {'yes' if expected_ok else 'NO'}; nginx answered "
          f"{nginx_requests} requests")
    print(f"  worst case a slow peer adds: DNS {sweep['limits']['dns_time']:g} s + its limit "
          f"{sweep['limits']['peer_time']:g} s = {sweep['worst_case_peer_s']:g} s, holding 1 of {args.in_flight} "
          f"slots (measured: the slowest peer took {sweep['slowest_peer_s']:.2f} s once its turn came)")
    print(f"  not swept: {sweep['not_swept']}; healthy peers not read: "
          f"{sum(1 for p in section['peers'] if p['domain'].startswith('peer-') and p['error'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
