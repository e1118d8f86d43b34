"""`.env.production` values, as every component's checks of them point at and skip them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import kinds
from ..checkdef import skipped
from ..facts import FactSet
from ..model import Location, Outcome
from ..parsers.env import EnvVar, MastodonEnv, is_local_host

# A service Mastodon may or may not use: (the variable that says so, why it is not judged or None).
Feature = Callable[[MastodonEnv], tuple[EnvVar | None, str | None]]

CONFIG_DOCS = "https://docs.joinmastodon.org/admin/config/"


def var_at(env: MastodonEnv, var: EnvVar | None) -> Location:
    return env.at(var.line if var else None)


def templated(env: MastodonEnv, var: EnvVar) -> Outcome:
    return skipped(f"{var.key} is templated or expanded at load time: its value cannot be judged here",
                   at=var_at(env, var), subject=var.key, observed="templated", expected="a literal value")


@dataclass(frozen=True)
class Switch:
    """A service Mastodon uses only when a flag is true (ES_ENABLED, S3_ENABLED): called on a file,
    (the flag, why the service is not judged there, or None)."""

    flag: str
    off: str

    def __call__(self, env: MastodonEnv) -> tuple[EnvVar | None, str | None]:
        enabled = env.get(self.flag)
        if enabled is not None and enabled.templated:
            return enabled, f"{self.flag} is templated"
        if not env.is_true(self.flag):
            return enabled, self.off
        return enabled, None


def where_used(facts: FactSet, feature: Feature, observed: str,
               expected: str | None = None) -> tuple[list[tuple[MastodonEnv, EnvVar | None]], list[Outcome]]:
    """The .env.production files that use a service (search, object storage, SMTP), each with the
    variable that says so, and a skip for each file that does not (or cannot be told)."""
    used, skips = [], []
    for env in facts.all(kinds.MASTODON_ENV):
        var, why_not = feature(env)
        if why_not:
            skips.append(skipped(why_not, at=var_at(env, var), observed=observed, expected=expected))
        else:
            used.append((env, var))
    return used, skips


# The Docker host as a container reaches it: the bridge's default gateway, Docker Desktop's name and
# the host-gateway alias compose files add with extra_hosts.
DOCKER_HOST_NAMES = frozenset({"host.docker.internal", "gateway.docker.internal", "172.17.0.1"})


def local_place(facts: FactSet, env: MastodonEnv, host: str) -> str | None:
    """Where a service Mastodon connects to is, when the connection never leaves the machine: this
    host, a service of the compose project beside it (over the project's network), or the Docker
    host seen from a container (over the bridge); None when it may cross a network."""
    name = host.strip().strip("[]").lower()
    composes = facts.all(kinds.COMPOSE)
    for compose in composes:
        if name in compose.services:
            return f"service {name} of {compose.path}, over the compose project's network"
    if is_local_host(name):
        return "this host"
    if name in DOCKER_HOST_NAMES and composes:
        return "the Docker host, over the bridge from the containers: the connection does not leave the machine"
    return None
