"""python -m lab up --profile hardened|weak | down | status | env [--profile P]"""

from __future__ import annotations

import argparse
import json
import sys

from . import config as C
from .procs import LabError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab", description="Bring the mastoaudit lab up or down.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start (or keep) the lab in a profile; switching profile restarts "
                                     "the services whose configuration differs")
    p_up.add_argument("--profile", choices=C.PROFILES, default="hardened")
    sub.add_parser("down", help="stop every lab process (by pid) and remove the lab's loopback address")
    sub.add_parser("status", help="JSON: each service, address, port, pid, healthy (exit 0 healthy, "
                                  "1 degraded, 3 not running)")
    p_env = sub.add_parser("env", help="JSON: connection facts for tests and the live audit "
                                       "(secrets stay in files named here)")
    p_env.add_argument("--profile", choices=C.PROFILES, default=None,
                       help="default: the running profile, else hardened")
    a = ap.parse_args(argv)

    from . import core

    def note(msg: str) -> None:
        print(msg, file=sys.stderr)

    try:
        if a.cmd == "up":
            st = core.up(a.profile, log=note)
            print(json.dumps(st, indent=2))
            return 0 if st["healthy"] else 1
        if a.cmd == "down":
            print(json.dumps(core.down(log=note), indent=2))
            return 0
        if a.cmd == "status":
            st = core.status()
            print(json.dumps(st, indent=2))
            return 0 if st["healthy"] else (3 if not st["running"] else 1)
        if a.cmd == "env":
            print(core.main_env_json(a.profile))
            return 0
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `python -m lab env | head`
        sys.stderr.close()
        sys.exit(0)
