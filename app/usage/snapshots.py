"""Snapshots of closed periods: what each tenant used of every limit in a month, written once, for
billing.

Monthly counters are keyed by period, so a new month has started at zero already; closing only
records what the old month used. A batch of tenants costs two operations whatever its size: one read
of the period's counters and one unordered insert keyed on the unique (tenantId, period) index, whose
duplicate key errors tell the snapshots a run before (or one running at the same time) wrote; a third,
a read of those snapshots, only when there are some. The caller runs it inside `unscoped()`: every
document read or written names its tenant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bson import ObjectId

from app import clock
from app.db import insert_missing, stored_like
from app.tenants.models import GAUGES, Usage
from app.tenants.plans import LIMIT_NAMES, effective_limits

from .models import UsageCounter, UsageSnapshot

# What a snapshot reads of a tenant (stored names).
SNAPSHOT_FIELDS = ("plan", "limits", "usage")


def _resources(tenant: Mapping[str, Any], counters: dict[str, int]) -> dict[str, dict[str, Any]]:
    limits = effective_limits(tenant["plan"], tenant.get("limits") or {})
    gauges = tenant.get("usage", {})
    resources = {}
    for name in LIMIT_NAMES:
        used = (
            gauges.get(Usage._fields[GAUGES[name]].db_field, 0) if name in GAUGES else counters.get(name, 0)
        )
        resources[name] = {"used": used, "limit": limits[name]}
    return resources


def snapshot_usage(
    tenants: Sequence[Mapping[str, Any]], period: str
) -> dict[Any, tuple[dict[str, Any], bool]]:
    """Snapshot what each of `tenants` (as stored, with SNAPSHOT_FIELDS) used in `period`, unless it is
    snapshotted already; return, by tenant id, the stored snapshot's resources and whether this call
    wrote it."""
    ids = [tenant["_id"] for tenant in tenants]
    counters: dict[Any, dict[str, int]] = {tenant_id: {} for tenant_id in ids}
    found = UsageCounter.objects(tenant_id__in=ids, period=period).only("tenant_id", "resource", "used")
    for counter in found.as_pymongo():
        counters[counter["tenantId"]][counter["resource"]] = counter["used"]
    rows = [
        {
            "id": ObjectId(),
            "tenant_id": tenant["_id"],
            "plan": tenant["plan"],
            "resources": _resources(tenant, counters[tenant["_id"]]),
        }
        for tenant in tenants
    ]
    if not rows:
        return {}
    template = UsageSnapshot(**rows[0], period=period, closed_at=clock.utcnow())
    written = insert_missing(UsageSnapshot._get_collection(), stored_like(template, rows))
    snapshots = {snap["tenantId"]: (snap["resources"], True) for snap in written}
    earlier = [tenant_id for tenant_id in ids if tenant_id not in snapshots]
    if earlier:
        stored = UsageSnapshot.objects(tenant_id__in=earlier, period=period).only("tenant_id", "resources")
        snapshots.update({snap["tenantId"]: (snap["resources"], False) for snap in stored.as_pymongo()})
    return snapshots
