"""Bench: lint a generated tree of 500 config files; print wall time and peak RSS.

    python bench/bench_lint.py [--files 500] [--keep DIR]

Target (issue 2): under 2 s and under 150 MB on the project's 2-core machine. The lint runs in a
child process so that its peak RSS is measured alone (RUSAGE_CHILDREN). Timings are printed, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NGINX_SITE = """server {{
    listen 80;
    server_name site{n}.example;
    location / {{ return 301 https://$host$request_uri; }}
}}
server {{
    listen 443 ssl;
    http2 on;
    server_name site{n}.example;
    ssl_certificate /etc/ssl/site{n}.pem;
    ssl_certificate_key /etc/ssl/site{n}.key;
    ssl_protocols {protocols};
    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
    location / {{
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Proxy "";
        proxy_pass http://127.0.0.1:3000;
    }}
    location ~ ^/system/ {{
        add_header X-Content-Type-Options nosniff;
        add_header Content-Security-Policy "default-src 'none'; form-action 'none'";
        try_files $uri =404;
    }}
}}
"""

NGINX_MAIN = """user www-data;
worker_processes auto;
events { worker_connections 768; }
http {
    server_tokens off;
    ssl_protocols TLSv1.2 TLSv1.3;
    include /etc/nginx/sites-enabled/*;
}
"""


def env_file(n: int) -> str:
    weak = n % 2 == 0
    return "\n".join([
        f"LOCAL_DOMAIN=site{n}.example",
        f"SECRET_KEY_BASE={secrets.token_hex(8 if weak else 64)}",
        f"ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY={secrets.token_hex(16)}",
        f"ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY={secrets.token_hex(16)}",
        f"ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT={secrets.token_hex(16)}",
        f"VAPID_PRIVATE_KEY={secrets.token_urlsafe(32)}",
        f"VAPID_PUBLIC_KEY={secrets.token_urlsafe(64)}",
        "DB_HOST=" + ("10.0.0.5" if weak else "127.0.0.1"),
        f"DB_PASS={secrets.token_hex(12)}",
        "REDIS_HOST=127.0.0.1",
        f"REDIS_PASSWORD={secrets.token_hex(12)}",
        "SMTP_OPENSSL_VERIFY_MODE=" + ("none" if weak else "peer"),
        "AUTHORIZED_FETCH=true",
        "",
    ])


def generate(root: Path, total: int) -> int:
    """Write `total` files: 40% nginx sites, 20% env files, 20% PostgreSQL, 20% Redis."""
    written = 0
    (root / "etc/nginx/sites-enabled").mkdir(parents=True)
    (root / "etc/nginx/nginx.conf").write_text(NGINX_MAIN)
    written += 1
    sites, envs, pgs = int(total * 0.4) - 1, int(total * 0.2), int(total * 0.1)
    for n in range(sites):
        protocols = "TLSv1 TLSv1.1 TLSv1.2" if n % 3 == 0 else "TLSv1.2 TLSv1.3"
        (root / f"etc/nginx/sites-enabled/site{n}.conf").write_text(NGINX_SITE.format(n=n, protocols=protocols))
    written += sites
    for n in range(envs):
        d = root / f"home/instance{n}/live"
        d.mkdir(parents=True)
        (d / ".env.production").write_text(env_file(n))
    written += envs
    for n in range(pgs):
        d = root / f"etc/postgresql/{n}/main"
        d.mkdir(parents=True)
        (d / "postgresql.conf").write_text(f"listen_addresses = '{'*' if n % 2 else 'localhost'}'\nport = 5432\n"
                                           "password_encryption = scram-sha-256\nssl = on\n")
        (d / "pg_hba.conf").write_text("local all postgres peer\n"
                                       f"host all all {'0.0.0.0/0' if n % 2 else '127.0.0.1/32'} scram-sha-256\n")
    written += 2 * pgs
    for n in range(total - written):
        d = root / f"etc/redis/{n}"
        d.mkdir(parents=True)
        (d / "redis.conf").write_text(f"bind {'0.0.0.0' if n % 2 else '127.0.0.1 ::1'}\nprotected-mode yes\n"
                                      f"port 6379\nrequirepass {secrets.token_hex(16)}\n")
        written += 1
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "tree"
        count = generate(root, args.files)
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "mastoaudit", "lint", str(root), "--format", "json", "-o", str(report),
               "--fail-on", "never"]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode not in (0, 1, 3):
            print(done.stderr, file=sys.stderr)
            return done.returncode
        findings = report.read_text().count('"check_id"')
    print(f"files generated:   {count}")
    print(f"findings:          {findings}")
    print(f"wall time:         {wall:.2f} s   (target < 2 s)")
    print(f"peak RSS:          {peak_kib / 1024:.0f} MB (target < 150 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
