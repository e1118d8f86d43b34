"""Bench: remediation on the weak lab; prints wall times, never asserted in tests.

    python3 bench/bench_remediation.py [--hosts 200]

1. Plan generation: `mastoaudit fix --plan` from the weak lab's audit report, as the pyinfra deploy
   (-o deploy.py) beside the text plan (--format terminal, what a user had before: advice to apply
   by hand); then the plan of a fleet, the weak report's findings copied onto --hosts hosts, built
   and rendered in this process.
2. Apply on the weak lab over SSH: the first `pyinfra INVENTORY deploy.py` (every operation backs
   up, validates, reloads and checks), the second one (everything already fixed: facts only), and
   the audit that proves it, for scale.

Needs root and the lab's Debian packages (lab/README.md); holds the lab for its duration and takes
it down afterwards, removing what the deploy added.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(argv: list[str], cwd: Path = ROOT) -> tuple[float, subprocess.CompletedProcess]:
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    return time.perf_counter() - began, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=200, help="hosts in the synthetic fleet plan")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_remediation: needs root (the lab)", file=sys.stderr)
        return 2
    from lab.config import RUN, host_root
    from lab.core import down, exclusive_use, up
    from mastoaudit.remediation import build, render

    py = sys.executable
    with exclusive_use(), tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            up("weak", log=lambda *_: None)
            audit = [py, "-m", "mastoaudit", "audit", "-i", str(RUN / "inventory-weak.yaml"), "-q", "-f", "json",
                     "--fail-on", "never"]
            t_audit, _ = run([*audit, "-o", str(work / "before.json")])
            report = work / "before.json"
            t_text, text = run([py, "-m", "mastoaudit", "fix", "--plan", "--report", str(report), "-f", "terminal"])
            t_deploy, made = run([py, "-m", "mastoaudit", "fix", "--plan", "--report", str(report), "-o",
                                  str(work / "deploy.py")])
            doc = json.loads(report.read_text())
            fleet = copy.deepcopy(doc)
            fleet["findings"] = [dict(f, target=f"{f['target']}-{i}", fingerprint=f"{f['fingerprint']}{i}",
                                      location=(dict(f["location"], file=f["location"]["file"].replace(
                                          f["target"] + ":", f"{f['target']}-{i}:", 1)) if f.get("location") else None))
                                 for i in range(args.hosts) for f in doc["findings"]]
            began = time.perf_counter()
            plan = build(fleet)
            rendered = render(plan, "fleet.json")
            t_fleet = time.perf_counter() - began
            pyinfra = [py, "-m", "pyinfra", "-y", str(RUN / "pyinfra-weak.py"), str(work / "deploy.py")]
            t_apply1, first = run(pyinfra, cwd=work)
            t_apply2, second = run(pyinfra, cwd=work)
            t_audit2, _ = run([*audit, "-o", str(work / "after.json")])
            after = json.loads((work / "after.json").read_text())
        finally:
            down(log=lambda *_: None)
            for dropin in (host_root("weak") / "etc/systemd/system").glob("*.service.d"):
                shutil.rmtree(dropin)
            shutil.rmtree(RUN / "backups", ignore_errors=True)
    bad = ("fail", "warn", "error")
    n_before = sum(f["status"] in bad for f in doc["findings"])
    n_after = sum(f["status"] in bad for f in after["findings"])
    summary = made.stderr.strip().splitlines()[0] if made.stderr else ""
    print("Remediation on the weak lab (2 cores; wall time)")
    print(f"  audit (before)                        {t_audit:6.2f} s   {n_before} failed or warned findings")
    print(f"  fix --plan --format terminal          {t_text:6.2f} s   text to apply by hand "
          f"({len(text.stdout.splitlines())} lines)")
    print(f"  fix --plan -o deploy.py               {t_deploy:6.2f} s   {summary.removeprefix('mastoaudit: ')}")
    print(f"  plan of {args.hosts} hosts ({len(fleet['findings'])} findings, in process)"
          f"  {t_fleet:6.2f} s   {sum(len(h.steps) for h in plan.hosts)} operations, {len(rendered) // 1024} KiB")
    print(f"  pyinfra apply, first                  {t_apply1:6.2f} s   exit {first.returncode}")
    print(f"  pyinfra apply, second (no change)     {t_apply2:6.2f} s   exit {second.returncode}")
    print(f"  audit (after)                         {t_audit2:6.2f} s   {n_after} failed or warned findings")
    return 0 if first.returncode == second.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
