"""The SMTP relay as seen from outside (mastoaudit/probes/smtp.py): one SmtpEndpoint per host and
port (`smtp_endpoint`), with the TLS handshake and the relay test it went through. Plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TlsInfo:
    established: bool = False
    verified: bool | None = None
    verify_error: str | None = None
    protocol: str | None = None
    cipher: str | None = None
    error: str | None = None


@dataclass
class RelayTest:
    mail_from: str | None = None  # the reply, as text
    rcpt: str | None = None
    open: bool | None = None  # None: could not tell
    note: str = ""
    over_tls: bool = False


@dataclass
class SmtpEndpoint:
    host: str
    address: str
    port: int
    mode: str  # "starttls" or "implicit"
    source: str = ""  # "SMTP relay" or "MX"
    open: bool = False
    error: str | None = None
    banner: str | None = None
    ehlo: list[str] = field(default_factory=list)  # before TLS (plain ports)
    starttls_offered: bool | None = None
    tls: TlsInfo | None = None
    ehlo_tls: list[str] = field(default_factory=list)  # after STARTTLS, or on implicit TLS
    auth_clear: list[str] = field(default_factory=list)  # AUTH mechanisms offered without TLS
    vrfy: str | None = None
    vrfy_enabled: bool | None = None
    relay: RelayTest | None = None
    transcript: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def shown(self) -> str:
        return self.location if self.host == self.address else f"{self.location} ({self.address})"
