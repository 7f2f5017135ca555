"""The tenant's billing group as the API shows it: plan price, balance, next period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app import clock

from .models import Tenant
from .plans import PLANS, period_bounds, period_of

CURRENCY = "USD"


def price_cents(tenant: Tenant) -> int | None:
    """The tenant's monthly price in cents: its own, else its plan's (None: custom, not set yet)."""
    return monthly_price_cents(tenant.plan, tenant.billing.price_cents)


def monthly_price_cents(plan: str, own: int | None) -> int | None:
    """A monthly price in cents: a tenant's own, else its plan's (None: custom, not set yet)."""
    if own is not None:
        return own
    price = PLANS[plan]["price"]
    return None if price is None else price["amount"] * 100


def billing_summary(tenant: Tenant) -> dict[str, Any]:
    billing = tenant.billing
    _start, end = period_bounds(period_of(clock.utcnow()))
    return {
        "status": billing.status,
        "email": billing.email,
        "trial_ends_at": billing.trial_ends_at,
        "current_period_end": billing.current_period_end or end - timedelta(microseconds=1000),
        "price_cents": price_cents(tenant),
        "currency": CURRENCY,
        "balance_cents": billing.balance_cents,
        "next_period_start": end,
        "last_invoice_number": billing.last_invoice_number,
    }
