"""Federation posture from Mastodon's database (and .env.production where a check needs it), and
the peers still federated that run software with known advisories.

Facts: `mastodon_db` (mastoaudit.federation.queries.DatabaseFacts, from `--db DSN` or psql over SSH),
`federation_peers` (mastoaudit.federation.breakdown.Breakdown: the sweep's peer results matched
against the OSV advisories), `mastodon_env`. These checks run in the `federation` commands.
No outcome carries an email address or a secret: staff are named by their local username.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, errored, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Location, Outcome, Severity

_SEVERITY_ORDER = [s.value for s in Severity]
MODES = ("federation",)


def _dbs(facts: FactSet):
    return facts.all("mastodon_db")


def _where(db, what: str) -> Location:
    return Location(f"{db.source}#{what}")


def _failed_query(db, name: str) -> Outcome | None:
    if name in db.errors:
        return errored(f"could not read {name} from the database: {db.errors[name]}", at=_where(db, name),
                       subject=name)
    return None


@check(
    id="federation.registrations-approval",
    title="Registrations need approval (or are closed)",
    component="federation",
    severity="medium",
    threats=["T-SIGNUP-ABUSE", "T-SPAM-WAVE"],
    needs=["mastodon_db"],
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
    modes=MODES,
)
def registrations_approval(facts: FactSet) -> Iterator[Outcome]:
    for db in _dbs(facts):
        problem = _failed_query(db, "registrations")
        if problem:
            yield problem
            continue
        mode = db.registrations_mode
        where = _where(db, "settings.registrations_mode")
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
    needs=["mastodon_db"],
    rationale="""A staff account with a phished or reused password can suspend servers, read
        reports, change settings or (with administrator) everything. Mastodon supports TOTP and
        security keys but does not require them for staff unless a role demands it.""",
    remediation=Remediation("Ask each listed staff member to enable two-factor authentication "
                            "(Preferences > Account > Two-factor auth), or remove the role until they do."),
    references=["https://docs.joinmastodon.org/user/preferences/#2fa",
                "https://docs.joinmastodon.org/admin/roles/"],
    tags=["federation", "database", "auth"],
    modes=MODES,
)
def staff_two_factor(facts: FactSet) -> Iterator[Outcome]:
    for db in _dbs(facts):
        problem = _failed_query(db, "staff")
        if problem:
            yield problem
            continue
        if not db.staff:
            yield skipped("no active account holds a role with admin or moderator permissions",
                          at=_where(db, "users"))
            continue
        for member in db.staff:
            kind = "administrator" if member.administrator else "moderator"
            where = _where(db, "users")
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
    needs=["mastodon_db", "mastodon_env"],
    rationale="""LIMITED_FEDERATION_MODE federates only with the servers in domain_allows. With an
        empty list the instance federates with nobody: either the list was lost (a restore, a
        migration) or the mode was switched on by mistake, and what the admin believes about the
        instance's federation is wrong.""",
    remediation=Remediation("Add the servers to federate with (Moderation > Federation > Allow federation), "
                            "or turn limited federation mode off.", "LIMITED_FEDERATION_MODE=false"),
    references=["https://docs.joinmastodon.org/admin/config/#limited_federation_mode"],
    tags=["federation", "database"],
    modes=MODES,
)
def limited_federation_allowlist(facts: FactSet) -> Iterator[Outcome]:
    envs = facts.all("mastodon_env")
    for db in _dbs(facts):
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
    needs=["mastodon_db"],
    rationale="""Domain blocks are the moderation team's main tool against malicious servers and
        spam waves. An instance with no suspensions at all federates with every known bad actor;
        the counts by severity show the team what is in force.""",
    remediation=Remediation("Review the moderation team's block list; import a shared block list you trust "
                            "(Moderation > Federation > Import)."),
    references=["https://docs.joinmastodon.org/admin/moderation/#server-wide-moderation"],
    tags=["federation", "database"],
    modes=MODES,
)
def domain_blocks(facts: FactSet) -> Iterator[Outcome]:
    for db in _dbs(facts):
        problem = _failed_query(db, "blocks")
        if problem:
            yield problem
            continue
        counts = Counter(b.severity for b in db.blocks or [])
        shown = ", ".join(f"{counts[s]} {s}" for s in ("suspend", "silence", "noop") if counts[s]) or "none"
        where = _where(db, "domain_blocks")
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
    needs=["mastodon_db", "mastodon_env"],
    rationale="""A domain suspension stops delivery, but without secure mode Mastodon answers
        unsigned ActivityPub fetches, so a suspended server keeps reading every public post and
        profile. When the database holds suspensions, AUTHORIZED_FETCH (or limited federation
        mode, which implies it) is what makes them hold.""",
    remediation=Remediation("Turn on secure mode and restart Mastodon.", "AUTHORIZED_FETCH=true"),
    references=["https://docs.joinmastodon.org/admin/config/#authorized_fetch"],
    tags=["federation", "database"],
    modes=MODES,
)
def blocks_enforced(facts: FactSet) -> Iterator[Outcome]:
    for db in _dbs(facts):
        problem = _failed_query(db, "blocks")
        if problem:
            yield problem
            continue
        suspended = sum(1 for b in db.blocks or [] if b.severity == "suspend")
        for env in facts.all("mastodon_env"):
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
    needs=["federation_peers"],
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
    modes=MODES,
)
def vulnerable_peers(facts: FactSet) -> Iterator[Outcome]:
    for breakdown in facts.all("federation_peers"):
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
        if not found:
            yield passed(f"none of {len(breakdown.verdicts)} peers runs a version with a known advisory",
                         subject="peers", observed=str(len(breakdown.verdicts)), expected="no advisories")
