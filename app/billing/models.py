"""Invoices of a tenant, and the payment provider's events already handled."""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.documents import TenantDocument

INVOICE_STATUSES = ("open", "paid", "void", "uncollectible")


class Invoice(TenantDocument):
    """The bill of one closed period: numbered per tenant without gaps, one per period."""

    number = me.IntField(required=True, min_value=1)
    period = me.StringField(required=True, regex=r"^\d{4}-\d{2}$")
    plan = me.StringField(required=True)
    # The monthly price at the close, and where the billed part of the period starts (its end when
    # nothing is billed): the amount is the price pro rata from there, so trial days cost nothing.
    price_cents = me.IntField(db_field="priceCents", min_value=0)
    billed_from = me.DateTimeField(db_field="billedFrom")
    amount_cents = me.IntField(db_field="amountCents", required=True, min_value=0)
    currency = me.StringField(required=True, default="USD", max_length=3)
    status = me.StringField(required=True, choices=INVOICE_STATUSES, default="open")
    usage = me.DictField()
    issued_at = me.DateTimeField(db_field="issuedAt", default=clock.utcnow)
    due_at = me.DateTimeField(db_field="dueAt", required=True)
    paid_at = me.DateTimeField(db_field="paidAt")
    closed_at = me.DateTimeField(db_field="closedAt")
    provider_ref = me.StringField(db_field="providerRef", max_length=200)

    meta = {
        "collection": "invoices",
        "indexes": [
            {"fields": ["tenant_id", "number"], "unique": True},
            {"fields": ["tenant_id", "period"], "unique": True},
            {"fields": ["tenant_id", "status", "due_at"]},
            {"fields": ["tenant_id", "status", "number"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }


class ProcessedEvent(me.Document):
    """A payment provider's event already handled (webhooks are delivered at least once).

    Global on purpose: the provider's event ids are unique across tenants and checked before the event
    is trusted to name one; and its clean-up is a TTL index, which must be single-field."""

    provider = me.StringField(required=True, max_length=20)
    event_id = me.StringField(db_field="eventId", required=True, max_length=255)
    received_at = me.DateTimeField(db_field="receivedAt", default=clock.utcnow)
    expires_at = me.DateTimeField(db_field="expiresAt", required=True)

    meta = {
        "collection": "processed_payment_events",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["provider", "event_id"], "unique": True},
            {"fields": ["expires_at"], "expireAfterSeconds": 0},
        ],
    }
