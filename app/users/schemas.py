"""How users look on the wire (never with a password hash)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

PASSWORD = validate.Length(min=8, max=128)
NAME = validate.Length(min=1, max=100)


class UserSchema(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    active = fields.Boolean()
    tenant_id = fields.String(data_key="tenantId", allow_none=True)
    last_login_at = fields.AwareDateTime(data_key="lastLoginAt", allow_none=True)
    created_at = fields.AwareDateTime(data_key="createdAt")
