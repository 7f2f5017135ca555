"""Close the previous usage period of every tenant: one snapshot per tenant and period, for billing.

Monthly counters are keyed by period, so the new month has started at zero already; closing only
records what the old month used. The unique (tenantId, period) index makes a second run, a late run,
or two concurrent runs write nothing more than the first.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import mongoengine as me

from app.billing.service import issue_invoice
from app.clock import utcnow
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.plans import LIMIT_NAMES, effective_limits
from app.usage.models import UsageCounter, UsageSnapshot
from app.usage.service import GAUGES, period_bounds, period_of

from .common import each_tenant

log = logging.getLogger("app.jobs")


def previous_period(now: datetime) -> str:
    start, _end = period_bounds(period_of(now))
    return period_of(start - timedelta(days=1))


def reset_monthly_usage(tenant: Tenant, period: str) -> bool:
    """Close `period` for one tenant (the original design's resetMonthlyUsage); False if already closed."""
    return close_tenant(tenant, period) is not None


def close_tenant(tenant: Tenant, period: str) -> dict[str, dict] | None:
    """Snapshot what `tenant` used in `period`; return the snapshot's resources, None if closed already."""
    with tenant_scope(tenant):
        limits = effective_limits(tenant.plan, tenant.limits)
        counters = {c.resource: c.used for c in UsageCounter.objects(period=period)}
        resources = {}
        for name in LIMIT_NAMES:
            used = getattr(tenant.usage, GAUGES[name]) if name in GAUGES else counters.get(name, 0)
            resources[name] = {"used": used, "limit": limits[name]}
        try:
            UsageSnapshot(period=period, plan=tenant.plan, resources=resources).save(force_insert=True)
        except me.NotUniqueError:
            return None
    return resources


def run(now: datetime | None = None) -> dict[str, int | str]:
    """Close the period before the current one for every tenant that existed in it, and bill it."""
    now = now or utcnow()
    period = previous_period(now)
    _start, end = period_bounds(period)
    closed = already = invoiced = 0
    for tenant in each_tenant():
        if tenant.created_at >= end:
            continue
        resources = close_tenant(tenant, period)
        if resources is not None:
            closed += 1
        else:
            already += 1
            # Bill what the first close recorded (it may have stopped before its invoice).
            with tenant_scope(tenant):
                resources = UsageSnapshot.objects.get(period=period).resources
        if issue_invoice(tenant, period, resources, now) is not None:
            invoiced += 1
    log.info(
        "monthly close",
        extra={"period": period, "closed": closed, "alreadyClosed": already, "invoiced": invoiced},
    )
    return {"period": period, "closed": closed, "alreadyClosed": already, "invoiced": invoiced}
