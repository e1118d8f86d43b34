"""The hostile-input suite (issue 7): what an attacker controls is a config tree, an inventory, a
file name, a secret's shape. Helpers shared by its tests:

- `HOSTILE`: Hypothesis settings with a fixed seed (derandomize) and a bounded budget, no example
  database (nothing written beside the checkout), no deadline (a loaded CI machine is not a bug);
- `lint_everything(tree)`: lint in-process and render every format and the fix plan;
- `run_bounded(argv)`: the command line in a child process under RLIMIT_AS and a timeout, for the
  inputs that used to hang or eat the machine.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

from mastoaudit.engine import RunResult, run
from mastoaudit.fixplan import plan
from mastoaudit.model import Severity
from mastoaudit.reporting import renderer
from mastoaudit.reporting.document import build_document
from mastoaudit.reporting.terminal import render as render_terminal
from mastoaudit.selection import Selection
from mastoaudit.sources.local import collect_tree

ROOT = Path(__file__).resolve().parent.parent.parent

HOSTILE = settings(derandomize=True, database=None, deadline=None, max_examples=25, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])

# A raw control character in text meant for a terminal (newline and tab are layout).
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
FORMATS = ("json", "html", "sarif", "junit")


def lint_everything(registry, *trees: Path) -> tuple[RunResult, dict[str, str]]:
    """Lint `trees` and render the terminal report, every file format and the fix plan."""
    result = run("lint", registry, Selection(), [collect_tree(t) for t in trees])
    outputs = {fmt: renderer(fmt)(result) for fmt in FORMATS}
    outputs["terminal"] = render_terminal(result, show_passed=True)
    outputs["plan"] = plan(build_document(result))
    json.loads(outputs["json"])
    json.loads(outputs["sarif"])
    return result, outputs


def exit_code(result: RunResult) -> int:
    return result.exit_code(Severity.LOW)


def _limits(memory_mb: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    return apply


def run_bounded(*argv: str, cwd: Path | None = None, timeout: float = 120, memory_mb: int = 1536,
                stdin: str | None = None) -> subprocess.CompletedProcess:
    """`mastoaudit argv...` in a child with an address-space limit and a timeout (a hang or a
    runaway allocation fails the test instead of the machine)."""
    code = "import sys; from mastoaudit.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd or ROOT, env=env, capture_output=True,
                          text=True, errors="surrogateescape", timeout=timeout, preexec_fn=_limits(memory_mb),
                          input=stdin)


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
