"""Bodies of the /auth and /api-keys routes, of signup and of impersonation."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app import validators
from app.fields import UtcDateTime
from app.tenants.plans import DEFAULT_PLAN, SELF_SERVICE_ONLY, SELF_SERVICE_PLANS
from app.tenants.schemas import ReasonSchema, TenantSchema
from app.tenants.slugs import SLUG_RE
from app.users.schemas import PASSWORD, UserSchema

from .models import API_KEY_ROLES


class LoginSchema(Schema):
    email = validators.Email(required=True, metadata={"example": "bill@initech.example.com"})
    password = fields.String(
        required=True, validate=validate.Length(min=1, max=128), metadata={"example": "tps-reports-1"}
    )
    code = fields.String(
        validate=validate.Length(min=6, max=32),
        metadata={"example": "492039", "description": "TOTP or recovery code (2FA)"},
    )


class TokensSchema(Schema):
    access_token = fields.String(data_key="accessToken", required=True)
    refresh_token = fields.String(data_key="refreshToken", required=True)


class LoginResponseSchema(TokensSchema):
    user = fields.Nested(UserSchema, required=True)
    tenant = fields.Nested(TenantSchema, allow_none=True, required=True)


class SsoStartArgs(Schema):
    landing = fields.String(
        validate=validate.OneOf(["dashboard"]),
        metadata={
            "description": "dashboard: the provider sends the browser back to the dashboard's sign-in page "
            "(/dashboard/sso), which finishes with GET /auth/sso/callback; without it, to that route itself",
            "example": "dashboard",
        },
    )


class SsoCallbackArgs(Schema):
    """What the identity provider sends back (RFC 6749 4.1.2, RFC 9207); other parameters are ignored."""

    state = fields.String(required=True, validate=validate.Length(min=1, max=128))
    code = fields.String(validate=validate.Length(min=1, max=2048))
    error = fields.String(validate=validate.Length(min=1, max=100))
    error_description = fields.String(validate=validate.Length(max=500))
    iss = fields.String(validate=validate.Length(max=2048))


class AccessTokenSchema(Schema):
    access_token = fields.String(data_key="accessToken", required=True)


class LogoutSchema(Schema):
    refresh_token = fields.String(
        data_key="refreshToken",
        validate=validate.Length(max=4096),
        metadata={"example": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"},
    )


class ImpersonatorSchema(Schema):
    id = fields.String()
    email = fields.String()


class CredentialSchema(Schema):
    type = fields.String(metadata={"description": "access_token or api_key"})
    role = fields.String()
    expires_at = UtcDateTime(data_key="expiresAt", allow_none=True)


class MeSchema(Schema):
    user = fields.Nested(UserSchema, allow_none=True, required=True)
    tenant = fields.Nested(TenantSchema, allow_none=True, required=True)
    impersonator = fields.Nested(ImpersonatorSchema, allow_none=True, required=True)
    credential = fields.Nested(CredentialSchema, required=True)


class ApiKeyCreateSchema(Schema):
    name = fields.String(required=True, validate=validators.NAME, metadata={"example": "CI pipeline"})
    role = fields.String(load_default="member", validate=validate.OneOf(API_KEY_ROLES))


class ApiKeySchema(Schema):
    id = fields.String()
    name = fields.String()
    prefix = fields.String()
    role = fields.String()
    created_by = fields.String(data_key="createdBy", allow_none=True)
    created_at = UtcDateTime(data_key="createdAt")
    last_used_at = UtcDateTime(data_key="lastUsedAt", allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(required=True, metadata={"description": "Shown once; store it now"})


class TwoFactorCodeSchema(Schema):
    code = fields.String(
        required=True, validate=validate.Length(min=6, max=32), metadata={"example": "492039"}
    )


class TwoFactorSetupSchema(Schema):
    secret = fields.String(required=True, metadata={"description": "Base32 TOTP secret"})
    otpauth_uri = fields.String(data_key="otpauthUri", required=True)
    qr_code = fields.String(
        data_key="qrCode",
        required=True,
        metadata={"description": "The otpauth:// URI as a QR code to scan: an SVG data: URI"},
    )


class RecoveryCodesSchema(Schema):
    recovery_codes = fields.List(fields.String(), data_key="recoveryCodes", required=True)
    access_token = fields.String(
        data_key="accessToken",
        metadata={"description": "With an enrollment token only: the login it completes, signed in with 2FA"},
    )
    refresh_token = fields.String(data_key="refreshToken", metadata={"description": "As accessToken"})


class SignupTenantSchema(Schema):
    name = fields.String(required=True, validate=validators.NAME, metadata={"example": "Initech"})
    slug = fields.String(
        validate=validate.Length(min=3, max=63),
        metadata={
            "example": "initech",
            "pattern": f"^{SLUG_RE.pattern}$",
            "description": "Made from the name when left out; some words (api, www, ...) are reserved",
        },
    )


class SignupUserSchema(Schema):
    email = validators.Email(required=True, metadata={"example": "bill@initech.example.com"})
    password = fields.String(required=True, validate=PASSWORD, metadata={"example": "tps-reports-1"})
    name = fields.String(required=True, validate=validators.NAME, metadata={"example": "Bill Lumbergh"})


class SignupSchema(Schema):
    tenant = fields.Nested(SignupTenantSchema, required=True)
    user = fields.Nested(SignupUserSchema, required=True)
    plan = fields.String(
        load_default=DEFAULT_PLAN,
        validate=validate.OneOf(SELF_SERVICE_PLANS, error=SELF_SERVICE_ONLY),
        metadata={"description": "a paid plan starts as a trial; enterprise is set up by the platform"},
    )


class SignupResponseSchema(Schema):
    tenant = fields.Nested(TenantSchema, required=True)
    user = fields.Nested(UserSchema, required=True)
    access_token = fields.String(data_key="accessToken", required=True)
    refresh_token = fields.String(data_key="refreshToken", required=True)


class ImpersonateSchema(ReasonSchema):
    user_id = fields.String(
        data_key="userId", validate=validators.object_id, metadata={"example": "665f1c2ab4e0c9a1d2e3f405"}
    )


class ImpersonationSchema(Schema):
    access_token = fields.String(data_key="accessToken", required=True)
    expires_at = UtcDateTime(data_key="expiresAt", required=True)
    user = fields.Nested(UserSchema, required=True)
