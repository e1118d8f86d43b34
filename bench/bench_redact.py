"""Bench: redaction of reports against large and many secrets; print time and peak RSS per case.

    python bench/bench_redact.py [--old PATH/TO/OLD/redact.py]

Cases (issue 7, item 4): one 4 MB secret (a pasted key), a 500-character one (a PEM key in
SAML_PRIVATE_KEY), 10,000 secrets of 64 characters, 10,000 of 16; each builds a Redactor and
scrubs 2,000 finding-sized texts plus one 4 MB text that holds the secrets. Every case runs in a
child process so that its peak RSS is its own. With --old, the same cases run against another
redact.py (the trie-regex one from before, say: `git show <rev>:mastoaudit/redact.py > old.py`).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import importlib.util, json, random, resource, sys, time
spec = importlib.util.spec_from_file_location("redact_under_test", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
count, length = int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(7)
alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
secrets = ["".join(rnd.choice(alphabet) for _ in range(length)) for _ in range(count)]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
result = {}
try:
    redactor = mod.Redactor(secrets)
    built = time.perf_counter()
    texts = [f"finding {i}: value {rnd.choice(secrets)[:40]}... observed {i * 7919}" for i in range(2000)]
    for text in texts:
        redactor.scrub(text)
    picked = [rnd.choice(secrets) for _ in range(20)]
    big = (" plain text " * 1000).join(picked)
    big = (big * (4 * 1024 * 1024 // max(1, len(big)) + 1))[: 4 * 1024 * 1024]
    scrubbed = redactor.scrub(big)
    done = time.perf_counter()
    leaked = sum(1 for s in picked if s in scrubbed)
    result = {"build_s": round(built - started, 3), "scrub_s": round(done - built, 3), "leaked": leaked}
except RecursionError:
    result = {"error": "RecursionError"}
except MemoryError:
    result = {"error": "MemoryError"}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result["peak_rss_mb"] = round(peak / 1024, 1)
result["growth_mb"] = round((peak - base) / 1024, 1)  # above the secrets themselves
print(json.dumps(result))
"""

CASES = [("one 4 MB secret", 1, 4 * 1024 * 1024), ("one 500-char secret", 1, 500),
         ("10,000 secrets of 64", 10_000, 64), ("10,000 secrets of 16", 10_000, 16)]


def run(module: Path, count: int, length: int, limit_mb: int) -> dict:
    code = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit_mb << 20}, {limit_mb << 20}))\n" + CHILD
    proc = subprocess.run([sys.executable, "-c", code, str(module), str(count), str(length)],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:120]}"}
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", type=Path, help="another redact.py to compare with")
    parser.add_argument("--limit-mb", type=int, default=3072, help="address-space limit of each child")
    args = parser.parse_args()
    random.seed(0)
    modules = [("now", ROOT / "mastoaudit" / "redact.py")] + ([("old", args.old)] if args.old else [])
    print(f"{'case':24} {'redact.py':9} {'build s':>8} {'scrub s':>8} {'peak MB':>8} {'growth':>7}  notes")
    for name, count, length in CASES:
        for label, module in modules:
            r = run(module, count, length, args.limit_mb)
            note = r.get("error") or ("no secret left" if r.get("leaked") == 0 else f"{r['leaked']} leaked")
            print(f"{name:24} {label:9} {r.get('build_s', '-')!s:>8} {r.get('scrub_s', '-')!s:>8} "
                  f"{r.get('peak_rss_mb', '-')!s:>8} {r.get('growth_mb', '-')!s:>7}  {note}")


if __name__ == "__main__":
    main()
