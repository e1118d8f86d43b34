"""Bench: the whole network scan of the lab (TLS, headers, exposure, ports, mail DNS, SMTP, S3)
against testssl.sh on the same web endpoint.

    python3 bench/bench_scan.py [--profile weak|hardened] [--runs 3] [--no-testssl]

Brings the lab up in the profile (and back to how it was at the end), times `mastoaudit scan` a few
times (wall time and peak RSS of the process), times Debian's testssl.sh once on the lab's HTTPS
endpoint, and prints the ratio. Target (issue 4): the whole scan at least 10 times faster than
testssl.sh alone. Only loopback addresses are touched.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True)


def scan_command(env: dict, out: Path) -> list[str]:
    s3 = env["s3"]
    return [
        sys.executable, "-m", "mastoaudit", "scan", env["domain"],
        "--resolver", f"{env['dns']['server']}:{env['dns']['port']}", "--ca-bundle", env["ca_file"],
        "--dkim-selector", env["dns"]["dkim_selector"], "--smtp-host", env["smtp"]["hostname"],
        "--media-host", env["hostnames"]["media"], "--s3-endpoint", s3["endpoint"], "--s3-bucket", s3["bucket"],
        "--s3-public-object", s3["public_object"], "-f", "json", "-o", str(out), "--fail-on", "never",
    ]


def timed(cmd: list[str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    return wall, peak, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="weak", choices=["weak", "hardened"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-testssl", action="store_true")
    args = parser.parse_args()
    before = json.loads(lab("status").stdout or "{}")
    up = lab("up", "--profile", args.profile)
    if up.returncode != 0:
        print(up.stderr, file=sys.stderr)
        return 2
    env = json.loads(lab("env", "--profile", args.profile).stdout)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "scan.json"
            walls = []
            peak = 0.0
            for _ in range(args.runs):
                wall, rss, code = timed(scan_command(env, out))
                if code not in (0, 1, 3):
                    print(f"scan exited {code}", file=sys.stderr)
                    return code
                walls.append(wall)
                peak = max(peak, rss)
            doc = json.loads(out.read_text())
            timings = {}
            for finding in doc["findings"]:
                timings.setdefault(finding["component"], 0)
                timings[finding["component"]] += 1
            print(f"mastoaudit scan ({args.profile} lab): median {statistics.median(walls):.2f} s over {args.runs} runs"
                  f" ({', '.join(f'{w:.2f}' for w in walls)}), peak RSS {peak:.0f} MB, "
                  f"{len(doc['findings'])} results, exit {code}")
            testssl = shutil.which("testssl") or shutil.which("testssl.sh")
            if testssl and not args.no_testssl:
                cmd = [testssl, "--quiet", "--color", "0", "--warnings", "off", "--ip", env["public_address"],
                       "--add-ca", env["ca_file"], "--jsonfile", str(Path(tmp) / "testssl.json"),
                       f"{env['domain']}:443"]
                wall, rss, _ = timed(cmd)
                print(f"testssl.sh (the web endpoint only):   {wall:.2f} s, peak RSS {rss:.0f} MB")
                ratio = wall / statistics.median(walls)
                print(f"ratio: the whole mastoaudit scan is {ratio:.1f} times faster than testssl.sh alone "
                      "(target: 10)")
    finally:
        if before.get("running") and before.get("profile") and before["profile"] != args.profile:
            lab("up", "--profile", before["profile"])
        elif not before.get("running"):
            lab("down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
