"""Line-oriented configuration files, edited in place: sshd_config, pg_hba.conf, postgresql.conf and
systemd drop-ins. Pure functions of text: every other line is kept as it was, and each returns the
new text (the same text when nothing needs to change, which is what makes a second apply a no-op).
"""

from __future__ import annotations

import re

MARK = "# mastoaudit"

# --- sshd_config ----------------------------------------------------------------------------------
# sshd keeps the first value it reads for a keyword, includes read at the point of the Include line
# (Debian's sshd_config starts with `Include /etc/ssh/sshd_config.d/*.conf`, and cloud images drop
# PasswordAuthentication yes there). So the settings go into a marked block at the very top of the
# main file, before any Include, and the main file's own later lines that say otherwise are
# commented out so that nobody reads them as the value in force.

SSHD_BEGIN = "# BEGIN mastoaudit fix --plan: sshd takes the first value it reads, so these come first"
SSHD_END = "# END mastoaudit"
_SSHD_LINE = re.compile(r"^\s*([A-Za-z]+)(?:\s*=\s*|\s+)(.*?)\s*$")


def sshd_set(text: str, settings: dict[str, str], check_ids: list[str]) -> str:
    lines = text.split("\n")
    begin = next((i for i, line in enumerate(lines) if line.strip() == SSHD_BEGIN), None)
    block: dict[str, str] = {}
    ids = set(check_ids)
    body = lines
    if begin is not None:
        end = next((i for i in range(begin + 1, len(lines)) if lines[i].strip() == SSHD_END), None)
        if end is None:
            raise ValueError("the mastoaudit block at the top of sshd_config has no end line")
        for line in lines[begin + 1:end]:
            if line.startswith(f"{MARK}: "):
                ids |= set(line[len(MARK) + 2:].split(", "))
            elif (m := _SSHD_LINE.match(line)) and not line.lstrip().startswith("#"):
                block[m.group(1).lower()] = line.strip()
        body = lines[:begin] + lines[end + 1:]
    wanted = dict(block)
    for key, value in settings.items():
        if block.get(key.lower(), "").lower() != f"{key} {value}".lower():
            wanted[key.lower()] = f"{key} {value}"
    values = {k: line.split(None, 1)[1].lower() if " " in line else "" for k, line in wanted.items()}
    new_body, in_match = [], False
    for line in body:
        m = _SSHD_LINE.match(line)
        stripped = line.lstrip()
        if m and not stripped.startswith("#"):
            key = m.group(1).lower()
            in_match = in_match or key == "match"
            if not in_match and key in values and m.group(2).strip().lower() != values[key]:
                line = f"# {stripped}  {MARK}: set at the top of this file"
        new_body.append(line)
    if begin is not None and wanted == block and new_body == body:
        return text
    head = [SSHD_BEGIN, f"{MARK}: {', '.join(sorted(ids))}", *wanted.values(), SSHD_END]
    return "\n".join(head + new_body)


# --- pg_hba.conf ----------------------------------------------------------------------------------

def _hba_tokens(line: str) -> list[str]:
    return line.split("#", 1)[0].split()


def hba_rewrite(text: str, rules: dict[str, str]) -> str:
    """Replace each rule whose normalised text (tokens joined by one space) is a key of `rules` by
    the rule given as its value, keeping the line's column layout where the widths allow."""
    out = []
    for line in text.split("\n"):
        tokens = _hba_tokens(line)
        key = " ".join(tokens)
        new = rules.get(key)
        if tokens and new is not None and new != key:
            line = _relayout(line, tokens, new.split()) + f"  {MARK}: was: {key}"
        out.append(line)
    return "\n".join(out)


def _relayout(line: str, old: list[str], new: list[str]) -> str:
    """The new tokens in the old tokens' columns (as far as they go)."""
    starts, pos = [], 0
    for tok in old:
        pos = line.index(tok, pos)
        starts.append(pos)
        pos += len(tok)
    text = ""
    for i, tok in enumerate(new):
        col = starts[i] if i < len(starts) else len(text) + 1
        text = text + " " * max(1 if text else 0, col - len(text)) + tok
    return text


def hba_rule_with(rule: str, *, method: str | None = None, address: str | None = None) -> str:
    """A pg_hba rule (normalised text) with its method and/or address (and mask) replaced."""
    tokens = rule.split()
    if not tokens:
        return rule
    kind = tokens[0]
    if kind == "local":
        head, rest = tokens[:3], tokens[3:]
        addr: list[str] = []
    else:
        head = tokens[:3]
        # an address with a separate mask takes two tokens
        if len(tokens) > 4 and re.match(r"^\d+\.\d+\.\d+\.\d+$", tokens[4] or ""):
            addr, rest = tokens[3:5], tokens[5:]
        else:
            addr, rest = tokens[3:4], tokens[4:]
    if address is not None and kind != "local":
        addr = [address]
    if method is not None and rest:
        rest = [method, *rest[1:]]
    return " ".join(head + addr + rest)


# --- postgresql.conf ------------------------------------------------------------------------------
_PG_LINE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_.]*)(\s*=\s*|\s+)(.*)$")


def _pg_value(rest: str) -> str:
    rest = rest.strip()
    if rest.startswith("'"):
        m = re.match(r"'((?:[^']|'')*)'", rest)
        return m.group(1).replace("''", "'") if m else rest
    return rest.split("#", 1)[0].strip()


def pg_set(text: str, settings: dict[str, str], check_ids: list[str]) -> str:
    """Each setting's last active line (the one PostgreSQL keeps) set to the value; appended when
    the file has none. Values are written quoted."""
    lines = text.split("\n")
    for name, value in settings.items():
        last = None
        for i, line in enumerate(lines):
            m = _PG_LINE.match(line)
            if m and m.group(2).lower() == name.lower():
                last = i
        quoted = "'" + value.replace("'", "''") + "'"
        if last is not None:
            m = _PG_LINE.match(lines[last])
            if _pg_value(m.group(4)).lower() == value.lower():
                continue
            lines[last] = f"{m.group(1)}{name} = {quoted}  {MARK}: {', '.join(check_ids)} (was: {m.group(4).strip()})"
        else:
            if lines and lines[-1] == "":
                lines.insert(len(lines) - 1, f"{name} = {quoted}  {MARK}: {', '.join(check_ids)}")
            else:
                lines.append(f"{name} = {quoted}  {MARK}: {', '.join(check_ids)}")
    return "\n".join(lines)


# --- systemd drop-ins -----------------------------------------------------------------------------

def dropin(settings: list[tuple[str, str]], check_ids: list[str]) -> str:
    """A drop-in's text: [Service] with the settings, in a stable order."""
    head = [f"{MARK} fix --plan: sandboxing for {', '.join(sorted(set(check_ids)))}",
            "# Mastodon's own units (dist/mastodon-*.service) set the same; remove this file to undo.",
            "[Service]"]
    return "\n".join(head + [f"{k}={v}" for k, v in settings]) + "\n"
