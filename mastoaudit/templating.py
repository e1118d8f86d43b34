"""The one template detector: a value that still holds template syntax is filled in later, by a tool
mastoaudit does not see, so it is never judged (a check says it skipped it, and why).

Three things make a value a template:
- a config-management marker, the same in every format: Jinja (Ansible, Salt) `{{ }}`, `{% %}` and
  `{# #}`, Go templates (Helm, consul-template) `{{ }}`, ERB (Chef, Puppet) `<% %>`;
- a packaging system's placeholder, the same in every format: `__DOMAIN__` (YunoHost and other
  app packages, replaced by their install scripts), `@bindir@` (autoconf's `.in` files);
- the format's own interpolation, which differs: what is a placeholder in one format is a literal or
  a variable of the program in another (`${host}` is nginx's own variable, `${HOST}` and `$HOST` an
  envsubst placeholder; Compose expands `$VAR` unless written `$$`; systemd expands `%i`; dotenv
  expands `$VAR`, `${VAR}` and `$(...)` except in single quotes). `SYNTAX` names them, one entry per
  format.

A whole file can be a template too (`nginx.conf.j2`, a Helm chart's files/): `template_name` strips
the suffix the tools give such files so the file is recognised by the name it will have, and
`neutralise` turns its control statements into blank lines (line numbers stay true) so that the
format's own parser reads the literal parts, which are judged, and keeps each expression as a
value, which is not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

MARKER = re.compile(r"\{\{|\{%|\{#|<%")
# Placeholders of packaging systems: __DOMAIN__, __INSTALL_DIR__ (upper case between double
# underscores) and autoconf's @sysconfdir@ (a word between at-signs, no blank, no dot).
PLACEHOLDER = re.compile(r"__[A-Z][A-Z0-9_]*[A-Z0-9]__|(?<![A-Za-z0-9@])@[A-Za-z_][A-Za-z0-9_]{1,39}@(?![A-Za-z0-9@])")
# Where each opening marker ends (tokenizers keep a template expression in one piece, blanks and all).
CLOSING = {"{{": "}}", "{%": "%}", "{#": "#}", "${": "}", "<%": "%>"}
# Template files' suffixes: the name before it is the file's own (mastodon.conf.j2 is an nginx site).
TEMPLATE_SUFFIXES = (".j2", ".jinja2", ".jinja", ".tmpl", ".tpl", ".gotmpl", ".template", ".erb", ".in")

_ENVSUBST = r"\$\{[A-Z_][A-Z0-9_]*(?::?[-=?+][^}]*)?\}|\$[A-Z][A-Z0-9_]*[A-Z0-9]\b"

SYNTAX: dict[str, re.Pattern[str] | None] = {
    "plain": None,  # markers and placeholders only
    "config": re.compile(r"\$\{"),  # postgresql.conf, pg_hba.conf, redis.conf, elasticsearch.yml, sshd_config
    # nginx's own variables are lower case ($host, ${host}); upper case is envsubst's (the nginx image's
    # templates/*.template), and envsubst replaces $VAR as well as ${VAR}.
    "nginx": re.compile(_ENVSUBST),
    "systemd": re.compile(r"\$\{|%[a-zA-Z]"),  # specifiers: %i, %u, %h ...
    "compose": re.compile(r"(?<!\$)\$(\{|[A-Za-z_])"),  # $$ is a literal $
    "dotenv": re.compile(r"(?<!\\)\$(?:\{|\(|[A-Za-z0-9_])"),  # unquoted and double-quoted values; \$ is literal
    "dotenv-literal": re.compile(r"(?<!\\)\$\{[^}]*\}"),  # single-quoted: only a tool's own ${...}
}


def is_templated(value: str, syntax: str = "plain") -> bool:
    """Whether `value`, written in the given format, is a template rather than a value."""
    if MARKER.search(value) or PLACEHOLDER.search(value):
        return True
    pattern = SYNTAX[syntax]
    return pattern is not None and pattern.search(value) is not None


def first_marker(text: str) -> re.Match[str] | None:
    """The first config-management marker in a text (a whole file that is a template, not a config)."""
    return MARKER.search(text)


def template_name(path: str) -> str | None:
    """The name a template file renders to (`templates/nginx.conf.j2` -> `templates/nginx.conf`), or
    None when the name has no template suffix."""
    lowered = path.lower()
    for suffix in TEMPLATE_SUFFIXES:
        if lowered.endswith(suffix) and len(path.rsplit("/", 1)[-1]) > len(suffix):
            return path[: -len(suffix)]
    return None


# --- whole files that are templates --------------------------------------------------------------

# One template tag: Jinja/Go `{{ }}`, Jinja `{% %}` and `{# #}`, ERB `<% %>`, with their trim marks.
_TAG = re.compile(r"\{\{-?.*?-?\}\}|\{%-?.*?-?%\}|\{#.*?#\}|<%[=#-]?.*?-?%>", re.DOTALL)
# Go template actions that control the output rather than print a value.
_GO_CONTROL = re.compile(r"^\{\{-?\s*(?:if|else|end|range|with|define|block|break|continue|/\*)\b")
# Tags that put text of their own in the file: what they insert is not seen.
_GO_INSERT = re.compile(r"^\{\{-?\s*(?:template|include)\b")
_JINJA_INSERT = re.compile(r"^\{%-?\s*(?:include|import|extends)\b")


@dataclass
class Neutralised:
    """A template file with its control statements blanked (same lines), its expressions replaced by
    tokens the format's tokenizer keeps whole (`expressions` maps each token back to the tag as
    written), and the lines where a tag inserts text of its own (an include, or an expression that
    stands alone on its line: configuration the file does not show)."""

    text: str
    expressions: dict[str, str] = field(default_factory=dict)
    inserted: list[tuple[int, str]] = field(default_factory=list)  # (line, the tag as written)
    original: str = ""

    @property
    def is_template(self) -> bool:
        return self.text != self.original

    def restore(self, token: str) -> str:
        """A token of the neutralised text with each expression written back as it was."""
        if "__TPL" not in token:
            return token
        return _TOKEN.sub(lambda m: self.expressions.get(m.group(0), m.group(0)), token)


_TOKEN = re.compile(r"__TPL\d+__")


def _kind(tag: str) -> str:
    """"statement" (blanked), "insert" (blanked, its line recorded) or "expression" (a value)."""
    if tag.startswith("{#") or tag.startswith("<%#"):
        return "statement"
    if tag.startswith("{%"):
        return "insert" if _JINJA_INSERT.match(tag) else "statement"
    if tag.startswith("<%"):
        return "expression" if tag.startswith("<%=") else "statement"
    if _GO_CONTROL.match(tag):
        return "statement"
    if _GO_INSERT.match(tag):
        return "insert"
    return "expression"


def neutralise(text: str, insert_as: Callable[[int], str] | None = None) -> Neutralised:
    """`text` with its template tags neutralised (see Neutralised). A text without tags comes back
    as it is. `insert_as(n)`: what a format puts where the n-th insertion was (nginx: a directive the
    parser turns into an unseen include), else it is blanked."""
    if not MARKER.search(text):
        return Neutralised(text, original=text)
    out = Neutralised("", original=text)
    parts: list[str] = []
    position = 0
    for match in _TAG.finditer(text):
        tag = match.group(0)
        start, end = match.span()
        parts.append(text[position:start])
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        alone = not text[line_start:start].strip() and not text[end:line_end].strip()
        kind = _kind(tag)
        if kind == "expression" and alone:
            kind = "insert"  # `{{ extra_config }}` on a line of its own: configuration, not a value
        elif kind != "expression" and not alone:
            kind = "expression"  # `ssl{% if http2 %} http2{% endif %}`: the value depends on the template
        if kind == "expression":
            token = f"__TPL{len(out.expressions)}__"
            out.expressions[token] = " ".join(tag.split())
            parts.append(token)
        else:
            if kind == "insert":
                if insert_as is not None:
                    parts.append(insert_as(len(out.inserted)))
                out.inserted.append((text.count("\n", 0, start) + 1, " ".join(tag.split())))
            parts.append("\n" * tag.count("\n"))  # the lines it spanned stay lines
        position = end
    parts.append(text[position:])
    out.text = "".join(parts)
    return out


def statement_lines(text: str) -> str:
    """For line-oriented formats (.env, units, pg_hba.conf, postgresql.conf, redis.conf, sshd_config):
    the text with every template control statement and insertion blanked, line numbers kept;
    expressions stay as they are written (their values are then templated)."""
    if not MARKER.search(text):
        return text
    parts: list[str] = []
    position = 0
    for match in _TAG.finditer(text):
        tag = match.group(0)
        start, end = match.span()
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        alone = not text[line_start:start].strip() and not text[end:line_end].strip()
        if not alone:
            continue  # part of a value (an expression, or a condition inside it): left in place
        parts.append(text[position:start])
        parts.append("\n" * tag.count("\n"))
        position = end
    parts.append(text[position:])
    return "".join(parts)
