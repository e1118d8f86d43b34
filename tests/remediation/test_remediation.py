"""The remediation deploy's parts without a live host: the text edits (checked by nginx -t and
sshd -t where the programs are installed), the host-side edits and the transaction (run with sh on
files in a temporary folder), the plan built from a report document, and `fix --plan -o`.

The whole deploy applied over SSH to the weak lab is tests/lab/test_remediation.py.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mastoaudit import ciphers
from mastoaudit.operations import conf_text, nginx_text, shell
from mastoaudit.operations.nginx import Directive, Header, apply_changes
from mastoaudit.operations.transaction import Control, script
from mastoaudit.remediation import build, deploy_text

SITE = """\
# a site file, read inside http
server {
  listen 80;
  listen 443 ssl;
  server_name social.example;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;   # from an old guide
    ssl_certificate     CERT;
    ssl_certificate_key KEY;
  add_header X-Frame-Options DENY;

  location / {
    try_files $uri @proxy;
  }

  location /system/ {
    autoindex on;
  }

  location @proxy {
    add_header Referrer-Policy same-origin;
    proxy_pass http://127.0.0.1:3000;
  }
}

server {
  listen 443 ssl;
  server_name files.social.example;
    ssl_certificate     CERT;
    ssl_certificate_key KEY;
  location / { proxy_pass http://127.0.0.1:9000/media/; }
}
"""

CHANGES = [
    Directive("nginx.tls-protocols", "ssl_protocols", "TLSv1.2 TLSv1.3", scope="server social.example:80/443",
              line=6, was="TLSv1 TLSv1.1 TLSv1.2"),
    Directive("nginx.autoindex", "autoindex", "off", scope=None, line=16, was="on"),
    Header("nginx.hsts", "Strict-Transport-Security", "max-age=63072000; includeSubDomains",
           scope="server social.example:80/443 location /system/", line=15),
    Header("nginx.media-nosniff", "X-Content-Type-Options", "nosniff",
           scope="server files.social.example:443 location /", line=28),
    Directive("nginx.tls-protocols", "ssl_protocols", "TLSv1.2 TLSv1.3", scope="server files.social.example:443",
              line=26, was=None),
]


def test_nginx_edits_keep_every_other_byte():
    new, done = apply_changes(SITE, CHANGES)
    assert len(done) == len(CHANGES)
    assert "    ssl_protocols TLSv1.2 TLSv1.3;  # mastoaudit: nginx.tls-protocols   # from an old guide\n" in new
    assert "location / { add_header X-Content-Type-Options nosniff always; proxy_pass" in new
    assert "autoindex off;  # mastoaudit: nginx.autoindex" in new
    assert "# a site file, read inside http\n" in new and "try_files $uri @proxy;" in new
    # What was there is still there, line for line, apart from the two lines changed in place.
    kept = [line for line in SITE.splitlines() if not any(w in line for w in ("ssl_protocols", "autoindex", "{ proxy"))]
    assert all(line in new.splitlines() for line in kept)


def test_a_block_that_gets_its_first_add_header_keeps_what_it_inherited():
    new, _ = apply_changes(SITE, CHANGES)
    root = nginx_text.parse(new)
    system = nginx_text.find_scope(root, "server social.example:80/443 location /system/")
    headers = {d.args[0]: d.args[1] for d in system.own("add_header")}
    # nginx stops inheriting the server's add_header lines once the location has one: copied in.
    assert headers == {"X-Frame-Options": "DENY", "Strict-Transport-Security": "max-age=63072000; includeSubDomains"}
    proxy = nginx_text.find_scope(root, "server social.example:80/443 location @proxy")
    assert [d.args[0] for d in proxy.own("add_header")] == ["Referrer-Policy"]  # untouched
    media = nginx_text.find_scope(root, "server files.social.example:443 location /")
    assert [d.args for d in media.own("add_header")] == [["X-Content-Type-Options", "nosniff", "always"]]


def test_nginx_edits_are_idempotent_even_where_lines_moved():
    once, _ = apply_changes(SITE, CHANGES)
    twice, done = apply_changes(once, CHANGES)
    assert twice == once and done == []


def test_nginx_edit_refuses_a_file_that_changed_since_the_audit():
    changed = SITE.replace("server_name social.example;", "server_name other.example;")
    with pytest.raises(nginx_text.NginxEditError, match="changed since the audit"):
        apply_changes(changed, [Header("nginx.hsts", "Strict-Transport-Security", "max-age=1",
                                       scope="server social.example:80/443 location /system/", line=99)])
    ssl_changed = SITE.replace("ssl_protocols TLSv1 TLSv1.1 TLSv1.2;", "ssl_protocols TLSv1.1 TLSv1.2;")
    with pytest.raises(nginx_text.NginxEditError):
        apply_changes(ssl_changed, [Directive("nginx.tls-protocols", "ssl_protocols", "TLSv1.2 TLSv1.3",
                                              scope=None, line=40, was="TLSv1 TLSv1.1 TLSv1.2")])


def test_nginx_scanner_reads_quotes_variables_and_comments():
    text = 'http {\n  map $a $b { default "x;y}"; }\n  add_header X "a b" always; # c { }\n  return 200 ${host}x;\n}\n'
    root = nginx_text.parse(text)
    http = root.children[0]
    assert [c.name for c in http.children] == ["map", "add_header", "return"]
    assert http.children[1].args == ["X", "a b", "always"] and http.children[2].args == ["200", "${host}x"]
    with pytest.raises(nginx_text.NginxEditError):
        nginx_text.parse("server { listen 80;\n")


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=social.example",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.mark.needs_nginx
@pytest.mark.skipif(not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"), reason="nginx not installed")
@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_nginx_accepts_the_edited_file(tmp_path):
    cert, key = _self_signed(tmp_path)
    site = tmp_path / "site.conf"
    new, _ = apply_changes(SITE.replace("CERT", str(cert)).replace("KEY", str(key)), CHANGES)
    site.write_text(new)
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n  include {site};\n}}\n")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    done = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "e.log")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    site.write_text(new.replace("TLSv1.2 TLSv1.3;", "TLSv9;", 1))  # the judge can fail
    done = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "e.log")],
                          capture_output=True, text=True)
    assert done.returncode != 0


SSHD = """\
Include /etc/ssh/sshd_config.d/*.conf
PermitRootLogin yes
PasswordAuthentication yes
X11Forwarding yes
Match User backup
  PasswordAuthentication yes
"""


def test_sshd_settings_come_first_and_conflicts_are_commented_out():
    new = conf_text.sshd_set(SSHD, {"PermitRootLogin": "no", "PasswordAuthentication": "no"},
                             ["host.sshd-root-login", "host.sshd-password-auth"])
    lines = new.splitlines()
    assert lines[0] == conf_text.SSHD_BEGIN and lines[2:4] == ["PermitRootLogin no", "PasswordAuthentication no"]
    assert lines.index("Include /etc/ssh/sshd_config.d/*.conf") > lines.index(conf_text.SSHD_END)
    assert "# PermitRootLogin yes  # mastoaudit: set at the top of this file" in lines
    assert "  PasswordAuthentication yes" in lines  # Match blocks are left alone
    assert conf_text.sshd_set(new, {"PermitRootLogin": "no"}, ["host.sshd-root-login"]) == new
    more = conf_text.sshd_set(new, {"PermitEmptyPasswords": "no"}, ["host.sshd-empty-passwords"])
    assert "PermitEmptyPasswords no" in more.split(conf_text.SSHD_END)[0] and "PermitRootLogin no" in more


@pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd") or os.geteuid() != 0, reason="sshd -t needs sshd and root")
def test_sshd_accepts_the_edited_file(tmp_path):
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    conf = tmp_path / "sshd_config"
    text = SSHD.replace("Include /etc/ssh/sshd_config.d/*.conf", f"HostKey {key}")
    conf.write_text(conf_text.sshd_set(text, {"PermitRootLogin": "no", "PermitEmptyPasswords": "no"}, ["x"]))
    done = subprocess.run(["/usr/sbin/sshd", "-T", "-f", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "permitrootlogin no" in done.stdout and "passwordauthentication yes" in done.stdout


HBA = """\
# TYPE  DATABASE  USER      ADDRESS         METHOD
local   all       postgres                  peer
local   all       all                       trust
host    all       all       0.0.0.0/0       trust
host    all       all       10.0.0.0 255.0.0.0   md5
"""


def test_pg_hba_rules_are_rewritten_in_their_columns():
    rules = {"local all all trust": "local all all peer",
             "host all all 0.0.0.0/0 trust": "host all all 127.0.0.1/32 scram-sha-256",
             "host all all 10.0.0.0 255.0.0.0 md5": conf_text.hba_rule_with("host all all 10.0.0.0 255.0.0.0 md5",
                                                                            method="scram-sha-256")}
    new = conf_text.hba_rewrite(HBA, rules)
    lines = new.splitlines()
    assert lines[2].startswith("local   all       all                       peer")
    assert lines[3].startswith("host    all       all       127.0.0.1/32    scram-sha-256")
    assert lines[4].split("#")[0].split() == ["host", "all", "all", "10.0.0.0", "255.0.0.0", "scram-sha-256"]
    assert lines[1] == HBA.splitlines()[1]
    assert conf_text.hba_rewrite(new, rules) == new


def test_postgresql_conf_keeps_the_last_line_postgresql_reads():
    text = "password_encryption = md5\n#log_connections = off\nport = 5432\npassword_encryption = 'md5' # again\n"
    new = conf_text.pg_set(text, {"password_encryption": "scram-sha-256", "log_connections": "on"}, ["c"])
    lines = new.splitlines()
    assert lines[0] == "password_encryption = md5"  # not the one in force
    assert lines[3].startswith("password_encryption = 'scram-sha-256'  # mastoaudit: c (was: 'md5' # again)")
    assert lines[-1] == "log_connections = 'on'  # mastoaudit: c"
    assert conf_text.pg_set(new, {"password_encryption": "scram-sha-256", "log_connections": "on"}, ["c"]) == new


def _sh(text: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", text], capture_output=True, text=True, cwd=cwd,
                          env={"PATH": os.environ["PATH"], **env})


def test_env_edits_run_on_the_host_and_secrets_stay_out_of_command_lines(tmp_path):
    env = tmp_path / "env"
    env.write_text("# comment\nBIND=0.0.0.0\nexport TRUSTED_PROXY_IP=0.0.0.0/0\nDB_PASS=\"p w\"\nBIND=1.2.3.4\nX=1\n")
    command = shell.env_edit(str(env), str(tmp_path / "out"), set_plain={"BIND": "127.0.0.1"},
                             set_from_var={"REDIS_PASSWORD": "pw"}, remove=["TRUSTED_PROXY_IP"])
    assert "s3cret" not in command
    read = shell.env_read(str(env), "DB_PASS", "w")
    done = _sh(f"pw=s3cret-value; {read}; echo \"[$w]\"; {command}", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[p w]"
    assert (tmp_path / "out").read_text() == \
        "# comment\nBIND=127.0.0.1\nDB_PASS=\"p w\"\nX=1\nREDIS_PASSWORD=s3cret-value\n"


def test_redis_edits_run_on_the_host(tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text("port 6379\n        bind 0.0.0.0\nprotected-mode no\nrename-command CONFIG \"\"\n")
    command = shell.redis_edit(str(conf), str(tmp_path / "out"), set_plain={"bind": "127.0.0.1 -::1",
                               "protected-mode": "yes"}, password_var="pw", rename=["CONFIG", "FLUSHALL"])
    done = _sh(f"pw=$({shell.GENERATE_SECRET}); " + command, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out").read_text().splitlines()
    assert lines[:4] == ["port 6379", "bind 127.0.0.1 -::1", "protected-mode yes", 'rename-command CONFIG ""']
    assert lines[4].startswith("requirepass ") and len(lines[4].split()[1]) == 64
    assert lines[5] == 'rename-command FLUSHALL ""'


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server not installed")
def test_redis_candidate_is_parsed_by_redis_itself(tmp_path):
    from mastoaudit.operations.redis import REDIS_PARSE

    good, bad = tmp_path / "good.conf", tmp_path / "bad.conf"
    good.write_text('bind 127.0.0.1 -::1\nprotected-mode yes\nrequirepass abc\nrename-command CONFIG ""\n')
    bad.write_text("bind 127.0.0.1\nprotected-mode maybe\n")
    assert _sh(REDIS_PARSE.replace("{config}", str(good)), tmp_path).returncode == 0
    refused = _sh(REDIS_PARSE.replace("{config}", str(bad)), tmp_path)
    assert refused.returncode != 0 and "protected-mode" in refused.stdout


def _transaction(tmp: Path, validate: str, existing: bool = True) -> tuple[subprocess.CompletedProcess, Path]:
    target = tmp / "etc" / "app.conf"
    target.parent.mkdir(exist_ok=True)
    if existing:
        target.write_text("old\n")
        os.chmod(target, 0o640)
    candidate = tmp / "candidate"
    candidate.write_text("new\n")
    text = script("app", [(str(target), str(candidate))], Control(validate, "echo reloaded >> " + str(tmp / "log")),
                  backups=str(tmp / "backups"))
    return _sh(text, tmp), target


def test_transaction_backs_up_replaces_keeps_mode_and_reloads(tmp_path):
    done, target = _transaction(tmp_path, "grep -q new " + str(tmp_path / "etc/app.conf"))
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "new\n" and oct(target.stat().st_mode & 0o777) == "0o640"
    assert (tmp_path / "backups" / str(target).lstrip("/")).read_text() == "old\n"
    assert (tmp_path / "log").read_text() == "reloaded\n"
    assert not list(target.parent.glob("*.mastoaudit-new"))


def test_transaction_refused_by_validation_restores_and_does_not_reload(tmp_path):
    done, target = _transaction(tmp_path, "echo 'line 3: unknown directive' >&2; false")
    assert done.returncode == 1
    assert "refused, the validation failed; the files are restored from the backup" in done.stderr
    assert "line 3: unknown directive" in done.stderr
    assert target.read_text() == "old\n" and not (tmp_path / "log").exists()


def test_transaction_removes_a_new_file_on_rollback(tmp_path):
    done, target = _transaction(tmp_path, "false", existing=False)
    assert done.returncode == 1 and not target.exists()


def test_an_unparsable_transaction_changes_nothing(tmp_path):
    done, target = _transaction(tmp_path, "if then fi")
    assert done.returncode != 0 and target.read_text() == "old\n"


# --- the plan, from a report document -------------------------------------------------------------

def _finding(check_id: str, status: str = "fail", file: str | None = None, line: int | None = None, subject=None,
             observed=None, target: str = "web1", **extra) -> dict:
    fp = f"{abs(hash((check_id, target, file, subject))) % 10**24:024d}"
    return {"check_id": check_id, "title": check_id, "component": check_id.split(".")[0], "severity": "high",
            "status": status, "message": f"{check_id} message", "target": target, "threats": [],
            "location": {"file": f"{target}:{file}", "line": line} if file else None, "subject": subject,
            "observed": observed, "expected": None, "fingerprint": fp, **extra}


SITE_PATH = "/etc/nginx/sites-enabled/mastodon"
ENV_PATH = "/home/mastodon/live/.env.production"


def _document() -> dict:
    findings = [
        _finding("nginx.tls-protocols", file=SITE_PATH, line=6, subject="server social.example:80/443",
                 observed="TLSv1 TLSv1.1 TLSv1.2"),
        _finding("nginx.server-tokens", file="/etc/nginx/nginx.conf", line=16, subject="server a:443, server b:443",
                 observed="on"),
        _finding("nginx.hsts", file=SITE_PATH, line=15, subject="server social.example:80/443 location /system/",
                 observed="no Strict-Transport-Security",
                 waiver={"reason": "the CDN adds HSTS", "owner": "ops", "expires": "2099-01-01"}),
        _finding("redis.bind", file="/etc/redis/redis.conf", line=10, observed="0.0.0.0"),
        _finding("redis.auth", file="/etc/redis/redis.conf", subject="user default", observed="requirepass unset"),
        _finding("redis.live-auth", file="redis CONFIG GET", subject="auth", observed="PING answered without AUTH"),
        _finding("postgresql.hba-trust", file="/etc/postgresql/15/main/pg_hba.conf", line=5,
                 subject="host all all 0.0.0.0/0 trust", observed="host all all 0.0.0.0/0 trust"),
        _finding("postgresql.hba-any-address", file="/etc/postgresql/15/main/pg_hba.conf", line=5,
                 subject="host all all 0.0.0.0/0 trust", observed="host all all 0.0.0.0/0 trust"),
        _finding("host.sshd-root-login", file="sshd -T", line=14, observed="yes"),
        _finding("mastodon-env.file-permissions", file=ENV_PATH, observed="644 mastodon:mastodon"),
        _finding("env.secret-key-base", file=ENV_PATH, line=4, subject="SECRET_KEY_BASE", observed="sample value"),
        _finding("host.systemd-sandboxing", file="/etc/systemd/system/mastodon-web.service", line=6,
                 subject="unit mastodon-web.service", observed="12/14 set; missing: ProtectClock, LockPersonality"),
        _finding("env.bind-loopback", status="pass", file=ENV_PATH, subject="BIND"),
        _finding("host.firewall", status="error", file="nft list ruleset"),
    ]
    checks = [{"id": f["check_id"], "remediation": {"text": f"Fix {f['check_id']} by hand.", "snippet": None}}
              for f in findings]
    return {"schema_version": "1.1", "run": {"command": "audit", "complete": False}, "checks": checks,
            "findings": findings}


def test_plan_fixes_what_it_can_and_lists_the_rest():
    plan = build(_document())
    (host,) = plan.hosts
    by_module = {s.module: s for s in host.steps}
    assert set(by_module) == {"nginx", "redis", "postgresql", "sshd", "mastodon_env", "systemd"}
    claimed = {c.check_id for c in host.claims}
    assert "redis.live-auth" in claimed  # follows from redis.auth
    assert "nginx.hsts" not in claimed and [f["check_id"] for f in host.waived] == ["nginx.hsts"]
    assert [f["check_id"] for f in host.manual] == ["env.secret-key-base"]
    assert by_module["postgresql"].kwargs["rules"] == {
        "host all all 0.0.0.0/0 trust": "host all all 127.0.0.1/32 scram-sha-256"}
    assert by_module["systemd"].kwargs["settings"] == [("LockPersonality", "true"), ("ProtectClock", "true")]
    assert by_module["redis"].kwargs["env"] == ENV_PATH and by_module["redis"].kwargs["password"] is True
    assert plan.incomplete == 1


def _nginx_changes(findings: list[dict]) -> dict[str, str]:
    checks = [{"id": f["check_id"], "remediation": {"text": "x", "snippet": None}} for f in findings]
    plan = build({"schema_version": "1.2", "run": {"command": "lint", "complete": True}, "checks": checks,
                  "findings": findings})
    (host,) = plan.hosts
    return {c[2]: c[3] for step in host.steps if step.module == "nginx" for c in step.kwargs["changes"]}


def test_cipher_preference_follows_what_the_check_expects():
    """nginx.tls-prefer-server-ciphers expects on while the list holds weaker suites, and Mozilla's off
    with Mozilla's list: the plan writes off when it also writes the list, on when the list stays."""
    prefer = _finding("nginx.tls-prefer-server-ciphers", file=SITE_PATH, line=8, subject="server s:443",
                      observed="off")
    listed = _finding("nginx.tls-ciphers", file=SITE_PATH, line=7, subject="server s:443",
                      observed="HIGH:!aNULL:!MD5")
    both = _nginx_changes([prefer, listed])
    assert both["ssl_prefer_server_ciphers"] == "off"
    assert both["ssl_ciphers"] == ciphers.mozilla_profile().openssl_string
    assert ciphers.judge(both["ssl_ciphers"]).verdict == "pass"  # what the plan writes passes the check
    waived = {**listed, "waiver": {"reason": "old clients", "owner": "ops", "expires": "2099-01-01"}}
    assert _nginx_changes([prefer, waived])["ssl_prefer_server_ciphers"] == "on"


def test_deploy_reads_well_and_compiles():
    text, plan = deploy_text(_document(), "report.json")
    tree = ast.parse(text)
    claims = ast.literal_eval(next(n.value for n in tree.body if isinstance(n, ast.Assign)
                                   and getattr(n.targets[0], "id", "") == "CLAIMS"))
    assert set(claims["web1"]) == {c.fingerprint for c in plan.hosts[0].claims}
    assert "# The audit was incomplete" in text
    assert "# Waived on web1 (accepted risks, left as they are):" in text and "the CDN adds HSTS" in text
    assert "#       fix: Fix env.secret-key-base by hand." in text
    assert "nginx.Directive('nginx.tls-protocols', 'ssl_protocols', 'TLSv1.2 TLSv1.3'" in text
    compile(text, "deploy.py", "exec")


def test_report_text_cannot_break_out_of_a_comment():
    doc = _document()
    doc["findings"][10]["message"] = "line one\nimport os; os.system('x')"
    doc["findings"][0]["target"] = doc["findings"][1]["target"] = 'web1"""\\'
    doc["findings"][2]["target"] = "web1_"  # the same function name, sanitised
    text, _ = deploy_text(doc, 'report.json\nimport os"""')
    assert "\nimport os" not in text
    compile(text, "deploy.py", "exec")
    hosts = next(n.value for n in ast.parse(text).body if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], "id", "") == "HOSTS")
    assert len({v.id for v in hosts.values}) == len(hosts.values) == 3


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mastoaudit", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def test_fix_plan_writes_a_deploy_or_the_text_plan(tmp_path):
    report = tmp_path / "report.json"
    doc = _document()
    doc["run"]["complete"] = True
    doc["findings"] = [f for f in doc["findings"] if f["status"] != "error"]
    report.write_text(json.dumps(doc))
    done = _cli("fix", "--plan", "--report", str(report), "-o", str(tmp_path / "deploy.py"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "7 operation(s) on 1 host(s) fix 10 finding(s); 1 left to do by hand, 1 waived" in done.stderr
    compile((tmp_path / "deploy.py").read_text(), "deploy.py", "exec")
    text = _cli("fix", "--plan", "--report", str(report), cwd=tmp_path)
    assert text.returncode == 0 and text.stdout.startswith("Fix plan")
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text("waivers:\n  - check: redis.*\n    reason: managed elsewhere\n    owner: ops\n"
                       "    expires: 2099-12-31\n")
    done = _cli("fix", "--plan", "--report", str(report), "--waivers", str(waivers), "-f", "pyinfra", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "redis.fix(" not in done.stdout and "managed elsewhere" in done.stdout


def test_a_deploy_needs_an_audit_of_hosts(tmp_path):
    tree = tmp_path / "tree" / "etc" / "redis"
    tree.mkdir(parents=True)
    (tree / "redis.conf").write_text("bind 0.0.0.0\nprotected-mode no\n")
    done = _cli("fix", "--plan", str(tmp_path / "tree"), "-o", str(tmp_path / "deploy.py"), cwd=tmp_path)
    assert done.returncode == 2 and "audit of hosts" in done.stderr


def test_a_hostile_report_plans_what_is_well_formed_and_nothing_else(tmp_path):
    doc = _document()
    doc["run"]["complete"] = True
    doc["findings"] = [f for f in doc["findings"] if f["status"] != "error"]
    good = len(build(doc).hosts[0].claims)
    doc["findings"] += [
        {**doc["findings"][0], "location": "web1:/etc/nginx/nginx.conf"},
        {**doc["findings"][0], "location": {"file": ["x"], "line": 3}},
        {**doc["findings"][0], "location": {"file": "web1:/x", "line": "3"}},
        {**doc["findings"][0], "subject": {"server": 1}},
        {**doc["findings"][0], "target": None},
        "not a finding",
    ]
    doc["checks"] = [{"id": "nginx.hsts", "remediation": "not a mapping"}, 7]
    assert len(build(doc).hosts[0].claims) == good
    doc["findings"].pop()  # the report reader refuses that one itself (exit 2)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(doc))
    done = _cli("fix", "--plan", "--report", str(report), "-o", str(tmp_path / "deploy.py"), cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    compile((tmp_path / "deploy.py").read_text(), "deploy.py", "exec")


@pytest.mark.skipif(not shutil.which("redis-cli"), reason="redis-cli not installed")
def test_the_redis_check_gives_up_when_nothing_answers(tmp_path):
    """The check after a restart waits for Redis, boundedly: a Redis that never comes back fails the
    check (and the transaction rolls back) instead of hanging the deploy."""
    from mastoaudit.operations.redis import REDIS_PING

    conf = tmp_path / "redis.conf"
    conf.write_text("requirepass abc\n")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check = REDIS_PING.replace("{config}", str(conf)).replace("{port}", str(port))
    done = subprocess.run(["sh", "-c", f"out=$( {{ {check}; }} 2>&1 ) || {{ echo \"failed: $out\"; exit 3; }}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "does not answer PING" in done.stdout


def test_the_scram_password_change_keeps_the_password_out_of_the_server_log():
    """The fix sets the app role's password again as SCRAM with ALTER ROLE ... PASSWORD: on a server
    that logs DDL (a common hardening), logs slow statements or failing ones, the statement (and the
    password in it) went to the PostgreSQL log in clear."""
    from lab import pgcluster
    from mastoaudit.operations.postgresql import scram_password_command

    if pgcluster.can_run() is not None:
        pytest.skip(pgcluster.can_run())
    cluster = pgcluster.start({"log_statement": "'all'", "log_min_duration_statement": "0",
                               "log_min_error_statement": "'debug5'"})
    try:
        cluster.psql("SET password_encryption = 'md5'; CREATE ROLE mastodon LOGIN PASSWORD 'old-one';")
        password = "N3w-p4ss'word-in-the-env"
        sql = (f"runuser -u postgres -- {cluster.bindir / 'psql'} -X -A -t -q -v ON_ERROR_STOP=1"
               f" -h {cluster.socket_dir} -p {cluster.port} -d postgres")
        snippet = scram_password_command("mastodon", sql)
        done = subprocess.run(["bash", "-c", "mastoaudit_fail() { echo \"$1\"; exit 1; }\nw=\"$1\"\n" + snippet,
                               "-", password], capture_output=True, text=True, cwd="/", timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        stored = cluster.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'mastodon'").strip()
        assert stored.startswith("SCRAM-SHA-256$")
        log = (Path(cluster.socket_dir) / "log").read_text()
        assert "set_config" in log  # the server does log this session's statements up to the change
        assert "N3w-p4ss" not in log
        # ... and the login works with the password as the app has it
        login = subprocess.run(["psql", cluster.dsn(user="mastodon"), "-X", "-A", "-t", "-c", "SELECT 1"],
                               env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True, timeout=30)
        assert login.stdout.strip() == "1", login.stderr
    finally:
        cluster.stop()
