"""The trend chart of the HTML report: failures by severity over the runs kept in --history.

Only geometry is computed here (numbers and short labels); the template draws it as inline SVG,
escaped like everything else. Each severity has its own marker shape, dash pattern and a label at
the end of its line, so the chart reads in print and without colour; a data table carries the
same numbers as text.
"""

from __future__ import annotations

import itertools
import math

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 44, 118, 18, 46
SERIES = ("critical", "high", "medium", "low", "info")
SHAPES = {"critical": "square", "high": "triangle", "medium": "circle", "low": "diamond", "info": "cross"}
DASHES = {"critical": "", "high": "8 3", "medium": "2 3", "low": "10 3 2 3", "info": "1 5"}
MAX_X_LABELS = 6


def _axis(value: int) -> tuple[int, int]:
    """(top, step) of the y axis: about four whole-number steps that reach `value`."""
    if value <= 4:
        return 4, 1
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = magnitude
    for m in (1, 2, 2.5, 5, 10):
        step = max(1, int(m * magnitude))
        if step >= raw:
            break
    return step * math.ceil(value / step), step


def _marker(shape: str, x: float, y: float, r: float) -> str:
    """An SVG path for one point's marker."""
    if shape == "square":
        return f"M{x - r:.1f} {y - r:.1f}h{2 * r:.1f}v{2 * r:.1f}h{-2 * r:.1f}z"
    if shape == "triangle":
        return f"M{x:.1f} {y - r * 1.2:.1f}L{x + r * 1.1:.1f} {y + r * .9:.1f}L{x - r * 1.1:.1f} {y + r * .9:.1f}z"
    if shape == "diamond":
        d = r * 1.3
        return f"M{x:.1f} {y - d:.1f}L{x + d:.1f} {y:.1f}L{x:.1f} {y + d:.1f}L{x - d:.1f} {y:.1f}z"
    if shape == "cross":
        return f"M{x - r:.1f} {y - r:.1f}L{x + r:.1f} {y + r:.1f}M{x - r:.1f} {y + r:.1f}L{x + r:.1f} {y - r:.1f}"
    return (f"M{x - r:.1f} {y:.1f}a{r:.1f} {r:.1f} 0 1 0 {2 * r:.1f} 0"
            f"a{r:.1f} {r:.1f} 0 1 0 {-2 * r:.1f} 0z")


def _day(started_at: str) -> str:
    return started_at[:10]


def _moment(started_at: str) -> str:
    return started_at[:16].replace("T", " ")


def chart(runs: list[dict]) -> dict:
    """The chart of `runs` (history entries, oldest first; the last is this run)."""
    n = len(runs)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    drawn = [s for s in SERIES if any(r["failed_by_severity"][s] for r in runs)]
    top, tick = _axis(max((r["failed_by_severity"][s] for r in runs for s in drawn), default=0))

    def x_at(i: int) -> float:
        return LEFT + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y_at(v: int) -> float:
        return TOP + plot_h - plot_h * v / top

    radius = 4.0 if n <= 40 else 3.0 if n <= 120 else 2.0
    series = []
    for s in drawn:
        points = []
        for i, r in enumerate(runs):
            v = r["failed_by_severity"][s]
            x, y = x_at(i), y_at(v)
            points.append({"x": round(x, 1), "y": round(y, 1), "value": v, "run": i + 1,
                           "path": _marker(SHAPES[s], x, y, radius),
                           "title": f"{_moment(r['started_at'])} · {s}: {v}"})
        series.append({"name": s, "shape": SHAPES[s], "dash": DASHES[s], "points": points,
                       "line": " ".join(f"{p['x']},{p['y']}" for p in points), "last": points[-1]["value"]})
    # Labels at the end of each line, pushed apart so that they never overlap.
    labels = sorted(({"name": s["name"], "y": s["points"][-1]["y"], "value": s["last"]} for s in series),
                    key=lambda item: item["y"])
    for above, below in itertools.pairwise(labels):
        below["y"] = max(below["y"], above["y"] + 13)
    for label in labels:
        label["x"], label["y"] = WIDTH - RIGHT + 22, round(label["y"] + 4, 1)
        label["marker"] = _marker(SHAPES[label["name"]], WIDTH - RIGHT + 14, label["y"] - 4, 3.5)
    y_ticks = [{"value": v, "y": round(y_at(v), 1)} for v in range(0, top + 1, tick)]
    step = max(1, math.ceil(n / MAX_X_LABELS))
    shown = sorted({*range(0, n, step), n - 1})
    if len(shown) > 1 and shown[-1] - shown[-2] < step / 2:
        shown.pop(-2)  # the last run's label wins over a neighbour it would collide with
    # Dates, or times when the runs span less than two days.
    span_days = len({_day(r["started_at"]) for r in runs})
    label = _day if span_days > 2 else (lambda text: _moment(text)[5:])
    x_ticks = [{"x": round(x_at(i), 1), "label": label(runs[i]["started_at"])} for i in shown]
    # Where the release or the number of checks changed: the counts before and after are not alike.
    changes = []
    for i in range(1, n):
        before, now = runs[i - 1], runs[i]
        if (before["tool_version"], before["checks_run"]) != (now["tool_version"], now["checks_run"]):
            what = (f"mastoaudit {before['tool_version']} → {now['tool_version']}"
                    if before["tool_version"] != now["tool_version"]
                    else f"{before['checks_run']} → {now['checks_run']} checks")
            changes.append({"x": round((x_at(i - 1) + x_at(i)) / 2, 1), "label": what})
    latest = runs[-1]["failed_by_severity"]
    summary = ", ".join(f"{s} {latest[s]}" for s in SERIES)
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP,
        "bottom": HEIGHT - BOTTOM, "series": series, "labels": labels, "y_ticks": y_ticks, "x_ticks": x_ticks,
        "changes": changes, "runs": n, "current_x": round(x_at(n - 1), 1),
        "flat": [s for s in SERIES if s not in drawn],
        "description": (f"Failed findings by severity, not counting waived ones, over {n} run{'s' if n != 1 else ''} "
                        f"from {_moment(runs[0]['started_at'])} to {_moment(runs[-1]['started_at'])}. "
                        f"This run: {summary}."),
        "table": [{"when": _moment(r["started_at"]), "counts": [r["failed_by_severity"][s] for s in SERIES],
                   "waived": r.get("waived", 0), "complete": r["complete"], "current": r.get("current", False)}
                  for r in reversed(runs)],
    }
