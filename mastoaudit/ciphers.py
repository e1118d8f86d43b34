"""OpenSSL cipher strings as OpenSSL expands them, judged against Mozilla's profile: the one rule for
`ssl_ciphers` and its kin.

`HIGH:!MEDIUM:!LOW:!aNULL:!NULL:!SHA` names no weak suite, and yet OpenSSL expands it to key exchange
without forward secrecy (static RSA), CBC suites and ARIA, CAMELLIA and CCM suites, none of which
Mozilla's intermediate profile offers. Reading the string is not enough: it is expanded here with
the OpenSSL this Python is linked to (`ssl.SSLContext.set_ciphers`, the call nginx makes:
SSL_CTX_set_cipher_list), each suite is classified from what OpenSSL says of it, and the offending
ones are named. The server's own OpenSSL may expand a string differently (another version, or a
build with the legacy ciphers): messages say which OpenSSL expanded it, and names the string asks
for that this OpenSSL does not have (RC4, say) are judged by name.

Mozilla's profile is the one sslyze bundles (the network checks judge the live endpoints against
the same file); it is read as data, without importing sslyze, so `lint` stays light.
"""

from __future__ import annotations

import importlib.util
import json
import re
import ssl
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

OPENSSL = ssl.OPENSSL_VERSION  # "OpenSSL 3.0.19 27 Jan 2026"

# Parts of a cipher string that name broken suites (matched on '-' / '+' separated parts): judged by
# name as well, since this OpenSSL may lack them (OpenSSL 3 keeps RC4 and DES in its legacy provider).
WEAK_CIPHER_PARTS = {"RC4", "DES", "3DES", "CBC3", "NULL", "ENULL", "ANULL", "EXP", "EXPORT", "MD5", "LOW",
                     "ADH", "AECDH", "IDEA", "SEED", "RC2"}
_BROKEN_SYMMETRIC = {"rc4": "RC4", "des-cbc": "DES", "des-ede3-cbc": "3DES (Sweet32)", "rc2-cbc": "RC2",
                     "idea-cbc": "IDEA (64-bit block)", "seed-cbc": "SEED"}
# Key exchanges nginx never completes: it configures no pre-shared key and no SRP verifier.
_INERT_KEA = re.compile(r"psk|srp")


@dataclass(frozen=True)
class Suite:
    """One TLS 1.2-and-below suite as OpenSSL describes it."""

    name: str  # OpenSSL's name: ECDHE-RSA-AES128-GCM-SHA256
    kea: str  # kx-ecdhe, kx-dhe, kx-rsa, kx-psk ...
    auth: str  # auth-rsa, auth-ecdsa, auth-dss, auth-null ...
    aead: bool
    symmetric: str  # aes-128-gcm, aes-256-cbc, chacha20-poly1305 ...
    digest: str

    @property
    def broken(self) -> str | None:
        """Why the suite is broken (not merely outside a profile), or None."""
        if self.auth == "auth-null":
            return "anonymous (no authentication)"
        if not self.symmetric or self.symmetric in ("null", "enc-null"):
            return "no encryption"
        if self.symmetric in _BROKEN_SYMMETRIC:
            return _BROKEN_SYMMETRIC[self.symmetric]
        if self.digest == "md5":
            return "MD5 MAC"
        return None

    @property
    def forward_secret(self) -> bool:
        return self.kea in ("kx-ecdhe", "kx-dhe", "kx-any")

    @property
    def inert(self) -> bool:
        """A pre-shared-key or SRP suite: offered only when the server configures a key, which nginx
        does not; or a DSS one, which needs a DSA certificate nobody issues."""
        return bool(_INERT_KEA.search(self.kea)) or self.auth == "auth-dss"


@dataclass(frozen=True)
class Profile:
    """Mozilla's server-side TLS profile as sslyze bundles it."""

    name: str  # intermediate, modern, old
    version: str  # the guideline: "5.7"
    suites: frozenset[str]  # TLS 1.2 suites, OpenSSL names
    server_preferred_order: bool
    source: str

    @property
    def label(self) -> str:
        return f"Mozilla's {self.name} profile {self.version}"

    @property
    def openssl_string(self) -> str:
        """The suites as an ssl_ciphers value, in the profile's order."""
        return ":".join(self._order)

    _order: tuple[str, ...] = field(default=(), compare=False)


def _profile_file() -> Path | None:
    spec = importlib.util.find_spec("sslyze")  # the package is located, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "mozilla_tls_profile"
    files = sorted(folder.glob("*.json"), key=lambda p: [int(x) for x in re.findall(r"\d+", p.stem)])
    return files[-1] if files else None


@lru_cache(maxsize=4)
def mozilla_profile(name: str = "intermediate") -> Profile:
    """Mozilla's profile `name`, from the guideline file sslyze ships (the newest it has)."""
    path = _profile_file()
    if path is None:
        raise FileNotFoundError("Mozilla's TLS profile (shipped with sslyze) is not installed")
    data = json.loads(path.read_text())
    config = data["configurations"][name]
    order = tuple(config["ciphers"]["openssl"])
    return Profile(name, str(data.get("version") or path.stem), frozenset(order),
                   bool(config.get("server_preferred_order")), f"sslyze's {path.name}", order)


@dataclass(frozen=True)
class Expansion:
    """A cipher string as this OpenSSL expands it."""

    spec: str
    suites: tuple[Suite, ...]  # TLS 1.2 and below (TLS 1.3 suites are not set by this string)
    error: str | None = None  # OpenSSL selects nothing from it (nginx would refuse to start)
    openssl: str = OPENSSL


@lru_cache(maxsize=256)
def expand(spec: str) -> Expansion:
    """Expand `spec` as SSL_CTX_set_cipher_list does."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(spec)
    except ssl.SSLError:
        return Expansion(spec, (), "OpenSSL selects no cipher suite from it")
    suites = tuple(Suite(c["name"], c.get("kea") or "", c.get("auth") or "", bool(c.get("aead")),
                         c.get("symmetric") or "", c.get("digest") or "")
                   for c in context.get_ciphers() if c.get("protocol") != "TLSv1.3")
    return Expansion(spec, suites)


@dataclass(frozen=True)
class CipherJudgment:
    """What a cipher string admits, by how bad it is, against a profile."""

    spec: str
    expansion: Expansion
    profile: Profile
    broken: tuple[tuple[str, str], ...] = ()  # (suite or name written, why)
    no_forward_secrecy: tuple[str, ...] = ()
    cbc: tuple[str, ...] = ()
    other: tuple[str, ...] = ()  # AEAD with forward secrecy, but not the profile's (CCM, ARIA, CAMELLIA)
    inert: tuple[str, ...] = ()  # PSK, SRP, DSS: never negotiated by nginx with a usual certificate
    seclevel_zero: bool = False

    @property
    def verdict(self) -> str:
        """fail (broken suites), weak (no forward secrecy), outside (CBC or other suites outside the
        profile), pass (only the profile's suites), or unusable (OpenSSL selects nothing)."""
        if self.broken or self.seclevel_zero:
            return "fail"
        if self.expansion.error:
            return "unusable"
        if self.no_forward_secrecy:
            return "weak"
        if self.cbc or self.other:
            return "outside"
        return "pass"

    @property
    def outside(self) -> tuple[str, ...]:
        return (*self.no_forward_secrecy, *self.cbc, *self.other)

    def explain(self, limit: int = 6) -> str:
        """What is wrong, each group with the suites it holds (`limit` named per group)."""
        parts = []
        if self.seclevel_zero:
            parts.append("@SECLEVEL=0 re-enables every weak suite and key size the OpenSSL build has")
        by_why: dict[str, list[str]] = {}
        for name, why in self.broken:
            by_why.setdefault(why, []).append(name)
        parts += [f"broken, {why}: {_names(names, limit)}" for why, names in by_why.items()]
        if self.no_forward_secrecy:
            parts.append("no forward secrecy (static RSA key exchange): " + _names(self.no_forward_secrecy, limit))
        if self.cbc:
            parts.append("CBC mode: " + _names(self.cbc, limit))
        if self.other:
            parts.append(f"not in the profile: {_names(self.other, limit)}")
        return "; ".join(parts)

    @property
    def expanded_by(self) -> str:
        return f"expanded with {self.expansion.openssl} (mastoaudit's; the server's OpenSSL may differ)"


def _names(items, limit: int) -> str:
    items = list(dict.fromkeys(items))
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _named_broken(spec: str) -> list[tuple[str, str]]:
    """Parts of the string that name broken suites and are not removed by a later `!`/`-` part."""
    tokens = [t for t in re.split(r"[:, ]+", spec) if t]
    removed = {p.upper() for t in tokens if t[0] in "!-" for p in re.split(r"[+-]", t[1:]) if p}
    found = []
    for t in tokens:
        if t[0] in "!-+@":
            continue
        parts = {p.upper() for p in re.split(r"[+-]", t) if p}
        hits = sorted((parts & WEAK_CIPHER_PARTS) - removed)
        if hits:
            found.append((t, f"named in the string ({', '.join(hits)}) though this OpenSSL lacks it"))
        elif t.upper() in ("ALL", "COMPLEMENTOFALL") and "ANULL" not in removed:
            found.append((t, "includes anonymous suites"))
    return found


def judge(spec: str, profile: Profile | None = None) -> CipherJudgment:
    """Expand `spec` and sort what it admits against `profile` (Mozilla intermediate by default)."""
    profile = profile or mozilla_profile()
    expansion = expand(spec)
    broken: list[tuple[str, str]] = []
    no_fs: list[str] = []
    cbc: list[str] = []
    other: list[str] = []
    inert: list[str] = []
    for suite in expansion.suites:
        why = suite.broken
        if why:
            broken.append((suite.name, why))
        elif suite.name in profile.suites:
            continue
        elif suite.inert:
            inert.append(suite.name)
        elif not suite.forward_secret:
            no_fs.append(suite.name)
        elif not suite.aead:
            cbc.append(suite.name)
        else:
            other.append(suite.name)
    expanded = {s.name for s in expansion.suites}
    broken += [(name, why) for name, why in _named_broken(spec) if name not in expanded]
    seclevel_zero = bool(re.search(r"@SECLEVEL=0", spec, re.I))
    return CipherJudgment(spec, expansion, profile, tuple(broken), tuple(no_fs), tuple(cbc), tuple(other),
                          tuple(inert), seclevel_zero)
