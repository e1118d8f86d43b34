"""JSON report: the run document, validated by data/report.schema.json."""

from __future__ import annotations

import json

from ..engine import RunResult
from .document import build_document


def render(result: RunResult) -> str:
    return json.dumps(build_document(result), indent=2, sort_keys=False) + "\n"
