"""JSON report: the run document, validated by data/report.schema.json."""

from __future__ import annotations

import json

from ..engine import RunResult
from .document import build_document


def render(result: RunResult) -> str:
    return render_document(build_document(result))


def render_document(doc: dict) -> str:
    # Compact: reports of large trees hold thousands of findings (pipe through `jq .` to read).
    return json.dumps(doc, separators=(",", ":")) + "\n"
