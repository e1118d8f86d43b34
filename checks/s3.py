"""The media bucket (S3-compatible object storage): how Mastodon is told to use it (.env.production)
and what strangers reach of it (probe: s3, and the media host's CORS from the http probe).

What outsiders reach is judged: the media host (S3_ALIAS_HOST) and an endpoint on a public
address. An endpoint on an internal address (loopback, private) is reported but not judged, except
for reads: Mastodon's media proxy itself reads the bucket anonymously from inside.
Public-read media is what Mastodon needs and never fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

from mastoaudit import kinds
from mastoaudit.checkdef import Remediation, check, errored, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.http import cors_verdict
from mastoaudit.facts.s3 import (
    Attempt,
    S3Fact,
    cors_write_methods,
    public_acl_grants,
    public_policy_statements,
    risky_actions,
)
from mastoaudit.judgments.env import CONFIG_DOCS, Switch, templated, var_at, where_used
from mastoaudit.model import Location, Outcome, Severity
from mastoaudit.net.text import clean
from mastoaudit.parsers.env import (
    is_local_host,
)

# --- from outside (probe: s3) -------------------------------------------------------------------------


_ORDER = [s.value for s in Severity]


def _internal_note(fact: S3Fact) -> str:
    return (f"the endpoint {fact.endpoint_url} is on the internal address {fact.endpoint_address} (not one the scan "
            "was pointed at), so outsiders do not reach it")


def _keys(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(clean(k, 200) for k in keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


@check(
    id="s3.anonymous-list",
    title="The media bucket cannot be listed anonymously",
    component="s3",
    severity="high",
    threats=["T-MEDIA-ACCESS"],
    needs=[kinds.S3],
    rationale="""Mastodon needs its media readable by URL, never listable: a listing hands out every
        key, including the media of private and followers-only posts, exports and anything else
        stored in the bucket. Mastodon's documented media proxy answers only object paths.""",
    remediation=Remediation(
        "Keep the bucket ACL private (objects public-read) and let the media host proxy object paths only.",
        "location = / { return 404; }  # or an index page\nlocation / { try_files $uri @s3; }\n"
        "location @s3 { limit_except GET { deny all; } proxy_pass $s3_backend$uri; }"),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage-proxy/",
                "https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html"],
    tags=["network", "s3"],
)
def anonymous_list(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.S3):
        for via in ("media host", "endpoint"):
            attempts = [a for a in fact.listings if a.via == via]
            if not attempts:
                continue
            allowed = [a for a in attempts if a.outcome == "allowed"]
            shown = allowed[0] if allowed else attempts[0]
            subject = f"listing via the {via}"
            kw = dict(at=Location(shown.url), subject=subject, expected="AccessDenied, or no ListBucketResult")
            keys = shown.data.get("keys", [])
            if via == "endpoint" and not fact.endpoint_judged:
                seen = f"listing {'answered' if allowed else 'refused'} here: {shown.evidence}"
                if fact.alias_host:
                    yield skipped(f"not judged: {_internal_note(fact)}; the media host is judged", observed=seen,
                                  **kw)
                elif allowed:
                    yield warned(f"the bucket can be listed anonymously from this host ({_internal_note(fact)})",
                                 observed=seen, **kw)
                else:
                    yield passed("the bucket refuses anonymous listing", observed=seen, **kw)
            elif allowed:
                yield failed(f"the bucket can be listed anonymously via the {via}",
                             observed=f"{shown.evidence}: {_keys(keys)}" if keys else shown.evidence, **kw)
            elif all(a.outcome == "error" for a in attempts):
                yield errored(f"the {via} could not be asked for a listing", observed=shown.evidence, **kw)
            else:
                yield passed(f"the {via} refuses anonymous listing",
                             observed="; ".join(f"{a.url}: {a.evidence}"[:200] for a in attempts), **kw)


@check(
    id="s3.anonymous-write",
    title="Nobody can write to the media bucket anonymously",
    component="s3",
    severity="critical",
    threats=["T-MEDIA-ACCESS", "T-MEDIA-XSS"],
    needs=[kinds.S3],
    rationale="""A bucket that takes anonymous writes lets anyone replace media, plant HTML or
        scripts under the instance's media domain, or fill the bucket at the owner's cost. The
        probe PUTs an empty object under mastoaudit-probe/ without credentials and removes it
        again when it was accepted.""",
    remediation=Remediation(
        "Grant writes only to Mastodon's access key (no WRITE for AllUsers in the ACL, no s3:PutObject for \"*\" "
        "in the policy) and allow only GET through the media host.",
        "location @s3 { limit_except GET { deny all; } ... }"),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage-proxy/"],
    tags=["network", "s3"],
)
def anonymous_write(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.S3):
        for attempt in fact.writes:
            kw = dict(at=Location(attempt.url), subject=f"anonymous PUT via the {attempt.via}",
                      expected="AccessDenied (403)")
            if attempt.outcome == "allowed":
                key = attempt.data.get("key", "")
                if attempt.data.get("removed"):
                    after = f"the probe object {key} was written and removed again ({attempt.data.get('removal')})"
                else:
                    after = (f"the probe object {key} was written and could NOT be removed "
                             f"({attempt.data.get('removal', 'no removal tried')}): delete it")
                yield failed(f"the bucket takes anonymous writes via the {attempt.via}; {after}",
                             observed=attempt.evidence, **kw)
            elif attempt.outcome == "error":
                yield errored(f"the anonymous write test via the {attempt.via} got no answer",
                              observed=attempt.evidence, **kw)
            else:
                yield passed(f"the {attempt.via} refuses anonymous writes", observed=attempt.evidence, **kw)
        if fact.settings is not None and not fact.endpoint_judged:
            yield skipped(f"not tried at the endpoint: {_internal_note(fact)}; no object is written where it would "
                          "not be judged", at=Location(fact.endpoint_url), subject="anonymous PUT via the endpoint",
                          observed="not tried", expected="AccessDenied (403)")


@check(
    id="s3.objects-readable",
    title="Media files are readable by URL (public-read), as Mastodon needs",
    component="s3",
    severity="low",
    threats=["T-MEDIA-ACCESS"],
    needs=[kinds.S3],
    rationale="""Browsers and other servers fetch media by URL without credentials; Mastodon uploads
        objects public-read (S3_PERMISSION). Readable objects are correct and never a finding; an
        object that cannot be read means broken media for everyone.""",
    remediation=Remediation("Keep S3_PERMISSION=public-read (objects), the bucket itself private; make sure the "
                            "public access block does not ignore public object ACLs."),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage/"],
    tags=["network", "s3"],
)
def objects_readable(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.S3):
        if not fact.public_object:
            yield skipped("no media key known to read (pass --s3-public-object KEY)",
                          at=Location(fact.endpoint_url or f"https://{fact.alias_host}/"), subject="media read")
            continue
        for attempt in fact.reads:
            kw = dict(at=Location(attempt.url), subject=f"media read via the {attempt.via}",
                      observed=attempt.evidence, expected="200 (public-read)")
            if attempt.outcome == "allowed":
                yield passed(f"a media file is readable anonymously via the {attempt.via}", **kw)
            elif attempt.outcome == "error":
                yield errored(f"the media file could not be fetched via the {attempt.via}", **kw)
            elif fact.settings is not None and fact.settings.permission == "private":
                yield passed(f"S3_PERMISSION=private: media are not readable anonymously via the {attempt.via}",
                             **kw)
            else:
                yield warned(f"the media file is not readable anonymously via the {attempt.via}: media stay broken "
                             "for browsers and other servers", **kw)


@check(
    id="s3.https",
    title="Media are reached over HTTPS only",
    component="s3",
    severity="high",
    threats=["T-TRANSPORT-MITM", "T-MEDIA-ACCESS"],
    needs=[kinds.S3],
    rationale="""Media fetched over plain HTTP can be swapped in transit (an image becomes a
        different image, a download becomes malware). The media host must answer on HTTPS and
        redirect or refuse plain HTTP; an endpoint outsiders reach must be HTTPS.""",
    remediation=Remediation("Serve the media host on 443 only and redirect port 80; use an https S3 endpoint "
                            "(S3_PROTOCOL=https).",
                            "server {\n  listen 80;\n  server_name media.example.com;\n"
                            "  return 301 https://$host$request_uri;\n}"),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage/"],
    tags=["network", "s3", "tls"],
)
def https_only(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.S3):
        if fact.alias_host:
            https = [a for a in fact.reads + fact.listings if a.via == "media host"]
            answered = [a for a in https if a.status]
            where = Location(f"https://{fact.alias_host}/")
            if https and not answered:
                yield failed("the media host does not answer over HTTPS", at=where, subject="media host https",
                             observed=https[0].evidence, expected="an HTTPS answer")
            for attempt in fact.plain_http:
                kw = dict(at=Location(attempt.url), subject="media host plain http", observed=attempt.evidence,
                          expected="refused, or a redirect to https://")
                if attempt.outcome == "served":
                    yield failed("the media host serves media over plain HTTP", **kw)
                else:
                    yield passed(f"plain HTTP to the media host is {attempt.outcome}"
                                 + (" to https" if attempt.outcome == "redirected" else ""), **kw)
        if fact.settings is None:
            continue
        scheme = fact.endpoint_url.split(":", 1)[0].lower()
        kw = dict(at=Location(fact.endpoint_url), subject="endpoint scheme", observed=scheme, expected="https")
        if scheme == "https":
            yield passed("the S3 endpoint is https", **kw)
        elif not fact.endpoint_judged and fact.alias_host:
            yield skipped(f"reported, not judged: the endpoint is plain HTTP, but {_internal_note(fact)}; clients "
                          "use the media host", **kw)
        elif not fact.endpoint_judged:
            yield warned(f"the endpoint is plain HTTP ({_internal_note(fact)}); media URLs would be plain HTTP",
                         **kw)
        else:
            yield failed("the S3 endpoint is plain HTTP", **kw)


_ACL_SEVERITY = {"WRITE": "critical", "FULL_CONTROL": "critical", "WRITE_ACP": "critical", "READ": "high",
                 "READ_ACP": "medium"}


@check(
    id="s3.acl-consistent",
    title="The bucket's ACL, policy and public access block match S3_PERMISSION",
    component="s3",
    severity="high",
    threats=["T-MEDIA-ACCESS"],
    needs=[kinds.S3],
    rationale="""With S3_PERMISSION=public-read Mastodon makes each object public and keeps the
        bucket private: no ACL grant or policy statement should let everyone list, write or change
        permissions. With S3_PERMISSION=private the public access block should be on. Read with
        the credentials when given, otherwise as far as an anonymous client may.""",
    remediation=Remediation(
        "Set the bucket ACL to private, drop policy statements that grant \"*\" anything beyond s3:GetObject, and "
        "(for S3_PERMISSION=private) turn on Block Public Access.",
        "aws s3api put-bucket-acl --bucket BUCKET --acl private\naws s3api delete-bucket-policy --bucket BUCKET"),
    references=["https://docs.aws.amazon.com/AmazonS3/latest/userguide/acl-overview.html",
                "https://docs.joinmastodon.org/admin/optional/object-storage/"],
    tags=["network", "s3"],
)
def acl_consistent(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.S3):
        if fact.settings is None:
            continue
        permission = fact.settings.permission
        acl, policy, pab = (fact.config.get(k) for k in ("acl", "policy", "public_access_block"))
        readable = [a for a in (acl, policy, pab) if a is not None and a.outcome in ("read", "absent")]
        if not readable:
            shown = acl or policy or pab
            yield skipped("the bucket's ACL, policy and public access block cannot be read here "
                          "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and pass --s3-signed to check them)",
                          at=Location(fact.endpoint_url), subject="bucket permissions",
                          observed=shown.evidence if shown else "not asked")
            continue
        if acl is not None:
            yield from _judge_acl(acl)
        if policy is not None:
            yield from _judge_policy(policy, permission)
        if pab is not None:
            yield from _judge_pab(pab, permission, policy)


def _source(attempt: Attempt) -> str:
    return "with the credentials" if attempt.via.endswith("signed") else "anonymously"


def _judge_acl(acl: Attempt) -> Iterator[Outcome]:
    kw = dict(at=Location(acl.url), subject="bucket ACL", expected="no grant to AllUsers or AuthenticatedUsers")
    if acl.outcome != "read":
        yield skipped(f"the bucket ACL cannot be read {_source(acl)}", observed=acl.evidence, **kw)
        return
    grants = public_acl_grants(acl.data)
    if not grants:
        yield passed(f"the bucket ACL (read {_source(acl)}) grants nothing to everyone",
                     observed=f"{len(acl.data.get('grants', []))} grant(s), none public", **kw)
        return
    worst = max((_ACL_SEVERITY.get(p, "medium") for _, p in grants), key=_ORDER.index)
    observed = ", ".join(f"{group}: {perm}" for group, perm in grants)
    yield failed(f"the bucket ACL (read {_source(acl)}) grants permissions to everyone: {observed}", observed=observed,
                 severity=worst, **kw)


def _judge_policy(policy: Attempt, permission: str) -> Iterator[Outcome]:
    kw = dict(at=Location(policy.url), subject="bucket policy",
              expected="nothing for \"*\" beyond s3:GetObject" if permission != "private" else "nothing for \"*\"")
    if policy.outcome == "absent":
        yield passed(f"the bucket has no policy (read {_source(policy)})", observed=policy.code, **kw)
        return
    if policy.outcome != "read":
        yield skipped(f"the bucket policy cannot be read {_source(policy)}", observed=policy.evidence, **kw)
        return
    statements, error = public_policy_statements(policy.data.get("policy", ""))
    if error:
        yield errored(f"the bucket policy cannot be understood: {error}", observed=error, **kw)
        return
    risky = sorted({a for st in statements for a in risky_actions(st["actions"])})
    reads = [st for st in statements if not risky_actions(st["actions"])]
    if risky:
        writes = any(not a.lower().startswith(("s3:get", "s3:list")) for a in risky)
        yield failed(f"the bucket policy allows {', '.join(risky)[:200]} to everyone", observed=", ".join(risky)[:200],
                     severity="critical" if writes else "high", **kw)
    elif reads and permission == "private":
        yield warned("S3_PERMISSION=private, but the bucket policy makes every object readable by everyone",
                     observed="s3:GetObject for \"*\"", **kw)
    else:
        yield passed("the bucket policy grants everyone at most s3:GetObject",
                     observed="s3:GetObject for \"*\"" if reads else "no statement for \"*\"", **kw)


def _judge_pab(pab: Attempt, permission: str, policy: Attempt | None) -> Iterator[Outcome]:
    kw = dict(at=Location(pab.url), subject="public access block")
    if pab.outcome not in ("read", "absent"):
        yield skipped(f"the public access block cannot be read {_source(pab)}", observed=pab.evidence, **kw)
        return
    flags = pab.data if pab.outcome == "read" else {}
    observed = ", ".join(f"{k}={v}" for k, v in flags.items()) or "none configured"
    if permission == "private":
        on = flags.get("BlockPublicAcls") and flags.get("BlockPublicPolicy")
        verdict = passed if on else failed
        yield verdict("S3_PERMISSION=private and Block Public Access is " + ("on" if on else "not on"),
                      observed=observed, expected="BlockPublicAcls=True, BlockPublicPolicy=True", severity="medium",
                      **kw)
        return
    blocks = [k for k in ("BlockPublicAcls", "IgnorePublicAcls") if flags.get(k)]
    public_policy = policy is not None and policy.outcome == "read" and bool(
        public_policy_statements(policy.data.get("policy", ""))[0])
    if blocks and not public_policy:
        yield warned(f"S3_PERMISSION={permission}, but {' and '.join(blocks)} keep Mastodon's public-read media "
                     "from being public", observed=observed, expected="BlockPublicAcls=False, IgnorePublicAcls=False",
                     **kw)
    else:
        yield passed(f"the public access block lets S3_PERMISSION={permission} objects be public", observed=observed,
                     expected="public object ACLs honoured", **kw)


@check(
    id="s3.cors",
    title="CORS on media allows reading, never cross-origin writes",
    component="s3",
    severity="medium",
    threats=["T-MEDIA-ACCESS", "T-MEDIA-XSS"],
    needs=[kinds.S3],
    rationale="""The web app loads media from the media host; CORS for GET is expected (Mastodon's
        proxy sends Access-Control-Allow-Origin: *). A CORS rule that allows PUT, POST or DELETE
        from any origin lets any web page a user visits write into the bucket with whatever
        access that user's browser has.""",
    remediation=Remediation("Allow only GET and HEAD in the bucket's CORS rules and on the media host.",
                            '[{"AllowedMethods": ["GET", "HEAD"], "AllowedOrigins": ["*"]}]'),
    references=["https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html"],
    tags=["network", "s3"],
)
def cors(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.S3):
        for attempt in fact.preflights:
            kw = dict(at=Location(attempt.url), subject=f"CORS preflight (PUT) via the {attempt.via}",
                      observed=f"HTTP {attempt.status}: {attempt.detail}" if attempt.status else attempt.evidence,
                      expected="no PUT, POST or DELETE allowed for another origin")
            if attempt.outcome == "allowed":
                yield failed(f"a cross-origin {', '.join(attempt.data.get('write_methods', []))} is allowed via the "
                             f"{attempt.via}", **kw)
            elif attempt.outcome == "error":
                yield errored(f"the CORS preflight via the {attempt.via} got no answer", **kw)
            else:
                yield passed(f"the {attempt.via} does not allow cross-origin writes", **kw)
        rules = fact.config.get("cors")
        if rules is not None and rules.outcome == "read":
            bad = [r for r in rules.data.get("rules", []) if cors_write_methods(r["methods"])]
            kw = dict(at=Location(rules.url), subject="bucket CORS rules",
                      observed="; ".join(f"{','.join(r['methods'])} from {','.join(r['origins'])}"
                                         for r in rules.data.get("rules", []))[:200] or "no rules",
                      expected="GET and HEAD only")
            if bad:
                yield failed("the bucket's CORS rules allow cross-origin writes", **kw)
            else:
                yield passed("the bucket's CORS rules allow no writes", **kw)
        served = [a for a in fact.reads if a.via == "media host" and a.outcome == "allowed"]
        if served and not served[0].data.get("access-control-allow-origin"):
            yield warned("media are served without Access-Control-Allow-Origin: the web app cannot use them "
                         "cross-origin", at=Location(served[0].url), subject="CORS on media", severity="low",
                         observed="no Access-Control-Allow-Origin", expected="Access-Control-Allow-Origin: *")
        elif served:
            yield passed("media are served with CORS for reading", at=Location(served[0].url), subject="CORS on media",
                         observed=f"Access-Control-Allow-Origin: {served[0].data['access-control-allow-origin']}",
                         expected="Access-Control-Allow-Origin: *")


@check(
    id="s3.encryption-versioning",
    title="Bucket encryption and versioning (reported)",
    component="s3",
    severity="info",
    threats=["T-DATA-AT-REST"],
    needs=[kinds.S3],
    rationale="""Default server-side encryption protects media on stolen storage; versioning lets
        a deleted or overwritten file be recovered. Both are reported for information: media are
        public-read by design, and providers differ in what they offer.""",
    remediation=Remediation("Turn on default encryption and, if recovery matters, versioning with a lifecycle rule.",
                            "aws s3api put-bucket-encryption --bucket BUCKET --server-side-encryption-configuration "
                            "'{\"Rules\":[{\"ApplyServerSideEncryptionByDefault\":{\"SSEAlgorithm\":\"AES256\"}}]}'"),
    references=["https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-encryption.html"],
    tags=["network", "s3"],
)
def encryption_versioning(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.S3):
        for name in ("encryption", "versioning"):
            attempt = fact.config.get(name)
            if attempt is None:
                continue
            kw = dict(at=Location(attempt.url), subject=f"bucket {name}")
            if attempt.outcome not in ("read", "absent"):
                yield skipped(f"the bucket's {name} setting cannot be read {_source(attempt)}",
                              observed=attempt.evidence, **kw)
            elif name == "encryption":
                algos = attempt.data.get("algorithms", [])
                verdict = passed if algos else warned
                yield verdict(f"reported: default encryption {', '.join(algos) if algos else 'not configured'}",
                              observed=", ".join(algos) or "no default encryption", expected="AES256 or aws:kms",
                              **kw)
            else:
                status = attempt.data.get("status", "never enabled")
                verdict = passed if status == "Enabled" else warned
                yield verdict(f"reported: versioning {status}", observed=status, expected="Enabled", **kw)


@check(
    id="s3.backup-objects",
    title="No database dump or backup is readable from the media bucket",
    component="s3",
    severity="critical",
    threats=["T-DATA-AT-REST", "T-MEDIA-ACCESS"],
    needs=[kinds.S3],
    rationale="""A database dump or backup copied into the public media bucket (by a backup
        script or by hand) gives every account's e-mail, password hashes, tokens and private
        messages to whoever finds it. Keys that look like dumps (.sql, .dump, backups/...) are
        looked for in the listings and read anonymously.""",
    remediation=Remediation("Remove the object, keep backups in a separate private bucket with encryption, and "
                            "rotate the secrets it contained.",
                            "aws s3 rm s3://BUCKET/backups/ --recursive"),
    references=["https://docs.joinmastodon.org/admin/backups/"],
    tags=["network", "s3", "backups"],
)
def backup_objects(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.S3):
        where = Location(f"https://{fact.alias_host}/" if fact.alias_host else fact.endpoint_url)
        if not fact.keys:
            yield skipped("no listing was readable here (which is good), so keys cannot be looked through; give "
                          "credentials to list the bucket", at=where, subject="dump-like objects")
            continue
        if not fact.dumps:
            yield passed(f"none of the {len(fact.keys)} listed keys looks like a database dump or backup", at=where,
                         subject="dump-like objects",
                         observed=f"{len(fact.keys)} keys (listed via: {'; '.join(fact.keys_source)})",
                         expected="no dump or backup in the media bucket")
        for attempt in fact.dumps:
            key = unquote(attempt.url.split("/", 3)[-1]) if attempt.via == "media host" else attempt.url
            kw = dict(at=Location(attempt.url), subject=f"object {clean(key, 200)}", observed=attempt.evidence,
                      expected="not in the media bucket, or not readable")
            if attempt.outcome == "allowed" and (attempt.via == "media host" or fact.endpoint_judged):
                yield failed(f"an object that looks like a database dump or backup is readable anonymously via the "
                             f"{attempt.via}", **kw)
            elif attempt.outcome == "allowed":
                yield warned(f"an object that looks like a database dump is readable anonymously from this host "
                             f"({_internal_note(fact)})", **kw)
            elif attempt.outcome == "error":
                yield errored("an object that looks like a dump could not be fetched", **kw)
            else:
                yield passed("an object that looks like a dump is in the bucket but not readable anonymously", **kw)


# --- how Mastodon is told to use it (.env.production) -------------------------------------------------


S3 = Switch("S3_ENABLED", "media are stored on the local disk (S3_ENABLED is not true)")


@check(
    id="s3.env-https",
    title="Object storage is used and served over https",
    component="s3",
    severity="medium",
    threats=["T-INTERNAL-CLEARTEXT", "T-MEDIA-ACCESS"],
    needs=[kinds.MASTODON_ENV],
    rationale="""S3_PROTOCOL is the scheme of every media URL Mastodon hands to browsers and of its
        own requests to the bucket (https by default). http media can be swapped on the way and are
        blocked as mixed content; an http S3_ENDPOINT across a network exposes uploads.""",
    remediation=Remediation("Use https for the bucket and the media URLs.", "S3_PROTOCOL=https"),
    references=[CONFIG_DOCS + "#s3", "https://docs.joinmastodon.org/admin/optional/object-storage/"],
    tags=["media", "tls"],
)
def s3_https(facts: FactSet) -> Iterator[Outcome]:
    used, skips = where_used(facts, S3, "not enabled")
    yield from skips
    for env, enabled in used:
        protocol = env.get("S3_PROTOCOL")
        if protocol is not None and protocol.templated:
            yield templated(env, protocol)
        elif protocol is not None and protocol.is_set and protocol.value.strip().lower() != "https":
            yield failed("media URLs and bucket requests use plain http", at=var_at(env, protocol),
                         subject="S3_PROTOCOL", observed=protocol.value, expected="https")
        else:
            yield passed("media use https", at=var_at(env, protocol or enabled), subject="S3_PROTOCOL",
                         observed=protocol.value if protocol and protocol.is_set else "unset (https)", expected="https")
        endpoint = env.get("S3_ENDPOINT")
        if endpoint is None or not endpoint.is_set:
            continue
        if endpoint.templated:
            yield templated(env, endpoint)
            continue
        scheme, _, rest = endpoint.value.strip().partition("://")
        host = rest.split("/", 1)[0].rsplit(":", 1)[0]
        if scheme.lower() == "http" and not is_local_host(host):
            yield failed(f"the bucket at {host} is reached over plain http", at=var_at(env, endpoint),
                         subject="S3_ENDPOINT", observed=endpoint.value, expected="https://")
        else:
            yield passed("the bucket endpoint uses https (or is on this host)", at=var_at(env, endpoint),
                         subject="S3_ENDPOINT", observed=endpoint.value, expected="https://")


@check(
    id="s3.env-permission",
    title="Uploaded media are not writable by anyone (S3_PERMISSION)",
    component="s3",
    severity="high",
    threats=["T-MEDIA-ACCESS"],
    needs=[kinds.MASTODON_ENV],
    rationale="""Mastodon uploads each file with the canned ACL in S3_PERMISSION. public-read, the
        documented default, is what serving media to browsers needs and is fine. public-read-write
        lets anyone overwrite media. private works only behind a proxy or alias that signs requests.""",
    remediation=Remediation("Use Mastodon's default (leave S3_PERMISSION unset) or private behind a signing proxy.",
                            "# S3_PERMISSION unset (public-read)"),
    references=[CONFIG_DOCS + "#s3", "https://docs.joinmastodon.org/admin/optional/object-storage/"],
    tags=["media"],
)
def s3_permission(facts: FactSet) -> Iterator[Outcome]:
    used, skips = where_used(facts, S3, "not enabled")
    yield from skips
    for env, enabled in used:
        var = env.get("S3_PERMISSION")
        value = var.value.strip().lower() if var is not None else "public-read"
        shown = var.value if var is not None and var.is_set else ("empty (no ACL)" if var else "unset (public-read)")
        if var is not None and var.templated:
            yield templated(env, var)
        elif value in ("public-read", "", "authenticated-read", "bucket-owner-read", "bucket-owner-full-control"):
            yield passed("media are uploaded readable, not writable, by the public", at=var_at(env, var or enabled),
                         subject="S3_PERMISSION", observed=shown, expected="public-read (the default)")
        elif value == "private":
            if env.value("S3_ALIAS_HOST"):
                yield passed("private objects served through S3_ALIAS_HOST", at=var_at(env, var), subject=var.key,
                             observed=var.value, expected="private behind a signing proxy")
            else:
                yield warned("private objects with no alias host: media only load through a signing proxy",
                             at=var_at(env, var), subject=var.key, observed=var.value,
                             expected="public-read, or private with S3_ALIAS_HOST", severity="info")
        elif value == "public-read-write":
            yield failed("anyone can overwrite uploaded media", at=var_at(env, var), subject=var.key,
                         observed=var.value, expected="public-read (the default)")
        else:
            yield warned("unknown canned ACL", at=var_at(env, var), subject=var.key, observed=var.value,
                         expected="public-read (the default)")


# --- the media host's CORS (probe: http-headers) ------------------------------------------------------


@check(
    id="http.media-cors",
    title="Media allow cross-origin reads only, never writes or credentials",
    component="s3",
    severity="medium",
    threats=["T-MEDIA-ACCESS"],
    needs=[kinds.HTTP_SITE],
    rationale="""Mastodon serves public media with Access-Control-Allow-Origin: * so that other sites
        can display them. A media host (or the bucket behind it) that also allows PUT, POST or DELETE
        from any origin, or reflects the caller's origin with credentials, lets any web page write to
        or read privately through the visitor's browser.""",
    remediation=Remediation("Let the media host answer GET only and set CORS for reads.",
                            "limit_except GET { deny all; }\nproxy_hide_header Access-Control-Allow-Origin;\n"
                            "proxy_hide_header Access-Control-Allow-Methods;\n"
                            "add_header Access-Control-Allow-Origin '*';"),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage-proxy/",
                "https://developer.mozilla.org/en-US/docs/Web/HTTP/CORS"],
    tags=["network", "media", "cors"],
)
def media_cors(facts: FactSet) -> Iterator[Outcome]:
    for site in facts.all(kinds.HTTP_SITE):
        media = site.media()
        if not media:
            yield skipped("no media URL answered (see http.media-headers)", at=Location(f"https://{site.web_domain}/"))
            continue
        preflights = {o.url: o for o in site.labelled("media-preflight")}
        for obs in media:
            checks = [("GET", obs)] + ([("OPTIONS preflight for PUT", preflights[obs.url])]
                                       if obs.url in preflights and preflights[obs.url].answered else [])
            subject = f"CORS on {obs.host}"
            worst = [(how, detail) for how, o in checks for verdict, detail in [cors_verdict(o)] if verdict == "fail"]
            shown = "; ".join(f"{how}: {cors_verdict(o)[1]}" for how, o in checks)
            if worst:
                what = ("read media with the visitor's credentials" if "credentials" in worst[0][1]
                        else "write to the media store")
                yield failed(f"any web page may {what} ({worst[0][0]})", at=obs.at(), subject=subject, observed=shown,
                             expected="Access-Control-Allow-Origin: * for GET only, no credentials")
            else:
                yield passed("cross-origin reads only", at=obs.at(), subject=subject, observed=shown,
                             expected="Access-Control-Allow-Origin: * for GET only, no credentials")
