"""up / down / status / env for the lab."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pprint
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import config as C
from . import pki, render
from .procs import LabError, run
from .render import Context, FileSpec
from .services import SERVICES, SYSTEM_USERS, Service, chown, make_all

STATE = C.RUN / "state.json"
LOCK = C.RUN / "lab.lock"
SESSION_LOCK = Path("/tmp/mastoaudit-lab-session.lock")
SSH = render.SSH_DIR


# --- small helpers ------------------------------------------------------------------------------------

def history(what: str) -> None:
    """One line per up/down in lab/run/log/lab.log, with who asked (several users may share a lab)."""
    from .procs import proc_cmdline

    (C.RUN / "log").mkdir(parents=True, exist_ok=True)
    parent = proc_cmdline(os.getppid())[:160]
    with open(C.RUN / "log" / "lab.log", "a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} pid {os.getpid()} {what} (parent {os.getppid()}: {parent})\n")


@contextlib.contextmanager
def locked(what: str = ""):
    C.RUN.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if what:
                history(what)
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def exclusive_use(timeout: float = 1800.0):
    """Hold the lab for a whole test session: a second session using the lab (another pytest run,
    the live-audit tests) waits here instead of switching profiles under the first one's feet.
    (`up`/`down` themselves are serialised by a separate, short lock.) The lock is machine-wide,
    not per checkout: two checkouts on one machine share the lab's loopback addresses and ports."""
    with open(SESSION_LOCK, "w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"the lab has been in use by another session for {timeout:.0f} s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_state() -> dict:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {}


def save_state(state: dict) -> None:
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, STATE)


def write_file(spec: FileSpec) -> bool:
    """Write only when the content differs (keeps a running daemon's files untouched)."""
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    data = spec.content.encode()
    changed = not spec.path.exists() or spec.path.read_bytes() != data
    if changed:
        tmp = spec.path.with_name(spec.path.name + ".tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, spec.mode), "wb") as fh:
            fh.write(data)
        os.replace(tmp, spec.path)
    os.chmod(spec.path, spec.mode)
    if spec.owner:
        chown(spec.path, spec.owner)
    return changed


def preflight(ctx_free: bool = False) -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it binds ports below 1024, adds loopback addresses and starts "
                       "daemons as their own users)")
    missing = []
    for cls in SERVICES:
        for exe in cls.needs:
            if not (os.path.isabs(exe) and os.access(exe, os.X_OK)) and not shutil.which(exe):
                missing.append(f"{cls.name}: {exe}")
    for exe in ("ip", "useradd", "knotc", "nft", "sudo"):
        if not shutil.which(exe):
            missing.append(exe)
    if missing:
        raise LabError("missing programs (see lab/README.md for the Debian packages): " + ", ".join(missing))


# --- host-level setup: loopback addresses, the mastodon user, SSH keys --------------------------------

def _lo_addresses() -> set[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}


def _local_route(address: str) -> str:
    return subprocess.run(["ip", "route", "show", "table", "local", "local", address],
                          capture_output=True, text=True).stdout.strip()


def net_up(profile: str, state: dict) -> None:
    """Put the profile's public address on `lo` (Postfix binds only configured addresses) and make
    connections to it leave from it, so the lab's services see a client of the public address as an
    outside client (not 127.0.0.1, which the hardened configs trust)."""
    net = state.setdefault("net", {})
    address = C.PUBLIC_ADDRESS[profile]
    for other in C.PROFILES:
        if other != profile:
            net_down_one(C.PUBLIC_ADDRESS[other], net)
    rec = net.get(address)
    if rec is None:
        rec = {"added": False, "route": None}
        if address not in _lo_addresses():
            run(["ip", "addr", "add", f"{address}/8", "dev", "lo"], service="network")
            rec["added"] = True
        rec["route"] = _local_route(address) or None
        net[address] = rec
    elif address not in _lo_addresses():
        run(["ip", "addr", "add", f"{address}/8", "dev", "lo"], service="network")
        rec["added"] = True
    run(["ip", "route", "replace", "table", "local", "local", address, "dev", "lo", "proto", "kernel",
         "scope", "host", "src", address], service="network")


FIREWALL_TABLE = "mastoaudit_lab"


def firewall_up(profile: str) -> None:
    """The hardened host's packet filter: default drop for its public address, with only SSH,
    HTTP(S) and mail accepted. Scoped to that one address (the first rule lets everything else
    through), so the machine's own traffic is untouched. The weak host has none."""
    firewall_down()
    if profile != "hardened" or shutil.which("nft") is None:
        return
    address = C.PUBLIC_ADDRESS[profile]
    ports = ", ".join(str(p) for p in (C.PORTS["ssh"], C.PORTS["http"], C.PORTS["https"], 25, 465, 587))
    rules = (
        f"table inet {FIREWALL_TABLE} {{\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy drop;\n"
        "    meta nfproto ipv6 accept\n"
        f"    ip daddr != {address} accept\n"
        "    ct state established,related accept\n"
        f"    tcp dport {{ {ports} }} accept\n"
        "    ip protocol icmp accept\n"
        "    reject\n"
        "  }\n"
        "}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, capture_output=True, check=True)


def firewall_down() -> None:
    if shutil.which("nft") is not None:
        subprocess.run(["nft", "delete", "table", "inet", FIREWALL_TABLE], capture_output=True)


def net_down_one(address: str, net: dict) -> None:
    rec = net.pop(address, None)
    if rec is None:
        return
    if rec.get("added"):
        subprocess.run(["ip", "addr", "del", f"{address}/8", "dev", "lo"], capture_output=True)
        subprocess.run(["ip", "route", "del", "table", "local", "local", address], capture_output=True)
    elif rec.get("route"):
        subprocess.run(["ip", "route", "replace", "table", "local", *rec["route"].split()], capture_output=True)


def ensure_system_users() -> None:
    """mastodon and elasticsearch, as Mastodon's and Elastic's installs create them (idempotent;
    no home directory is created)."""
    for user in SYSTEM_USERS:
        if subprocess.run(["getent", "passwd", user], capture_output=True).returncode == 0:
            continue
        home = "/home/mastodon" if user == "mastodon" else "/nonexistent"
        run(["useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
             "--shell", "/usr/sbin/nologin", user], service="host")


AUDIT_USER = "mastoaudit-audit"


def ensure_audit_user() -> None:
    """The account mastoaudit logs in as: /bin/sh (root's bash would read ~/.bashrc on every
    command), no password, passwordless sudo, as lab/README.md and the example inventory advise."""
    if subprocess.run(["getent", "passwd", AUDIT_USER], capture_output=True).returncode != 0:
        run(["useradd", "--system", "--home-dir", "/nonexistent", "--no-create-home", "--shell", "/bin/sh",
             AUDIT_USER], service="host")
    # '*' rather than useradd's '!': sshd refuses even key logins to a locked account.
    run(["usermod", "-p", "*", AUDIT_USER], service="host")
    sudoers = Path("/etc/sudoers.d/mastoaudit-audit")
    if not sudoers.exists():
        sudoers.write_text(f"{AUDIT_USER} ALL=(ALL) NOPASSWD: ALL\n")
        os.chmod(sudoers, 0o440)


def ensure_ssh_keys() -> str:
    SSH.mkdir(parents=True, exist_ok=True)
    os.chmod(SSH, 0o700)
    for kind, extra in (("ed25519", []), ("rsa", ["-b", "2048"])):
        host_key = SSH / f"ssh_host_{kind}_key"
        if not host_key.exists():
            run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", f"mastoaudit-lab-host-{kind}",
                 "-f", str(host_key)], service="ssh")
    client = SSH / "id_ed25519"
    if not client.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mastoaudit-lab-audit", "-f", str(client)],
            service="ssh")
    pub = (SSH / "id_ed25519.pub").read_text().strip()
    # sshd reads authorized_keys as the logging-in user: it lives beside, not inside, the private
    # ssh/ folder, readable by all and writable by root only (StrictModes holds).
    auth_dir = render.AUTHORIZED_KEYS.parent
    auth_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(auth_dir, 0o755)
    auth = render.AUTHORIZED_KEYS
    if not auth.exists() or auth.read_text().strip() != pub:
        auth.write_text(pub + "\n")
    os.chmod(auth, 0o644)
    names = ",".join(f"[{a}]:{C.PORTS['ssh']}" for a in (*C.PUBLIC_ADDRESS.values(), C.DOMAIN))
    lines = []
    for kind in ("ed25519", "rsa"):
        key = " ".join((SSH / f"ssh_host_{kind}_key.pub").read_text().split()[:2])
        lines.append(f"{names} {key}")
    known = SSH / "known_hosts"
    text = "\n".join(lines) + "\n"
    if not known.exists() or known.read_text() != text:
        known.write_text(text)
    return pub


def make_context(profile: str, create: bool = True) -> Context:
    if create:
        pki.ensure_ca()
        cert = pki.ensure_server_cert(profile)
        _, dkim_pub = pki.ensure_dkim(profile)
        secrets = pki.ensure_secrets()
        pki.secret_files(secrets)
        ssh_pub = ensure_ssh_keys()
    else:
        cert = pki.server_cert_paths(profile)
        dkim_pub = ""
        secrets = json.loads(pki.SECRETS.read_text()) if pki.SECRETS.exists() else {}
        ssh_pub = ""
    return Context(profile=profile, secrets=secrets, cert=cert, ca_cert=pki.CA_CERT, dkim_public=dkim_pub,
                   ssh_client_pub=ssh_pub)


# The services whose files `mastoaudit fix --plan`'s deploy changes (and no daemon writes itself).
DEPLOY_TOUCHES = ("nginx", "ssh", "postgres", "redis")


# --- up / down ----------------------------------------------------------------------------------------

def up(profile: str, log=print) -> dict:
    C.check_profile(profile)
    preflight()
    t0 = time.monotonic()
    with locked(f"up --profile {profile}"):
        C.RUN.mkdir(parents=True, exist_ok=True)
        os.chmod(C.RUN, 0o755)
        state = load_state()
        previous = state.get("profile")
        ensure_system_users()
        ensure_audit_user()
        # `mastoaudit lint` of a tree that contains lab/run skips it (the lab's own host trees).
        (C.RUN / ".mastoaudit-ignore").write_text("lab runtime state: not audited when linting a parent folder\n")
        ctx = make_context(profile)
        # Files changed behind the lab's back (a `fix --plan` deploy applied to it) while their service
        # kept running with them: that service is restarted below even though `up` writes the files
        # back as they were when it started.
        records = state.get("services", {})
        drifted = {svc.name for svc in make_all(ctx) if svc.name in DEPLOY_TOUCHES and previous == profile
                   and records.get(svc.name, {}).get("fingerprint") not in (None, svc.fingerprint())}
        for specs in render.all_files(ctx).values():
            for spec in specs:
                write_file(spec)
        # Drop-ins the lab never writes (a deploy's sandboxing) would change what the units say.
        for dropin in (ctx.root / "etc/systemd/system").glob("*.service.d"):
            shutil.rmtree(dropin)
        home = ctx.root / "home/mastodon"
        for d in (home, home / "live"):
            os.chmod(d, 0o755)
            chown(d, "mastodon:mastodon")
        write_inventories()
        net_up(profile, state)
        firewall_up(profile)
        state["profile"] = profile
        save_state(state)

        services = make_all(ctx)
        records = state.setdefault("services", {})
        keep, restart = [], []
        for svc in services:
            fp = svc.fingerprint()
            rec = records.get(svc.name) or {}
            if svc.running() and rec.get("fingerprint") == fp and svc.name not in drifted and svc.healthy():
                keep.append(svc)
            else:
                restart.append((svc, fp))
        # Stop what changes first (ports move between 127.0.0.1 and 0.0.0.0 between profiles).
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            list(pool.map(lambda sf: sf[0].stop(), restart))
        for svc, _ in restart:
            records.pop(svc.name, None)
        save_state(state)

        errors: list[str] = []

        def start(item: tuple[Service, str]) -> None:
            svc, fp = item
            svc.prepare()
            svc.check_ports()
            svc.start()
            svc.wait_ready()
            records[svc.name] = {"fingerprint": fp, "pid": svc.pid()}

        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            futures = {pool.submit(start, item): item[0] for item in restart}
            for fut, svc in futures.items():
                try:
                    fut.result()
                except LabError as e:
                    errors.append(str(e))
                except Exception as e:
                    errors.append(f"{svc.name}: {type(e).__name__}: {e}; see {svc.log}")
        save_state(state)
        if errors:
            raise LabError("the lab did not come up:\n" + "\n".join(errors)
                           + "\n(services that did start keep running; `python -m lab down` stops them)")
        for svc in services:
            try:
                svc.configure()
            except LabError as e:
                errors.append(str(e))
        if errors:
            raise LabError("the lab came up but could not be configured:\n" + "\n".join(errors))
        state["up_seconds"] = round(time.monotonic() - t0, 2)
        state["started"] = sorted(s.name for s, _ in restart)
        state["kept"] = sorted(s.name for s in keep)
        save_state(state)
        what = ("already running; nothing to do" if not restart
                else f"started {', '.join(sorted(s.name for s, _ in restart))}"
                + (f"; kept {', '.join(sorted(s.name for s in keep))}" if keep else ""))
        switched = f" (switched from {previous})" if previous and previous != profile else ""
        log(f"lab up: {profile}{switched}: {what} in {state['up_seconds']:.1f} s")
    return status()


def down(log=print) -> dict:
    if os.geteuid() != 0:
        raise LabError("the lab needs root")
    t0 = time.monotonic()
    with locked("down"):
        state = load_state()
        profile = state.get("profile") or "hardened"
        # Pid files do not depend on the profile, so any profile's service objects find them.
        services = make_all(make_context(profile, create=False))
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            stopped = [s.name for s, was in zip(services, pool.map(lambda s: s.stop(), services), strict=True) if was]
        left = [s.name for s in services if s.running()]
        net = state.get("net", {})
        for address in list(net):
            net_down_one(address, net)
        firewall_down()
        if left:
            state["services"] = {n: v for n, v in state.get("services", {}).items() if n in left}
            save_state(state)
            raise LabError(f"could not stop: {', '.join(left)}")
        STATE.unlink(missing_ok=True)
    took = time.monotonic() - t0
    log(f"lab down: stopped {', '.join(stopped) if stopped else 'nothing (not running)'} in {took:.1f} s")
    return {"stopped": stopped, "seconds": round(took, 2)}


# --- status / env -------------------------------------------------------------------------------------

def status() -> dict:
    state = load_state()
    profile = state.get("profile")
    ctx = make_context(profile or "hardened", create=False)
    services = make_all(ctx)

    def one(svc: Service) -> dict:
        running = svc.running()
        address, port = svc.shown_address()
        return {"name": svc.name, "address": address, "port": port, "pid": svc.pid() if running else None,
                "running": running, "healthy": running and svc.healthy(), "log": str(svc.log)}

    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        rows = list(pool.map(one, services))
    up_ = any(r["running"] for r in rows)
    return {"profile": profile if up_ else None, "running": up_,
            "healthy": up_ and all(r["healthy"] for r in rows), "services": rows}


def env(profile: str | None = None) -> dict:
    """Connection facts for tests and the live audit (secret values stay in files)."""
    state = load_state()
    profile = profile or state.get("profile") or "hardened"
    C.check_profile(profile)
    pub = C.PUBLIC_ADDRESS[profile]
    hardened = profile == "hardened"
    root = C.host_root(profile)
    secrets_dir = C.RUN / "secrets"
    return {
        "profile": profile,
        "running": state.get("profile") == profile and bool(state.get("services")),
        "domain": C.DOMAIN,
        "hostnames": C.HOSTNAMES,
        "public_address": pub,
        "internal_address": C.INTERNAL_ADDRESS,
        "note": ("Connections to public_address leave from public_address (an 'outside' client); "
                 "connections to 127.0.0.1 come from 127.0.0.1 (the host itself)."),
        "ca_file": str(pki.CA_CERT),
        "ssh": {"host": pub, "port": C.PORTS["ssh"], "user": AUDIT_USER, "key": str(SSH / "id_ed25519"),
                "known_hosts": str(SSH / "known_hosts")},
        "host_root": str(root),
        "paths": {
            "env_production": str(root / "home/mastodon/live/.env.production"),
            "sshd_config": str(root / "etc/ssh/sshd_config"),
            "nginx_conf": str(root / "etc/nginx/nginx.conf"),
            "nginx_site": str(root / "etc/nginx/sites-enabled/mastodon"),
            "postgresql_conf": str(root / "etc/postgresql/15/main/postgresql.conf"),
            "pg_hba": str(root / "etc/postgresql/15/main/pg_hba.conf"),
            "redis_conf": str(root / "etc/redis/redis.conf"),
            "elasticsearch_yml": str(root / "etc/elasticsearch/elasticsearch.yml"),
            "knot_conf": str(root / "etc/knot/knot.conf"),
            "zone_file": str(root / "var/lib/knot" / f"{C.DOMAIN}.zone"),
            "postfix_main_cf": str(root / "etc/postfix/main.cf"),
            "systemd_units": str(root / "etc/systemd/system"),
        },
        "inventory": str(C.RUN / f"inventory-{profile}.yaml"),
        "https": {"address": pub, "port": C.PORTS["https"], "http_port": C.PORTS["http"],
                  "web": C.HOSTNAMES["web"], "media": C.HOSTNAMES["media"],
                  "mta_sts": C.HOSTNAMES["mta_sts"] if hardened else None},
        "app": {"address": "127.0.0.1" if hardened else "0.0.0.0", "port": C.PORTS["web"],
                "version": C.MASTODON_VERSION[profile], "stand_in": True},
        "streaming": {"address": "127.0.0.1" if hardened else "0.0.0.0", "port": C.PORTS["streaming"],
                      "stand_in": True},
        "elasticsearch": {"address": "127.0.0.1" if hardened else "0.0.0.0", "port": C.PORTS["elasticsearch"],
                          "scheme": "https" if hardened else "http", "user": "mastodon" if hardened else None,
                          "password_file": str(secrets_dir / "es_password") if hardened else None,
                          "stand_in": True},
        "postgres": {"address": "127.0.0.1" if hardened else "0.0.0.0", "port": C.PORTS["postgres"],
                     "database": C.DB_NAME, "user": C.DB_USER,
                     "password_file": str(secrets_dir / "postgres_password") if hardened else None,
                     "password_note": None if hardened else "trust authentication: no password needed",
                     "ssl": hardened, "socket_dir": str(render.PG_RUN)},
        "redis": {"address": "127.0.0.1" if hardened else "0.0.0.0", "port": C.PORTS["redis"],
                  "password_file": str(secrets_dir / "redis_password") if hardened else None},
        "dns": {"server": C.DNS_ADDRESS, "port": C.DNS_PORT, "zones": [C.DOMAIN],
                "dkim_selector": C.DKIM_SELECTOR, "dnssec": hardened},
        "smtp": {"address": pub, "port": C.PORTS["smtp"], "hostname": C.HOSTNAMES["mail"],
                 "starttls": hardened, "open_relay": not hardened},
        "s3": {"endpoint": f"http://127.0.0.1:{C.PORTS['s3']}", "region": C.S3_REGION,
               "buckets": [C.S3_BUCKET], "bucket": C.S3_BUCKET, "credentials_file": str(pki.SECRETS),
               "public_object": "media_attachments/files/000/000/001/original/lab.png",
               "media_proxy": f"https://{C.HOSTNAMES['media']}/", "stand_in": False},
        "secrets_file": str(pki.SECRETS),
        "logs": str(C.RUN / "log"),
    }


def write_inventories() -> None:
    """An inventory per profile in mastoaudit's format (inventories/example.yaml), for `mastoaudit
    audit -i lab/run/inventory-<profile>.yaml` against the running lab."""
    for profile in C.PROFILES:
        e = env(profile)
        text = (
            f"# mastoaudit lab inventory, {profile} profile. Generated by `python -m lab up`.\n"
            f"#   python -m lab up --profile {profile} && mastoaudit audit -i {C.RUN}/inventory-{profile}.yaml\n"
            "instance:\n"
            f"  local_domain: {C.DOMAIN}\n"
            f"  web_domain: {C.DOMAIN}\n"
            "  mastodon_path: /home/mastodon/live\n"
            "network:\n"
            f"  resolver: {e['dns']['server']}:{e['dns']['port']}\n"
            f"  ca_bundle: {e['ca_file']}\n"
            f"  dkim_selectors: [{e['dns']['dkim_selector']}]\n"
            "ssh:\n"
            f"  user: {AUDIT_USER}\n"
            "  sudo: true\n"
            f"  port: {C.PORTS['ssh']}\n"
            f"  key: {e['ssh']['key']}\n"
            f"  known_hosts: {e['ssh']['known_hosts']}\n"
            "hosts:\n"
            f"  mastodon-lab-{profile}:\n"
            f"    address: {e['public_address']}\n"
            "    roles: [web, app, streaming, sidekiq, db, redis, search, mail, storage]\n"
            "    # Files are read under this prefix (the lab host's filesystem); see lab/README.md.\n"
            f"    path_prefix: {e['host_root']}\n"
            "    services:\n"
            f"      postgres_port: {C.PORTS['postgres']}\n"
            f"      postgres_socket_dir: {render.PG_RUN}\n"
            f"      redis_port: {C.PORTS['redis']}\n"
        )
        path = C.RUN / f"inventory-{profile}.yaml"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        pyinfra_text = pyinfra_inventory(profile, e)
        path = C.RUN / f"pyinfra-{profile}.py"
        if not path.exists() or path.read_text() != pyinfra_text:
            path.write_text(pyinfra_text)


def pyinfra_inventory(profile: str, e: dict) -> str:
    """A pyinfra inventory for applying `mastoaudit fix --plan -o deploy.py` to the lab host: the same
    login as the audit (the audit user with sudo), and host data that tells mastoaudit's operations
    where the host's files are (the path prefix) and how the lab's daemons, which run from their own
    config files rather than under systemd, are validated and reloaded."""
    nginx = render.nginx_paths(profile)
    conf = C.host_root(profile) / "etc"
    nginx_cmd = f"/usr/sbin/nginx -p {nginx['base']} -c {conf / 'nginx/nginx.conf'} -e {nginx['error_log']}"
    redis_pid = render.var("run", "redis", "redis-server.pid")
    redis_start = f"/usr/bin/redis-server {conf / 'redis/redis.conf'}"
    if profile == "hardened":
        redis_start = f"runuser -u redis -- {redis_start}"
    control = {
        "nginx": {"validate": f"{nginx_cmd} -t -q", "reload": f"{nginx_cmd} -s reload",
                  "check": f"kill -0 \"$(cat {nginx['pid']})\""},
        "sshd": {"validate": "/usr/sbin/sshd -t -f {config}",
                 "reload": f"kill -HUP \"$(cat {render.var('run', 'sshd.pid')})\"",
                 "check": "/usr/sbin/sshd -T -f {config} >/dev/null"},
        "redis": {"reload": (f"p=$(cat {redis_pid}); kill \"$p\"; i=0; while kill -0 \"$p\" 2>/dev/null"
                             f" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; {redis_start}")},
        # The lab's Mastodon units are files that no systemd runs, and the stand-ins do not read
        # .env.production: validated, nothing to reload.
        "systemd": {"reload": "true", "check": None},
        "mastodon": {"reload": "true"},
    }
    data = {
        "ssh_hostname": e["public_address"], "ssh_port": C.PORTS["ssh"], "ssh_user": AUDIT_USER,
        "ssh_key": e["ssh"]["key"], "ssh_known_hosts_file": e["ssh"]["known_hosts"],
        "ssh_strict_host_key_checking": "yes", "ssh_allow_agent": False, "ssh_look_for_keys": False,
        "_sudo": True,
        "mastoaudit_path_prefix": e["host_root"],
        "mastoaudit_backup_dir": str(C.RUN / "backups"),
        "mastoaudit_nginx_config": "/etc/nginx/nginx.conf",
        "mastoaudit_postgres": {"socket_dir": str(render.PG_RUN), "port": C.PORTS["postgres"]},
        "mastoaudit_redis_port": C.PORTS["redis"],
        "mastoaudit_control": control,
    }
    body = pprint.pformat(data, width=110, sort_dicts=False)
    return (f"# pyinfra inventory of the lab host, {profile} profile. Generated by `python -m lab up`.\n"
            "#   mastoaudit fix --plan --report REPORT.json -o deploy.py\n"
            f"#   pyinfra {C.RUN}/pyinfra-{profile}.py deploy.py\n"
            f"lab = [({f'mastodon-lab-{profile}'!r}, {body})]\n")


def main_env_json(profile: str | None) -> str:
    return json.dumps(env(profile), indent=2)
