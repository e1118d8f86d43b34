"""Fixed facts of the lab: profiles, addresses, ports, names and where runtime state lives.

One profile runs at a time. Each profile has its own "public address" for the simulated host
(the address a scanner from outside would see); services a hardened host keeps private listen on
127.0.0.1 only, and the weak profile binds them to 0.0.0.0 so they answer on the public address
too (the whole 127.0.0.0/8 reaches `lo`, see docs in lab/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
REPO = LAB_DIR.parent
# Runtime state (keys, certificates, data directories, logs, pid files). Git-ignored.
RUN = Path(os.environ.get("MASTOAUDIT_LAB_RUN", str(LAB_DIR / "run"))).resolve()

PROFILES = ("hardened", "weak")

DOMAIN = "mastodon.lab"
HOSTNAMES = {
    "web": DOMAIN,
    "media": f"media.{DOMAIN}",
    "mail": f"mail.{DOMAIN}",
    "mta_sts": f"mta-sts.{DOMAIN}",
    "ns": f"ns1.{DOMAIN}",
}

# The simulated host's public address per profile, and the loopback address private services use.
PUBLIC_ADDRESS = {"hardened": "127.0.0.10", "weak": "127.0.0.20"}
INTERNAL_ADDRESS = "127.0.0.1"
# Knot DNS, authoritative for DOMAIN, shared by both profiles (the zone content follows the profile).
DNS_ADDRESS = "127.0.0.53"
DNS_PORT = int(os.environ.get("MASTOAUDIT_LAB_DNS_PORT", "53"))

PORTS = {
    "ssh": 2222,
    "http": 80,
    "https": 443,
    "smtp": 25,
    "postgres": 5432,
    "redis": 6379,
    "elasticsearch": 9200,
    "web": 3000,
    "streaming": 4000,
    "s3": 9000,
    "dns": DNS_PORT,
}

# Mastodon versions the stand-in web app reports.
MASTODON_VERSION = {"hardened": "4.5.11", "weak": "4.1.2"}

DB_NAME = "mastodon_production"
DB_USER = "mastodon"
S3_BUCKET = "mastodon-media"
S3_REGION = "us-east-1"
DKIM_SELECTOR = "mastodon"

# Bounded waits (seconds).
READY_TIMEOUT = float(os.environ.get("MASTOAUDIT_LAB_READY_TIMEOUT", "20"))
STOP_TIMEOUT = 8.0


def run_path(*parts: str) -> Path:
    return RUN.joinpath(*parts)


def host_root(profile: str) -> Path:
    """The simulated host's filesystem for a profile: configs at their real paths under this prefix."""
    return RUN / "hosts" / profile


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile
