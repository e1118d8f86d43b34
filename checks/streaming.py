"""Mastodon's streaming server (Node): how its container is published, and its Prometheus metrics as
seen from outside.
"""

from __future__ import annotations

from collections.abc import Iterator

from mastoaudit import kinds
from mastoaudit.checkdef import Remediation, check, failed, passed, skipped
from mastoaudit.facts import FactSet
from mastoaudit.judgments.compose import (
    APP_LOOPBACK,
    PUBLISHED_PORT_REFERENCES,
    publish_outcomes,
)
from mastoaudit.judgments.exposure import seen
from mastoaudit.model import Location, Outcome

# --- docker-compose -----------------------------------------------------------------------------------


@check(
    id="streaming.compose-published-port",
    title="The streaming container is published on 127.0.0.1 only",
    component="streaming",
    severity="high",
    threats=["T-PROXY-MISCONFIG", "T-STREAM-EAVESDROP"],
    needs=[kinds.COMPOSE],
    rationale="""The streaming server speaks plain HTTP and WebSocket; tokens sent to it directly
        cross the network in clear. Mastodon's compose file publishes it on 127.0.0.1:4000 for the
        proxy; `4000:4000` puts it on every interface.""",
    remediation=Remediation("Publish the streaming port on loopback only.",
                            "    ports:\n      - '127.0.0.1:4000:4000'"),
    references=PUBLISHED_PORT_REFERENCES,
    tags=["docker", "network"],
)
def streaming_published(facts: FactSet) -> Iterator[Outcome]:
    for compose in facts.all(kinds.COMPOSE):
        for service in compose.by_role("streaming"):
            yield from publish_outcomes(compose, service, "the streaming port", APP_LOOPBACK)


# --- from outside (probe: mastodon-exposure) ----------------------------------------------------------


@check(
    id="exposure.streaming-metrics",
    title="The streaming server's metrics are not reachable from outside",
    component="streaming",
    severity="medium",
    threats=["T-APP-INFO-LEAK", "T-PROXY-MISCONFIG"],
    needs=[kinds.MASTODON_EXPOSURE],
    rationale="""The streaming server answers /metrics (Prometheus: connected clients, Redis
        subscriptions, message counts) to anyone who reaches its port. Only the monitoring host
        should: nginx must not route it, and port 4000 must stay on loopback.""",
    remediation=Remediation("Keep the streaming server on loopback and do not proxy /metrics.",
                            "# .env.production\nBIND=127.0.0.1"),
    references=["https://docs.joinmastodon.org/admin/config/#streaming"],
    tags=["network", "metrics"],
)
def streaming_metrics(facts: FactSet) -> Iterator[Outcome]:
    for exposure in facts.all(kinds.MASTODON_EXPOSURE):
        judged = 0
        for e in exposure.of("metrics"):
            if not e.answered:
                continue
            judged += 1
            subject = f"metrics on {e.vhost}"
            if e.recognised:
                yield failed(f"Prometheus metrics are readable on {e.vhost}", at=e.at(), subject=subject,
                             observed=f"{e.status}: {e.excerpt[:100]}", expected="refused, or not reachable")
            else:
                yield passed(f"no metrics ({e.status})", at=e.at(), subject=subject, observed=seen(e),
                             expected="refused, or not reachable")
        if not judged:
            yield skipped("no metrics endpoint answered", at=Location(f"https://{exposure.web_domain}/"))
