"""Snapshots of closed periods: what each tenant used of every limit in a month, written once, for
billing.

Monthly counters are keyed by period, so a new month has started at zero already; closing only
records what the old month used. A batch of tenants costs three operations whatever its size: one read
of the period's counters, one bulk write of upserts keyed on the unique (tenantId, period) index, and
one read of the batch's snapshots, which tells the ones written now from the ones a run before (or one
running at the same time) wrote. The caller runs it inside `unscoped()`: every document read or written
names its tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson import ObjectId

from app.clock import utcnow
from app.db import insert_missing
from app.tenancy.collection import TENANT_FIELD
from app.tenants.models import Tenant
from app.tenants.plans import LIMIT_NAMES, effective_limits

from .models import UsageCounter, UsageSnapshot
from .service import GAUGES


def _resources(tenant: Tenant, counters: dict[str, int]) -> dict[str, dict[str, Any]]:
    limits = effective_limits(tenant.plan, tenant.limits)
    resources = {}
    for name in LIMIT_NAMES:
        used = getattr(tenant.usage, GAUGES[name]) if name in GAUGES else counters.get(name, 0)
        resources[name] = {"used": used, "limit": limits[name]}
    return resources


def snapshot_usage(tenants: Sequence[Tenant], period: str) -> dict[Any, tuple[dict[str, Any], bool]]:
    """Snapshot what each of `tenants` used in `period`, unless it is snapshotted already; return, by
    tenant id, the stored snapshot's resources and whether this call wrote it."""
    ids = [tenant.id for tenant in tenants]
    counters: dict[Any, dict[str, int]] = {tenant_id: {} for tenant_id in ids}
    for counter in UsageCounter.objects(tenant_id__in=ids, period=period).only(
        "tenant_id", "resource", "used"
    ):
        counters[counter.tenant_id][counter.resource] = counter.used
    closed_at = utcnow()
    written = {}
    documents = []
    for tenant in tenants:
        snapshot = UsageSnapshot(
            id=ObjectId(),
            tenant_id=tenant.id,
            period=period,
            plan=tenant.plan,
            resources=_resources(tenant, counters[tenant.id]),
            closed_at=closed_at,
        )
        snapshot.validate()
        written[tenant.id] = snapshot.id
        documents.append(snapshot.to_mongo().to_dict())
    insert_missing(UsageSnapshot._get_collection(), documents, (TENANT_FIELD, "period"))
    stored = UsageSnapshot.objects(tenant_id__in=ids, period=period).only("id", "tenant_id", "resources")
    return {snap.tenant_id: (snap.resources, snap.id == written[snap.tenant_id]) for snap in stored}
