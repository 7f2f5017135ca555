"""Recount each tenant's gauges from its data and repair drift, recording every repair.

Drift comes from crashes between a reservation and its refund. A repair only applies if the gauge
still holds the value read before counting, so a reservation made meanwhile is never overwritten;
the next run looks again. The count of active owners is repaired on a later run than the one that saw
it disagree, and only if no change of an owner began in between (app.users.owners).
"""

from __future__ import annotations

import logging
from typing import Any

from app.audit.models import Actor
from app.audit.service import record
from app.campaigns.models import Campaign
from app.clock import utcnow
from app.media.models import MediaFile
from app.messages.models import Message
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.usage.models import UsageCounter
from app.usage.service import GAUGES, period_bounds, period_of
from app.users.models import EmailDirectory, User
from app.users.owners import count_active_owners
from app.users.owners import repair_count as repair_owner_count
from app.webhooks.models import Webhook

from .common import each_tenant

log = logging.getLogger("app.jobs")


def count_gauges() -> dict[str, int]:
    """Count, in the tenant in context, what each gauge should say."""
    storage = sum(media.size for media in MediaFile.objects(complete=True).only("size"))
    return {
        "users": User.objects(erased_at=None).count(),
        "campaigns": Campaign.objects.count(),
        "telegramAccounts": TelegramAccount.objects.count(),
        "webhooks": Webhook.objects.count(),
        "storage": storage,
    }


def reconcile_tenant(tenant: Tenant) -> dict[str, Any]:
    """Repair one tenant's drifting gauges; return {gauge: {from, to}} for the repairs made."""
    repairs = {}
    with tenant_scope(tenant):
        counted = count_gauges()
        for name, actual in counted.items():
            field = GAUGES[name]
            stored = getattr(tenant.usage, field)
            if stored == actual:
                continue
            unchanged = {f"usage__{field}": stored}
            if Tenant.objects(id=tenant.id, **unchanged).update_one(**{f"set__usage__{field}": actual}):
                repairs[name] = {"from": stored, "to": actual}
        owners = repair_owner_count(tenant.id, utcnow())
        if owners is not None:
            repairs["activeOwners"] = owners
        if repairs:
            record("usage.reconciled", target_type="usage", summary=repairs, actor=Actor(kind="system"))
    return repairs


def run() -> dict[str, int]:
    """Reconcile every tenant."""
    checked = repaired = 0
    for tenant in each_tenant():
        checked += 1
        repairs = reconcile_tenant(tenant)
        if repairs:
            repaired += 1
            log.warning("usage drift repaired", extra={"tenant": tenant.slug, "repairs": repairs})
    return {"tenants": checked, "repaired": repaired}


def recompute_tenant_usage(tenant: Tenant) -> dict[str, int]:
    """Set every gauge and this month's message counter from the data, and fill the email directory
    (after a migration, when the counters have never been kept)."""
    with tenant_scope(tenant):
        gauges = count_gauges()
        Tenant.objects(id=tenant.id).update_one(
            **{f"set__usage__{GAUGES[k]}": v for k, v in gauges.items()},
            set__owners__active=count_active_owners(),
        )
        period = period_of(utcnow())
        start, end = period_bounds(period)
        queued = Message.objects(queued_at__gte=start, queued_at__lt=end).count()
        UsageCounter.objects(resource="messagesPerMonth", period=period).update_one(
            set__used=queued, upsert=True
        )
        for user in User.objects(erased_at=None).only("id", "email"):
            EmailDirectory.objects(email=user.email, tenant_id=tenant.id).update_one(
                set__user_id=user.id, upsert=True
            )
    return {**gauges, "messagesPerMonth": queued}
