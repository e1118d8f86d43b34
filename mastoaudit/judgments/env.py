"""`.env.production` values, as every component's checks of them point at and skip them."""

from __future__ import annotations

from ..checkdef import skipped
from ..model import Location, Outcome
from ..parsers.env import EnvVar, MastodonEnv

CONFIG_DOCS = "https://docs.joinmastodon.org/admin/config/"


def var_at(env: MastodonEnv, var: EnvVar | None) -> Location:
    return env.at(var.line if var else None)


def templated(env: MastodonEnv, var: EnvVar) -> Outcome:
    return skipped(f"{var.key} is templated or expanded at load time: its value cannot be judged here",
                   at=var_at(env, var), subject=var.key, observed="templated", expected="a literal value")


def feature(env: MastodonEnv, flag: str, off: str) -> tuple[EnvVar | None, str | None]:
    """A feature switched on by a true flag (ES_ENABLED, S3_ENABLED): (the flag, why not judged)."""
    enabled = env.get(flag)
    if enabled is not None and enabled.templated:
        return enabled, f"{flag} is templated"
    if not env.is_true(flag):
        return enabled, off
    return enabled, None
