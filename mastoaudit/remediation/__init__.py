"""Remediation that applies: `mastoaudit fix --plan -o deploy.py` (plan.py builds the plan from a
report document, deploy.py writes it as a pyinfra deploy calling mastoaudit.operations)."""

from __future__ import annotations

from .deploy import render, summary
from .plan import Plan, build

__all__ = ["Plan", "build", "deploy_text", "render", "summary"]


def deploy_text(document: dict, source: str) -> tuple[str, Plan]:
    plan = build(document)
    return render(plan, source), plan
