"""Every parser, fed mutated real configs, ends in findings or input errors: no traceback, no
parser failure, an exit code the findings explain, and no raw control character in what a
terminal shows (issue 7: "no hang or crash on hostile input").

The seeds are the demo trees' files (every kind); Hypothesis mutates them the way files break
and the way an attacker would: lines dropped, doubled or cut, braces and quotes, includes of
globs, YAML anchors and tags, escape sequences, bidi overrides, NUL and non-UTF-8 bytes, very
long lines. A hang fails the example (an alarm in-process).
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mastoaudit.parsers import classify

from .conftest import HOSTILE, RAW_CONTROL, ROOT, exit_code, lint_everything


def _seeds() -> list[tuple[str, bytes]]:
    found = []
    for tree in ("weak", "hardened", "official"):
        base = ROOT / "demo" / tree
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base).as_posix()
            if path.is_file() and not path.is_symlink() and classify(rel, None) is not None:
                found.append((rel, path.read_bytes()))
    return found


SEEDS = _seeds()
KINDS = sorted({classify(rel, None).name for rel, _ in SEEDS})

HOSTILE_LINES = [
    b"{", b"}", b";", b'"', b"'", b"(", b"[", b"]", b"include /etc/nginx/*;", b"include *", b"include_dir '.'",
    b"Include /etc/ssh/*", b"include /etc/redis/*.conf", b"[Service", b"---", b"&a [*a, *a]", b"*nowhere",
    b"!!python/name:os.system x", b"!vault |", b"<<: *a", b"- - - -", b"  : :", b"export", b"=", b"user x on nopass",
    b"host all all", b"\x1b[2J\x1b[31mFAKE\x07", b"\xe2\x80\xae", b"\x00", b"\xff\xfe", b"\r", b"\t\t\t",
    b"a" * 20_000, b"\\", b"${X}", b"{{ jinja }}", b"<%= erb %>", b"server { listen 80; location / {",
    b"services: {web: {ports: [x]}}", b"requirepass", b"listen_addresses = '*", b"Environment=A=\"b",
]


@st.composite
def mutated(draw):
    rel, data = draw(st.sampled_from(SEEDS))
    lines = data.split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["insert", "delete", "double", "cut", "byte", "truncate"]))
        at = draw(st.integers(0, max(0, len(lines) - 1)))
        if action == "insert":
            lines.insert(at, draw(st.sampled_from(HOSTILE_LINES)))
        elif action == "delete" and len(lines) > 1:
            del lines[at]
        elif action == "double":
            lines[at:at] = [lines[at]] * draw(st.integers(1, 50))
        elif action == "cut" and lines[at]:
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
        elif action == "byte" and lines[at]:
            i = draw(st.integers(0, len(lines[at]) - 1))
            lines[at] = lines[at][:i] + bytes([draw(st.integers(0, 255))]) + lines[at][i + 1:]
        elif action == "truncate":
            lines = lines[: at + 1]
    return rel, b"\n".join(lines)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("a lint took longer than 30 s")


@settings(HOSTILE, max_examples=120)
@given(case=mutated())
def test_every_parser_survives_mutated_configs(registry, case):
    rel, data = case
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)
    try:
        with tempfile.TemporaryDirectory(prefix="mastoaudit-fuzz-") as tmp:
            target = Path(tmp) / rel
            target.parent.mkdir(parents=True)
            target.write_bytes(data)
            result, outputs = lint_everything(registry, Path(tmp))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert exit_code(result) in (0, 1, 3)
    failures = [f.message for f in result.findings if "the parser failed" in f.message or "check failed" in f.message]
    assert not failures, (rel, failures)
    assert not RAW_CONTROL.search(outputs["terminal"]) and not RAW_CONTROL.search(outputs["plan"])


def test_the_seeds_cover_every_kind():
    assert set(KINDS) == {"nginx", "mastodon_env", "pg_hba", "postgresql_conf", "redis_conf", "elasticsearch_yml",
                          "compose", "systemd_unit", "sshd_config"}
