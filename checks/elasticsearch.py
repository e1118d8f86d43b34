"""Elasticsearch / OpenSearch: Mastodon's optional full-text search (T-SEARCH-EXPOSED).

The index holds statuses and accounts, including non-public posts searchable by their authors and
mentioned users. Decisions: a loopback-only node with security off is a warning (Mastodon's
docker-compose runs it like that on an internal network), an exposed one is a critical failure.
"""

from __future__ import annotations

from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome
from mastoaudit.parsers.elasticsearch import ElasticsearchConf, EsSetting
from mastoaudit.parsers.postgres import address_scope

ES_NETWORK = "https://www.elastic.co/guide/en/elasticsearch/reference/current/modules-network.html"
ES_SECURITY = "https://www.elastic.co/guide/en/elasticsearch/reference/current/security-settings.html"
OS_SECURITY = "https://opensearch.org/docs/latest/security/configuration/index/"
MASTODON_SEARCH = "https://docs.joinmastodon.org/admin/elasticsearch/"
_SCOPE_RANK = {"loopback": 0, "private": 1, "name": 2, "public": 3, "any": 4}
# The most specific setting first: http.bind_host beats http.host beats network.bind_host ...
LAYERS = {
    "HTTP (9200)": ("http.bind_host", "http.host", "network.bind_host", "network.host"),
    "transport (9300)": ("transport.bind_host", "transport.host", "network.bind_host", "network.host"),
}


def _confs(facts: FactSet) -> list[ElasticsearchConf]:
    return facts.all("elasticsearch_yml")


def layer_scope(conf: ElasticsearchConf, keys: tuple[str, ...]) -> tuple[str | None, EsSetting | None]:
    """Reach of one layer: "loopback" when unset (the default is _local_), None when templated."""
    setting = conf.get(*keys)
    if setting is None:
        return "loopback", None
    if setting.templated:
        return None, setting
    values = [v for v in setting.values if v.strip()] or ["_local_"]
    return max((address_scope(v) for v in values), key=_SCOPE_RANK.__getitem__), setting


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
    needs=["elasticsearch_yml"],
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
    for conf in _confs(facts):
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
    needs=["elasticsearch_yml"],
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
    for conf in _confs(facts):
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
    needs=["elasticsearch_yml"],
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
    for conf in _confs(facts):
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
