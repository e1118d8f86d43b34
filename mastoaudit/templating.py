"""The one template detector: a value that still holds template syntax is filled in later, by a tool
mastoaudit does not see, so it is never judged (a check says it skipped it, and why).

Two things make a value a template:
- a config-management marker, the same in every format: Jinja (Ansible, Salt) `{{ }}` and `{% %}`,
  ERB (Chef, Puppet) `<% %>`;
- the format's own interpolation, which differs: what is a placeholder in one format is a literal or
  a variable of the program in another (`${host}` is nginx's own variable, `${HOST}` a placeholder;
  Compose expands `$VAR` unless written `$$`; systemd expands `%i`; dotenv expands `$VAR`, `${VAR}`
  and `$(...)` except in single quotes). `SYNTAX` names them, one entry per format.
"""

from __future__ import annotations

import re

MARKER = re.compile(r"\{\{|\{%|<%")
# Where each opening marker ends (tokenizers keep a template expression in one piece, blanks and all).
CLOSING = {"{{": "}}", "{%": "%}", "${": "}", "<%": "%>"}

SYNTAX: dict[str, re.Pattern[str] | None] = {
    "plain": None,  # markers only
    "config": re.compile(r"\$\{"),  # postgresql.conf, pg_hba.conf, redis.conf, elasticsearch.yml
    "nginx": re.compile(r"\$\{[A-Z_][A-Z0-9_]*\}"),  # ${lower} is nginx's own variable syntax
    "systemd": re.compile(r"\$\{|%[a-zA-Z]"),  # specifiers: %i, %u, %h ...
    "compose": re.compile(r"(?<!\$)\$(\{|[A-Za-z_])"),  # $$ is a literal $
    "dotenv": re.compile(r"(?<!\\)\$(?:\{|\(|[A-Za-z0-9_])"),  # unquoted and double-quoted values; \$ is literal
    "dotenv-literal": re.compile(r"(?<!\\)\$\{[^}]*\}"),  # single-quoted: only a tool's own ${...}
}


def is_templated(value: str, syntax: str = "plain") -> bool:
    """Whether `value`, written in the given format, is a template rather than a value."""
    if MARKER.search(value):
        return True
    pattern = SYNTAX[syntax]
    return pattern is not None and pattern.search(value) is not None


def first_marker(text: str) -> re.Match[str] | None:
    """The first config-management marker in a text (a whole file that is a template, not a config)."""
    return MARKER.search(text)
