"""How users look on the wire (never with a password hash)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app import validators
from app.fields import UtcDateTime
from app.pagination import PageArgs
from app.tenancy.access import TENANT_ROLES

PASSWORD = validate.Length(min=8, max=128)


class UserSchema(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    active = fields.Boolean()
    two_factor_enabled = fields.Boolean(data_key="twoFactorEnabled")
    tenant_id = fields.String(data_key="tenantId", allow_none=True)
    last_login_at = UtcDateTime(data_key="lastLoginAt", allow_none=True)
    created_at = UtcDateTime(data_key="createdAt")


class UserListArgs(PageArgs):
    role = fields.String(validate=validate.OneOf(TENANT_ROLES))
    active = fields.Boolean()


class UserCreateSchema(Schema):
    email = validators.Email(required=True, metadata={"example": "peter@initech.example.com"})
    name = fields.String(required=True, validate=validators.NAME, metadata={"example": "Peter Gibbons"})
    role = fields.String(load_default="member", validate=validate.OneOf(TENANT_ROLES))
    password = fields.String(required=True, validate=PASSWORD, metadata={"example": "flair-pieces-15"})


class UserPatchSchema(Schema):
    name = fields.String(validate=validators.NAME, metadata={"example": "Peter Gibbons"})
    role = fields.String(validate=validate.OneOf(TENANT_ROLES))
    active = fields.Boolean()
    password = fields.String(validate=PASSWORD, load_only=True, metadata={"example": "flair-pieces-15"})


class UserDeleteArgs(Schema):
    erase = fields.Boolean(load_default=False, metadata={"description": "GDPR erasure instead of deletion"})
