"""Federation: what the instance shows the fediverse and anonymous outsiders beyond its app (unsigned
ActivityPub fetches under AUTHORIZED_FETCH, the peers list and the domain blocks, WebFinger on
LOCAL_DOMAIN: facts from mastoaudit/probes/mastodon_api.py), and its federation posture from
Mastodon's database and its peers (`federation impact`: registrations, staff 2FA, the allow list,
blocks and secure mode, peers running software with known advisories).

The database facts (`mastodon_db`) come from `--db DSN` or psql over SSH, the peers
(`federation_peers`) from the peer results matched against the OSV advisories (mastoaudit/federation/).
No outcome carries an email address or a secret: staff are named by their local username.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from mastoaudit import kinds
from mastoaudit.checkdef import Remediation, check, errored, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.judgments.exposure import REDIRECTS, expectation, open_by_config, seen
from mastoaudit.model import Location, Outcome, Severity, SkipReason


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
                yield open_by_config(e, expected, "AUTHORIZED_FETCH", "the actor is served to an unsigned request",
                                     unset={"AUTHORIZED_FETCH", "LIMITED_FEDERATION_MODE"} <= exposure.unset)
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


# --- from the database and the peers (`federation impact`) ---------------------------------------

_SEVERITY_ORDER = [s.value for s in Severity]
# The database is the federation command's own source; .env.production is read beside it when the
# user names one (--env, or over SSH), so the checks that judge both say so when it is missing.
_NO_ENV = skipped("not applicable: no mastodon_env found for this target")


def _in_db(db, what: str) -> Location:
    return Location(f"{db.source}#{what}")


def _failed_query(db, name: str) -> Outcome | None:
    if name in db.errors:
        return errored(f"could not read {name} from the database: {db.errors[name]}", at=_in_db(db, name),
                       subject=name)
    return None


@check(
    id="federation.registrations-approval",
    title="Registrations need approval (or are closed)",
    component="federation",
    severity="medium",
    threats=["T-SIGNUP-ABUSE", "T-SPAM-WAVE"],
    needs=[kinds.MASTODON_DB],
    rationale="""With registrations open and no approval, anyone can create accounts at once: the
        bot and spam accounts of seed 000's crypto-spam waves, which other servers then limit or
        block. Mastodon keeps the mode in the settings table (registrations_mode: open, approved,
        none); since 4.2.8 it switches to approved by itself after a week without moderators
        unless DISABLE_AUTOMATIC_SWITCHING_TO_APPROVED_REGISTRATIONS is set.""",
    remediation=Remediation("Administration > Server settings > Registrations: 'Require approval for sign up' "
                            "(or close registrations during a spam wave).",
                            "RAILS_ENV=production bin/tootctl settings registrations approved"),
    references=["https://docs.joinmastodon.org/admin/moderation/",
                "https://docs.joinmastodon.org/admin/tootctl/#settings-registrations-approved"],
    tags=["federation", "database"],
)
def registrations_approval(facts: FactSet) -> Iterator[Outcome]:
    for db in facts.all(kinds.MASTODON_DB):
        problem = _failed_query(db, "registrations")
        if problem:
            yield problem
            continue
        mode = db.registrations_mode
        where = _in_db(db, "settings.registrations_mode")
        shown = mode if db.registrations_set else "none (no row: Mastodon's default)"
        if mode == "open":
            yield failed("registrations are open without approval: spam and bot sign-ups go live at once", at=where,
                         subject="registrations_mode", observed="open", expected="approved or none")
        elif mode in ("approved", "none"):
            yield passed(f"registrations are {mode}", at=where, subject="registrations_mode", observed=shown,
                         expected="approved or none")
        else:
            yield warned(f"unknown registrations mode {mode!r}", at=where, subject="registrations_mode",
                         observed=str(mode)[:40], expected="open, approved or none")


@check(
    id="federation.staff-2fa",
    title="Every staff account (admin or moderator permissions) uses two-factor authentication",
    component="federation",
    severity="high",
    threats=["T-ADMIN-ACCESS", "T-APP-AUTH"],
    needs=[kinds.MASTODON_DB],
    rationale="""A staff account with a phished or reused password can suspend servers, read
        reports, change settings or (with administrator) everything. Mastodon supports TOTP and
        security keys but does not require them for staff unless a role demands it.""",
    remediation=Remediation("Ask each listed staff member to enable two-factor authentication "
                            "(Preferences > Account > Two-factor auth), or remove the role until they do."),
    references=["https://docs.joinmastodon.org/user/preferences/#2fa",
                "https://docs.joinmastodon.org/admin/roles/"],
    tags=["federation", "database", "auth"],
)
def staff_two_factor(facts: FactSet) -> Iterator[Outcome]:
    for db in facts.all(kinds.MASTODON_DB):
        problem = _failed_query(db, "staff")
        if problem:
            yield problem
            continue
        if not db.staff:
            yield skipped("no active account holds a role with admin or moderator permissions",
                          at=_in_db(db, "users"))
            continue
        for member in db.staff:
            kind = "administrator" if member.administrator else "moderator"
            where = _in_db(db, "users")
            if member.two_factor:
                yield passed(f"{kind} {member.username} ({member.role}) uses two-factor authentication", at=where,
                             subject=f"staff {member.username}", observed="two-factor on", expected="two-factor on")
            else:
                yield failed(f"{kind} {member.username} ({member.role}) signs in with a password alone", at=where,
                             subject=f"staff {member.username}", observed="no two-factor", expected="two-factor on",
                             severity="critical" if member.administrator else "high")


@check(
    id="federation.limited-federation-allowlist",
    title="Limited federation mode has servers on its allow list",
    component="federation",
    severity="low",
    threats=["T-FED-MALICIOUS-INSTANCE"],
    needs=[kinds.MASTODON_DB],
    reads=[kinds.MASTODON_ENV],
    rationale="""LIMITED_FEDERATION_MODE federates only with the servers in domain_allows. With an
        empty list the instance federates with nobody: either the list was lost (a restore, a
        migration) or the mode was switched on by mistake, and what the admin believes about the
        instance's federation is wrong.""",
    remediation=Remediation("Add the servers to federate with (Moderation > Federation > Allow federation), "
                            "or turn limited federation mode off.", "LIMITED_FEDERATION_MODE=false"),
    references=["https://docs.joinmastodon.org/admin/config/#limited_federation_mode"],
    tags=["federation", "database"],
)
def limited_federation_allowlist(facts: FactSet) -> Iterator[Outcome]:
    envs = facts.all(kinds.MASTODON_ENV)
    if not envs:
        yield _NO_ENV
        return
    for db in facts.all(kinds.MASTODON_DB):
        problem = _failed_query(db, "allows")
        if problem:
            yield problem
            continue
        for env in envs:
            var = env.get("LIMITED_FEDERATION_MODE") or env.get("WHITELIST_MODE")
            if var is not None and var.templated:
                yield skipped("LIMITED_FEDERATION_MODE is templated: cannot judge", at=env.at(var.line))
                continue
            limited = env.is_true("LIMITED_FEDERATION_MODE") or env.is_true("WHITELIST_MODE")
            if not limited:
                yield skipped("limited federation mode is off: the allow list is not used",
                              at=env.at(var.line if var else None))
            elif db.allows:
                yield passed(f"limited federation mode with {db.allows} allowed servers", at=env.at(var.line),
                             subject="domain_allows", observed=str(db.allows), expected="at least one")
            else:
                yield failed("limited federation mode is on and the allow list is empty: the instance federates "
                             "with no one", at=env.at(var.line), subject="domain_allows", observed="0",
                             expected="at least one allowed server")


@check(
    id="federation.domain-blocks",
    title="Domain blocks: how many, how severe",
    component="federation",
    severity="low",
    threats=["T-FED-MALICIOUS-INSTANCE", "T-SPAM-WAVE"],
    needs=[kinds.MASTODON_DB],
    rationale="""Domain blocks are the moderation team's main tool against malicious servers and
        spam waves. An instance with no suspensions at all federates with every known bad actor;
        the counts by severity show the team what is in force.""",
    remediation=Remediation("Review the moderation team's block list; import a shared block list you trust "
                            "(Moderation > Federation > Import)."),
    references=["https://docs.joinmastodon.org/admin/moderation/#server-wide-moderation"],
    tags=["federation", "database"],
)
def domain_blocks_in_force(facts: FactSet) -> Iterator[Outcome]:
    for db in facts.all(kinds.MASTODON_DB):
        problem = _failed_query(db, "blocks")
        if problem:
            yield problem
            continue
        counts = Counter(b.severity for b in db.blocks or [])
        shown = ", ".join(f"{counts[s]} {s}" for s in ("suspend", "silence", "noop") if counts[s]) or "none"
        where = _in_db(db, "domain_blocks")
        if counts["suspend"]:
            yield passed(f"{len(db.blocks or [])} domain blocks ({shown})", at=where, subject="domain_blocks",
                         observed=shown, expected="suspensions for known bad actors")
        else:
            yield warned(f"no domain is suspended ({shown})", at=where, subject="domain_blocks",
                         observed=shown, expected="suspensions for known bad actors")


@check(
    id="federation.blocks-enforced",
    title="Suspended servers cannot read public posts either (AUTHORIZED_FETCH)",
    component="federation",
    severity="medium",
    threats=["T-FED-DATA-LEAK", "T-FED-MALICIOUS-INSTANCE"],
    needs=[kinds.MASTODON_DB],
    reads=[kinds.MASTODON_ENV],
    rationale="""A domain suspension stops delivery, but without secure mode Mastodon answers
        unsigned ActivityPub fetches, so a suspended server keeps reading every public post and
        profile. When the database holds suspensions, AUTHORIZED_FETCH (or limited federation
        mode, which implies it) is what makes them hold.""",
    remediation=Remediation("Turn on secure mode and restart Mastodon.", "AUTHORIZED_FETCH=true"),
    references=["https://docs.joinmastodon.org/admin/config/#authorized_fetch"],
    tags=["federation", "database"],
)
def blocks_enforced(facts: FactSet) -> Iterator[Outcome]:
    if not facts.has(kinds.MASTODON_ENV):
        yield _NO_ENV
        return
    for db in facts.all(kinds.MASTODON_DB):
        problem = _failed_query(db, "blocks")
        if problem:
            yield problem
            continue
        suspended = sum(1 for b in db.blocks or [] if b.severity == "suspend")
        for env in facts.all(kinds.MASTODON_ENV):
            var = env.get("AUTHORIZED_FETCH")
            if var is not None and var.templated:
                yield skipped("AUTHORIZED_FETCH is templated: cannot judge", at=env.at(var.line))
                continue
            secure = env.is_true("AUTHORIZED_FETCH") or env.is_true("LIMITED_FEDERATION_MODE")
            where = env.at(var.line if var else None)
            if not suspended:
                yield skipped("no domain is suspended: nothing for secure mode to enforce", at=where)
            elif secure:
                yield passed(f"{suspended} suspended servers, and unsigned fetches are refused", at=where,
                             subject="AUTHORIZED_FETCH", observed="true", expected="true")
            else:
                yield failed(f"{suspended} servers are suspended, yet they can still fetch public posts unsigned",
                             at=where, subject="AUTHORIZED_FETCH",
                             observed=var.value if var is not None and var.is_set else "unset (false)",
                             expected="true")


@check(
    id="federation.vulnerable-peers",
    title="No federated peer runs software with a known advisory",
    component="federation",
    severity="high",
    threats=["T-PEER-VULNERABLE-SOFTWARE", "T-FED-DATA-LEAK"],
    needs=[kinds.FEDERATION_PEERS],
    rationale="""A peer running software with a privacy or security advisory exposes what this
        instance sends it: seed 000's Pixelfed CVE-2025-30741 let any Pixelfed user follow locked
        accounts without approval, leaking followers-only posts of every server federating with a
        Pixelfed instance below 0.12.5. A peer still federated (not suspended) with such a version
        is a finding until it upgrades or is suspended.""",
    remediation=Remediation("Decide per advisory: write to the peer's admins, or import the domain-block CSV "
                            "(federation impact --blocklist) and refederate when they upgrade."),
    references=["https://github.com/pixelfed/pixelfed/security/advisories/GHSA-7287-grhx-542x",
                "https://docs.joinmastodon.org/admin/moderation/#server-wide-moderation"],
    tags=["federation", "advisories"],
)
def vulnerable_peers(facts: FactSet) -> Iterator[Outcome]:
    for breakdown in facts.all(kinds.FEDERATION_PEERS):
        if not breakdown.verdicts and breakdown.shard is not None:
            index, count, total = breakdown.shard
            yield skipped(f"this shard ({index} of {count}) holds none of the {total} peer{'s' * (total != 1)}",
                          subject="peers")
            continue
        found = False
        for verdict in breakdown.verdicts:
            result = verdict.result
            if not verdict.federated:
                continue
            where = Location(f"peer {result.domain}")
            shown = f"{result.software} {result.version}" if result.version else f"{result.software} (no version)"
            if verdict.matches is None:
                found = True
                yield warned(f"{result.domain} runs {result.software} with a version that cannot be read: "
                             "unknown, not safe", at=where, subject=result.domain, observed=shown[:120],
                             expected="a readable release", severity="low")
            elif verdict.matches:
                found = True
                worst = max((m.advisory.severity for m in verdict.matches), key=_SEVERITY_ORDER.index)
                fixes = sorted({m.fixed_in for m in verdict.matches if m.fixed_in})
                ids = ", ".join(m.advisory.label for m in verdict.matches)
                yield failed(f"{result.domain} runs {shown}, affected by {ids}, and is still federated", at=where,
                             subject=result.domain, observed=shown[:120],
                             expected=f">= {fixes[-1]}" if fixes else "a fixed release", severity=worst)
        if found:
            continue
        federated = [v for v in breakdown.verdicts if v.federated]
        read = [v for v in federated if v.result.software]
        if federated and not read:  # nothing was learned: never a pass over peers no one read
            yield skipped(f"the software of none of the {len(federated)} federated peer{'s' * (len(federated) != 1)} "
                          "could be read (each ended in an error: see the federation section)",
                          subject="peers", because=SkipReason.NO_ANSWER)
            continue
        unread = len(federated) - len(read)
        yield passed(f"none of the {len(read)} peer{'s' * (len(read) != 1)} whose software was read runs a "
                     "version with a known advisory"
                     + (f"; {unread} could not be read, and are not judged" if unread else ""),
                     subject="peers", observed=str(len(read)), expected="no advisories")
