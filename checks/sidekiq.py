"""Sidekiq: Mastodon's background job processor. Its web dashboard shows and edits every queued job
(T-SIDEKIQ-QUEUE); Mastodon serves it to administrators only.
"""

from __future__ import annotations

from collections.abc import Iterator

from mastoaudit import kinds
from mastoaudit.checkdef import Remediation, check
from mastoaudit.facts import FactSet
from mastoaudit.judgments.exposure import dashboard
from mastoaudit.model import Outcome


@check(
    id="exposure.sidekiq-dashboard",
    title="The Sidekiq dashboard is not reachable anonymously on any vhost or port",
    component="sidekiq",
    severity="critical",
    threats=["T-ADMIN-ACCESS", "T-SIDEKIQ-SECRETS", "T-SIDEKIQ-QUEUE"],
    needs=[kinds.MASTODON_EXPOSURE],
    rationale="""Sidekiq's web UI shows every queued job with its arguments and lets its user retry,
        delete or enqueue jobs. Mastodon mounts it at /sidekiq for admins only (anonymous visitors
        are sent to /auth/sign_in). A proxy that routes /sidekiq elsewhere, a catch-all vhost or an
        open Puma port can hand it to anyone.""",
    remediation=Remediation("Route /sidekiq only through Mastodon (its admin check), on every server block, "
                            "and keep Puma (port 3000) on loopback.",
                            "# .env.production\nBIND=127.0.0.1\n# nginx: no location for /sidekiq outside @proxy"),
    references=["https://github.com/sidekiq/sidekiq/wiki/Monitoring#authentication"],
    tags=["network", "admin"],
)
def sidekiq_dashboard(facts: FactSet) -> Iterator[Outcome]:
    yield from dashboard(facts, "sidekiq", "Sidekiq")
