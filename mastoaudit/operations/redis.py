"""Redis: bind, protected mode, a password (generated on the host, shared with Mastodon through
REDIS_PASSWORD in .env.production) and the admin commands renamed away, as one transaction: the
candidate config is started on a socket of its own first, then Redis restarted and asked PING with
the password; any failure puts both files back and restarts Redis again."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import OperationError, StringCommand, operation

from ..hostfacts import EnvValues, RedisDirectives, RedisPasswordSet, SecretsSet
from . import shell
from .transaction import Control, backup_dir, control, host_data, on_host, q, script

LOOPBACK = ("", "127.0.0.1", "localhost", "::1")

# A candidate config, started on a private socket with TCP off: Redis stops at the first line it
# cannot take ("FATAL CONFIG FILE ERROR"), so coming up is the proof that it parses.
REDIS_PARSE = (
    "d=$(mktemp -d) && { redis-server {config} --port 0 --tls-port 0 --unixsocket \"$d/v.sock\" --daemonize no"
    " --pidfile \"$d/v.pid\" --logfile '' --dir \"$d\" --save '' --appendonly no > \"$d/out\" 2>&1 & p=$!;"
    " i=0; while [ $i -lt 100 ] && [ ! -S \"$d/v.sock\" ] && kill -0 $p 2>/dev/null; do sleep 0.1; i=$((i+1)); done;"
    " if [ -S \"$d/v.sock\" ]; then kill $p; wait $p; rm -rf \"$d\"; true;"
    " else kill $p 2>/dev/null; wait $p; grep -v '^$' \"$d/out\" | tail -n 5; rm -rf \"$d\"; false; fi; }"
)
# PING with the config's password, fed on stdin (never on a command line), for up to 10 s. It runs
# as the transaction's check, in a subshell of its own: `exit 1` ends the check.
REDIS_PING = (
    "pw=$(sed -n 's/^[[:space:]]*requirepass[[:space:]]\\+//p' {config} | tail -n 1); i=0;"
    " until { [ -n \"$pw\" ] && printf 'AUTH %s\\n' \"$pw\"; printf 'PING\\n'; }"
    " | redis-cli -h 127.0.0.1 -p {port} 2>&1 | grep -q PONG; do"
    " i=$((i+1)); [ $i -ge 50 ] && { echo 'Redis does not answer PING with the password'; exit 1; };"
    " sleep 0.2; done"
)


def _commands(ctl: Control, config: str, port: int) -> Control:
    def fill(cmd: str | None) -> str | None:
        if cmd is None:
            return None
        cmd = cmd.replace("{redis_parse}", REDIS_PARSE).replace("{redis_ping}", REDIS_PING)
        return cmd.replace("{config}", q(config)).replace("{port}", str(int(port)))
    return Control(fill(ctl.validate), fill(ctl.reload), fill(ctl.check))


@operation()
def fix(path: str, checks: list[str], env: str | None = None, bind: str | None = None,
        protected_mode: bool = False, password: bool = False, rename: list[str] = ()):
    conf = on_host(host, path)
    env_path = on_host(host, env) if env else None
    lines = host.get_fact(RedisDirectives, path=conf, names=("bind", "protected-mode", "rename-command", "port"))
    if not lines and not host.get_fact(RedisPasswordSet, path=conf):
        raise OperationError(f"{conf}: no such file, or empty")
    port = next((int(a[0]) for d, a in lines if d == "port" and a and a[0].isdigit()),
                int(host_data(host, "mastoaudit_redis_port", 6379)))
    plain: dict[str, str] = {}
    if bind:
        redis_host = host.get_fact(EnvValues, path=env_path, keys=("REDIS_HOST",)).get("REDIS_HOST", "") \
            if env_path else None
        if redis_host is None or redis_host.strip("[]") not in LOOPBACK:
            logger.warning(f"{host.name}: Mastodon reaches Redis at {redis_host or 'another host'}: bind left as it is")
        elif [a for d, a in lines if d == "bind"] != [bind.split()]:
            plain["bind"] = bind
    if protected_mode and any(d == "protected-mode" and a and a[0].lower() != "yes" for d, a in lines):
        plain["protected-mode"] = "yes"
    renamed = {a[0].upper() for d, a in lines if d == "rename-command" and a}
    missing = [c for c in rename if c.upper() not in renamed]
    need_password = password and not host.get_fact(RedisPasswordSet, path=conf)
    if need_password and not env_path:
        logger.warning(f"{host.name}: Redis gets no password here: Mastodon's .env.production is not on this host "
                       "(set requirepass and REDIS_PASSWORD by hand)")
        need_password = False
    if not (plain or missing or need_password):
        return
    backups = f"{backup_dir(host)}/redis"
    staging = f"{backups}/.staging"
    files = [(conf, f"{staging}/redis.conf")]
    prepare = [f"mkdir -p {q(staging)}"]
    after = ""
    if need_password:
        app_has = "REDIS_PASSWORD" in host.get_fact(SecretsSet, path=env_path, keys=("REDIS_PASSWORD",))
        prepare.append(shell.env_read(env_path, "REDIS_PASSWORD", "pw"))
        if not app_has:
            prepare.append(f"pw=$({shell.GENERATE_SECRET})")
            prepare.append(shell.env_edit(env_path, f"{staging}/env", set_from_var={"REDIS_PASSWORD": "pw"}))
            files.append((env_path, f"{staging}/env"))
            app = control(host, "mastodon")
            after = f"( {app.reload} ) || echo 'mastoaudit: restart Mastodon to use REDIS_PASSWORD' >&2" \
                if app.reload else ""
    prepare.append(shell.redis_edit(conf, f"{staging}/redis.conf", set_plain=plain,
                                    password_var="pw" if need_password else None, rename=missing))
    what = [*(f"{k} {v}" for k, v in plain.items()), *(f"rename-command {c}" for c in missing)]
    if need_password:
        what.append("requirepass (generated on the host)")
    yield StringCommand(script(f"redis {conf} ({'; '.join(what)})", files,
                               _commands(control(host, "redis"), conf, port), backups=backups,
                               prepare="\n".join(prepare), after=after))
