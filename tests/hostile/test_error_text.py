"""Parse errors never carry text from the file: a property of the ParseError path (issue 7, item 3).

Every ParseError (and YamlError) raised in the parsers is built from fixed words: a constant, or an
f-string whose holes are constants, line numbers or `vocabulary` words (names from a fixed list,
such as nginx's directives). What the file said is never interpolated, so a password wrapped onto
a line of its own, an export of a bare word or an ACL rule without `>` cannot reach a message.
The end-to-end side (malformed files carrying secrets, every output searched) is in
test_secrets_in_errors.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ..conftest import ROOT

SOURCES = [*sorted((ROOT / "mastoaudit" / "parsers").glob("*.py")), ROOT / "mastoaudit" / "yamlsafe.py"]
ERRORS = {"ParseError", "YamlError"}
# Functions whose result is a word from a fixed vocabulary (never the file's own text); and
# yamlsafe's rewording of PyYAML's message, which keeps only what PyYAML quotes of the syntax.
VOCABULARY_FUNCTIONS = {"vocabulary", "_problem_text"}
# Messages that are not the file's text: psql's and redis-cli's own error line when the fixed
# query of the live audit fails (role missing, NOAUTH): kept, they are what the admin needs.
TOOL_DIAGNOSTICS = {("live.py", "f'psql: {line[:200]}'"), ("live.py", "f'redis-cli: {lines[0][:200]}'")}


def _allowed_hole(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Name):
        return expr.id.isupper()  # a module constant (MAX_DEPTH)
    if isinstance(expr, ast.Attribute):
        return expr.attr in ("line", "lineno") or (isinstance(expr.value, ast.Name) and expr.attr.isupper())
    if isinstance(expr, ast.BinOp):
        return _allowed_hole(expr.left) and _allowed_hole(expr.right)
    if isinstance(expr, ast.Constant):
        return True
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        return expr.func.id in VOCABULARY_FUNCTIONS
    if isinstance(expr, ast.Subscript):  # tag[len(_T):] of a standard tag, out[key].location.line
        return _allowed_hole(expr.value) or (isinstance(expr.value, ast.Name) and expr.value.id == "tag")
    return False


def _message_is_fixed(arg: ast.expr) -> bool:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return True
    if isinstance(arg, ast.Attribute) and arg.attr in ("problem", "message"):
        return True  # another error's message, built under this same rule (YamlError.problem)
    if isinstance(arg, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) or (isinstance(v, ast.FormattedValue) and _allowed_hole(v.value))
                   for v in arg.values)
    return False


def _raises(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ERRORS and node.args:
            yield node


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_parse_errors_are_built_from_fixed_words(path: Path):
    bad = [f"{path.name}:{call.lineno}: {ast.unparse(call.args[0])}" for call in _raises(path)
           if not _message_is_fixed(call.args[0]) and (path.name, ast.unparse(call.args[0])) not in TOOL_DIAGNOSTICS]
    assert not bad, "messages built from the file's text:\n" + "\n".join(bad)


def test_the_rule_sees_the_raises():
    assert sum(1 for path in SOURCES for _ in _raises(path)) > 60
