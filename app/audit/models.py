"""The audit trail: per tenant (AuditLog), and the platform's own for superadmin actions."""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.documents import TenantDocument

ACTOR_KINDS = ("user", "api_key", "superadmin", "system", "anonymous")


class Actor(me.EmbeddedDocument):
    kind = me.StringField(required=True, choices=ACTOR_KINDS)
    id = me.StringField()
    label = me.StringField(max_length=254)  # the email at the time; pseudonymized on erasure
    impersonator_id = me.StringField(db_field="impersonatorId")
    impersonator_label = me.StringField(db_field="impersonatorLabel", max_length=254)


class AuditLog(TenantDocument):
    """One security-relevant event of a tenant. Append-only: the API never changes or deletes one."""

    action = me.StringField(required=True, max_length=100)
    actor = me.EmbeddedDocumentField(Actor, required=True)
    target_type = me.StringField(db_field="targetType", max_length=50)
    target_id = me.StringField(db_field="targetId", max_length=100)
    summary = me.DictField()
    ip = me.StringField(max_length=64)
    request_id = me.StringField(db_field="requestId", max_length=64)
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)

    meta = {
        "collection": "audit_logs",
        "ordering": ["-created_at"],
        "indexes": [
            {"fields": ["tenant_id", "-created_at", "-id"]},
            {"fields": ["tenant_id", "action", "-created_at", "-id"]},
            {"fields": ["tenant_id", "actor.id", "-created_at", "-id"]},
            {"fields": ["tenant_id", "action", "actor.id", "-created_at", "-id"]},
            # An erasure's entries about the user.
            {"fields": ["tenant_id", "target_id"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }


class PlatformAuditLog(me.Document):
    """A superadmin action. Global on purpose: it must outlive the tenant it names (deletions)."""

    action = me.StringField(required=True, max_length=100)
    actor = me.EmbeddedDocumentField(Actor, required=True)
    tenant_id = me.ObjectIdField(db_field="tenantId")
    tenant_slug = me.StringField(db_field="tenantSlug", max_length=63)
    target_type = me.StringField(db_field="targetType", max_length=50)
    target_id = me.StringField(db_field="targetId", max_length=100)
    summary = me.DictField()
    ip = me.StringField(max_length=64)
    request_id = me.StringField(db_field="requestId", max_length=64)
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)

    meta = {
        "collection": "platform_audit_logs",
        "auto_create_index": False,
        "ordering": ["-created_at"],
        "indexes": [
            {"fields": ["-created_at", "-id"]},
            {"fields": ["tenant_id", "-created_at", "-id"]},
            {"fields": ["action", "-created_at", "-id"]},
            {"fields": ["tenant_slug", "-created_at", "-id"]},
            {"fields": ["tenant_id", "target_id"]},
        ],
    }
