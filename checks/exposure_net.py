"""What an anonymous outsider can reach of Mastodon: the Sidekiq and PgHero dashboards (on every
vhost and app port), the anonymous API, unsigned ActivityPub fetches, the streaming metrics and
WebFinger on LOCAL_DOMAIN. Facts from mastoaudit/probes/mastodon_api.py."""

from __future__ import annotations

from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.mastodon import Endpoint, MastodonExposure
from mastoaudit.model import Location, Outcome
from mastoaudit.net.csp import escape

REDIRECTS = (301, 302, 303, 307, 308)


def _exposures(facts: FactSet) -> list[MastodonExposure]:
    return facts.all("mastodon_exposure")


def _at(e: Endpoint) -> Location:
    return Location(e.where)


def _seen(e: Endpoint) -> str:
    if e.status is None:
        return e.error or "no answer"
    text = str(e.status)
    if e.location:
        text += f" to {escape(e.location, 150)}"
    elif e.count is not None:
        text += f", {e.count} items"
    return text


def _dashboard(facts: FactSet, name: str, title: str) -> Iterator[Outcome]:
    expected = "302 to /auth/sign_in, or 401/403/404"
    for exposure in _exposures(facts):
        judged = 0
        for e in exposure.of(name):
            if not e.answered:
                continue  # nothing listens there (the ports checks judge open ports)
            judged += 1
            subject = f"/{name} on {e.vhost}"
            if e.recognised:
                yield failed(f"the {title} dashboard is served to anyone on {e.vhost}", at=_at(e), subject=subject,
                             observed=f"{e.status} with the {title} page", expected=expected)
            elif e.status in REDIRECTS:
                signin = e.location and "/auth/sign_in" in e.location
                to = "the sign-in page" if signin else escape(e.location or "", 150)
                yield passed(f"redirects to {to}", at=_at(e), subject=subject, observed=_seen(e), expected=expected)
            elif e.status is not None and 400 <= e.status < 500:
                yield passed(f"refused ({e.status})", at=_at(e), subject=subject, observed=_seen(e),
                             expected=expected)
            elif e.status is not None and e.status < 300:
                yield warned(f"answers {e.status} with a page that is not recognisably {title}'s: check by hand",
                             at=_at(e), subject=subject, observed=f"{e.status}: {e.excerpt[:120]}", expected=expected,
                             severity="low")
            else:
                yield warned(f"answers {e.status}: could not tell whether {title} is reachable", at=_at(e),
                             subject=subject, observed=_seen(e), expected=expected, severity="info")
        if not judged:
            yield skipped(f"no vhost answered for /{name}", at=Location(f"https://{exposure.web_domain}/{name}"))


@check(
    id="exposure.sidekiq-dashboard",
    title="The Sidekiq dashboard is not reachable anonymously on any vhost or port",
    component="sidekiq",
    severity="critical",
    threats=["T-ADMIN-ACCESS", "T-SIDEKIQ-SECRETS", "T-SIDEKIQ-QUEUE"],
    needs=["mastodon_exposure"],
    rationale="""Sidekiq's web UI shows every queued job with its arguments and lets its user retry,
        delete or enqueue jobs. Mastodon mounts it at /sidekiq for admins only (anonymous visitors
        are sent to /auth/sign_in). A proxy that routes /sidekiq elsewhere, a catch-all vhost or an
        open Puma port can hand it to anyone.""",
    remediation=Remediation("Route /sidekiq only through Mastodon (its admin check), on every server block, "
                            "and keep Puma (port 3000) on loopback.",
                            "# .env.production\nBIND=127.0.0.1\n# nginx: no location for /sidekiq outside @proxy"),
    references=["https://github.com/sidekiq/sidekiq/wiki/Monitoring#authentication"],
    tags=["network", "admin"],
    modes=("network",),
)
def sidekiq_dashboard(facts: FactSet) -> Iterator[Outcome]:
    yield from _dashboard(facts, "sidekiq", "Sidekiq")


@check(
    id="exposure.pghero-dashboard",
    title="The PgHero dashboard is not reachable anonymously on any vhost or port",
    component="app",
    severity="critical",
    threats=["T-ADMIN-ACCESS", "T-DB-EXPOSED"],
    needs=["mastodon_exposure"],
    rationale="""PgHero shows the database's queries (with their parameters), tables and settings and
        can kill queries. Mastodon mounts it at /pghero for admins only.""",
    remediation=Remediation("Route /pghero only through Mastodon (its admin check) and keep Puma on loopback.",
                            "# .env.production\nBIND=127.0.0.1"),
    references=["https://github.com/ankane/pghero"],
    tags=["network", "admin"],
    modes=("network",),
)
def pghero_dashboard(facts: FactSet) -> Iterator[Outcome]:
    yield from _dashboard(facts, "pghero", "PgHero")


def _expectation(exposure: MastodonExposure, *keys: str) -> bool | None:
    values = [exposure.expects.get(k) for k in keys]
    if any(v is True for v in values):
        return True
    return False if any(v is False for v in values) else None


def _open_by_config(e: Endpoint, expected: bool | None, setting: str, what: str) -> Outcome:
    want = f"401 ({setting}=true)"
    if expected is True:
        return failed(f"{what} although {setting}=true is configured (a cache or proxy in the way, or the "
                      "setting is not loaded)", at=_at(e), subject=e.url, observed=_seen(e), expected=want,
                      severity="medium")
    if expected is False:
        return warned(f"{what}, as configured ({setting}=false)", at=_at(e), subject=e.url, observed=_seen(e),
                      expected=want, severity="low")
    return warned(f"{what} (the configuration is not known to this scan)", at=_at(e), subject=e.url,
                  observed=_seen(e), expected=want, severity="info")


@check(
    id="exposure.public-timeline",
    title="The public timeline API refuses anonymous requests when the instance says so",
    component="app",
    severity="medium",
    threats=["T-APP-INFO-LEAK"],
    needs=["mastodon_exposure"],
    rationale="""With DISALLOW_UNAUTHENTICATED_API_ACCESS=true Mastodon answers 401 to anonymous API
        requests, so scrapers cannot harvest the public timeline, profiles and hashtags. When the
        configuration asks for it the network must show it; otherwise what the API does is reported
        for information.""",
    remediation=Remediation("Set the variable and restart Mastodon (or decide it is wanted open).",
                            "DISALLOW_UNAUTHENTICATED_API_ACCESS=true"),
    references=["https://docs.joinmastodon.org/admin/config/#disallow_unauthenticated_api_access"],
    tags=["network", "api", "privacy"],
    modes=("network",),
)
def public_timeline(facts: FactSet) -> Iterator[Outcome]:
    for exposure in _exposures(facts):
        for e in exposure.of("timeline"):
            expected = _expectation(exposure, "DISALLOW_UNAUTHENTICATED_API_ACCESS")
            if not e.answered:
                yield skipped(f"the public timeline did not answer: {e.error}", at=_at(e), subject=e.url)
            elif e.status in (401, 403, 422):
                yield passed(f"anonymous requests are refused ({e.status})", at=_at(e), subject=e.url,
                             observed=_seen(e), expected="401")
            elif e.status == 200 and e.recognised:
                yield _open_by_config(e, expected, "DISALLOW_UNAUTHENTICATED_API_ACCESS",
                                      "the public timeline is readable anonymously")
            else:
                yield warned(f"the public timeline answers {e.status}: not judged", at=_at(e), subject=e.url,
                             observed=f"{_seen(e)}: {e.excerpt[:100]}", expected="401 or a JSON list",
                             severity="info")


@check(
    id="exposure.unsigned-actor-fetch",
    title="Actors are not served to unsigned ActivityPub requests when authorized fetch is on",
    component="federation",
    severity="medium",
    threats=["T-FED-DATA-LEAK"],
    needs=["mastodon_exposure"],
    rationale="""With AUTHORIZED_FETCH (secure mode) Mastodon serves ActivityPub objects only to
        signed requests, so blocked servers cannot read profiles and posts by fetching them
        anonymously. The probe fetches a local user's actor without a signature (the instance actor
        is always served unsigned and is not used).""",
    remediation=Remediation("Turn on secure mode and restart Mastodon.", "AUTHORIZED_FETCH=true"),
    references=["https://docs.joinmastodon.org/admin/config/#authorized_fetch"],
    tags=["network", "federation", "privacy"],
    modes=("network",),
)
def unsigned_actor_fetch(facts: FactSet) -> Iterator[Outcome]:
    for exposure in _exposures(facts):
        actors = exposure.of("actor")
        if not actors:
            yield skipped(exposure.actor_note or "no local actor found", at=Location(f"https://{exposure.web_domain}/"))
            continue
        expected = _expectation(exposure, "AUTHORIZED_FETCH", "LIMITED_FEDERATION_MODE")
        for e in actors:
            if not e.answered:
                yield skipped(f"the actor did not answer: {e.error}", at=_at(e), subject=e.url)
            elif e.status in (401, 403):
                yield passed(f"an unsigned fetch is refused ({e.status})", at=_at(e), subject=e.url,
                             observed=_seen(e), expected="401")
            elif e.status == 200 and e.recognised:
                yield _open_by_config(e, expected, "AUTHORIZED_FETCH", "the actor is served to an unsigned request")
            else:
                yield warned(f"the actor answers {e.status}: not judged", at=_at(e), subject=e.url,
                             observed=f"{_seen(e)}: {e.excerpt[:100]}", expected="401, or 200 with the actor",
                             severity="info")


def _published_list(facts: FactSet, name: str, what: str, severity: str) -> Iterator[Outcome]:
    for exposure in _exposures(facts):
        for e in exposure.of(name):
            if not e.answered:
                yield skipped(f"{e.url} did not answer: {e.error}", at=_at(e), subject=e.url)
            elif e.status in (401, 403, 404, 410):
                yield passed(f"the {what} is not published ({e.status})", at=_at(e), subject=e.url,
                             observed=_seen(e), expected="404 (not published)")
            elif e.status == 200 and e.recognised:
                yield warned(f"the {what} is public ({e.count} entries)", at=_at(e), subject=e.url,
                             observed=_seen(e), expected="404 (not published)", severity=severity)
            else:
                yield warned(f"{e.url} answers {e.status}: not judged", at=_at(e), subject=e.url,
                             observed=f"{_seen(e)}: {e.excerpt[:100]}", expected="404 or a JSON list",
                             severity="info")


@check(
    id="exposure.peers-list",
    title="The list of federated peers is not published",
    component="federation",
    severity="low",
    threats=["T-APP-INFO-LEAK"],
    needs=["mastodon_exposure"],
    rationale="""/api/v1/instance/peers lists every server the instance knows: a ready target list
        for spam waves and for scanning the fediverse for vulnerable peers. Mastodon answers 404 when
        "publish the list of discovered servers" is off (and in limited federation mode).""",
    remediation=Remediation("Administration > Server settings > Discovery: stop publishing the list of "
                            "discovered servers in the API."),
    references=["https://docs.joinmastodon.org/methods/instance/#peers"],
    tags=["network", "federation", "api"],
    modes=("network",),
)
def peers_list(facts: FactSet) -> Iterator[Outcome]:
    yield from _published_list(facts, "peers", "peers list", "low")


@check(
    id="exposure.domain-blocks",
    title="Domain blocks are published only by choice",
    component="federation",
    severity="info",
    threats=["T-APP-INFO-LEAK"],
    needs=["mastodon_exposure"],
    rationale="""Publishing domain blocks is a transparency choice many instances make; it also
        tells a blocked server's operators, and scrapers, who blocks whom. Reported for information.""",
    remediation=Remediation("Administration > Server settings > Discovery: choose who sees the domain blocks."),
    references=["https://docs.joinmastodon.org/methods/instance/#domain_blocks"],
    tags=["network", "federation", "api"],
    modes=("network",),
)
def domain_blocks(facts: FactSet) -> Iterator[Outcome]:
    yield from _published_list(facts, "domain-blocks", "list of domain blocks", "info")


@check(
    id="exposure.streaming-metrics",
    title="The streaming server's metrics are not reachable from outside",
    component="streaming",
    severity="medium",
    threats=["T-APP-INFO-LEAK", "T-PROXY-MISCONFIG"],
    needs=["mastodon_exposure"],
    rationale="""The streaming server answers /metrics (Prometheus: connected clients, Redis
        subscriptions, message counts) to anyone who reaches its port. Only the monitoring host
        should: nginx must not route it, and port 4000 must stay on loopback.""",
    remediation=Remediation("Keep the streaming server on loopback and do not proxy /metrics.",
                            "# .env.production\nBIND=127.0.0.1"),
    references=["https://docs.joinmastodon.org/admin/config/#streaming"],
    tags=["network", "metrics"],
    modes=("network",),
)
def streaming_metrics(facts: FactSet) -> Iterator[Outcome]:
    for exposure in _exposures(facts):
        judged = 0
        for e in exposure.of("metrics"):
            if not e.answered:
                continue
            judged += 1
            subject = f"metrics on {e.vhost}"
            if e.recognised:
                yield failed(f"Prometheus metrics are readable on {e.vhost}", at=_at(e), subject=subject,
                             observed=f"{e.status}: {e.excerpt[:100]}", expected="refused, or not reachable")
            else:
                yield passed(f"no metrics ({e.status})", at=_at(e), subject=subject, observed=_seen(e),
                             expected="refused, or not reachable")
        if not judged:
            yield skipped("no metrics endpoint answered", at=Location(f"https://{exposure.web_domain}/"))


@check(
    id="exposure.local-domain-webfinger",
    title="WebFinger on LOCAL_DOMAIN answers or redirects to WEB_DOMAIN",
    component="federation",
    severity="low",
    threats=["T-PROXY-MISCONFIG"],
    needs=["mastodon_exposure"],
    rationale="""When accounts are @user@LOCAL_DOMAIN but Mastodon runs on WEB_DOMAIN, other servers
        find accounts through https://LOCAL_DOMAIN/.well-known/webfinger, which must answer or
        redirect to WEB_DOMAIN. Otherwise remote servers cannot resolve (or may mis-resolve) the
        instance's accounts.""",
    remediation=Remediation("Redirect /.well-known/webfinger (and host-meta, nodeinfo) from LOCAL_DOMAIN.",
                            "location /.well-known/webfinger {\n"
                            "  return 301 https://WEB_DOMAIN$request_uri;\n}"),
    references=["https://docs.joinmastodon.org/admin/config/#web_domain"],
    tags=["network", "federation"],
    modes=("network",),
)
def local_domain_webfinger(facts: FactSet) -> Iterator[Outcome]:
    for exposure in _exposures(facts):
        web, local = exposure.web_domain, exposure.local_domain
        if web == local:
            yield skipped("LOCAL_DOMAIN and WEB_DOMAIN are the same", at=Location(f"https://{local}/"))
            continue
        expected = f"200 with the account, or a redirect to https://{web}/.well-known/webfinger"
        for e in exposure.of("webfinger-local"):
            if not e.answered:
                yield warned(f"WebFinger on {local} does not answer: {e.error}", at=_at(e), subject=e.url,
                             observed=_seen(e), expected=expected)
            elif e.status == 200 and e.recognised:
                yield passed(f"{local} answers WebFinger itself", at=_at(e), subject=e.url, observed=_seen(e),
                             expected=expected)
            elif e.status in REDIRECTS and (e.location or "").startswith(f"https://{web}/.well-known/webfinger"):
                yield passed(f"{local} redirects WebFinger to {web}", at=_at(e), subject=e.url, observed=_seen(e),
                             expected=expected)
            else:
                yield warned(f"WebFinger on {local} does not lead to {web}: remote servers may not find accounts",
                             at=_at(e), subject=e.url, observed=_seen(e), expected=expected)
