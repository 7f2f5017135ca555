"""The retention purge: delete what each tenant's retention window no longer covers, that is finished
messages, webhook deliveries and audit entries older than `dataRetentionDays` (RETENTION_DEFAULT_DAYS
when unset), for tenants with GDPR enabled or a retention set.

Tenants are purged a batch at a time (app.tenants.batches): one bulk write of deletes per collection
for the whole batch, one delete per retention window the batch holds, each naming its tenants. A
second run finds nothing to delete.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from pymongo import DeleteMany

from app.audit.models import AuditLog
from app.messages.models import Message
from app.tenancy.collection import TENANT_FIELD
from app.tenancy.context import unscoped
from app.tenants.batches import tenant_batches
from app.webhooks.models import WebhookDelivery

log = logging.getLogger("app.tenants")

PURGE_REASON = "retention purge: delete a batch of tenants' documents past their retention"
FINISHED_MESSAGES = ("sent", "failed", "cancelled")
FINISHED_DELIVERIES = ("delivered", "failed")
# What each collection keeps: the documents a purge may delete, and the time that ages them.
RETAINED: tuple[tuple[str, Any, dict[str, Any], str], ...] = (
    ("messages", Message, {"status": {"$in": list(FINISHED_MESSAGES)}}, "queuedAt"),
    ("webhookDeliveries", WebhookDelivery, {"status": {"$in": list(FINISHED_DELIVERIES)}}, "createdAt"),
    ("auditLogs", AuditLog, {}, "createdAt"),
)


def retention_days(tenant: dict[str, Any]) -> int | None:
    """The days a tenant (as stored) keeps its finished documents; None when it asks for no purge."""
    compliance = tenant.get("settings", {}).get("compliance", {})
    days = compliance.get("dataRetentionDays")
    if not compliance.get("gdprEnabled") and days is None:
        return None
    return days or current_app.config["RETENTION_DEFAULT_DAYS"]


def purge_expired_batch(tenants: Sequence[dict[str, Any]], now: datetime) -> dict[str, int]:
    """Delete the documents of `tenants` (as stored, with their compliance settings) that their
    retention window no longer covers; return how many tenants have a window and what was deleted."""
    by_cutoff: dict[datetime, list[Any]] = {}
    for tenant in tenants:
        days = retention_days(tenant)
        if days is not None:
            by_cutoff.setdefault(now - timedelta(days=days), []).append(tenant["_id"])
    removed = {"tenants": sum(len(ids) for ids in by_cutoff.values())}
    if not by_cutoff:
        return {**removed, **{name: 0 for name, *_rest in RETAINED}}
    with unscoped(PURGE_REASON):
        for name, document_class, finished, aged_by in RETAINED:
            deletes = [
                DeleteMany({TENANT_FIELD: {"$in": ids}, **finished, aged_by: {"$lt": cutoff}})
                for cutoff, ids in by_cutoff.items()
            ]
            removed[name] = document_class._get_collection().bulk_write(deletes, ordered=False).deleted_count
    return removed


def purge_expired(now: datetime) -> dict[str, int]:
    """Purge every tenant that has a retention window, a batch at a time."""
    totals = {"tenants": 0, "messages": 0, "webhookDeliveries": 0, "auditLogs": 0}
    for batch in tenant_batches("settings.compliance"):
        removed = purge_expired_batch(batch, now)
        for name, count in removed.items():
            totals[name] += count
        if any(count for name, count in removed.items() if name != "tenants"):
            log.info("retention purge", extra=removed)
    return totals
