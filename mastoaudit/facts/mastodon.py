"""Mastodon as an anonymous outsider sees it (mastoaudit/probes/mastodon_api.py), as plain data:
`mastodon_exposure` (MastodonExposure: what each admin, API and ActivityPub endpoint answered) and
`nodeinfo` (NodeInfo). The release a host runs is a MastodonVersion (`mastodon_version`), read from
version.rb over SSH, from the instance API, or from NodeInfo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Location


@dataclass(frozen=True)
class NodeInfo:
    domain: str
    index_url: str
    url: str | None = None  # the schema document's URL
    schema: str | None = None  # "2.0", "2.1"
    software_name: str | None = None
    software_version: str | None = None
    protocols: tuple[str, ...] = ()
    open_registrations: bool | None = None
    users_total: int | None = None
    problem: str | None = None  # why it could not be read, with an escaped excerpt
    missing: bool = False  # the server publishes no NodeInfo (404, refused): not a malformed answer

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Endpoint:
    name: str  # sidekiq, pghero, metrics, timeline, actor, peers, domain-blocks, webfinger-local
    vhost: str  # how it was reached, as shown in findings
    url: str
    address: str | None = None  # the address connected to, when not the name's own
    status: int | None = None
    location: str | None = None
    content_type: str = ""
    recognised: bool = False  # the body is what the name says: a dashboard, metrics, a list, an actor
    count: int | None = None  # items of a JSON list
    excerpt: str = ""
    error: str | None = None
    refused: bool = False
    source: str = ""  # how the URL was found (the actor)

    @property
    def where(self) -> str:
        return f"{self.url} at {self.address}" if self.address else self.url

    def at(self) -> Location:
        return Location(self.where)

    @property
    def answered(self) -> bool:
        return self.status is not None


@dataclass
class MastodonExposure:
    web_domain: str
    local_domain: str
    expects: dict[str, bool | None] = field(default_factory=dict)
    endpoints: list[Endpoint] = field(default_factory=list)
    unset: frozenset[str] = frozenset()  # settings left unset: their False is Mastodon's default
    actor_note: str = ""  # how an actor was looked for, when none was found

    def of(self, name: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.name == name]


@dataclass(frozen=True)
class MastodonVersion:
    """The Mastodon release a target runs, and where it was read."""

    version: str
    location: Location | None = None
    source: str = ""  # version.rb, the instance API's URL, nodeinfo
