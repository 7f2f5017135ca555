"""Close the previous usage period of every tenant, for billing (app.billing.closing)."""

from __future__ import annotations

from datetime import datetime

from app import clock
from app.billing.closing import close_month


def run(now: datetime | None = None) -> dict[str, int | str]:
    """Close the period before the current one for every tenant that existed in it, and bill it."""
    return close_month(now or clock.utcnow())
