"""Geometry of the report's two overview charts, drawn by the template as inline SVG.

- failures by component and severity: one stacked bar per component with open failures;
- threat coverage: one bar per threat, as long as the number of checks of this run that verify it,
  split by how those checks ended; a threat no check verifies says so in words.

Only numbers and short labels are computed here; every label is escaped by the template like any
other value, and colour only repeats what the numbers and words already say (print, colour
blindness), as in trend.py.
"""

from __future__ import annotations

SEVERITIES = ("critical", "high", "medium", "low", "info")
# How a check ended for a threat, worst first (what the bar segments show).
OUTCOMES = ("error", "fail", "warn", "waived", "pass", "skip")
OUTCOME_WORDS = {"error": "could not run", "fail": "failing", "warn": "warning", "waived": "waived",
                 "pass": "passing", "skip": "not applicable"}

ROW, BAR, GAP = 26, 16, 10


def _segments(counts: dict[str, int], order: tuple[str, ...], x0: float, scale: float) -> list[dict]:
    segments, x = [], x0
    for key in order:
        n = counts.get(key, 0)
        if not n:
            continue
        width = n * scale
        segments.append({"key": key, "n": n, "x": round(x, 1), "width": round(width, 1),
                         "label_x": round(x + width / 2, 1), "labelled": width >= 18})
        x += width
    return segments


def severity_by_component(rows: list[dict], width: int = 460) -> dict | None:
    """`rows`: [{"id", "grade", "counts": {severity: open failures}}], in the order to draw."""
    rows = [r for r in rows if sum(r["counts"].values())]
    if not rows:
        return None
    left, right, top = 120, 40, 8
    most = max(sum(r["counts"].values()) for r in rows)
    scale = (width - left - right) / most
    drawn = []
    for i, r in enumerate(rows):
        y = top + i * ROW
        total = sum(r["counts"].values())
        drawn.append({**r, "y": y, "bar_y": y + (ROW - BAR) / 2, "text_y": y + ROW / 2 + 4, "total": total,
                      "total_x": round(left + total * scale + 6, 1),
                      "segments": _segments(r["counts"], SEVERITIES, left, scale)})
    height = top + len(rows) * ROW + 8
    summary = "; ".join(f"{r['id']}: " + ", ".join(f"{r['counts'][s]} {s}" for s in SEVERITIES if r["counts"][s])
                        for r in rows)
    return {"width": width, "height": height, "left": left, "rows": drawn, "severities": SEVERITIES,
            "description": f"Open failures by component and severity. {summary}."}


def threat_coverage(rows: list[dict], width: int = 480) -> dict:
    """`rows`: [{"id", "title", "grade", "counts": {outcome: checks}}], in the order to draw."""
    left, right, top = 250, 30, 8
    most = max((sum(r["counts"].values()) for r in rows), default=0) or 1
    scale = (width - left - right) / most
    drawn = []
    for i, r in enumerate(rows):
        y = top + i * ROW
        total = sum(r["counts"].values())
        drawn.append({**r, "y": y, "bar_y": y + (ROW - BAR) / 2, "text_y": y + ROW / 2 + 4, "total": total,
                      "total_x": round(left + total * scale + 6, 1),
                      "segments": _segments(r["counts"], OUTCOMES, left, scale)})
    uncovered = sum(1 for r in drawn if not r["total"])
    failing = sum(1 for r in drawn if r["counts"].get("fail") or r["counts"].get("error"))
    return {"width": width, "height": top + len(rows) * ROW + 8, "left": left, "rows": drawn,
            "outcomes": OUTCOMES, "words": OUTCOME_WORDS,
            "description": (f"{len(rows)} threats: {failing} with a failing check, {uncovered} that no check of this "
                            "run verifies. Each bar counts the checks verifying the threat, by how they ended.")}
