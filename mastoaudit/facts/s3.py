"""The media bucket as strangers see it (mastoaudit/probes/s3.py): an S3Fact per bucket (`s3`) with
each attempt made, and the readings of its ACL, policy and CORS that the checks share. Plain data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..net.target import S3Settings
from ..net.text import excerpt

MAX_POLICY = 20000  # characters of a bucket policy kept
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


@dataclass
class Attempt:
    """One request and what came of it."""

    via: str  # "endpoint", "media host" (and "endpoint, signed" for credentialed reads)
    url: str  # where, for the report
    action: str  # list, write, read, read-plain-http, preflight, ...
    outcome: str  # allowed, denied, error, absent, ... (per action)
    status: int | None = None
    code: str = ""  # the S3 error code or an HTTP reason
    detail: str = ""  # evidence: an excerpt, a header, a key
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def evidence(self) -> str:
        head = f"HTTP {self.status}" if self.status else self.outcome
        return ", ".join(x for x in (head, self.code, self.detail) if x)


@dataclass
class S3Fact:
    """The bucket and its media host as this scan saw them (the fact kind "s3")."""

    settings: S3Settings | None
    alias_host: str | None
    endpoint_view: str | None = None  # public, internal (not reachable by outsiders) or unknown
    endpoint_address: str | None = None
    credentials: str | None = None  # where the credentials came from, when some were used
    listings: list[Attempt] = field(default_factory=list)
    writes: list[Attempt] = field(default_factory=list)
    reads: list[Attempt] = field(default_factory=list)
    plain_http: list[Attempt] = field(default_factory=list)
    preflights: list[Attempt] = field(default_factory=list)
    config: dict[str, Attempt] = field(default_factory=dict)  # acl, public_access_block, policy, cors, ...
    keys: list[str] = field(default_factory=list)  # object keys seen in any listing (bounded)
    keys_source: list[str] = field(default_factory=list)  # which listings they came from
    public_object: str | None = None
    dumps: list[Attempt] = field(default_factory=list)
    _secrets: tuple[str, ...] = field(default=(), repr=False)

    def secret_values(self) -> tuple[str, ...]:
        return self._secrets

    @property
    def endpoint_judged(self) -> bool:
        """Whether what the endpoint answers is what outsiders get (not an internal address)."""
        return self.settings is not None and self.endpoint_view != "internal"

    @property
    def endpoint_url(self) -> str:
        return self.settings.endpoint.rstrip("/") if self.settings else ""

    def object_url(self, key: str, via: str) -> str:
        if via == "media host":
            return f"https://{self.alias_host}/{quote(key)}"
        return f"{self.endpoint_url}/{self.settings.bucket}/{quote(key)}" if self.settings else key


def public_acl_grants(acl: dict) -> list[tuple[str, str]]:
    """Grants to everyone or to every AWS account: (group, permission)."""
    found = []
    for grant in acl.get("grants", []):
        if grant["grantee"] in (ALL_USERS, AUTHENTICATED_USERS):
            group = "AllUsers" if grant["grantee"] == ALL_USERS else "AuthenticatedUsers"
            found.append((group, grant["permission"]))
    return found


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value] if value is not None else []


def public_policy_statements(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """Allow statements of a bucket policy that apply to anyone ("*" principal) without a
    condition: [{actions, resources, sid}], and an error text when the policy cannot be read."""
    try:
        doc = json.loads(text[:MAX_POLICY])
    except (ValueError, RecursionError) as exc:
        return [], f"the policy is not JSON ({type(exc).__name__}): {excerpt(text)}"
    if not isinstance(doc, dict):
        return [], f"the policy is not a JSON object: {excerpt(text)}"
    found = []
    for st in _as_list(doc.get("Statement"))[:200]:
        if not isinstance(st, dict) or st.get("Effect") != "Allow" or st.get("Condition"):
            continue
        principal = st.get("Principal")
        everyone = principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS")))
        if not everyone:
            continue
        actions = [str(a)[:80] for a in _as_list(st.get("Action"))][:50]
        resources = [str(r)[:200] for r in _as_list(st.get("Resource"))][:20]
        found.append({"actions": actions, "resources": resources, "sid": str(st.get("Sid", ""))[:80]})
    return found, None


READ_ONLY_ACTIONS = {"s3:getobject", "s3:getobjectversion"}


def risky_actions(actions: list[str]) -> list[str]:
    """Actions beyond reading objects: listing, writing, deleting, changing permissions."""
    return [a for a in actions if a.lower() not in READ_ONLY_ACTIONS]


def cors_write_methods(methods: str | list[str]) -> list[str]:
    items = methods if isinstance(methods, list) else re.split(r"[,\s]+", methods or "")
    return sorted({m.strip().upper() for m in items if m.strip().upper() in ("PUT", "POST", "DELETE", "PATCH", "*")})
