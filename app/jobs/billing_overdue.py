"""Suspend tenants whose invoices stay unpaid past the grace period (BILLING_GRACE_DAYS)."""

from __future__ import annotations

from datetime import datetime

from app import clock
from app.billing.service import suspend_overdue

from .common import each_tenant


def run(now: datetime | None = None) -> dict[str, int]:
    """Suspend every active tenant with an overdue invoice (payment reactivates it)."""
    now = now or clock.utcnow()
    suspended = sum(suspend_overdue(tenant, now) for tenant in each_tenant(include_suspended=False))
    return {"suspended": suspended}
