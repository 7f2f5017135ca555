"""Apply the A/B tests' winner rules: a test whose rule's time has come gets its winner, and its held
targets the winner's message; a choice that stopped halfway is finished."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from app import clock
from app.campaigns.ab_tests import settle_due
from app.tenancy.context import tenant_scope

from .common import each_tenant


def run(now: datetime | None = None) -> dict[str, int]:
    """Choose the winners due by now in every tenant and release their held targets."""
    now = now or clock.utcnow()
    totals: Counter[str] = Counter(chosen=0, released=0)
    for tenant in each_tenant():
        with tenant_scope(tenant):
            totals.update(settle_due(now))
    return dict(totals)
