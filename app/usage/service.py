"""Metering in one place: limits are checked and consumed by single atomic conditional updates.

`reserve(resource, n)` is the check and the increment at once: the limit is in the update's filter,
so concurrent requests can never push usage past it. A reservation of n > 1 is all or nothing.
`refund(resource, n)` gives units back when the guarded operation fails (or a resource is deleted).
Gauges (users, campaigns, telegramAccounts, webhooks, storage) live on the tenant document; monthly
resources (messagesPerMonth) in UsageCounter documents keyed by period, so a new month starts at zero
by itself; the monthly close (app.billing.closing) only records what a period used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import mongoengine as me
from pymongo import ReturnDocument

from app import clock, signals
from app.errors import LimitExceeded
from app.tenancy.context import TenantContextMissing, current_tenant
from app.tenants.models import GAUGES, Tenant, Usage
from app.tenants.plans import LIMIT_NAMES, effective_limits, period_bounds, period_of

from .models import UsageAlert, UsageCounter
from .rate_limits import api_calls_this_hour

MONTHLY = ("messagesPerMonth",)


def _tenant() -> Tenant:
    tenant = current_tenant()
    if tenant is None:
        raise TenantContextMissing("metering needs a tenant in context")
    return tenant


def limit_of(tenant: Tenant, resource: str) -> int | None:
    """Return the effective limit of a resource for a tenant (None: unlimited)."""
    return effective_limits(tenant.plan, tenant.limits)[resource]


def _fresh_limit(tenant_id: Any, resource: str) -> int | None:
    """Read the limit from the database: a plan change must apply at once in every worker. Only the
    plan and the overrides are read, as stored (no tenant document is built)."""
    plan_field, limits_field = Tenant.plan.db_field, Tenant.limits.db_field
    stored = Tenant._get_collection().find_one({"_id": tenant_id}, {plan_field: True, limits_field: True})
    plan = stored.get(plan_field, Tenant.plan.default)
    return effective_limits(plan, stored.get(limits_field) or {})[resource]


def used(tenant: Tenant, resource: str, period: str | None = None) -> int:
    """Return what a tenant uses of a gauge now, or of a monthly resource in a period."""
    if resource in GAUGES:
        fresh = Tenant.objects(id=tenant.id).only("usage").first()
        return getattr(fresh.usage, GAUGES[resource])
    counter = UsageCounter.objects(resource=resource, period=period or period_of(clock.utcnow())).first()
    return counter.used if counter else 0


def _exceeded(tenant: Tenant, resource: str, limit: int | None, requested: int) -> LimitExceeded:
    current = used(tenant, resource)
    return LimitExceeded(
        f"{resource} limit exceeded",
        details={"resource": resource, "limit": limit, "used": current, "requested": requested},
    )


def reserve(resource: str, n: int = 1) -> None:
    """Consume n units of `resource` for the tenant in context, or raise 403 limit_exceeded."""
    if n < 0:
        raise ValueError("reserve() takes a positive amount; use refund()")
    if n == 0:
        return
    tenant = _tenant()
    limit = _fresh_limit(tenant.id, resource)
    if resource in GAUGES:
        gauge = Usage._fields[GAUGES[resource]].db_field
        stored = f"{Tenant.usage.db_field}.{gauge}"
        guard = {} if limit is None else {stored: {"$lte": limit - n}}
        # The gauge as it is after the increment, read in the same operation (no document built).
        updated = Tenant._get_collection().find_one_and_update(
            {"_id": tenant.id, **guard},
            {"$inc": {stored: n}},
            projection={stored: True},
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            raise _exceeded(tenant, resource, limit, n)
        _alert_thresholds(tenant, resource, updated[Tenant.usage.db_field][gauge], n, limit)
        return
    if resource not in MONTHLY:
        raise ValueError(f"{resource} is not metered here")
    if limit is not None and n > limit:
        raise _exceeded(tenant, resource, limit, n)
    counters = UsageCounter.objects(resource=resource, period=period_of(clock.utcnow()))
    if limit is not None:
        counters = counters.filter(used__lte=limit - n)
    try:
        counter = counters.modify(upsert=True, new=True, inc__used=n)
    except me.NotUniqueError:
        # The period's counter exists (perhaps inserted a moment ago by a concurrent request) and
        # the guard did not match it: try once more without inserting.
        counter = counters.modify(new=True, inc__used=n)
    if counter is None:
        raise _exceeded(tenant, resource, limit, n)
    _alert_thresholds(tenant, resource, counter.used, n, limit)


def _alert_thresholds(tenant: Tenant, resource: str, now_used: int, n: int, limit: int | None) -> None:
    """Record each alert threshold that this reservation crossed (once per period) and tell the packages
    that act on it (app.signals.usage_threshold_crossed: the audit log and the webhooks)."""
    if not limit:
        return
    before = now_used - n
    period = period_of(clock.utcnow())
    for threshold in tenant.settings.notifications.usage_alert_thresholds:
        if not before * 100 < threshold * limit <= now_used * 100:
            continue
        try:
            UsageAlert(
                resource=resource, period=period, threshold=threshold, used=now_used, limit=limit
            ).save(force_insert=True)
        except me.NotUniqueError:
            continue  # already alerted in this period (a refund and a new reservation crossed it again)
        data = {
            "resource": resource,
            "threshold": threshold,
            "used": now_used,
            "limit": limit,
            "period": period,
        }
        signals.usage_threshold_crossed.send(data=data)


def refund(resource: str, n: int = 1, period: str | None = None) -> None:
    """Give back n units of `resource` (never below zero); a monthly resource's go back to the period
    they were reserved in (by default the current one)."""
    if n <= 0:
        return
    tenant = _tenant()
    if resource in GAUGES:
        if period is not None:
            raise ValueError(f"{resource} is a gauge: it has no periods")
        field = GAUGES[resource]
        Tenant.objects(id=tenant.id, **{f"usage__{field}__gte": n}).update_one(
            __raw__={"$inc": {f"usage.{Usage._fields[field].db_field}": -n}}
        )
        return
    UsageCounter.objects(
        resource=resource, period=period or period_of(clock.utcnow()), used__gte=n
    ).update_one(
        __raw__={"$inc": {"used": -n}}  # raw: the field's min_value=0 would refuse a negative $inc
    )


@contextmanager
def reserved(resource: str, n: int = 1) -> Iterator[None]:
    """Reserve n units for the block; refund them if the block fails."""
    reserve(resource, n)
    try:
        yield
    except BaseException:
        refund(resource, n)
        raise


def percent_of(amount: int, limit: int | None) -> float | None:
    """Return usage as a percentage of its limit (None when unlimited)."""
    if limit is None:
        return None
    if limit == 0:
        return 0.0 if amount == 0 else 100.0
    return round(100.0 * amount / limit, 1)


def snapshot(tenant: Tenant, now: datetime | None = None) -> dict[str, Any]:
    """Return every limit of a tenant with what it uses of it, and the current period."""
    now = now or clock.utcnow()
    period = period_of(now)
    start, end = period_bounds(period)
    fresh = Tenant.objects(id=tenant.id).first()
    limits = effective_limits(fresh.plan, fresh.limits)
    counters = {c.resource: c.used for c in UsageCounter.objects(period=period)}
    resources = {}
    for name in LIMIT_NAMES:
        if name in GAUGES:
            amount = getattr(fresh.usage, GAUGES[name])
        elif name == "apiCallsPerHour":
            amount = api_calls_this_hour(fresh)
        else:
            amount = counters.get(name, 0)
        limit = limits[name]
        resources[name] = {"used": amount, "limit": limit, "percent": percent_of(amount, limit)}
    return {"period": {"start": start, "end": end, "key": period}, "resources": resources}
