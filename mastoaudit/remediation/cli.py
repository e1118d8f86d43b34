"""`fix --plan`'s output: the text plan (terminal) or the pyinfra deploy (-o deploy.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..engine import EXIT_CLEAN


def _waive(args: argparse.Namespace, document: dict, usage: type[Exception]) -> None:
    if not args.waivers:
        return
    from ..compliance import ComplianceError, today
    from ..waivers import WaiverError, apply, load_waivers

    try:
        loaded = [w for path in args.waivers for w in load_waivers(path, None)]
        apply(document, loaded, today())
    except (WaiverError, ComplianceError) as exc:
        raise usage(str(exc)) from None


def write_plan(args: argparse.Namespace, document: dict, text_plan: Callable[[dict], str],
               usage: type[Exception]) -> int:
    _waive(args, document, usage)
    out = args.output
    fmt = args.plan_format or ("pyinfra" if out and out.endswith(".py") else "terminal")
    if fmt == "terminal":
        text = text_plan(document)
    else:
        from . import deploy_text, summary
        from .plan import _findings

        run = document.get("run") if isinstance(document.get("run"), dict) else {}
        if run.get("command") not in ("audit", "merge", None) and not any(
                ":/" in str((f.get("location") or {}).get("file") or "") for f in _findings(document)):
            raise usage("a pyinfra deploy is written from an audit of hosts (mastoaudit audit -i INVENTORY); "
                        "for config trees use --format terminal")
        source = str(args.report) if args.report else " ".join(args.paths)
        text, plan = deploy_text(document, source)
        print(f"mastoaudit: {summary(plan)}", file=sys.stderr)
    if not out or out == "-":
        sys.stdout.write(text)
        return EXIT_CLEAN
    try:
        path = Path(out)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise usage(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {out}", file=sys.stderr)
    return EXIT_CLEAN
