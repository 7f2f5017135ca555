"""Recount the gauges of every tenant from its data and repair drift, recording every repair.

Drift comes from crashes between a reservation and its refund. Tenants are recounted a batch at a time
(app.tenants.batches), each batch in a constant number of operations whatever its size: one
aggregation per counted collection over the batch's tenants, grouped by tenantId; one bulk write of
the repairs, one update per distinct repair (a gauge, the value read and the value counted) naming
every tenant it repairs; one insert of the audit entries. A repair only applies if the gauge still
holds the value read before counting, so a reservation made meanwhile is never overwritten (the next
run looks again); a repair is recorded when its write applied: when every condition held, as the
write's count of matched tenants tells, and otherwise (a write raced it) when a read of the repaired
tenants finds the gauge holding the counted value. The count of active owners is repaired on a later
run than the one that saw it disagree, and only if no change of an owner began in between
(app.users.owners).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import UpdateMany, UpdateOne

from app import clock
from app.audit.models import Actor
from app.audit.service import record_for_tenants
from app.campaigns.models import Campaign
from app.media.models import MediaFile
from app.messages.models import Message
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.collection import TENANT_FIELD
from app.tenancy.context import unscoped
from app.tenants.batches import tenant_batches
from app.tenants.models import GAUGES, Tenant, Usage
from app.tenants.plans import period_bounds, period_of
from app.usage.models import UsageCounter
from app.users.models import EmailDirectory, User
from app.users.owners import count_step
from app.webhooks.models import Webhook

log = logging.getLogger("app.usage")

RECOUNT_REASON = "usage reconcile: recount the gauges of a batch of tenants"
MIGRATION_REASON = "migration: recompute the default tenant's usage from its data"
SYSTEM = Actor(kind="system")
# What each gauge counts: its collection, the documents counted, and what each adds (1, or a field).
COUNTED: tuple[tuple[str, Any, dict[str, Any], Any], ...] = (
    ("users", User, {"erasedAt": None}, 1),
    ("campaigns", Campaign, {}, 1),
    ("telegramAccounts", TelegramAccount, {}, 1),
    ("webhooks", Webhook, {}, 1),
    ("storage", MediaFile, {"complete": True}, "$size"),
)
ACTIVE_OWNERS = {"role": "owner", "active": True, "erasedAt": None}
USERS_PER_BATCH = 1000


def _grouped(document_class: Any, tenant_ids: list[Any], match: dict[str, Any], adds: Any) -> dict[Any, int]:
    """Sum `adds` over the documents of `tenant_ids` that `match`, by tenant: one aggregation."""
    pipeline = [
        {"$match": {TENANT_FIELD: {"$in": tenant_ids}, **match}},
        {"$group": {"_id": f"${TENANT_FIELD}", "total": {"$sum": adds}}},
    ]
    return {row["_id"]: row["total"] for row in document_class._get_collection().aggregate(pipeline)}


def count_gauges(tenant_ids: list[Any]) -> dict[Any, dict[str, int]]:
    """Count what each gauge of each of `tenant_ids` should say (inside `unscoped()`)."""
    totals = {name: _grouped(cls, tenant_ids, match, adds) for name, cls, match, adds in COUNTED}
    return {tenant_id: {name: totals[name].get(tenant_id, 0) for name in totals} for tenant_id in tenant_ids}


def _stored_name(gauge: str) -> str:
    """The name a gauge is stored under in the tenant's `usage`."""
    return Usage._fields[GAUGES[gauge]].db_field


def recount_batch(tenants: Sequence[dict[str, Any]], now: datetime) -> dict[Any, dict[str, Any]]:
    """Repair the drifting gauges and owner counts of `tenants` (raw, with `usage` and `owners`, read
    before counting); return {tenant id: {gauge: {from, to}}} for the repairs made."""
    ids = [tenant["_id"] for tenant in tenants]
    with unscoped(RECOUNT_REASON):
        counted = count_gauges(ids)
        owners = _grouped(User, ids, ACTIVE_OWNERS, 1)
        repairs_by_value: dict[tuple[str, int, int], list[Any]] = {}
        steps: list[UpdateOne] = []
        proposed: dict[Any, dict[str, dict[str, int]]] = {}
        for tenant in tenants:
            tenant_id, stored = tenant["_id"], tenant.get("usage", {})
            for name, actual in counted[tenant_id].items():
                before = stored.get(_stored_name(name), 0)
                if before != actual:
                    repairs_by_value.setdefault((name, before, actual), []).append(tenant_id)
                    proposed.setdefault(tenant_id, {})[name] = {"from": before, "to": actual}
            step = count_step(tenant_id, tenant.get("owners"), owners.get(tenant_id, 0), now)
            if step is not None:
                steps.append(step.write)
                if step.repair is not None:
                    proposed.setdefault(tenant_id, {})["activeOwners"] = step.repair
        writes: list[UpdateOne | UpdateMany] = [
            UpdateMany(
                {"_id": {"$in": ids}, f"usage.{_stored_name(name)}": before},
                {"$set": {f"usage.{_stored_name(name)}": actual}},
            )
            for (name, before, actual), ids in repairs_by_value.items()
        ]
        writes += steps
        expected = sum(len(ids) for ids in repairs_by_value.values()) + len(steps)
        matched = Tenant._get_collection().bulk_write(writes, ordered=False).matched_count if writes else 0
        repairs = proposed if matched == expected else _applied(proposed)
        record_for_tenants(
            "usage.reconciled",
            [(tenant_id, None, summary) for tenant_id, summary in repairs.items()],
            target_type="usage",
            actor=SYSTEM,
        )
    return repairs


def _applied(proposed: dict[Any, dict[str, dict[str, int]]]) -> dict[Any, dict[str, Any]]:
    """The proposed repairs that the tenants hold now (a write whose condition failed holds none)."""
    if not proposed:
        return {}
    now_stored = Tenant.objects(id__in=list(proposed)).only("usage", "owners").as_pymongo()
    repairs = {}
    for tenant in now_stored:
        held = {}
        for name, change in proposed[tenant["_id"]].items():
            if name == "activeOwners":
                value = tenant.get("owners", {}).get("active")
            else:
                value = tenant.get("usage", {}).get(_stored_name(name))
            if value == change["to"]:
                held[name] = change
        if held:
            repairs[tenant["_id"]] = held
    return repairs


def recount_all(now: datetime) -> dict[str, int]:
    """Recount and repair every tenant's gauges, a batch at a time."""
    checked = repaired = 0
    for batch in tenant_batches("usage", "owners"):
        checked += len(batch)
        repairs = recount_batch(batch, now)
        repaired += len(repairs)
        if repairs:
            # What each repair was is in each tenant's audit log; the log names the tenants.
            log.warning("usage drift repaired", extra={"tenants": [str(tenant_id) for tenant_id in repairs]})
    return {"tenants": checked, "repaired": repaired}


def recompute_usage(tenant: Tenant) -> dict[str, int]:
    """Set every gauge, the count of active owners and this month's message counter of `tenant` from
    its data, and fill the email directory (after a migration, when the counters have never been
    kept): a constant number of operations, and one more per USERS_PER_BATCH users."""
    period = period_of(clock.utcnow())
    start, end = period_bounds(period)
    with unscoped(MIGRATION_REASON):
        gauges = count_gauges([tenant.id])[tenant.id]
        owners = _grouped(User, [tenant.id], ACTIVE_OWNERS, 1).get(tenant.id, 0)
        Tenant._get_collection().update_one(
            {"_id": tenant.id},
            {
                "$set": {
                    **{f"usage.{_stored_name(name)}": value for name, value in gauges.items()},
                    "owners.active": owners,
                }
            },
        )
        queued = Message.objects(tenant_id=tenant.id, queued_at__gte=start, queued_at__lt=end).count()
        UsageCounter._get_collection().update_one(
            {TENANT_FIELD: tenant.id, "resource": "messagesPerMonth", "period": period},
            {"$set": {"used": queued}},
            upsert=True,
        )
        users = User.objects(tenant_id=tenant.id, erased_at=None).only("id", "email")
        entries = [
            UpdateOne(
                {"email": user.email, TENANT_FIELD: tenant.id}, {"$set": {"userId": user.id}}, upsert=True
            )
            for user in users
        ]
    directory = EmailDirectory._get_collection()
    for first in range(0, len(entries), USERS_PER_BATCH):
        directory.bulk_write(entries[first : first + USERS_PER_BATCH], ordered=False)
    return {**gauges, "messagesPerMonth": queued}
