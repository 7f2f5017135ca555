"""Audit entries on the wire."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app import validators
from app.fields import UtcDateTime
from app.pagination import PageArgs


class ActorSchema(Schema):
    kind = fields.String()
    id = fields.String(allow_none=True)
    label = fields.String(allow_none=True)
    impersonator_id = fields.String(data_key="impersonatorId", allow_none=True)
    impersonator_label = fields.String(data_key="impersonatorLabel", allow_none=True)


class AuditLogSchema(Schema):
    id = fields.String()
    action = fields.String()
    actor = fields.Nested(ActorSchema)
    target_type = fields.String(data_key="targetType", allow_none=True)
    target_id = fields.String(data_key="targetId", allow_none=True)
    summary = fields.Dict()
    ip = fields.String(allow_none=True)
    request_id = fields.String(data_key="requestId", allow_none=True)
    created_at = UtcDateTime(data_key="createdAt")


class PlatformAuditLogSchema(AuditLogSchema):
    tenant_id = fields.String(data_key="tenantId", allow_none=True)
    tenant_slug = fields.String(data_key="tenantSlug", allow_none=True)


class AuditLogArgs(PageArgs):
    action = fields.String(validate=validate.Length(min=1, max=100))
    actor = fields.String(validate=validate.Length(min=1, max=100), metadata={"description": "actor id"})
    since = UtcDateTime()
    until = UtcDateTime()

    @validates_schema
    def _ordered(self, data: dict, **kwargs: object) -> None:
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError("since must not be after until", field_name="since")


class PlatformAuditLogArgs(AuditLogArgs):
    # Not `tenant`: ?tenant= is a tenant hint everywhere, and a deleted tenant is no longer one.
    tenant_id = fields.String(data_key="tenantId", validate=validators.object_id)
    tenant_slug = fields.String(data_key="tenantSlug", validate=validate.Length(min=1, max=63))
