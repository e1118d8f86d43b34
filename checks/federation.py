"""Federation: what the instance shows the fediverse and anonymous outsiders beyond its app: unsigned
ActivityPub fetches (AUTHORIZED_FETCH), the peers list and the domain blocks, WebFinger on
LOCAL_DOMAIN. Facts from mastoaudit/probes/mastodon_api.py (facts/mastodon.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from mastoaudit import kinds
from mastoaudit.checkdef import Remediation, check, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.judgments.exposure import REDIRECTS, expectation, open_by_config, seen
from mastoaudit.model import Location, Outcome


@check(
    id="exposure.unsigned-actor-fetch",
    title="Actors are not served to unsigned ActivityPub requests when authorized fetch is on",
    component="federation",
    severity="medium",
    threats=["T-FED-DATA-LEAK"],
    needs=[kinds.MASTODON_EXPOSURE],
    rationale="""With AUTHORIZED_FETCH (secure mode) Mastodon serves ActivityPub objects only to
        signed requests, so blocked servers cannot read profiles and posts by fetching them
        anonymously. The probe fetches a local user's actor without a signature (the instance actor
        is always served unsigned and is not used).""",
    remediation=Remediation("Turn on secure mode and restart Mastodon.", "AUTHORIZED_FETCH=true"),
    references=["https://docs.joinmastodon.org/admin/config/#authorized_fetch"],
    tags=["network", "federation", "privacy"],
)
def unsigned_actor_fetch(facts: FactSet) -> Iterator[Outcome]:
    for exposure in facts.all(kinds.MASTODON_EXPOSURE):
        actors = exposure.of("actor")
        if not actors:
            yield skipped(exposure.actor_note or "no local actor found", at=Location(f"https://{exposure.web_domain}/"))
            continue
        expected = expectation(exposure, "AUTHORIZED_FETCH", "LIMITED_FEDERATION_MODE")
        for e in actors:
            if not e.answered:
                yield skipped(f"the actor did not answer: {e.error}", at=e.at(), subject=e.url)
            elif e.status in (401, 403):
                yield passed(f"an unsigned fetch is refused ({e.status})", at=e.at(), subject=e.url,
                             observed=seen(e), expected="401")
            elif e.status == 200 and e.recognised:
                yield open_by_config(e, expected, "AUTHORIZED_FETCH", "the actor is served to an unsigned request")
            else:
                yield warned(f"the actor answers {e.status}: not judged", at=e.at(), subject=e.url,
                             observed=f"{seen(e)}: {e.excerpt[:100]}", expected="401, or 200 with the actor",
                             severity="info")


def _published_list(facts: FactSet, name: str, what: str, severity: str) -> Iterator[Outcome]:
    for exposure in facts.all(kinds.MASTODON_EXPOSURE):
        for e in exposure.of(name):
            if not e.answered:
                yield skipped(f"{e.url} did not answer: {e.error}", at=e.at(), subject=e.url)
            elif e.status in (401, 403, 404, 410):
                yield passed(f"the {what} is not published ({e.status})", at=e.at(), subject=e.url,
                             observed=seen(e), expected="404 (not published)")
            elif e.status == 200 and e.recognised:
                yield warned(f"the {what} is public ({e.count} entries)", at=e.at(), subject=e.url,
                             observed=seen(e), expected="404 (not published)", severity=severity)
            else:
                yield warned(f"{e.url} answers {e.status}: not judged", at=e.at(), subject=e.url,
                             observed=f"{seen(e)}: {e.excerpt[:100]}", expected="404 or a JSON list",
                             severity="info")


@check(
    id="exposure.peers-list",
    title="The list of federated peers is not published",
    component="federation",
    severity="low",
    threats=["T-APP-INFO-LEAK"],
    needs=[kinds.MASTODON_EXPOSURE],
    rationale="""/api/v1/instance/peers lists every server the instance knows: a ready target list
        for spam waves and for scanning the fediverse for vulnerable peers. Mastodon answers 404 when
        "publish the list of discovered servers" is off (and in limited federation mode).""",
    remediation=Remediation("Administration > Server settings > Discovery: stop publishing the list of "
                            "discovered servers in the API."),
    references=["https://docs.joinmastodon.org/methods/instance/#peers"],
    tags=["network", "federation", "api"],
)
def peers_list(facts: FactSet) -> Iterator[Outcome]:
    yield from _published_list(facts, "peers", "peers list", "low")


@check(
    id="exposure.domain-blocks",
    title="Domain blocks are published only by choice",
    component="federation",
    severity="info",
    threats=["T-APP-INFO-LEAK"],
    needs=[kinds.MASTODON_EXPOSURE],
    rationale="""Publishing domain blocks is a transparency choice many instances make; it also
        tells a blocked server's operators, and scrapers, who blocks whom. Reported for information.""",
    remediation=Remediation("Administration > Server settings > Discovery: choose who sees the domain blocks."),
    references=["https://docs.joinmastodon.org/methods/instance/#domain_blocks"],
    tags=["network", "federation", "api"],
)
def domain_blocks(facts: FactSet) -> Iterator[Outcome]:
    yield from _published_list(facts, "domain-blocks", "list of domain blocks", "info")


@check(
    id="exposure.local-domain-webfinger",
    title="WebFinger on LOCAL_DOMAIN answers or redirects to WEB_DOMAIN",
    component="federation",
    severity="low",
    threats=["T-PROXY-MISCONFIG"],
    needs=[kinds.MASTODON_EXPOSURE],
    rationale="""When accounts are @user@LOCAL_DOMAIN but Mastodon runs on WEB_DOMAIN, other servers
        find accounts through https://LOCAL_DOMAIN/.well-known/webfinger, which must answer or
        redirect to WEB_DOMAIN. Otherwise remote servers cannot resolve (or may mis-resolve) the
        instance's accounts.""",
    remediation=Remediation("Redirect /.well-known/webfinger (and host-meta, nodeinfo) from LOCAL_DOMAIN.",
                            "location /.well-known/webfinger {\n"
                            "  return 301 https://WEB_DOMAIN$request_uri;\n}"),
    references=["https://docs.joinmastodon.org/admin/config/#web_domain"],
    tags=["network", "federation"],
)
def local_domain_webfinger(facts: FactSet) -> Iterator[Outcome]:
    for exposure in facts.all(kinds.MASTODON_EXPOSURE):
        web, local = exposure.web_domain, exposure.local_domain
        if web == local:
            yield skipped("LOCAL_DOMAIN and WEB_DOMAIN are the same", at=Location(f"https://{local}/"))
            continue
        expected = f"200 with the account, or a redirect to https://{web}/.well-known/webfinger"
        for e in exposure.of("webfinger-local"):
            if not e.answered:
                yield warned(f"WebFinger on {local} does not answer: {e.error}", at=e.at(), subject=e.url,
                             observed=seen(e), expected=expected)
            elif e.status == 200 and e.recognised:
                yield passed(f"{local} answers WebFinger itself", at=e.at(), subject=e.url, observed=seen(e),
                             expected=expected)
            elif e.status in REDIRECTS and (e.location or "").startswith(f"https://{web}/.well-known/webfinger"):
                yield passed(f"{local} redirects WebFinger to {web}", at=e.at(), subject=e.url, observed=seen(e),
                             expected=expected)
            else:
                yield warned(f"WebFinger on {local} does not lead to {web}: remote servers may not find accounts",
                             at=e.at(), subject=e.url, observed=seen(e), expected=expected)
