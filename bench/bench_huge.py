"""Bench: lint one huge nginx.conf (6,000 server blocks, about 600 KB) into every report format;
print wall time, peak RSS and the size of each report.

    python bench/bench_huge.py [--blocks 6000] [--source DIR]

Issue 7, item 10: the run's memory stays proportional to the input and the reports stay usable
(the HTML, terminal, JUnit and SARIF reports list a bounded number of findings per check and
count the rest; the JSON report holds every finding). `--source DIR` runs another source tree
(one with mastoaudit/, checks/ and templates/, e.g. `git archive main | tar -x -C DIR`) for a
before/after comparison. The lint runs in a child process so that its peak RSS is its own
(RUSAGE_CHILDREN). Figures are printed, never asserted.
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

SERVER = """server {{
  listen 443 ssl;
  server_name s{n}.example.org;
  location / {{ proxy_pass http://[::1]:3000; }}
}}
"""


def tree(root: Path, blocks: int) -> Path:
    conf = root / "etc" / "nginx" / "nginx.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("events {}\nhttp {\n" + "".join(SERVER.format(n=n) for n in range(blocks)) + "}\n")
    return conf


def shim(source: Path, into: Path) -> Path:
    """A path entry that makes `source`'s packages the ones imported (ahead of the installed ones)."""
    into.mkdir()
    for name, folder in (("mastoaudit", "mastoaudit"), ("mastoaudit_checks", "checks"),
                         ("mastoaudit_templates", "templates")):
        os.symlink(source / folder, into / name)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=6000)
    parser.add_argument("--source", type=Path, help="another source tree to run (before/after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mastoaudit-huge-") as tmp:
        work = Path(tmp)
        conf = tree(work / "tree", args.blocks)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        if args.source:
            env["PYTHONPATH"] = str(shim(args.source.resolve(), work / "shim"))
        out = work / "reports"
        command = [sys.executable, "-c", "import sys; from mastoaudit.cli import main; sys.exit(main())", "lint",
                   str(work / "tree"), "-o", f"{out}/", *[a for f in ("json", "html", "sarif", "junit", "terminal")
                                                         for a in ("-f", f)]]
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=work)
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"input: {conf.stat().st_size / 1024:.0f} KB nginx.conf, {args.blocks} server blocks"
              f"{' (source ' + str(args.source) + ')' if args.source else ''}")
        print(f"lint, every format: {elapsed:.1f} s, peak RSS {peak:.0f} MB, exit {proc.returncode}")
        if proc.returncode not in (0, 1, 3) or not any(out.glob("*")):
            print(proc.stderr[-2000:])
        for report in sorted(out.glob("*")):
            print(f"  {report.name:28} {report.stat().st_size / (1024 * 1024):8.1f} MB")
        print(f"  {'terminal (stdout)':28} {len(proc.stdout.encode()) / (1024 * 1024):8.1f} MB")


if __name__ == "__main__":
    main()
