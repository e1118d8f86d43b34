"""Bench: a full live audit of the lab host (SSH and network) beside sslyze alone on the same
HTTPS endpoint, in one run, and where the audit's time goes.

    sudo python bench/bench_audit_vs_sslyze.py [--profile weak|hardened] [--runs 5]

Brings the lab up in the profile (and puts it back as it was), then alternates, run after run:
`python -m sslyze` with its default scan of the web endpoint (what a user would run to check the
TLS of the instance: every protocol's cipher suites, the certificate against the lab's CA,
Heartbleed, ROBOT, CCS injection, renegotiation, compression, fallback SCSV, curves, EMS), and
`mastoaudit audit -i lab/run/inventory-<profile>.yaml` (SSH to the host, its files and live state,
and every network probe: TLS of the web, media and mail endpoints, headers, exposure, ports, mail
DNS, the relay, the bucket). Both run as an installed tool runs: Python's bytecode cached (the
environment's PYTHONDONTWRITEBYTECODE is dropped, the cache kept in a temporary directory), one
warm-up run of each first, and medians printed. The target (issue 11): the audit within 1.5 times
sslyze alone.

Then the audit's own timings (its JSON report's extra.timings, from the median run): when the SSH
collection and the network half ran, each probe's duration, and the checks. Only loopback
addresses are touched. Never run in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True)


def timed(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (the process and its children), exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if done.returncode not in (0, 1, 3):
        raise SystemExit(f"{' '.join(cmd[:4])} exited {done.returncode}: {done.stderr[-800:]}")
    return wall, cpu, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="weak", choices=["weak", "hardened"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    before = json.loads(lab("status").stdout or "{}")
    up = lab("up", "--profile", args.profile)
    if up.returncode != 0:
        print(up.stderr, file=sys.stderr)
        return 2
    lab_env = json.loads(lab("env", "--profile", args.profile).stdout)
    try:
        with tempfile.TemporaryDirectory(prefix="mastoaudit-bench-") as tmp:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
            env["PYTHONWARNINGS"] = "ignore"
            endpoint = f"{lab_env['domain']}:443{{{lab_env['public_address']}}}"
            sslyze = [sys.executable, "-m", "sslyze", "--quiet", f"--certinfo_ca_file={lab_env['ca_file']}",
                      f"--json_out={Path(tmp) / 'sslyze.json'}", endpoint]
            report = Path(tmp) / "audit.json"
            audit = [sys.executable, "-m", "mastoaudit", "audit", "-i", str(ROOT / lab_env["inventory"]), "-q",
                     "-f", "json", "-o", str(report), "--fail-on", "never"]
            timed(sslyze, env)  # warm-up: bytecode, page cache
            timed(audit, env)
            runs: dict[str, list[tuple[float, float]]] = {"sslyze": [], "audit": []}
            timings: list[tuple[float, dict]] = []
            for n in range(args.runs):
                order = [("sslyze", sslyze), ("audit", audit)]
                for name, cmd in order if n % 2 == 0 else order[::-1]:
                    wall, cpu, _ = timed(cmd, env)
                    runs[name].append((wall, cpu))
                    if name == "audit":
                        doc = json.loads(report.read_text())
                        timings.append((wall, (doc.get("extra") or {}).get("timings") or {}))
            scanned = json.loads((Path(tmp) / "sslyze.json").read_text())["server_scan_results"][0]["scan_status"]
    finally:
        if before.get("running") and before.get("profile") and before["profile"] != args.profile:
            lab("up", "--profile", before["profile"])
        elif not before.get("running"):
            lab("down")

    def median(name: str, i: int) -> float:
        return statistics.median(r[i] for r in runs[name])

    s_wall, a_wall = median("sslyze", 0), median("audit", 0)
    print(f"lab profile {args.profile}, {args.runs} runs each, alternating; {os.cpu_count()} cores")
    print(f"sslyze alone, {lab_env['domain']}:443 ({scanned.lower()}): median {s_wall:.2f} s wall, "
          f"{median('sslyze', 1):.2f} s CPU   ({', '.join(f'{w:.2f}' for w, _ in runs['sslyze'])})")
    print(f"mastoaudit audit (SSH + network):     median {a_wall:.2f} s wall, "
          f"{median('audit', 1):.2f} s CPU   ({', '.join(f'{w:.2f}' for w, _ in runs['audit'])})")
    print(f"ratio: the audit takes {a_wall / s_wall:.2f} times sslyze alone (target: at most 1.5)")
    wall, t = sorted(timings, key=lambda item: item[0])[len(timings) // 2]
    if t:
        print(f"\nwhere the audit's time went (the median run, {wall:.2f} s; seconds from the command's start):")
        for phase in ("ssh", "network", "checks"):
            if phase in t:
                print(f"  {phase:8} {t[phase]['start_s']:5.2f} -> {t[phase]['end_s']:5.2f}")
        for probe, seconds in (t.get("network") or {}).get("probes", {}).items():
            print(f"    probe {probe:18} {seconds:5.2f} s")
        print("  (then the reports are written)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
