"""Webhooks of a tenant and the deliveries queued for them (the outbox of tenant events)."""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.documents import TenantDocument

WEBHOOK_EVENTS = (
    "campaign.completed",
    "campaign.failed",
    "campaign.winner_chosen",
    "message.failed",
    "usage.threshold",
    "tenant.suspended",
    "tenant.activated",
    "webhook.disabled",
    "invoice.created",
    "invoice.paid",
    "invoice.overdue",
    "trial.ended",
)
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class Webhook(TenantDocument):
    url = me.StringField(required=True, max_length=2048)
    events = me.ListField(me.StringField(choices=WEBHOOK_EVENTS), required=True)
    secret_encrypted = me.StringField(db_field="secretEncrypted", required=True)
    active = me.BooleanField(default=True)
    consecutive_failures = me.IntField(db_field="consecutiveFailures", default=0, min_value=0)
    disabled_reason = me.StringField(db_field="disabledReason", max_length=500)
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)
    updated_at = me.DateTimeField(db_field="updatedAt", default=clock.utcnow)

    # Left out of GDPR exports.
    export_exclude = ("secret_encrypted",)

    meta = {
        "collection": "webhooks",
        "indexes": [
            {"fields": ["tenant_id", "-created_at", "-id"]},
            {"fields": ["tenant_id", "active", "-created_at", "-id"]},
            {"fields": ["tenant_id", "active", "events"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }

    def clean(self) -> None:
        self.updated_at = clock.utcnow()


class WebhookDelivery(TenantDocument):
    """One event for one webhook: pending until delivered or given up."""

    webhook_id = me.ObjectIdField(db_field="webhookId", required=True)
    event = me.StringField(required=True, choices=WEBHOOK_EVENTS)
    payload = me.DictField(required=True)
    status = me.StringField(required=True, choices=DELIVERY_STATUSES, default="pending")
    attempts = me.IntField(default=0, min_value=0)
    next_attempt_at = me.DateTimeField(db_field="nextAttemptAt", default=clock.utcnow)
    last_error = me.StringField(db_field="lastError", max_length=500)
    claimed_by = me.StringField(db_field="claimedBy")  # the dispatcher that last attempted it
    attempt_log = me.ListField(me.DictField(), db_field="attemptLog", default=list)
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)
    delivered_at = me.DateTimeField(db_field="deliveredAt")

    meta = {
        "collection": "webhook_deliveries",
        "indexes": [
            {"fields": ["tenant_id", "status", "next_attempt_at"]},
            # A webhook's claims (its due deliveries in order) and its next due delivery.
            {"fields": ["tenant_id", "webhook_id", "status", "next_attempt_at"]},
            {"fields": ["tenant_id", "webhook_id", "-created_at", "-id"]},
            {"fields": ["tenant_id", "created_at"]},
            # The retention purge: finished deliveries older than the window.
            {"fields": ["tenant_id", "status", "created_at"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }
