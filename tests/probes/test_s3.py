"""The S3 probe's parsers and the s3.* checks on small inputs, hostile ones included: a listing,
a policy or an ACL that is malformed, oversized or hostile gives a clear finding, never an
exception."""

from __future__ import annotations

import json

import pytest

from mastoaudit.facts import FactSet
from mastoaudit.facts import s3 as FS
from mastoaudit.model import Status
from mastoaudit.net.target import S3Settings
from mastoaudit.probes import s3 as S

# --- parsers -------------------------------------------------------------------------------------


def test_listing_keys_with_entities():
    body = (b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Contents><Key>a&amp;b.png</Key></Contents><Contents><Key>backups/db.sql.gz</Key></Contents>"
            b"</ListBucketResult>")
    assert S.parse_listing(body) == (True, ["a&b.png", "backups/db.sql.gz"])


@pytest.mark.parametrize("body", [
    b"<!DOCTYPE html><title>media</title>",
    b"<Error><Code>AccessDenied</Code></Error>",
    b"\x00\xff" * 10000,
    b"",
])
def test_not_a_listing(body):
    assert S.parse_listing(body) == (False, [])


def test_hostile_listing_is_bounded_and_not_expanded():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
            b"<ListBucketResult><Contents><Key>&b;</Key></Contents>")
    ok, keys = S.parse_listing(bomb)
    assert ok and keys == ["&b;"]  # entities other than the five XML ones stay as written
    many = b"<ListBucketResult>" + b"<Key>k</Key>" * 5000
    assert len(S.parse_listing(many)[1]) == S.MAX_KEYS
    long = b"<ListBucketResult><Key>" + b"x" * 1000 + b"</Key>"
    assert len(S.parse_listing(long)[1][0]) == 300


def test_public_policy_statements():
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
         "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]},
        {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "s3:*"},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Condition": {"IpAddress": {"aws:SourceIp": "x"}}},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*"},
    ]})
    statements, error = FS.public_policy_statements(policy)
    assert error is None and len(statements) == 2
    assert FS.risky_actions(statements[0]["actions"]) == ["s3:ListBucket", "s3:PutObject"]
    assert FS.risky_actions(statements[1]["actions"]) == []


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "[" * 30000, '"just a string"', "\x00\xff"])
def test_hostile_policies_are_reported_not_raised(text):
    statements, error = FS.public_policy_statements(text)
    assert statements == [] and error and len(error) < 400


def test_odd_policy_shapes_are_tolerated():
    for doc in ({"Statement": "x"}, {"Statement": [1, None, "s"]}, {"Statement": {"Effect": "Allow", "Principal": "*",
                                                                                    "Action": "s3:PutObject"}}):
        assert FS.public_policy_statements(json.dumps(doc))[1] is None
    assert FS.public_policy_statements(json.dumps(doc))[0][0]["actions"] == ["s3:PutObject"]


def test_acl_summary_and_public_grants():
    acl = S.summarize_acl({"Grants": [
        {"Grantee": {"ID": "owner", "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"URI": FS.ALL_USERS, "Type": "Group"}, "Permission": "READ"},
        {"Grantee": {"URI": FS.AUTHENTICATED_USERS, "Type": "Group"}, "Permission": "WRITE"},
        "junk", {"Grantee": "junk"}]})
    assert FS.public_acl_grants(acl) == [("AllUsers", "READ"), ("AuthenticatedUsers", "WRITE")]
    assert S.summarize_acl({"Grants": "not a list"}) == {"grants": []}


def test_cors_methods_and_dump_names():
    assert FS.cors_write_methods("DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT") == ["DELETE", "PATCH", "POST", "PUT"]
    assert FS.cors_write_methods(["GET", "HEAD"]) == []
    assert FS.cors_write_methods("*") == ["*"]
    for key in ("backups/mastodon_production.sql.gz", "db.dump", "x/pg_dump-2024.gz", "mastodon.sql",
                "backups/dumps/000/000/001/original/archive-20240101.zip", "dump/all.tar.zst"):
        assert S.looks_like_dump(key), key
    for key in ("media_attachments/files/000/000/001/original/lab.png", "accounts/avatars/1/original/a.jpg",
                "cache/preview_cards/images/1/original/x.webp", "mastoaudit-probe/x.sql"):
        assert not S.looks_like_dump(key), key


# --- the checks ----------------------------------------------------------------------------------

PUBLIC = S3Settings("https://s3.example.net", "media", permission="public-read", alias_host="media.example.social",
                    public_object="media_attachments/a.png")
INTERNAL = S3Settings("http://127.0.0.1:9000", "media", permission="public-read", alias_host="media.example.social")


def fact(settings=PUBLIC, view="public", **kw) -> FS.S3Fact:
    f = FS.S3Fact(settings, settings.alias_host if settings else "media.example.social", endpoint_view=view,
                 endpoint_address="198.51.100.7" if view == "public" else "127.0.0.1")
    for k, v in kw.items():
        setattr(f, k, v)
    return f


def run(registry, check_id, *facts_):
    fs = FactSet("example.social")
    for f in facts_:
        fs.add("s3", f)
    return list(registry.get(check_id).run(fs))


def att(via, action, outcome, status=None, **kw):
    return FS.Attempt(via, f"https://x/{action}", action, outcome, status, **kw)


def test_listing_via_media_host_fails_and_internal_endpoint_is_not_judged(registry):
    listings = [att("media host", "list", "allowed", 200, detail="ListBucketResult with 2 keys",
                    data={"keys": ["a.png", "backups/x.sql"]}),
                att("media host", "list", "denied", 200),
                att("endpoint", "list", "allowed", 200, detail="2 keys", data={"keys": ["a.png"]})]
    out = run(registry, "s3.anonymous-list", fact(INTERNAL, "internal", listings=listings))
    assert [o.status for o in out] == [Status.FAIL, Status.SKIP]
    assert "backups/x.sql" in out[0].observed and "internal address 127.0.0.1" in out[1].message


def test_listing_refused_everywhere_passes(registry):
    listings = [att("media host", "list", "denied", 403), att("endpoint", "list", "denied", 403, code="AccessDenied")]
    out = run(registry, "s3.anonymous-list", fact(listings=listings))
    assert [o.status for o in out] == [Status.PASS, Status.PASS]


def test_internal_endpoint_without_media_host_warns(registry):
    f = fact(S3Settings("http://10.1.2.3:9000", "media"), "internal",
             listings=[att("endpoint", "list", "allowed", 200, data={"keys": []})])
    f.alias_host = None
    assert [o.status for o in run(registry, "s3.anonymous-list", f)] == [Status.WARN]


def test_write_accepted_says_whether_the_probe_object_was_removed(registry):
    removed = att("media host", "write", "allowed", 200, data={"key": "mastoaudit-probe/1.txt", "removed": True,
                                                               "removal": "unsigned DELETE: HTTP 204"})
    stuck = att("endpoint", "write", "allowed", 200, data={"key": "mastoaudit-probe/2.txt", "removed": False,
                                                           "removal": "unsigned DELETE: denied 403"})
    out = run(registry, "s3.anonymous-write", fact(writes=[removed, stuck]))
    assert [o.status for o in out] == [Status.FAIL, Status.FAIL]
    assert "written and removed again" in out[0].message
    assert "could NOT be removed" in out[1].message and "mastoaudit-probe/2.txt" in out[1].message


def test_write_not_tried_on_internal_endpoint(registry):
    out = run(registry, "s3.anonymous-write", fact(INTERNAL, "internal",
                                                   writes=[att("media host", "write", "denied", 403)]))
    assert [o.status for o in out] == [Status.PASS, Status.SKIP]


def test_readable_objects_never_fail(registry):
    reads = [att("media host", "read", "allowed", 200), att("endpoint", "read", "denied", 403, code="AccessDenied")]
    out = run(registry, "s3.objects-readable", fact(public_object="a.png", reads=reads))
    assert [o.status for o in out] == [Status.PASS, Status.WARN]
    assert run(registry, "s3.objects-readable", fact())[0].status is Status.SKIP


def test_https(registry):
    served = att("media host", "read-plain-http", "served", 200)
    redirected = att("media host", "read-plain-http", "redirected", 301, detail="Location: https://x/")
    out = run(registry, "s3.https", fact(plain_http=[served], reads=[att("media host", "read", "allowed", 200)]))
    assert [o.status for o in out] == [Status.FAIL, Status.PASS]  # plain http served; the endpoint is https
    out = run(registry, "s3.https", fact(INTERNAL, "internal", plain_http=[redirected]))
    assert [o.status for o in out] == [Status.PASS, Status.SKIP]
    http_public = S3Settings("http://s3.example.net", "media", alias_host="media.example.social")
    out = run(registry, "s3.https", fact(http_public, plain_http=[redirected]))
    assert out[-1].status is Status.FAIL and out[-1].observed == "http"


def cfg(name, outcome, **data):
    return FS.Attempt("endpoint, signed", f"https://s3.example.net/media?{name}", name, outcome, data=data)


def test_acl_policy_and_block_public_access(registry):
    weak = {"acl": cfg("acl", "read", grants=[{"grantee": FS.ALL_USERS, "permission": "READ"},
                                               {"grantee": FS.ALL_USERS, "permission": "WRITE"}]),
            "policy": cfg("policy", "read", policy=json.dumps({"Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:PutObject"]}]})),
            "public_access_block": cfg("public_access_block", "absent")}
    out = run(registry, "s3.acl-consistent", fact(config=weak))
    assert [(o.status, str(o.severity)) for o in out] == [
        (Status.FAIL, "critical"), (Status.FAIL, "critical"), (Status.PASS, "None")]
    assert "with the credentials" in out[0].message
    good = {"acl": cfg("acl", "read", grants=[{"grantee": "owner", "permission": "FULL_CONTROL"}]),
            "policy": cfg("policy", "absent"), "public_access_block": cfg("public_access_block", "absent")}
    assert {o.status for o in run(registry, "s3.acl-consistent", fact(config=good))} == {Status.PASS}
    private = S3Settings("https://s3.example.net", "media", permission="private")
    out = run(registry, "s3.acl-consistent", fact(private, config=good))
    assert out[-1].status is Status.FAIL and out[-1].subject == "public access block"
    blocked = dict(good, public_access_block=cfg("public_access_block", "read", BlockPublicAcls=True,
                                                 IgnorePublicAcls=True, BlockPublicPolicy=True,
                                                 RestrictPublicBuckets=True))
    assert run(registry, "s3.acl-consistent", fact(config=blocked))[-1].status is Status.WARN
    assert run(registry, "s3.acl-consistent", fact(private, config=blocked))[-1].status is Status.PASS


def test_unreadable_and_garbage_configuration(registry):
    denied = {n: FS.Attempt("endpoint", "u", n, "denied", 403, "AccessDenied") for n in
              ("acl", "policy", "public_access_block")}
    out = run(registry, "s3.acl-consistent", fact(config=denied))
    assert [o.status for o in out] == [Status.SKIP] and "AWS_ACCESS_KEY_ID" in out[0].message
    garbage = {"policy": cfg("policy", "read", policy="{not json" + "\x1b" * 10)}
    out = run(registry, "s3.acl-consistent", fact(config=garbage))
    assert out[0].status is Status.ERROR and "\x1b" not in out[0].message


def test_cors(registry):
    open_pf = att("media host", "preflight", "allowed", 200, data={"write_methods": ["PUT"]},
                  detail="Access-Control-Allow-Methods: PUT")
    rules = cfg("cors", "read", rules=[{"methods": ["GET", "PUT"], "origins": ["*"]}])
    reads = [att("media host", "read", "allowed", 200, data={"access-control-allow-origin": None})]
    out = run(registry, "s3.cors", fact(preflights=[open_pf], config={"cors": rules}, reads=reads))
    assert [o.status for o in out] == [Status.FAIL, Status.FAIL, Status.WARN]
    closed = att("media host", "preflight", "denied", 403)
    reads = [att("media host", "read", "allowed", 200, data={"access-control-allow-origin": "*"})]
    out = run(registry, "s3.cors", fact(preflights=[closed], config={"cors": cfg("cors", "absent")}, reads=reads))
    assert [o.status for o in out] == [Status.PASS, Status.PASS]


def test_encryption_versioning_is_reported(registry):
    config = {"encryption": cfg("encryption", "read", algorithms=["AES256"]),
              "versioning": cfg("versioning", "read", status="Enabled")}
    out = run(registry, "s3.encryption-versioning", fact(config=config))
    assert [o.message for o in out] == ["reported: default encryption AES256", "reported: versioning Enabled"]
    assert [o.status for o in out] == [Status.PASS, Status.PASS]
    bare = {"encryption": cfg("encryption", "read", algorithms=[]), "versioning": cfg("versioning", "read")}
    out = run(registry, "s3.encryption-versioning", fact(config=bare))
    assert [o.status for o in out] == [Status.WARN, Status.WARN]
    assert [o.observed for o in out] == ["no default encryption", "never enabled"]


def test_backup_objects(registry):
    dump = FS.Attempt("media host", "https://media.example.social/backups/db.sql.gz", "read-dump", "allowed", 200)
    out = run(registry, "s3.backup-objects", fact(keys=["a.png", "backups/db.sql.gz"], dumps=[dump]))
    assert out[0].status is Status.FAIL and out[0].subject == "object backups/db.sql.gz"
    out = run(registry, "s3.backup-objects", fact(keys=["a.png"], keys_source=["endpoint"]))
    assert out[0].status is Status.PASS and "1 listed keys" in out[0].message
    assert run(registry, "s3.backup-objects", fact())[0].status is Status.SKIP
    hostile = FS.Attempt("media host", "https://m/backups/%1B%5B2Jx.sql", "read-dump", "allowed", 200)
    out = run(registry, "s3.backup-objects", fact(keys=["backups/\x1b[2Jx.sql"], dumps=[hostile]))
    assert out[0].subject == "object backups/\\x1b[2Jx.sql"


def test_secrets_are_offered_for_scrubbing():
    f = FS.S3Fact(PUBLIC, None, _secrets=("s3cr3t-value",))
    facts = FactSet("x")
    facts.add("s3", f)
    assert "s3cr3t-value" in facts.secrets and "s3cr3t" not in repr(f)


# --- the endpoint's requests go through the one outbound client ------------------------------------


@pytest.fixture
def hostile_endpoint():
    """An S3 endpoint on loopback whose bucket trickles its listing or sends an endless one."""
    from tests import netlab

    routes = {"/b": netlab.trickle(0.2), "/endless": netlab.huge()}
    server = netlab.HttpServer("127.0.0.1", 0, routes)
    yield server
    server.close()


@pytest.mark.parametrize("bucket, words", [("b", "no complete answer"), ("endless", "larger than")])
def test_endpoint_requests_are_bounded_by_the_one_client(hostile_endpoint, bucket, words):
    """Issue 7 item 7 for boto3: a listing trickled a byte at a time (or never ending) ends with the
    probe's deadline (or at the size cap) as that attempt's error. Before, botocore's own connection
    read on with a per-read timeout only: the probe's worker threads outlived the report and the
    process never exited."""
    import threading
    import time

    from mastoaudit.net.dns import Resolver
    from mastoaudit.net.http import HttpClient
    from mastoaudit.net.runner import ProbeContext
    from mastoaudit.net.target import ScanTarget

    endpoint = f"http://127.0.0.1:{hostile_endpoint.port}"
    target = ScanTarget("site.test", "site.test", "site.test", addresses=("127.0.0.1",), timeout=1,
                        s3=S3Settings(endpoint, bucket))
    resolver = Resolver(target)
    http = HttpClient(target, resolver)
    got: list = []
    worker = threading.Thread(target=lambda: got.append(S.collect(target, ProbeContext(
        resolver, http.bounded(time.monotonic() + 4)))), daemon=True)
    worker.start()
    worker.join(60)  # a guard, not a measure: without the bound the probe never returns
    http.close()
    assert not worker.is_alive(), "the S3 probe outlived its deadline"
    listing = next(a for a in got[0].listings if a.via == "endpoint")
    assert listing.outcome == "error" and words in listing.detail, listing
    agents = {v for r in hostile_endpoint.requests for k, v in r["headers"] if k.lower() == "user-agent"}
    assert hostile_endpoint.requests and all(a.startswith("mastoaudit/") for a in agents), agents


def test_endpoint_requests_obey_the_address_policy():
    """The endpoint named by the user may be private; a host its answers point to may not: the
    same requests, sent by boto3 without the client, connected wherever botocore was told."""
    import time

    from botocore.awsrequest import AWSPreparedRequest

    from mastoaudit.net.dns import Resolver
    from mastoaudit.net.http import HttpClient
    from mastoaudit.net.target import ScanTarget

    target = ScanTarget("site.test", "site.test", "site.test", addresses=("127.0.0.1",), timeout=1)
    http = HttpClient(target, Resolver(target)).bounded(time.monotonic() + 5)
    send = S._OneClient(http, "require")
    request = AWSPreparedRequest("GET", "http://169.254.169.254/b?list-type=2", {}, None, False)
    with pytest.raises(S.EndpointUnanswered, match="not a public address"):
        send(request, event_name="before-send.s3.ListObjectsV2")
    request = AWSPreparedRequest("PUT", "http://127.0.0.1:9/b/k", {}, b"data", False)
    with pytest.raises(S.EndpointUnanswered, match="body"):
        send(request, event_name="before-send.s3.PutObject")
