"""The TLS probe's sslyze adapter: one ServerScanRequest per endpoint, one Scanner for them all, and
each ServerScanResult read into a TlsEndpoint fact (certificates summarised with cryptography,
Mozilla's profile checked with sslyze's own checker). sslyze, nassl and cryptography are imported
inside the functions, so that importing this module costs nothing."""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..addresses import parse_ip
from ..facts.tls import (
    HTTPS,
    MOZILLA_TO_OURS,
    POSTGRES_STARTTLS,
    PROTOCOLS,
    SMTP_STARTTLS,
    CertDeployment,
    CertSummary,
    Cipher,
    ProfileSpec,
    TlsEndpoint,
)
from ..net.target import ScanTarget
from ..net.text import excerpt
from .tls_endpoints import Candidate

EHLO_NAME = "mastoaudit.invalid"


MAX_SANS = 100


VULNERABILITY_COMMANDS = ("heartbleed", "robot", "openssl_ccs_injection", "session_renegotiation",
                          "tls_compression", "tls_fallback_scsv", "tls_extended_master_secret")


def hostname_matches(host: str, sans: Iterable[str]) -> bool:
    """RFC 6125: exact or one left-most wildcard label; IP addresses match IP SANs only."""
    host = host.lower().rstrip(".")
    ip = parse_ip(host)
    if ip is not None:
        return any(parse_ip(s) == ip for s in sans)
    for san in sans:
        san = san.lower().rstrip(".")
        if san == host:
            return True
        if san.startswith("*.") and "." in host and host.split(".", 1)[1] == san[2:] and san.count(".") >= 2:
            return True
    return False


def summarize_certificate(cert: Any) -> CertSummary:
    """The fields the checks read, from a cryptography Certificate; unreadable fields are noted."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

    problems: list[str] = []

    def read(what: str, fn, default):
        try:
            return fn()
        except Exception as exc:  # a hostile certificate: note it, keep the rest
            problems.append(f"{what}: {excerpt(str(exc), 100)}")
            return default

    subject = read("subject", lambda: excerpt(cert.subject.rfc4514_string()), "")
    issuer = read("issuer", lambda: excerpt(cert.issuer.rfc4514_string()), "")

    def sans() -> tuple[str, ...]:
        try:
            ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        except x509.ExtensionNotFound:
            return ()
        names = [excerpt(n, 100) for n in ext.get_values_for_type(x509.DNSName)]
        names += [str(a) for a in ext.get_values_for_type(x509.IPAddress)]
        return tuple(names[:MAX_SANS])

    def ocsp() -> tuple[str, ...]:
        try:
            aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
        except x509.ExtensionNotFound:
            return ()
        return tuple(excerpt(d.access_location.value, 100) for d in aia
                     if d.access_method == AuthorityInformationAccessOID.OCSP)[:5]

    def crl() -> tuple[str, ...]:
        try:
            points = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
        except x509.ExtensionNotFound:
            return ()
        return tuple(excerpt(n.value, 100) for p in points for n in (p.full_name or ())
                     if isinstance(n, x509.UniformResourceIdentifier))[:5]

    def must_staple() -> bool:
        try:
            feature = cert.extensions.get_extension_for_oid(ExtensionOID.TLS_FEATURE).value
        except x509.ExtensionNotFound:
            return False
        return x509.TLSFeatureType.status_request in list(feature)

    def key() -> tuple[str, int | None, str | None]:
        pub = cert.public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            return "RSA", pub.key_size, None
        if isinstance(pub, ec.EllipticCurvePublicKey):
            return "EC", pub.curve.key_size, pub.curve.name
        if isinstance(pub, ed25519.Ed25519PublicKey):
            return "Ed25519", 256, None
        if isinstance(pub, ed448.Ed448PublicKey):
            return "Ed448", 456, None
        if isinstance(pub, dsa.DSAPublicKey):
            return "DSA", pub.key_size, None
        return type(pub).__name__, None, None

    key_type, key_size, curve = read("public key", key, ("unreadable", None, None))
    oid = read("signature algorithm", lambda: cert.signature_algorithm_oid, None)
    signature = (getattr(oid, "_name", "") or getattr(oid, "dotted_string", "")) if oid is not None else ""
    return CertSummary(
        subject=subject, issuer=issuer, sans=read("subjectAltName", sans, ()),
        not_before=read("notBefore", lambda: cert.not_valid_before_utc, None),
        not_after=read("notAfter", lambda: cert.not_valid_after_utc, None),
        key_type=key_type, key_size=key_size, curve=curve, signature=excerpt(signature, 80),
        ocsp_urls=read("authorityInfoAccess", ocsp, ()), crl_urls=read("cRLDistributionPoints", crl, ()),
        must_staple=read("TLS feature", must_staple, False),
        problems=tuple(problems),
    )


def _deployment(dep: Any, host: str, custom_store: bool) -> CertDeployment:
    chain = tuple(summarize_certificate(c) for c in dep.received_certificate_chain[:10])
    results = list(dep.path_validation_results)
    trusted_by = tuple(r.trust_store.name for r in results if r.was_validation_successful)
    # The error worth showing: the store the user gave (the lab, internal CAs), else Mozilla's.
    preferred = "Supplied CA file" if custom_store else "Mozilla"
    failing = [r for r in results if not r.was_validation_successful]
    shown = next((r for r in failing if r.trust_store.name == preferred), failing[0] if failing else None)
    ocsp = dep.ocsp_response
    status = None
    if ocsp is not None:
        status = getattr(getattr(ocsp, "response_status", None), "name", None) or "unknown"
    lenient: tuple[str, ...] = ()
    if not trusted_by:
        received = list(dep.received_certificate_chain[:10])
        lenient = tuple(r.trust_store.name for r in failing if _chains_to(received, _roots(r.trust_store)))
    return CertDeployment(
        leaf=chain[0], chain=chain, trusted=bool(trusted_by), trusted_by=trusted_by, lenient_trusted_by=lenient,
        trust_error=None if trusted_by or shown is None else excerpt(str(shown.validation_error), 160),
        hostname_match=hostname_matches(host, chain[0].sans),
        ocsp_stapled=ocsp is not None, ocsp_status=status, ocsp_trusted=dep.ocsp_response_is_trusted,
    )


_ROOTS: dict[str, list[Any]] = {}


def _roots(store: Any) -> list[Any]:
    """The root certificates of an sslyze trust store (its PEM file), read once."""
    from cryptography.x509 import load_pem_x509_certificates

    key = str(store.path)
    if key not in _ROOTS:
        try:
            with warnings.catch_warnings():  # a store's old roots (a zero serial number) are still roots
                warnings.simplefilter("ignore")
                _ROOTS[key] = load_pem_x509_certificates(Path(store.path).read_bytes())
        except (OSError, ValueError):
            _ROOTS[key] = []
    return _ROOTS[key]


def _chains_to(chain: list[Any], roots: list[Any]) -> bool:
    """Whether the received chain's signatures lead from the leaf to one of `roots`, each certificate
    within its validity: OpenSSL's default verification, without strict X.509's checks of the CA
    certificates' extensions (keyUsage, basicConstraints criticality, ...)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    pool = list(chain[1:]) + list(roots)
    current = chain[0]
    for _ in range(len(pool) + 1):
        if not current.not_valid_before_utc <= now <= current.not_valid_after_utc:
            return False
        issuers = [c for c in pool if c.subject == current.issuer and c is not current]
        issuer = next((c for c in issuers if _signed_by(current, c)), None)
        if issuer is None:
            return False
        if any(issuer == root for root in roots):
            return issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc
        current = issuer
    return False


def _signed_by(cert: Any, issuer: Any) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # a wrong signature, an unsupported key type: not this issuer
        return False
    return True


def load_profile(name: str) -> ProfileSpec:
    from sslyze.mozilla_tls_profile.tls_config_checker import MozillaTlsConfiguration, TlsConfigurationEnum

    config = MozillaTlsConfiguration.get(TlsConfigurationEnum(name))
    return ProfileSpec(
        name=name, version=MozillaTlsConfiguration._JSON_PROFILE_PATH.stem,
        protocols=tuple(MOZILLA_TO_OURS.get(v, v) for v in sorted(config.tls_versions)),
        ciphers=frozenset(config.ciphers.iana), ciphersuites=frozenset(config.ciphersuites),
        curves=frozenset(config.tls_curves), max_lifespan_days=config.maximum_certificate_lifespan,
    )


def held_to_mozilla_profile(c: Candidate) -> bool:
    """Only HTTPS endpoints are judged against Mozilla's profile (checks/tls.py tls.mozilla-profile),
    and nothing else reads the curves an endpoint offers: the mail relays and PostgreSQL are scanned
    without the curve enumeration (some forty handshakes, each behind a STARTTLS exchange) and the
    profile checker is not run on them."""
    return c.kind == HTTPS


# An endpoint's scan in two parts, each in a process of its own (the TLS worker's), where the result
# needs no judging across them: the mail relays and PostgreSQL (no Mozilla profile). An sslyze scan
# is Python driving handshakes under one interpreter lock, and a STARTTLS relay's TLS 1.2 cipher
# suites are most of its scan (every accepted suite a full handshake behind an SMTP exchange):
# apart, the two halves run on two cores. HTTPS endpoints are scanned whole, because Mozilla's
# profile checker reads one result with every command in it.
SPLIT_PART = "tls_1_2_cipher_suites"
PARTS = ("rest", "split")  # everything else, the split-off command


def splits(c: Candidate) -> bool:
    return not held_to_mozilla_profile(c)


def _in_part(command: str, part: str | None) -> bool:
    return part is None or (command == SPLIT_PART) == (part == "split")


def scan_request(target: ScanTarget, c: Candidate, part: str | None = None) -> Any:
    from sslyze import (
        CertificateInfoExtraArgument,
        ProtocolWithOpportunisticTlsEnum,
        ScanCommand,
        ScanCommandsExtraArguments,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
    )

    opportunistic = {SMTP_STARTTLS: ProtocolWithOpportunisticTlsEnum.SMTP,
                     POSTGRES_STARTTLS: ProtocolWithOpportunisticTlsEnum.POSTGRES}.get(c.kind)
    commands = {getattr(ScanCommand, f.upper()) for f, _, _ in PROTOCOLS} | {
        ScanCommand.CERTIFICATE_INFO, ScanCommand.HEARTBLEED, ScanCommand.ROBOT,
        ScanCommand.OPENSSL_CCS_INJECTION, ScanCommand.SESSION_RENEGOTIATION, ScanCommand.TLS_COMPRESSION,
        ScanCommand.TLS_FALLBACK_SCSV, ScanCommand.TLS_EXTENDED_MASTER_SECRET}
    if held_to_mozilla_profile(c):
        commands.add(ScanCommand.ELLIPTIC_CURVES)  # read by the profile check only
    commands = {command for command in commands if _in_part(command.value, part)}
    extra = ScanCommandsExtraArguments()
    if target.ca_bundle and ScanCommand.CERTIFICATE_INFO in commands:
        extra = ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(target.ca_bundle)))
    return ServerScanRequest(
        server_location=ServerNetworkLocation(c.host, c.port, ip_address=c.address),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication=c.sni, tls_opportunistic_encryption=opportunistic,
            smtp_ehlo_hostname=EHLO_NAME if c.kind == SMTP_STARTTLS else None,
            network_timeout=max(1, round(target.timeout)), network_max_retries=1),
        scan_commands=commands, scan_commands_extra_arguments=extra,
    )


def error_text(trace: Any) -> str:
    if trace is None:
        return "unknown error"
    try:
        text = "".join(trace.format_exception_only()).strip()
    except Exception:  # a trace that cannot even be formatted
        text = repr(trace)
    return excerpt(text.removeprefix("sslyze.errors."), 240)


def _completed(attempt: Any) -> Any | None:
    return attempt.result if attempt is not None and attempt.status.name == "COMPLETED" else None


def endpoint_from_result(c: Candidate, result: Any, target: ScanTarget, profile: ProfileSpec,
                         part: str | None = None) -> TlsEndpoint:
    """An sslyze ServerScanResult (completed) as a TlsEndpoint fact (of one part of the scan: what
    the other part reads is left empty, for `merge_parts`)."""
    from nassl.ephemeral_key_info import DhEphemeralKeyInfo, EcDhEphemeralKeyInfo

    scan = result.scan_result
    errors: dict[str, str] = {}

    def get(name: str) -> Any | None:
        if not _in_part(name, part):
            return None
        attempt = getattr(scan, name, None)
        done = _completed(attempt)
        if done is None:
            reason = getattr(getattr(attempt, "error_reason", None), "name", "not run")
            errors[name] = f"{reason}: {error_text(getattr(attempt, 'error_trace', None))}"
        return done

    protocols, scanned, ciphers = [], [], []
    min_dh: int | None = None
    min_ecdh: int | None = None
    for field_name, ours, _ in PROTOCOLS:
        res = get(field_name)
        if res is None:
            continue
        scanned.append(ours)
        if res.is_tls_version_supported:
            protocols.append(ours)
        for accepted in res.accepted_cipher_suites:
            suite = accepted.cipher_suite
            ciphers.append(Cipher(suite.name, ours, suite.key_size, suite.is_anonymous))
            key = accepted.ephemeral_key
            if isinstance(key, EcDhEphemeralKeyInfo):
                min_ecdh = min(min_ecdh or 10**6, key.size + 3 if key.size in (253, 445) else key.size)
            elif isinstance(key, DhEphemeralKeyInfo):
                min_dh = min(min_dh or 10**6, key.size)
    certificates: list[CertDeployment] = []
    cert_info = get("certificate_info")
    if cert_info is not None:
        for dep in cert_info.certificate_deployments[:4]:
            certificates.append(_deployment(dep, c.sni, bool(target.ca_bundle)))
    curves_result = get("elliptic_curves") if held_to_mozilla_profile(c) else None
    curves = tuple(cv.name for cv in (curves_result.supported_curves or ())) if curves_result else ()
    vulns: dict[str, Any] = {}
    if part == "split":
        return TlsEndpoint(
            host=c.host, port=c.port, address=c.address, kind=c.kind, sni=c.sni, where=c.where,
            protocols=tuple(protocols), protocols_scanned=tuple(scanned), ciphers=tuple(ciphers),
            min_dh_bits=min_dh, min_ecdh_bits=min_ecdh, profile=profile, errors=errors)
    r = get("heartbleed")
    vulns["heartbleed"] = None if r is None else r.is_vulnerable_to_heartbleed
    r = get("openssl_ccs_injection")
    vulns["ccs_injection"] = None if r is None else r.is_vulnerable_to_ccs_injection
    r = get("robot")
    vulns["robot"] = None if r is None else r.robot_result.name
    r = get("session_renegotiation")
    vulns["insecure_renegotiation"] = None if r is None else not r.supports_secure_renegotiation
    vulns["client_renegotiation_dos"] = None if r is None else r.is_vulnerable_to_client_renegotiation_dos
    r = get("tls_compression")
    vulns["compression"] = None if r is None else r.supports_compression
    r = get("tls_fallback_scsv")
    vulns["no_fallback_scsv"] = None if r is None else not r.supports_fallback_scsv
    r = get("tls_extended_master_secret")
    vulns["no_extended_master_secret"] = None if r is None else not r.supports_ems_extension
    if held_to_mozilla_profile(c):
        deviations, mozilla_error = mozilla_check(result, profile.name)
    else:
        deviations, mozilla_error = {}, "not checked: only HTTPS endpoints are held to Mozilla's profile"
    return TlsEndpoint(
        host=c.host, port=c.port, address=c.address, kind=c.kind, sni=c.sni, where=c.where,
        protocols=tuple(protocols), protocols_scanned=tuple(scanned), ciphers=tuple(ciphers), curves=curves,
        min_dh_bits=min_dh, min_ecdh_bits=min_ecdh, certificates=tuple(certificates), vulnerabilities=vulns,
        profile=profile, mozilla_deviations=deviations, mozilla_error=mozilla_error, errors=errors,
    )


def merge_parts(rest: TlsEndpoint, split: TlsEndpoint) -> TlsEndpoint:
    """One endpoint's fact from its two parts, as one scan would have given it."""
    order = [ours for _, ours, _ in PROTOCOLS]

    def ordered(items: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(set(items), key=order.index))

    def least(a: int | None, b: int | None) -> int | None:
        return b if a is None else a if b is None else min(a, b)

    ciphers = sorted([*rest.ciphers, *split.ciphers], key=lambda cipher: order.index(cipher.protocol))
    return replace(rest, protocols=ordered([*rest.protocols, *split.protocols]),
                   protocols_scanned=ordered([*rest.protocols_scanned, *split.protocols_scanned]),
                   ciphers=tuple(ciphers), min_dh_bits=least(rest.min_dh_bits, split.min_dh_bits),
                   min_ecdh_bits=least(rest.min_ecdh_bits, split.min_ecdh_bits),
                   errors={**rest.errors, **split.errors})


def mozilla_check(result: Any, profile: str) -> tuple[dict[str, str], str | None]:
    """sslyze's MozillaTlsConfigurationChecker: (deviations by key, or why it could not judge)."""
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        ServerScanResultIncomplete,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    try:
        check_server_against_tls_configuration(result, MozillaTlsConfiguration.get(TlsConfigurationEnum(profile)))
    except ServerNotCompliantWithTlsConfiguration as exc:
        return {str(k): excerpt(str(v), 2000) for k, v in exc.issues.items()}, None
    except ServerScanResultIncomplete as exc:
        return {}, excerpt(str(exc))
    except Exception as exc:  # sslyze asserts on partial results
        return {}, excerpt(f"{type(exc).__name__}: {exc}")
    return {}, None


RESULT_POLL_S = 0.02


def _quicker_result_poll() -> None:
    """sslyze's scanner thread looks for finished scan jobs every 0.2 s (a `sleep(0.2)` in its
    loop), so a finished endpoint waits 0.1 s on average, and up to 0.2 s, before its result is
    assembled: on an audit's critical path, where each endpoint is a Scanner of its own. Cap that
    pause at RESULT_POLL_S, in sslyze's module only (its own name for `sleep`); an sslyze without
    that loop is left as it is. The loop does a few dictionary reads per pass: no measurable CPU."""
    try:
        from sslyze.scanner import _mass_scanner
    except ImportError:
        return
    current = getattr(_mass_scanner, "sleep", None)
    if current is time.sleep:
        _mass_scanner.sleep = lambda seconds: time.sleep(min(seconds, RESULT_POLL_S))  # type: ignore[attr-defined]


def run_scanner(requests: list[Any], deadline: float) -> tuple[dict[Any, Any], str | None]:
    """All requests in one Scanner; results by uuid, and what went wrong (deadline, scanner error)."""
    from sslyze import Scanner

    _quicker_result_poll()

    with warnings.catch_warnings():
        # sslyze's bundled trust stores hold a root with a negative serial number: noise, not a finding.
        warnings.filterwarnings("ignore", message=".*serial number.*")
        # Five connections per server (sslyze's own default), and worker threads for as many servers
        # as there are requests (up to ten): a process of the TLS worker scans one endpoint, and
        # fifty idle threads would only cost it time to start and stop.
        scanner = Scanner(per_server_concurrent_connections_limit=5,
                          concurrent_server_scans_limit=max(1, min(10, len(requests))))
        return _run_scanner(scanner, requests, deadline)


def _run_scanner(scanner: Any, requests: list[Any], deadline: float) -> tuple[dict[Any, Any], str | None]:
    scanner.queue_scans(requests)
    out: queue.Queue = queue.Queue()

    def consume() -> None:
        try:
            for res in scanner.get_results():
                out.put(res)
        except Exception as exc:  # reported, never raised into the runner
            out.put(exc)
        out.put(None)

    threading.Thread(target=consume, name="tls-sslyze", daemon=True).start()
    results: dict[Any, Any] = {}
    while True:
        try:
            item = out.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return results, "the TLS scan did not finish in time"
        if item is None:
            return results, None
        if isinstance(item, Exception):
            return results, f"sslyze failed: {type(item).__name__}: {excerpt(str(item))}"
        results[item.uuid] = item


# --- one endpoint, down to plain data (what the TLS worker's processes return) ---------------------


def outcome(c: Candidate, result: Any, trouble: str | None, target: ScanTarget, profile: ProfileSpec,
            budget: float, part: str | None = None):
    """What one endpoint's sslyze result says: ProbeFact(tls_endpoint) or the ProbeProblem."""
    from ..net.runner import ProbeFact, ProbeProblem

    if result is None:
        return ProbeProblem("tls_endpoint", f"{c.where}: {trouble or 'no result'} "
                            f"({budget:.0f} s for the whole TLS scan)", c.where)
    if result.scan_result is None:
        trace = result.connectivity_error_trace
        kind = getattr(getattr(trace, "exc_type", None), "__name__", "")
        if kind == "ServerRejectedOpportunisticTlsNegotiation":
            return ProbeFact("tls_endpoint", TlsEndpoint(
                c.host, c.port, c.address, c.kind, c.sni, c.where, tls_offered=False, refusal=error_text(trace)))
        return ProbeProblem("tls_endpoint", f"{c.where}: TLS could not be negotiated: {error_text(trace)}", c.where)
    try:
        return ProbeFact("tls_endpoint", endpoint_from_result(c, result, target, profile, part))
    except Exception as exc:  # one odd server must not cost the others
        return ProbeProblem("tls_endpoint", f"{c.where}: the scan result could not be read: "
                            f"{type(exc).__name__}: {excerpt(str(exc))}", c.where)


def scan_endpoint(target: ScanTarget, c: Candidate, deadline: float, budget: float, part: str | None = None):
    """One endpoint's scan (whole, or one of its PARTS), as plain data (a process of the TLS worker
    runs this)."""
    from ..net.runner import ProbeProblem

    try:
        request = scan_request(target, c, part)
    except (ValueError, UnicodeError) as exc:
        return ProbeProblem("tls_endpoint", f"{c.where}: cannot be scanned: {excerpt(str(exc))}", c.where)
    results, trouble = run_scanner([request], deadline)
    return outcome(c, results.get(request.uuid), trouble, target, load_profile(target.tls_profile), budget, part)


def joined(c: Candidate, rest, split):
    """An endpoint's outcome from the outcomes of its two parts: the facts merged; else what the
    part with everything but the split-off command says (a refusal, a problem), else the other's."""
    from ..net.runner import ProbeFact

    if not isinstance(rest, ProbeFact) or not rest.fact.tls_offered:
        return rest
    if isinstance(split, ProbeFact) and split.fact.tls_offered:
        return ProbeFact(rest.kind, merge_parts(rest.fact, split.fact))
    # As when that one command fails in a whole scan: the rest, with why it is missing.
    why = split.message if not isinstance(split, ProbeFact) else f"TLS refused: {split.fact.refusal}"
    return ProbeFact(rest.kind, merge_parts(rest.fact, replace(rest.fact, protocols=(), protocols_scanned=(),
                                                                  ciphers=(), errors={SPLIT_PART: why})))
