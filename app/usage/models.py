"""Counters of monthly resources, one document per tenant, resource and period ("2026-11")."""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.documents import TenantDocument


class UsageCounter(TenantDocument):
    """What a tenant used of a monthly resource in one period. A new period is a new document, so a
    new month starts at zero without any job having run."""

    resource = me.StringField(required=True, max_length=50)
    period = me.StringField(required=True, regex=r"^\d{4}-\d{2}$")
    used = me.IntField(required=True, default=0, min_value=0)

    meta = {
        "collection": "usage_counters",
        "indexes": [
            {"fields": ["tenant_id", "resource", "period"], "unique": True},
            # The monthly close reads a tenant's counters of one period.
            {"fields": ["tenant_id", "period"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }


class UsageAlert(TenantDocument):
    """A threshold (a percentage of a limit) that a resource crossed in a period: recorded once."""

    resource = me.StringField(required=True, max_length=50)
    period = me.StringField(required=True, regex=r"^\d{4}-\d{2}$")
    threshold = me.IntField(required=True, min_value=1, max_value=100)
    used = me.LongField(required=True)
    limit = me.LongField(required=True)
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)

    meta = {
        "collection": "usage_alerts",
        "indexes": [
            {"fields": ["tenant_id", "resource", "period", "threshold"], "unique": True},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }


class UsageSnapshot(TenantDocument):
    """What a tenant used of every limit in a closed period: written once, for billing."""

    period = me.StringField(required=True, regex=r"^\d{4}-\d{2}$")
    plan = me.StringField(required=True)
    resources = me.DictField(required=True)
    closed_at = me.DateTimeField(db_field="closedAt", default=clock.utcnow)

    meta = {
        "collection": "usage_snapshots",
        "indexes": [
            {"fields": ["tenant_id", "period"], "unique": True},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }
