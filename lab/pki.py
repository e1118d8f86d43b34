"""The lab's test CA, server certificates, DKIM keys and generated secrets (Python `cryptography`).

Everything is generated once into lab/run/pki and reused by later `up`s; a server certificate is
re-issued when it is missing, about to expire or no longer signed by the current CA.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import config as C

PKI = C.RUN / "pki"
CA_CERT = PKI / "ca.pem"
CA_KEY = PKI / "ca.key"
SECRETS = C.RUN / "secrets.json"

# Validity per profile: the hardened certificate looks like a Let's Encrypt one (90 days); the weak
# one is valid for three years, longer than browsers accept (398 days).
CERT_DAYS = {"hardened": 90, "weak": 3 * 365}
DKIM_BITS = {"hardened": 2048, "weak": 1024}


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_ca() -> tuple[Path, Path]:
    if CA_CERT.exists() and CA_KEY.exists():
        cert = x509.load_pem_x509_certificate(CA_CERT.read_bytes())
        if cert.not_valid_after_utc - _now() > dt.timedelta(days=30):
            return CA_CERT, CA_KEY
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mastoaudit lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "mastoaudit lab test CA (not trusted anywhere)")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(CA_KEY, _key_pem(key), 0o600)
    _write(CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
    # Certificates signed by an older CA are now stale.
    for profile in C.PROFILES:
        (PKI / profile / "cert.pem").unlink(missing_ok=True)
    return CA_CERT, CA_KEY


def server_cert_paths(profile: str) -> dict[str, Path]:
    d = PKI / profile
    return {"cert": d / "cert.pem", "key": d / "privkey.pem", "fullchain": d / "fullchain.pem"}


def ensure_server_cert(profile: str) -> dict[str, Path]:
    """One certificate for every name and address of the profile's host (web, media, mail, ...)."""
    paths = server_cert_paths(profile)
    ca_cert = x509.load_pem_x509_certificate(CA_CERT.read_bytes())
    if paths["cert"].exists() and paths["key"].exists() and paths["fullchain"].exists():
        cert = x509.load_pem_x509_certificate(paths["cert"].read_bytes())
        fresh = cert.not_valid_after_utc - _now() > dt.timedelta(days=7)
        if fresh and cert.issuer == ca_cert.subject:
            return paths
    ca_key = serialization.load_pem_private_key(CA_KEY.read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names = [*C.HOSTNAMES.values(), "localhost"]
    addresses = [C.PUBLIC_ADDRESS[profile], C.INTERNAL_ADDRESS]
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, C.DOMAIN)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS[profile]))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, crl_sign=False,
                                     content_commitment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    _write(paths["key"], _key_pem(key), 0o600)
    _write(paths["fullchain"], pem + CA_CERT.read_bytes())
    _write(paths["cert"], pem)
    return paths


def ensure_dkim(profile: str) -> tuple[Path, str]:
    """(private key path, the DKIM public key as the base64 of its SubjectPublicKeyInfo)."""
    path = PKI / profile / "dkim.key"
    key = None
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if key.key_size != DKIM_BITS[profile]:
            key = None
    if key is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=DKIM_BITS[profile])
        _write(path, _key_pem(key), 0o600)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, base64.b64encode(der).decode()


def _vapid_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_numbers().private_value.to_bytes(32, "big")
    pub = key.public_key().public_bytes(serialization.Encoding.X962,
                                        serialization.PublicFormat.UncompressedPoint)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return b64(priv), b64(pub)


def ensure_secrets() -> dict[str, str]:
    """Generated once and kept in lab/run/secrets.json (mode 600). Never printed by the lab."""
    data: dict[str, str] = {}
    if SECRETS.exists():
        data = json.loads(SECRETS.read_text())
    wanted = {
        "postgres_password": lambda: secrets.token_urlsafe(24),
        "redis_password": lambda: secrets.token_urlsafe(32),
        "es_password": lambda: secrets.token_urlsafe(24),
        "s3_access_key": lambda: "LAB" + secrets.token_hex(8).upper(),
        "s3_secret_key": lambda: secrets.token_urlsafe(30),
        "secret_key_base": lambda: secrets.token_hex(64),
        "ar_primary_key": lambda: secrets.token_urlsafe(32),
        "ar_deterministic_key": lambda: secrets.token_urlsafe(32),
        "ar_key_derivation_salt": lambda: secrets.token_urlsafe(32),
    }
    changed = False
    for name, make in wanted.items():
        if name not in data:
            data[name] = make()
            changed = True
    if "vapid_private_key" not in data:
        data["vapid_private_key"], data["vapid_public_key"] = _vapid_pair()
        changed = True
    if changed or not SECRETS.exists():
        _write(SECRETS, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), 0o600)
    return data


def secret_files(values: dict[str, str]) -> dict[str, Path]:
    """One file per password a client needs (mode 600), so tests can read one without the rest."""
    out = {}
    for name in ("postgres_password", "redis_password", "es_password"):
        path = C.RUN / "secrets" / name
        if not path.exists() or path.read_text() != values[name]:
            _write(path, values[name].encode(), 0o600)
        out[name] = path
    return out
