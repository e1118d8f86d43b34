"""Letter grades from a 0-100 score, in the bands of the Mozilla HTTP Observatory.

Shared by the HTTP probe's Observatory-style grade of the web host and the report's grades per
component and per threat, so that an A means the same everywhere.
"""

from __future__ import annotations

GRADES = ((100, "A+"), (90, "A"), (85, "A-"), (80, "B+"), (70, "B"), (65, "B-"), (60, "C+"), (50, "C"),
          (45, "C-"), (40, "D+"), (30, "D"), (25, "D-"), (0, "F"))


def letter(score: int) -> str:
    return next(g for floor, g in GRADES if score >= floor)
