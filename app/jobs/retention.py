"""Delete what each tenant's retention window no longer covers: finished messages, webhook
deliveries and audit entries older than `dataRetentionDays` (RETENTION_DEFAULT_DAYS when unset).

It runs for tenants with GDPR enabled or a retention set. Each delete runs inside one tenant's
scope (outside one, a tenant-owned query raises); a second run finds nothing to delete.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app

from app.audit.models import AuditLog
from app.clock import utcnow
from app.messages.models import Message
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.webhooks.models import WebhookDelivery

from .common import each_tenant

log = logging.getLogger("app.jobs")

FINISHED_MESSAGES = ("sent", "failed", "cancelled")
FINISHED_DELIVERIES = ("delivered", "failed")


def purge_tenant(tenant: Tenant, now: datetime) -> dict[str, int] | None:
    """Purge one tenant; None when its settings ask for no retention."""
    compliance = tenant.settings.compliance
    if not compliance.gdpr_enabled and compliance.data_retention_days is None:
        return None
    days = compliance.data_retention_days or current_app.config["RETENTION_DEFAULT_DAYS"]
    cutoff = now - timedelta(days=days)
    with tenant_scope(tenant):
        return {
            "messages": Message.objects(status__in=FINISHED_MESSAGES, queued_at__lt=cutoff).delete(),
            "webhookDeliveries": WebhookDelivery.objects(
                status__in=FINISHED_DELIVERIES, created_at__lt=cutoff
            ).delete(),
            "auditLogs": AuditLog.objects(created_at__lt=cutoff).delete(),
        }


def run(now: datetime | None = None) -> dict[str, int]:
    """Purge every tenant that has a retention window."""
    now = now or utcnow()
    totals = {"tenants": 0, "messages": 0, "webhookDeliveries": 0, "auditLogs": 0}
    for tenant in each_tenant():
        removed = purge_tenant(tenant, now)
        if removed is None:
            continue
        totals["tenants"] += 1
        for name, count in removed.items():
            totals[name] += count
        if any(removed.values()):
            log.info("retention purge", extra={"tenant": tenant.slug, **removed})
    return totals
