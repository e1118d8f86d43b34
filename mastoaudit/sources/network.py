"""The network collector: everything an outsider can see of an instance, as facts.

`scan DOMAIN` builds a ScanTarget from the command line; `audit` builds one per web host from the
inventory and the host's own .env.production (S3 bucket, SMTP relay, secure mode...), so the
network checks can compare what the configuration promises with what the network shows.
"""

from __future__ import annotations

from dataclasses import replace

from .. import kinds
from ..facts import FactSet, HostInfo
from ..net.runner import Probe, all_probes, run_probes
from ..net.target import S3Settings, ScanTarget

_TRUE = {"true", "1", "yes", "on"}


def _env_value(env, key: str) -> str | None:
    var = env.get(key) if env is not None else None
    if var is None or getattr(var, "templated", False):
        return None
    value = getattr(var, "value", None)
    return value if isinstance(value, str) and value != "" else None


def with_env(target: ScanTarget, env) -> ScanTarget:
    """Fill what the instance's .env.production says into a scan target (the user's options win)."""
    if env is None:
        return target
    expects = dict(target.expects)
    for key in ("AUTHORIZED_FETCH", "DISALLOW_UNAUTHENTICATED_API_ACCESS", "LIMITED_FEDERATION_MODE"):
        value = _env_value(env, key)
        if key not in expects:
            expects[key] = None if value is None else value.lower() in _TRUE
    changes: dict = {"expects": expects}
    local = _env_value(env, "LOCAL_DOMAIN")
    web = _env_value(env, "WEB_DOMAIN")
    if local and target.local_domain == target.name:
        changes["local_domain"] = local
        changes["web_domain"] = web or local
    mail_domains = list(target.mail_domains)
    sender = _env_value(env, "SMTP_FROM_ADDRESS")
    if sender and "@" in sender:
        domain = sender.rsplit("@", 1)[1].strip(" >\"'")
        if domain and domain not in mail_domains:
            mail_domains.append(domain)
    if local and local not in mail_domains:
        mail_domains.append(local)
    changes["mail_domains"] = tuple(mail_domains)
    smtp = _env_value(env, "SMTP_SERVER")
    if smtp and not target.smtp_hosts:
        changes["smtp_hosts"] = (smtp,)
    alias = _env_value(env, "S3_ALIAS_HOST")
    if alias and not target.media_host:
        changes["media_host"] = alias
    if target.s3 is None and (_env_value(env, "S3_ENABLED") or "").lower() in _TRUE:
        bucket = _env_value(env, "S3_BUCKET")
        endpoint = _env_value(env, "S3_ENDPOINT") or (
            f"https://s3.{_env_value(env, 'S3_REGION') or 'us-east-1'}.amazonaws.com")
        if bucket:
            changes["s3"] = S3Settings(
                endpoint=endpoint, bucket=bucket, region=_env_value(env, "S3_REGION") or "us-east-1",
                permission=_env_value(env, "S3_PERMISSION") or "public-read", alias_host=alias,
            )
    return replace(target, **changes)


def collect_network(target: ScanTarget, facts: FactSet | None = None,
                    probes: list[Probe] | None = None) -> FactSet:
    """Run every probe against the target; add the facts to `facts` (a live host's) or a new set."""
    facts = facts if facts is not None else FactSet(target=target.name)
    if not facts.has(kinds.HOST_INFO):
        facts.add(kinds.HOST_INFO, HostInfo(target.name, target.addresses[0] if target.addresses else "", ("web",),
                                            target.local_domain, target.web_domain))
    facts.add(kinds.SCAN_TARGET, target)
    durations = run_probes(target, facts, probes if probes is not None else all_probes())
    facts.add(kinds.PROBE_TIMINGS, durations)
    return facts
