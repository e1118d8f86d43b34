"""HTTP answers (facts/http.py) as the checks of nginx, the app and the media bucket show them."""

from __future__ import annotations

from ..facts.http import Observation


def urls(observations: list[Observation], limit: int = 3) -> str:
    shown = ", ".join(o.where for o in observations[:limit])
    return shown + (f" and {len(observations) - limit} more" if len(observations) > limit else "")
