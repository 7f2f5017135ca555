"""Token revocations, API keys, impersonation sessions and single sign-on logins in flight."""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.documents import TenantDocument

API_KEY_ROLES = ("admin", "member")


class RevokedToken(me.Document):
    """A revoked token's id until the token would have expired anyway (then a TTL index removes it).

    Global on purpose: a token is checked for revocation before its tenant is trusted, superadmin
    tokens have no tenant, and a TTL index must be a single-field index (on expiresAt)."""

    jti = me.StringField(required=True, max_length=64)
    tenant_id = me.ObjectIdField(db_field="tenantId")
    expires_at = me.DateTimeField(db_field="expiresAt", required=True)
    revoked_at = me.DateTimeField(db_field="revokedAt", default=clock.utcnow)

    meta = {
        "collection": "revoked_tokens",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["jti"], "unique": True},
            {"fields": ["expires_at"], "expireAfterSeconds": 0},
        ],
    }


class ImpersonationSession(me.Document):
    """A superadmin acting as a tenant user, for at most 15 minutes.

    Global on purpose: it is the superadmin's session, not tenant data (the tenant's audit log keeps
    the lasting record), and its clean-up is a TTL index, which must be a single-field index."""

    jti = me.StringField(required=True, max_length=64)
    tenant_id = me.ObjectIdField(db_field="tenantId", required=True)
    user_id = me.ObjectIdField(db_field="userId", required=True)
    superadmin_id = me.ObjectIdField(db_field="superadminId", required=True)
    reason = me.StringField(required=True, max_length=500)
    started_at = me.DateTimeField(db_field="startedAt", default=clock.utcnow)
    expires_at = me.DateTimeField(db_field="expiresAt", required=True)

    meta = {
        "collection": "impersonation_sessions",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["jti"], "unique": True},
            {"fields": ["tenant_id"]},
            {"fields": ["expires_at"], "expireAfterSeconds": 0},
        ],
    }


class SsoLoginState(me.Document):
    """A single sign-on login in flight: the secrets of its authorization request, used at most once.

    Global on purpose: the provider sends the browser back with `state` alone, so the callback must find
    it before any tenant is known, and its clean-up is a TTL index, which must be a single-field index.
    The TTL keeps a state an hour past its expiry, so that a late or replayed callback is told apart
    from a made-up one (and audited in its tenant)."""

    state = me.StringField(required=True, max_length=128)
    tenant_id = me.ObjectIdField(db_field="tenantId", required=True)
    nonce = me.StringField(required=True, max_length=128)
    code_verifier = me.StringField(db_field="codeVerifier", required=True, max_length=128)
    redirect_uri = me.StringField(db_field="redirectUri", required=True, max_length=2048)
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)
    expires_at = me.DateTimeField(db_field="expiresAt", required=True)
    used_at = me.DateTimeField(db_field="usedAt")

    meta = {
        "collection": "sso_login_states",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["state"], "unique": True},
            {"fields": ["tenant_id"]},
            {"fields": ["expires_at"], "expireAfterSeconds": 3600},
        ],
    }


class ApiKey(TenantDocument):
    """A tenant's API key; only its SHA-256 is stored (the key itself is shown once, at creation)."""

    name = me.StringField(required=True, min_length=1, max_length=100)
    prefix = me.StringField(required=True, max_length=32)
    key_hash = me.StringField(db_field="keyHash", required=True)
    role = me.StringField(required=True, choices=API_KEY_ROLES, default="member")
    created_by = me.StringField(db_field="createdBy")
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)
    last_used_at = me.DateTimeField(db_field="lastUsedAt")

    # Left out of GDPR exports.
    export_exclude = ("key_hash",)

    meta = {
        "collection": "api_keys",
        "indexes": [
            {"fields": ["tenant_id", "key_hash"], "unique": True},
            {"fields": ["tenant_id", "-created_at", "-id"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }
