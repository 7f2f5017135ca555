"""The monthly close: snapshot every tenant's usage of the month that ended, and bill it.

Tenants are closed a batch at a time (app.tenants.batches), each batch in a constant number of
operations whatever its size: its snapshots (app.usage.snapshots), then its invoices
(app.billing.service.issue_invoices). Both are keyed on the unique (tenantId, period) indexes, so a
second run, a late run, two runs at once, or a run after one that stopped halfway write nothing the
first did not, and finish what it left.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from app.tenancy.context import unscoped
from app.tenants.batches import tenant_batches
from app.tenants.plans import bounds_of, period_bounds, period_of
from app.usage.snapshots import SNAPSHOT_FIELDS, snapshot_usage

from .service import INVOICED_FIELDS, issue_invoices

log = logging.getLogger("app.billing")

CLOSE_REASON = "monthly close: snapshot and bill a batch of tenants"
# What the close reads of a tenant (stored names): when it was created, what its snapshot and invoice need.
CLOSE_FIELDS = ("createdAt", *SNAPSHOT_FIELDS, *INVOICED_FIELDS)


def previous_period(now: datetime) -> str:
    """Return the period before the one `now` falls in."""
    start, _end = bounds_of(now)
    return period_of(start - timedelta(days=1))


def close_batch(tenants: Sequence[Mapping[str, Any]], period: str, now: datetime) -> dict[str, int]:
    """Snapshot and bill `period` for `tenants` (as stored, with CLOSE_FIELDS; all created before it
    ended); return how many were closed now, how many were closed already, and how many invoices were
    issued."""
    with unscoped(CLOSE_REASON):
        usage = snapshot_usage(tenants, period)
        invoices = issue_invoices(
            tenants, period, {tenant_id: used for tenant_id, (used, _new) in usage.items()}, now
        )
    closed = sum(new for _used, new in usage.values())
    return {"closed": closed, "alreadyClosed": len(usage) - closed, "invoiced": len(invoices)}


def close_month(now: datetime) -> dict[str, int | str]:
    """Close the period before the one `now` falls in for every tenant that existed in it, and bill it."""
    period = previous_period(now)
    _start, end = period_bounds(period)
    totals = {"closed": 0, "alreadyClosed": 0, "invoiced": 0}
    for batch in tenant_batches(*CLOSE_FIELDS):
        existed = [tenant for tenant in batch if tenant["createdAt"] < end]
        if existed:
            for name, count in close_batch(existed, period, now).items():
                totals[name] += count
    log.info("monthly close", extra={"period": period, **totals})
    return {"period": period, **totals}
