"""Recall and false positives of `lint` on the corpus of deployment trees (tests/corpus/).

    python bench/corpus_score.py                 # this checkout's code
    python bench/corpus_score.py --rev main      # another revision's code, on this checkout's corpus
    python bench/corpus_score.py --rev 2fc54c5 --details
    python bench/corpus_score.py --json          # the figures as JSON (tests/test_corpus.py reads them)
    python bench/corpus_score.py --corpus tests/holdout   # the holdout: trees the judgments were not tuned on

Each tree's `<tree>.yaml` says what a Mastodon-aware reviewer flags (written before the tool ran on
it; tests/corpus/README.md gives the format). Per tree this prints:

- expected: findings the reviewer expects; recalled: those the tool reports as a failure or a
  warning of that check, at that file (and line), at a severity the context supports;
- misjudged: expected findings the tool reports at a severity the context does not support;
- false positives: every other failure or warning, and every input error (a run that cannot finish
  on a common shape is a defect); judgment calls listed as `acceptable` count for neither side;
- not judged: template values the tool reports as skipped rather than judging them.

`--rev` checks the revision out in a temporary git worktree and imports its `mastoaudit` and checks
ahead of this checkout's (the corpus and this scorer stay this checkout's), so "before" and "after"
score the same trees the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
FLAGGED = ("fail", "warn")


@dataclass
class Expectation:
    check: tuple[str, ...]
    file: str | None = None
    line: tuple[int, ...] = ()
    severity: tuple[str, ...] = ()
    why: str = ""

    @classmethod
    def of(cls, entry: dict) -> Expectation:
        check = entry["check"]
        line = entry.get("line")
        severity = entry.get("severity")
        return cls(tuple(check) if isinstance(check, list) else (check,), entry.get("file"),
                   tuple(line) if isinstance(line, list) else (line,) if line is not None else (),
                   tuple(severity) if isinstance(severity, list) else (severity,) if severity else (),
                   " ".join(str(entry.get("why", "")).split()))

    def place(self, finding: dict) -> bool:
        """The finding is of this check, at this file (and line)."""
        if finding["check_id"] not in self.check:
            return False
        loc = finding.get("location") or {}
        if self.file is not None and not re.search(rf"(^|/){self.file}$", loc.get("file") or ""):
            return False
        return not self.line or loc.get("line") in self.line

    def right_severity(self, finding: dict) -> bool:
        return not self.severity or finding["severity"] in self.severity

    def describe(self) -> str:
        where = f" at {self.file}" + (f":{'/'.join(map(str, self.line))}" if self.line else "") if self.file else ""
        return f"{'/'.join(self.check)}{where}"


@dataclass
class TreeScore:
    tree: str
    expected: int = 0
    recalled: int = 0
    misjudged: int = 0
    false_positives: int = 0
    not_judged_expected: int = 0
    not_judged_honest: int = 0
    missed: list[str] = field(default_factory=list)
    misjudged_list: list[str] = field(default_factory=list)
    false_positive_list: list[str] = field(default_factory=list)
    dishonest: list[str] = field(default_factory=list)


def _shown(finding: dict) -> str:
    loc = finding.get("location") or {}
    where = f"{loc.get('file')}:{loc.get('line')}" if loc.get("line") else str(loc.get("file"))
    return f"{finding['status']} {finding['severity']} {finding['check_id']} @ {where}: {finding['message'][:160]}"


def lint_tree(path: Path, corpus: Path = CORPUS) -> list[dict]:
    """The findings of `mastoaudit lint PATH` as plain dicts (imported here so that --rev can put
    another revision's package first on the path)."""
    from mastoaudit.engine import run
    from mastoaudit.registry import default_registry
    from mastoaudit.selection import Selection
    from mastoaudit.sources.local import collect_tree

    registry = default_registry(plugins=False)
    old = os.getcwd()
    os.chdir(corpus)  # findings name files relative to the corpus, as a user in that folder sees them
    try:
        result = run("lint", registry, Selection(), [collect_tree(Path(path.name))])
    finally:
        os.chdir(old)
    return [f.to_dict() for f in result.findings]


def score(spec: dict, findings: list[dict]) -> TreeScore:
    out = TreeScore(spec["tree"])
    expected = [Expectation.of(e) for e in spec.get("expected") or []]
    acceptable = [Expectation.of(e) for e in spec.get("acceptable") or []]
    not_judged = [Expectation.of(e) for e in spec.get("not_judged") or []]
    flagged = [f for f in findings if f["status"] in FLAGGED or
               (f["status"] == "error")]  # an error: a check that crashed, or input the run could not read
    accounted: set[int] = set()
    for exp in expected:
        out.expected += 1
        placed = [f for f in flagged if f["status"] in FLAGGED and exp.place(f)]
        accounted.update(id(f) for f in placed)
        if any(exp.right_severity(f) for f in placed):
            out.recalled += 1
        elif placed:
            out.misjudged += 1
            out.misjudged_list.append(f"{exp.describe()}: {placed[0]['severity']}, expected "
                                      f"{' or '.join(exp.severity)}")
        else:
            out.missed.append(f"{exp.describe()}: {exp.why}")
    for f in flagged:
        if id(f) in accounted or (f["status"] in FLAGGED and any(a.place(f) for a in acceptable)):
            continue
        out.false_positives += 1
        out.false_positive_list.append(_shown(f))
    for exp in not_judged:
        out.not_judged_expected += 1
        if any(f["status"] == "skip" and exp.place(f) for f in findings) and not any(
                f["status"] in FLAGGED and exp.place(f) for f in findings):
            out.not_judged_honest += 1
        else:
            out.dishonest.append(exp.describe())
    return out


def specs(corpus: Path = CORPUS) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(corpus.glob("*.yaml"))]


def score_all(corpus: Path = CORPUS) -> list[TreeScore]:
    return [score(spec, lint_tree(corpus / spec["tree"], corpus)) for spec in specs(corpus)]


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def table(scores: list[TreeScore], title: str) -> str:
    rows = [("tree", "expected", "recalled", "recall", "misjudged", "false pos.", "not judged")]
    for s in scores:
        rows.append((s.tree, str(s.expected), str(s.recalled), _percent(s.recalled, s.expected), str(s.misjudged),
                     str(s.false_positives), f"{s.not_judged_honest}/{s.not_judged_expected}"))
    total = TreeScore("all trees")
    for s in scores:
        for name in ("expected", "recalled", "misjudged", "false_positives", "not_judged_expected",
                     "not_judged_honest"):
            setattr(total, name, getattr(total, name) + getattr(s, name))
    rows.append((total.tree, str(total.expected), str(total.recalled), _percent(total.recalled, total.expected),
                 str(total.misjudged), str(total.false_positives),
                 f"{total.not_judged_honest}/{total.not_judged_expected}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [title, ""]
    for index, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                  strict=True))))
        if index in (0, len(rows) - 2):
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(scores: list[TreeScore]) -> str:
    lines = []
    for s in scores:
        parts = [("missed", s.missed), ("misjudged", s.misjudged_list), ("false positive", s.false_positive_list),
                 ("judged although templated", s.dishonest)]
        if any(items for _, items in parts):
            lines.append(f"\n{s.tree}")
            for label, items in parts:
                lines.extend(f"  {label}: {item}" for item in items)
    return "\n".join(lines)


def _as_json(scores: list[TreeScore]) -> str:
    return json.dumps([s.__dict__ for s in scores], indent=1)


def _from_json(text: str) -> list[TreeScore]:
    return [TreeScore(**row) for row in json.loads(text)]


def at_revision(rev: str, corpus: Path = CORPUS) -> list[TreeScore]:
    """Score another revision's code: its package first on the path, this corpus and scorer."""
    with tempfile.TemporaryDirectory(prefix="mastoaudit-corpus-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), rev], check=True)
        try:
            shim = Path(tmp) / "path"
            shim.mkdir()
            for name, folder in (("mastoaudit", "mastoaudit"), ("mastoaudit_checks", "checks"),
                                 ("mastoaudit_templates", "templates")):
                (shim / name).symlink_to(tree / folder)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))}
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--json", "--inner",
                                   "--corpus", str(corpus)], env=env,
                                  capture_output=True, text=True, check=True)
            return _from_json(done.stdout)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rev", help="score this git revision's code instead of this checkout's")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--details", action="store_true", help="list what was missed and each false positive")
    parser.add_argument("--corpus", type=Path, default=CORPUS,
                        help="the folder of trees and their <tree>.yaml (default: tests/corpus)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    corpus = args.corpus.resolve()
    if args.rev and not args.inner:
        scores = at_revision(args.rev, corpus)
        label = f"revision {args.rev}"
    else:
        scores = score_all(corpus)
        import mastoaudit

        label = f"this checkout ({Path(mastoaudit.__file__).resolve().parent.parent})"
    if args.json:
        print(_as_json(scores))
        return 0
    shown = corpus.relative_to(ROOT) if corpus.is_relative_to(ROOT) else corpus
    print(table(scores, f"mastoaudit lint on {shown}, {label}"))
    if args.details:
        print(details(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
