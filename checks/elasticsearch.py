"""Elasticsearch / OpenSearch: Mastodon's optional full-text search (T-SEARCH-EXPOSED).

The index holds statuses and accounts, including non-public posts searchable by their authors and
mentioned users. Judged from elasticsearch.yml, from how Mastodon connects (.env.production), from a
compose file, and from what answers on port 9200 from outside. Decisions: a loopback-only node with
security off is a warning (Mastodon's docker-compose runs it like that on an internal network), an
exposed one is a critical failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mastoaudit import kinds, templating
from mastoaudit.addresses import widest_reach
from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.ports import where
from mastoaudit.judgments.compose import (
    PUBLISHED_PORT_REFERENCES,
    backend_publish,
    service_reach,
    service_subject,
    unauthenticated,
)
from mastoaudit.judgments.env import CONFIG_DOCS, Switch, templated, var_at, where_used
from mastoaudit.judgments.ports import per_service
from mastoaudit.model import Location, Outcome
from mastoaudit.parsers.compose import ComposeService
from mastoaudit.parsers.elasticsearch import ElasticsearchConf, EsSetting
from mastoaudit.parsers.env import (
    elasticsearch_endpoint,
)

ES_NETWORK = "https://www.elastic.co/guide/en/elasticsearch/reference/current/modules-network.html"
ES_SECURITY = "https://www.elastic.co/guide/en/elasticsearch/reference/current/security-settings.html"
OS_SECURITY = "https://opensearch.org/docs/latest/security/configuration/index/"
MASTODON_SEARCH = "https://docs.joinmastodon.org/admin/elasticsearch/"
# The most specific setting first: http.bind_host beats http.host beats network.bind_host ...
LAYERS = {
    "HTTP (9200)": ("http.bind_host", "http.host", "network.bind_host", "network.host"),
    "transport (9300)": ("transport.bind_host", "transport.host", "network.bind_host", "network.host"),
}




# --- elasticsearch.yml --------------------------------------------------------------------------------


def layer_scope(conf: ElasticsearchConf, keys: tuple[str, ...]) -> tuple[str | None, EsSetting | None]:
    """Reach of one layer: "loopback" when unset (the default is _local_), None when templated."""
    setting = conf.get(*keys)
    if setting is None:
        return "loopback", None
    if setting.templated:
        return None, setting
    values = [v for v in setting.values if v.strip()] or ["_local_"]
    return widest_reach(values), setting


def security_off(conf: ElasticsearchConf) -> tuple[bool | None, EsSetting | None]:
    """(True: security is off, False: on, None: cannot tell) and the setting that says so."""
    if conf.opensearch:
        disabled = conf.get("plugins.security.disabled")
        if disabled is not None:
            state = disabled.as_bool()
            return (None if state is None else state), disabled
        configured = next((s for k, s in conf.settings.items() if k.startswith("plugins.security.")), None)
        return (False, configured) if configured else (None, None)
    enabled = conf.get("xpack.security.enabled")
    if enabled is None:
        return None, None
    state = enabled.as_bool()
    return (None if state is None else not state), enabled


@check(
    id="elasticsearch.network-host",
    title="Elasticsearch listens on loopback (or a private address) only",
    component="elasticsearch",
    severity="high",
    threats=["T-SEARCH-EXPOSED"],
    needs=[kinds.ELASTICSEARCH_YML],
    rationale="""Only Mastodon's web and Sidekiq processes talk to the search cluster. Binding to
        0.0.0.0, _global_ or a public address puts the REST API (9200) and the node transport
        (9300) on the internet, where open clusters are found and wiped or ransomed within hours.
        Elasticsearch listens on loopback unless told otherwise; a private address (or _site_)
        for a separate search host is a warning, to confirm the firewall admits only Mastodon's
        hosts. Elasticsearch 8's package sets http.host: 0.0.0.0 by itself; narrow it.""",
    remediation=Remediation("Bind to loopback.", "network.host: 127.0.0.1\nhttp.host: 127.0.0.1"),
    references=[ES_NETWORK, MASTODON_SEARCH],
    tags=["network"],
)
def network_host(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.ELASTICSEARCH_YML):
        for layer, keys in LAYERS.items():
            scope, setting = layer_scope(conf, keys)
            observed = f"{setting.key}: {setting.text}" if setting else "unset (_local_)"
            where = setting.location if setting else conf.at()
            kw = {"at": where, "subject": layer, "observed": observed, "expected": "127.0.0.1 or _local_"}
            if scope is None:
                yield skipped(f"{setting.key} is a template value; it cannot be judged", **kw)  # type: ignore[union-attr]
            elif scope in ("any", "public"):
                yield failed(f"{layer} listens on {'every interface' if scope == 'any' else 'a public address'}",
                             **kw)
            elif scope in ("private", "name"):
                yield warned(f"{layer} listens on a private or named interface: make sure only Mastodon's hosts"
                             " reach it", **kw)
            else:
                yield passed(f"{layer} listens on loopback only", **kw)


@check(
    id="elasticsearch.security",
    title="Elasticsearch requires authentication",
    component="elasticsearch",
    severity="critical",
    threats=["T-SEARCH-EXPOSED"],
    needs=[kinds.ELASTICSEARCH_YML],
    rationale="""With xpack.security.enabled: false (or OpenSearch's plugins.security.disabled: true)
        anyone who reaches the port reads, changes and deletes every index, no password asked.
        Mastodon supports authentication (ES_USER and ES_PASS, with a role limited to its indices).
        Security off on a loopback-only node is a warning: any process on the host still has
        full access. Left unset, the default depends on the version (off in Elasticsearch 7 with a
        basic licence, on since 8.0), so it is a warning too.""",
    remediation=Remediation(
        "Turn security on and give Mastodon its own user (ES_USER / ES_PASS in .env.production).",
        "xpack.security.enabled: true",
    ),
    references=[ES_SECURITY, OS_SECURITY, MASTODON_SEARCH],
    tags=["auth"],
)
def security(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.ELASTICSEARCH_YML):
        off, setting = security_off(conf)
        http_scope, host = layer_scope(conf, LAYERS["HTTP (9200)"])
        name = "plugins.security.disabled" if conf.opensearch else "xpack.security.enabled"
        expected = "false" if conf.opensearch else "true"
        observed = f"{setting.key}: {setting.text}" if setting else f"{name} unset"
        where = setting.location if setting else conf.at()
        exposed = http_scope != "loopback"
        if setting is not None and setting.templated:
            yield skipped(f"{setting.key} is a template value; it cannot be judged", at=where, observed=observed,
                          expected=f"{name}: {expected}")
        elif off is False:
            yield passed("authentication is required", at=where, observed=observed, expected=f"{name}: {expected}")
        elif off is None:
            yield warned(f"{name} is not set: whether security is on depends on the version", at=where,
                         observed=observed, expected=f"{name}: {expected}",
                         severity="high" if exposed else "medium")
        elif exposed:
            reach = f"{host.key}: {host.text}" if host else "a templated address"
            yield failed(f"security is off and the node is reachable beyond loopback ({reach})", at=where,
                         observed=observed, expected=f"{name}: {expected}")
        else:
            yield warned("security is off: any process on this host has full access to the index", at=where,
                         observed=observed, expected=f"{name}: {expected}", severity="medium")


@check(
    id="elasticsearch.http-tls",
    title="Elasticsearch encrypts HTTP that leaves the host",
    component="elasticsearch",
    severity="high",
    threats=["T-INTERNAL-CLEARTEXT", "T-SEARCH-EXPOSED"],
    needs=[kinds.ELASTICSEARCH_YML],
    rationale="""When the REST API is reachable from other hosts, Mastodon's queries, the statuses
        it indexes and the ES_PASS it sends cross the network; without TLS anything on the path
        reads them. A loopback-only node needs no TLS. Point ES_HOST at https:// (and ES_CA_FILE at
        the cluster's CA) once it is on.""",
    remediation=Remediation(
        "Turn on TLS for the HTTP layer (Elasticsearch 8 sets this up on install).",
        "xpack.security.http.ssl:\n  enabled: true\n  keystore.path: certs/http.p12",
    ),
    references=[ES_SECURITY, OS_SECURITY],
    tags=["tls", "network"],
)
def http_tls(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.ELASTICSEARCH_YML):
        scope, host = layer_scope(conf, LAYERS["HTTP (9200)"])
        key = "plugins.security.ssl.http.enabled" if conf.opensearch else "xpack.security.http.ssl.enabled"
        tls = conf.get(key)
        off, sec = security_off(conf)
        shown = tls or host
        where = shown.location if shown else conf.at()
        if scope is None or (tls is not None and tls.templated):
            yield skipped("the HTTP address or TLS setting is a template value", at=where, observed="templated",
                          expected=f"{key}: true")
        elif scope == "loopback":
            yield passed("HTTP listens on loopback only: no network leg to encrypt", at=where,
                         observed=f"{host.key}: {host.text}" if host else "unset (_local_)",
                         expected=f"{key}: true when reachable from other hosts")
        elif off and sec is not None:
            yield failed("HTTP is plain text: security, and with it TLS, is off", at=sec.location,
                         observed=f"{sec.key}: {sec.text}", expected=f"{key}: true")
        elif tls is not None and tls.as_bool():
            yield passed("HTTP is served over TLS", at=tls.location, observed=f"{key}: {tls.text}",
                         expected=f"{key}: true")
        else:
            yield failed("HTTP is reachable from other hosts in plain text", at=where,
                         observed=f"{key}: {tls.text}" if tls else f"{key} unset (false)", expected=f"{key}: true")


# --- how Mastodon connects (.env.production) ----------------------------------------------------------


SEARCH = Switch("ES_ENABLED", "full-text search is not enabled (ES_ENABLED)")


@check(
    id="elasticsearch.env-auth",
    title="Mastodon authenticates to Elasticsearch/OpenSearch",
    component="elasticsearch",
    severity="high",
    threats=["T-SEARCH-EXPOSED"],
    needs=[kinds.MASTODON_ENV],
    rationale="""The search cluster holds the indexed statuses and accounts. A cluster Mastodon
        reaches without ES_USER and ES_PASS has its security off, so anyone who reaches it reads or
        wipes the indexes. Across a network that is a failure; on this host a warning.""",
    remediation=Remediation("Turn on the cluster's security, create a user for Mastodon and set it here.",
                            "ES_USER=mastodon\nES_PASS=<generated>"),
    references=[CONFIG_DOCS + "#elasticsearch", "https://docs.joinmastodon.org/admin/elasticsearch/"],
    tags=["search", "credentials"],
)
def elasticsearch_auth(facts: FactSet) -> Iterator[Outcome]:
    used, skips = where_used(facts, SEARCH, "not enabled")
    yield from skips
    for env, enabled in used:
        endpoint = elasticsearch_endpoint(env)
        if endpoint.templated or endpoint.password_templated:
            yield templated(env, endpoint.password_templated or endpoint.origin)
        elif endpoint.password_set:
            yield passed("Mastodon logs in to the search cluster", at=var_at(env, env.get("ES_USER")),
                         subject="elasticsearch", observed="ES_USER and ES_PASS set", expected="ES_USER and ES_PASS")
        elif endpoint.local:
            yield warned("the search cluster on this host is used without credentials", at=var_at(env, enabled),
                         subject="elasticsearch", observed="ES_USER/ES_PASS unset", expected="ES_USER and ES_PASS",
                         severity="medium")
        else:
            yield failed(f"the search cluster at {endpoint.host} is used without credentials", at=var_at(env, enabled),
                         subject="elasticsearch", observed="ES_USER/ES_PASS unset", expected="ES_USER and ES_PASS")


@check(
    id="elasticsearch.env-tls",
    title="A search cluster on another host is reached over https",
    component="elasticsearch",
    severity="medium",
    threats=["T-INTERNAL-CLEARTEXT", "T-SEARCH-EXPOSED"],
    needs=[kinds.MASTODON_ENV],
    rationale="""Without https:// in ES_HOST, queries, indexed posts and the ES_PASS credentials
        cross the network in clear.""",
    remediation=Remediation("Enable TLS on the cluster and prefix ES_HOST with https:// (ES_CA_FILE for a "
                            "private CA).", "ES_HOST=https://search.internal"),
    references=[CONFIG_DOCS + "#es_host"],
    tags=["search", "tls"],
)
def elasticsearch_tls(facts: FactSet) -> Iterator[Outcome]:
    used, skips = where_used(facts, SEARCH, "not enabled")
    yield from skips
    for env, enabled in used:
        endpoint = elasticsearch_endpoint(env)
        where = var_at(env, endpoint.origin or enabled)
        shown = f"{endpoint.scheme or 'http'}://{endpoint.host}"
        if endpoint.templated:
            yield templated(env, endpoint.origin)
        elif endpoint.scheme == "https":
            yield passed("the search cluster is reached over https", at=where, subject="ES_HOST", observed=shown,
                         expected="https:// or local")
        elif endpoint.local:
            yield passed("the search cluster is on this host", at=where, subject="ES_HOST", observed=shown,
                         expected="https:// or local")
        else:
            yield failed(f"the search cluster at {endpoint.host} is reached in clear", at=where, subject="ES_HOST",
                         observed=shown, expected="https://")


# --- docker-compose -----------------------------------------------------------------------------------


@check(
    id="elasticsearch.compose-published-port",
    title="The search container publishes no port beyond loopback",
    component="elasticsearch",
    severity="high",
    threats=["T-SEARCH-EXPOSED"],
    needs=[kinds.COMPOSE],
    rationale="""Elasticsearch or OpenSearch holds the indexed statuses and accounts, and its HTTP API
        can read, change or delete them. Mastodon reaches it over the compose network; a port
        published on every interface puts the API on the host's public address.""",
    remediation=Remediation("Remove the ports of the search service, or bind them to 127.0.0.1.",
                            "    ports:\n      - '127.0.0.1:9200:9200'"),
    references=PUBLISHED_PORT_REFERENCES,
    tags=["docker", "network"],
)
def es_published(facts: FactSet) -> Iterator[Outcome]:
    yield from backend_publish(facts, "elasticsearch", "the search cluster")


def _es_security(service: ComposeService) -> tuple[str, str]:
    """('off'|'on'|'templated', why) for an Elasticsearch or OpenSearch service."""
    for name in ("xpack.security.enabled", "plugins.security.disabled", "DISABLE_SECURITY_PLUGIN"):
        setting = service.env(name)
        flag = re.search(rf"-E\s*{re.escape(name)}=(\S+)", service.command)
        value = setting.value if setting is not None else (flag.group(1) if flag else None)
        if value is None:
            continue
        if templating.is_templated(value, "compose"):
            return "templated", f"{name} set by a variable"
        off = value.strip().lower() == ("false" if name == "xpack.security.enabled" else "true")
        return ("off" if off else "on"), f"{name}={value}"
    repo = (service.image_repo or "").lower()
    tag = service.image_tag or ""
    major = re.match(r"v?(\d+)\.", tag)
    if "elasticsearch" in repo and major and int(major.group(1)) < 8:
        return "off", f"Elasticsearch {tag}: security is off unless xpack.security.enabled=true"
    return "on", "the image's default (security on)"


@check(
    id="elasticsearch.compose-security-off",
    title="A search cluster with security off is reachable by nothing but its own network",
    component="elasticsearch",
    severity="critical",
    threats=["T-SEARCH-EXPOSED"],
    needs=[kinds.COMPOSE],
    rationale="""With xpack.security.enabled=false (or OpenSearch's security plugin disabled, or an
        Elasticsearch 7 image left at its default), the HTTP API reads, changes and deletes every index
        without a password. Mastodon's compose file shows it that way on loopback; anything wider hands
        the search data to whoever connects.""",
    remediation=Remediation("Enable security and give Mastodon a user (ES_USER/ES_PASS), or keep the cluster "
                            "on an internal network with no published port.",
                            "      - xpack.security.enabled=true\n      - ELASTIC_PASSWORD_FILE=/run/secrets/es"),
    references=["https://www.elastic.co/guide/en/elasticsearch/reference/current/security-settings.html",
                "https://docs.joinmastodon.org/admin/elasticsearch/"],
    tags=["docker", "auth"],
)
def es_security(facts: FactSet) -> Iterator[Outcome]:
    for compose in facts.all(kinds.COMPOSE):
        for service in compose.by_role("elasticsearch"):
            state, why = _es_security(service)
            subject = service_subject(service)
            if state == "templated":
                yield skipped(f"security is set by a variable ({why}): cannot judge", at=service.location,
                              subject=subject, observed="templated", expected="security on")
            elif state == "on":
                yield passed(f"security is on ({why})", at=service.location, subject=subject, observed=why,
                             expected="security on, or internal network only")
            else:
                level, how = service_reach(compose, service)
                at = service.ports[0].location if service.ports else service.location
                expected = "security on, or internal network only"
                if level == "loopback":
                    yield warned(f"security is off and the API is published on loopback ({how}): every local "
                                 "user of the host can read and wipe the indexes", at=at, subject=subject,
                                 observed=f"{why}; {how}", expected=expected)
                else:
                    yield unauthenticated(compose, service, f"security is off ({why})", why, expected, at)


# --- from outside (probe: ports) ----------------------------------------------------------------------


@check(
    id="ports.elasticsearch-open",
    title="A reachable Elasticsearch or OpenSearch requires authentication",
    component="elasticsearch",
    severity="critical",
    threats=["T-SEARCH-EXPOSED"],
    needs=[kinds.PORT_SCAN],
    rationale="""Without security, Elasticsearch answers anyone: the indexed statuses and
        accounts can be read, changed or deleted. The probe asks for `/` over http and https; a
        200 with the cluster's JSON means no credentials were needed, 401 means security is on.""",
    remediation=Remediation("Enable security (authentication and TLS) and bind to loopback; set ES_USER and ES_PASS.",
                            "xpack.security.enabled: true\nxpack.security.http.ssl.enabled: true\n"
                            "network.host: 127.0.0.1"),
    references=["https://docs.joinmastodon.org/admin/elasticsearch/",
                "https://www.elastic.co/guide/en/elasticsearch/reference/current/security-minimal-setup.html"],
    tags=["network", "ports", "auth"],
)
def elasticsearch_open(facts: FactSet) -> Iterator[Outcome]:
    for row, outcome in per_service(facts, ("elasticsearch", "opensearch"), "Elasticsearch"):
        if outcome is not None:
            yield outcome
            continue
        scheme = row.details.get("scheme", "http")
        url = f"{scheme}://{where(row.address, row.port)}/"
        kw = dict(at=Location(url), subject=f"{row.service} {row.where}",
                  expected="401 (authentication required)")
        status = row.details.get("status")
        if row.details.get("open"):
            cluster = row.details.get("cluster_name") or "?"
            version = row.details.get("version") or "?"
            yield failed(f"{row.label} at {url} answers without credentials", observed=(
                f"HTTP {status} with the cluster's JSON (cluster_name {cluster!r}, version {version})"), **kw)
        else:
            yield passed(f"{row.label.split(' (')[0]} at {url} requires authentication", observed=f"HTTP {status}",
                         **kw)
