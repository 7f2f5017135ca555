"""The tenant's billing group as the API shows it: plan price, balance, next period."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from app import clock

from .plans import PLANS, bounds_of

CURRENCY = "USD"


def monthly_price_cents(plan: str, own: int | None) -> int | None:
    """A monthly price in cents: a tenant's own, else its plan's (None: custom, not set yet)."""
    if own is not None:
        return own
    price = PLANS[plan]["price"]
    return None if price is None else price["amount"] * 100


# The fields of a tenant's Billing group its summary reads.
SUMMARY_READS = (
    "status",
    "email",
    "trial_ends_at",
    "current_period_end",
    "price_cents",
    "balance_cents",
    "last_invoice_number",
)


def billing_summary(plan: str, billing: Mapping[str, Any]) -> dict[str, Any]:
    """What a tenant on `plan` is shown of its billing in the period under way, from the values of its
    Billing group (`billing`: the fields SUMMARY_READS names, by name)."""
    _start, end = bounds_of(clock.utcnow())
    return {
        "status": billing["status"],
        "email": billing["email"],
        "trial_ends_at": billing["trial_ends_at"],
        "current_period_end": billing["current_period_end"] or end - timedelta(microseconds=1000),
        "price_cents": monthly_price_cents(plan, billing["price_cents"]),
        "currency": CURRENCY,
        "balance_cents": billing["balance_cents"],
        "next_period_start": end,
        "last_invoice_number": billing["last_invoice_number"],
    }
