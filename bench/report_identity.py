"""Record the JSON reports of the demo trees (and the lab), and compare two recordings finding by finding.

    python bench/report_identity.py record DIR [--lab]   # lint demo/{weak,hardened,official}; --lab: the lab too
    python bench/report_identity.py compare OLD_DIR NEW_DIR

A refactor that claims to change nothing runs `record` before and after and `compare`s: every finding
(check id, target, status, severity, message, location, subject, observed, expected, threats,
fingerprint) must be the same, in the same number. `--lab` brings the lab up in each profile (root,
Debian; see lab/README.md) holding the lab's session lock, audits it over SSH with the generated
inventory, and takes it down again. Run it under the suite lock:

    flock /tmp/mastoaudit-suite.lock python bench/report_identity.py record /tmp/before --lab

`compare` prints the differences and exits 1 when there are any; a change of a check's component alone
is listed apart (a component is how reports group checks, not part of a finding's identity).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINTS = {"lint-weak": "demo/weak", "lint-hardened": "demo/hardened", "lint-official": "demo/official"}
PROFILES = ("weak", "hardened")
IDENTITY = ("check_id", "target", "status", "severity", "message", "location", "subject", "observed", "expected",
            "threats", "fingerprint")


def _mastoaudit(*args: str) -> int:
    done = subprocess.run([sys.executable, "-m", "mastoaudit", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode == 2:
        raise SystemExit(f"mastoaudit {' '.join(args)}: {done.stderr.strip()}")
    return done.returncode


def record(out: Path, lab: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, tree in LINTS.items():
        rc = _mastoaudit("lint", tree, "-f", "json", "-o", str(out / f"{name}.json"))
        print(f"{name}: exit {rc}")
    if not lab:
        return
    sys.path.insert(0, str(ROOT))
    from lab import core

    with core.exclusive_use():
        try:
            for profile in PROFILES:
                state = core.up(profile, log=lambda _m: None)
                if not state.get("healthy"):
                    raise SystemExit(f"the lab ({profile}) is not healthy")
                rc = _mastoaudit("audit", "-i", f"lab/run/inventory-{profile}.yaml", "-q", "-f", "json",
                                 "-o", str(out / f"audit-{profile}.json"))
                print(f"audit-{profile}: exit {rc}")
        finally:
            core.down(log=lambda _m: None)


# What differs from one run to the next on the same lab: process ids, the S3 probe's random object key.
_VOLATILE = [(re.compile(r"\bpid \d+"), "pid N"), (re.compile(r"mastoaudit-probe/[0-9a-f]{32}"), "mastoaudit-probe/R")]


def _fingerprint(check_id: str, target: str, file: str, subject: str) -> str:
    """Finding.fingerprint, written out here so that a change to it shows as a difference."""
    return hashlib.sha256("\x1f".join([check_id, target, file, subject]).encode()).hexdigest()[:24]


def _steady(value: object) -> object:
    if isinstance(value, str):
        for pattern, replacement in _VOLATILE:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items()}
    return value


def _key(finding: dict) -> tuple:
    """A finding with its volatile parts replaced; its fingerprint checked against the raw fields, then
    recomputed from the steady ones (so a pid in a subject does not make two runs differ)."""
    file = (finding.get("location") or {}).get("file") or ""
    raw = _fingerprint(finding["check_id"], finding["target"], file, finding.get("subject") or "")
    steady = {k: _steady(finding.get(k)) for k in IDENTITY}
    steady["fingerprint"] = (
        _fingerprint(finding["check_id"], finding["target"], _steady(file), _steady(finding.get("subject") or ""))
        if raw == finding.get("fingerprint") else f"unexpected {finding.get('fingerprint')}")
    return tuple(json.dumps(steady[k], sort_keys=True) for k in IDENTITY)


def compare(old_dir: Path, new_dir: Path) -> int:
    problems = 0
    for old_path in sorted(old_dir.glob("*.json")):
        new_path = new_dir / old_path.name
        if not new_path.is_file():
            print(f"{old_path.name}: missing from {new_dir}")
            problems += 1
            continue
        old = json.loads(old_path.read_text())
        new = json.loads(new_path.read_text())
        before, after = Counter(map(_key, old["findings"])), Counter(map(_key, new["findings"]))
        lost, gained = before - after, after - before
        components = {f["check_id"]: f["component"] for f in old["findings"]}
        moved = sorted({(f["check_id"], components[f["check_id"]], f["component"]) for f in new["findings"]
                        if f["check_id"] in components and components[f["check_id"]] != f["component"]})
        print(f"{old_path.name}: {sum(before.values())} findings before, {sum(after.values())} after, "
              f"{sum(lost.values())} lost, {sum(gained.values())} new")
        for label, rows in (("-", lost), ("+", gained)):
            for row in sorted(rows):
                print(f"  {label} " + " | ".join(f"{k}={v}" for k, v in zip(IDENTITY, row, strict=True)))
        for check_id, was, now in moved:
            print(f"  component of {check_id}: {was} -> {now}")
        problems += sum(lost.values()) + sum(gained.values())
    print("identical" if not problems else f"{problems} differences")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("dir", type=Path)
    rec.add_argument("--lab", action="store_true", help="also audit the lab in both profiles (root)")
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("old", type=Path)
    cmp_.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.cmd == "record":
        record(args.dir, args.lab)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    raise SystemExit(main())
