"""What Mastodon's endpoints answered an anonymous outsider (facts/mastodon.py), judged alike for the
dashboards (Sidekiq's, PgHero's) and the endpoints a setting closes (the public timeline, unsigned
ActivityPub fetches)."""

from __future__ import annotations

from collections.abc import Iterator

from .. import kinds
from ..checkdef import failed, passed, skipped, warned
from ..facts import FactSet
from ..facts.mastodon import Endpoint, MastodonExposure
from ..model import Location, Outcome
from ..net.csp import escape

REDIRECTS = (301, 302, 303, 307, 308)


def seen(e: Endpoint) -> str:
    if e.status is None:
        return e.error or "no answer"
    text = str(e.status)
    if e.location:
        text += f" to {escape(e.location, 150)}"
    elif e.count is not None:
        text += f", {e.count} items"
    return text


def dashboard(facts: FactSet, name: str, title: str) -> Iterator[Outcome]:
    expected = "302 to /auth/sign_in, or 401/403/404"
    for exposure in facts.all(kinds.MASTODON_EXPOSURE):
        judged = 0
        for e in exposure.of(name):
            if not e.answered:
                continue  # nothing listens there (the ports checks judge open ports)
            judged += 1
            subject = f"/{name} on {e.vhost}"
            if e.recognised:
                yield failed(f"the {title} dashboard is served to anyone on {e.vhost}", at=e.at(), subject=subject,
                             observed=f"{e.status} with the {title} page", expected=expected)
            elif e.status in REDIRECTS:
                signin = e.location and "/auth/sign_in" in e.location
                to = "the sign-in page" if signin else escape(e.location or "", 150)
                yield passed(f"redirects to {to}", at=e.at(), subject=subject, observed=seen(e), expected=expected)
            elif e.status is not None and 400 <= e.status < 500:
                yield passed(f"refused ({e.status})", at=e.at(), subject=subject, observed=seen(e),
                             expected=expected)
            elif e.status is not None and e.status < 300:
                yield warned(f"answers {e.status} with a page that is not recognisably {title}'s: check by hand",
                             at=e.at(), subject=subject, observed=f"{e.status}: {e.excerpt[:120]}", expected=expected,
                             severity="low")
            else:
                yield warned(f"answers {e.status}: could not tell whether {title} is reachable", at=e.at(),
                             subject=subject, observed=seen(e), expected=expected, severity="info")
        if not judged:
            yield skipped(f"no vhost answered for /{name}", at=Location(f"https://{exposure.web_domain}/{name}"))


def expectation(exposure: MastodonExposure, *keys: str) -> bool | None:
    values = [exposure.expects.get(k) for k in keys]
    if any(v is True for v in values):
        return True
    return False if any(v is False for v in values) else None


def open_by_config(e: Endpoint, expected: bool | None, setting: str, what: str, unset: bool = False) -> Outcome:
    """An endpoint a setting closes, found open: a failure when the configuration asks for it closed,
    a low warning when the configuration leaves it open (false, or unset: Mastodon's default)."""
    want = f"401 ({setting}=true)"
    if expected is False and unset:
        return warned(f"{what}: {setting} is unset in .env.production, and Mastodon's default (false) allows it",
                      at=e.at(), subject=e.url, observed=seen(e), expected=want, severity="low")
    if expected is True:
        return failed(f"{what} although {setting}=true is configured (a cache or proxy in the way, or the "
                      "setting is not loaded)", at=e.at(), subject=e.url, observed=seen(e), expected=want,
                      severity="medium")
    if expected is False:
        return warned(f"{what}, as configured ({setting}=false)", at=e.at(), subject=e.url, observed=seen(e),
                      expected=want, severity="low")
    return warned(f"{what} (the configuration is not known to this scan)", at=e.at(), subject=e.url,
                  observed=seen(e), expected=want, severity="info")
