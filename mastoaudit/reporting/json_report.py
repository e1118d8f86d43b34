"""JSON report: the run document, validated by data/report.schema.json.

Written as a stream: a run with tens of thousands of findings (6,000 server blocks) never holds
the whole text, nor every finding as a dict, at once; each finding is encoded on its own.
"""

from __future__ import annotations

import io
import json
from typing import TextIO

from ..engine import RunResult
from .document import build_document, sorted_findings

_COMPACT = {"separators": (",", ":")}  # reports of large trees hold thousands of findings: `jq .` reads them
_HOLE = "\x00findings\x00"


def write(result: RunResult, out: TextIO) -> None:
    doc = build_document(result, findings=False)
    doc["findings"] = _HOLE  # the key keeps its place in the document
    head, tail = json.dumps(doc, **_COMPACT).split(json.dumps(_HOLE), 1)
    out.write(head)
    out.write("[")
    for n, finding in enumerate(sorted_findings(result)):
        if n:
            out.write(",")
        out.write(json.dumps(finding.to_dict(), **_COMPACT))
    out.write("]")
    out.write(tail)
    out.write("\n")


def render(result: RunResult) -> str:
    buffer = io.StringIO()
    write(result, buffer)
    return buffer.getvalue()
