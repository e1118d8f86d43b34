"""JSON report: the run document, validated by data/report.schema.json."""

from __future__ import annotations

import json
from typing import TextIO

from ..engine import RunResult
from .document import build_document


def render(result: RunResult) -> str:
    return render_document(build_document(result))


def render_document(doc: dict) -> str:
    # Compact: reports of large trees hold thousands of findings (pipe through `jq .` to read).
    return json.dumps(doc, separators=(",", ":")) + "\n"


def write_document(doc: dict, out: TextIO) -> None:
    """The same text as `render_document`, written finding by finding: a run with tens of thousands
    of findings (6,000 server blocks) never holds the whole text at once."""
    hole = "\x00findings\x00"
    head, tail = json.dumps({**doc, "findings": hole}, separators=(",", ":")).split(json.dumps(hole), 1)
    out.write(head + "[")
    for n, finding in enumerate(doc["findings"]):
        out.write(("," if n else "") + json.dumps(finding, separators=(",", ":")))
    out.write("]" + tail + "\n")
