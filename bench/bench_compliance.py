"""Bench: compliance over time at fleet scale; prints wall time and peak RSS.

    python bench/bench_compliance.py [--shards 100] [--findings 1000] [--runs 365] [--keep DIR]

1. `mastoaudit merge` of 100 shard reports of 1,000 findings each (100,000 findings: JSON, HTML,
   SARIF and JUnit), beside what a user would otherwise do: concatenate the findings with
   `jq -s` (which checks nothing: not the scope, not the missing shards, no summary, no waivers).
2. A history of 365 kept runs drawn into the HTML trend: one more `lint --history` run of the
   demo tree, and the trend chart alone (in this process).

Each command runs in a child process so that its peak RSS is measured alone (RUSAGE_CHILDREN,
per child). Timings are printed, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(argv: list[str], cwd: Path = ROOT) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of one child process."""
    wrapper = ("import resource, subprocess, sys, json; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,"
               " stderr=subprocess.DEVNULL); print(json.dumps([p.returncode,"
               " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *argv], capture_output=True, text=True, cwd=cwd,
                          check=True)
    seconds = time.perf_counter() - began
    code, rss_kb = json.loads(done.stdout)
    return seconds, rss_kb / 1024, code


def shard_reports(folder: Path, shards: int, per_shard: int) -> list[Path]:
    from mastoaudit.shard import Shard, describe
    from mastoaudit.verdict import finding_order, summarize

    template = folder / "template.json"
    subprocess.run([sys.executable, "-m", "mastoaudit", "lint", "demo/weak", "-f", "json", "-o", str(template),
                    "--fail-on", "never"], cwd=ROOT, check=True, capture_output=True)
    base = json.loads(template.read_text())
    checks = base["checks"]
    hosts_per_shard = 10
    rng = random.Random(7)
    # Host names spread over the shards by the real rule.
    population, n = [], 0
    by_shard: dict[int, list[str]] = {i: [] for i in range(1, shards + 1)}
    while any(len(v) < hosts_per_shard for v in by_shard.values()):
        name = f"host{n}.fleet.example"
        n += 1
        owner = Shard(1, shards)
        index = next(i for i in range(1, shards + 1) if Shard(i, shards).owns(name))
        del owner
        if len(by_shard[index]) < hosts_per_shard:
            by_shard[index].append(name)
            population.append(name)
    files = []
    statuses = ["fail", "fail", "warn", "pass", "pass", "skip"]
    for i in range(1, shards + 1):
        members = by_shard[i]
        findings = []
        for k in range(per_shard):
            check = checks[k % len(checks)]
            status = rng.choice(statuses)
            findings.append({
                "check_id": check["id"], "title": check["title"], "component": check["component"],
                "severity": check["severity"], "status": status, "message": f"finding {k} of shard {i}",
                "target": members[k % len(members)], "threats": check["threats"],
                "location": {"file": f"{members[k % len(members)]}:/etc/app/{k}.conf", "line": k % 90 + 1},
                "subject": f"subject {k}", "observed": "on", "expected": "off",
                "fingerprint": f"{i:06x}{k:06x}" + "0" * 12,
            })
        findings.sort(key=finding_order)
        doc = dict(base)
        doc["run"] = {**base["run"], "targets": [{"name": m, "fact_kinds": ["nginx"], "problems": 0} for m in members],
                      "scope": {**base["run"]["scope"], "shard": f"{i}/{shards}"},
                      "shard": describe(Shard(i, shards), "host", members, population), "complete": True}
        doc["findings"] = findings
        doc["summary"] = summarize(findings, len(checks))
        path = folder / f"shard-{i:03d}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")))
        files.append(path)
    return files


def history_of(folder: Path, runs: int) -> tuple[Path, list[str]]:
    """A --history folder holding `runs` runs of `lint demo/weak` (copies of one real run, a day apart,
    with varied counts); returns the folder and the command that adds the next run."""
    history = folder / "history"
    command = [sys.executable, "-m", "mastoaudit", "lint", "demo/weak", "--history", str(history),
               "--history-keep", str(runs + 1), "-f", "html", "-o", str(folder / "trend.html"), "--fail-on", "never"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    [scope_dir] = list(history.iterdir())
    [first] = [p for p in scope_dir.glob("*.json") if p.name != "index.json"]
    doc = json.loads(first.read_text())
    index = json.loads((scope_dir / "index.json").read_text())
    rng = random.Random(11)
    start = datetime(2024, 1, 1, 4, 17, tzinfo=UTC)
    entries = []
    for day in range(runs - 1):
        when = start + timedelta(days=day)
        failed = {s: max(0, n + rng.randint(-3, 3)) for s, n in doc["summary"]["failed_by_severity"].items()}
        name = when.strftime("%Y%m%dT%H%M%SZ") + "-1.json"
        copy = {**doc, "run": {**doc["run"], "started_at": when.isoformat(timespec="seconds")},
                "summary": {**doc["summary"], "failed_by_severity": failed}}
        (scope_dir / name).write_text(json.dumps(copy, separators=(",", ":")))
        entries.append({"file": name, "started_at": copy["run"]["started_at"], "tool_version": doc["tool"]["version"],
                        "complete": True, "checks_run": doc["summary"]["checks_run"],
                        "by_status": doc["summary"]["by_status"], "failed_by_severity": failed, "waived": 0})
    index["runs"] = entries + index["runs"]
    (scope_dir / "index.json").write_text(json.dumps(index))
    return history, command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--findings", type=int, default=1000, help="findings per shard report")
    parser.add_argument("--runs", type=int, default=365, help="runs kept in the history")
    parser.add_argument("--keep", type=Path, help="keep the generated files in DIR")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="mastoaudit-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        files = shard_reports(folder, args.shards, args.findings)
        size = sum(p.stat().st_size for p in files) / 2**20
        print(f"merge: {len(files)} shard reports x {args.findings} findings ({size:.0f} MB of JSON)")
        out = folder / "merged"
        for formats in (["json"], ["json", "html", "sarif", "junit"]):
            argv = [sys.executable, "-m", "mastoaudit", "merge", *map(str, files), "-o", str(out) + "/",
                    "--fail-on", "never", *[x for f in formats for x in ("-f", f)]]
            seconds, rss, code = timed(argv)
            print(f"  mastoaudit merge -f {' -f '.join(formats):28} {seconds:6.2f} s  {rss:6.0f} MB  (exit {code})")
        merged = json.loads((out / "mastoaudit-lint.json").read_text())
        print(f"  merged: {len(merged['findings'])} findings, {len(merged['run']['targets'])} hosts")
        if shutil.which("jq"):
            argv = ["sh", "-c", f"jq -s '[.[].findings[]]' {folder}/shard-*.json > {folder}/jq.json"]
            seconds, rss, _ = timed(argv)
            print(f"  jq -s '[.[].findings[]]' (a plain join)  {seconds:6.2f} s  {rss:6.0f} MB")

        history, command = history_of(folder, args.runs)
        print(f"history: {args.runs} kept runs of `lint demo/weak`, one more run drawing the trend")
        seconds, rss, _ = timed(command)
        html = (folder / "trend.html")
        print(f"  mastoaudit lint --history (run + trend)  {seconds:6.2f} s  {rss:6.0f} MB  "
              f"(HTML {html.stat().st_size / 2**20:.1f} MB)")
        plain = [a for a in command if a not in ("--history", str(history), "--history-keep", str(args.runs + 1))]
        seconds, rss, _ = timed(plain)
        print(f"  the same lint without --history          {seconds:6.2f} s  {rss:6.0f} MB")
        from mastoaudit.history import History
        from mastoaudit.reporting.trend import chart

        [scope_dir] = list(history.iterdir())
        scope = json.loads((scope_dir / "index.json").read_text())["scope"]
        began = time.perf_counter()
        runs = History(history, scope, args.runs + 2).runs()
        drawn = chart(runs)
        seconds = time.perf_counter() - began
        points = sum(len(s["points"]) for s in drawn["series"])
        print(f"  the trend alone (index + chart, {len(runs)} runs, {points} points)  {seconds * 1000:6.1f} ms  "
              f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
