"""End the trials that ran out: a tenant that did not convert moves to the free plan."""

from __future__ import annotations

from datetime import datetime

from app import clock
from app.billing.trials import due_trials, end_trial


def run(now: datetime | None = None) -> dict[str, int]:
    """Move every tenant whose trial ended unconverted to the free plan, audited and emitted."""
    now = now or clock.utcnow()
    return {"ended": sum(end_trial(tenant, now) for tenant in due_trials(now))}
