"""People who sign in: tenant users (tenant-owned) and platform superadmins (global)."""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.access import TENANT_ROLES
from app.tenancy.documents import TenantDocument


class SignInFields:
    """What tenant users and superadmins share about signing in: the version of their sessions, and
    two-factor authentication (app.auth.two_factor)."""

    # Every token carries the version its account had when it was issued (claim `ver`); a change that
    # ends the account's sessions (password, two-factor, deactivation) increments it (app.auth.tokens).
    token_version = me.IntField(db_field="tokenVersion", default=0, min_value=0)
    two_factor_enabled = me.BooleanField(db_field="twoFactorEnabled", default=False)
    totp_secret_encrypted = me.StringField(db_field="totpSecretEncrypted")
    totp_last_step = me.LongField(db_field="totpLastStep")
    recovery_code_hashes = me.ListField(me.StringField(), db_field="recoveryCodeHashes", default=list)


class User(SignInFields, TenantDocument):
    """A member of one tenant; the same email may exist in several tenants."""

    email = me.EmailField(required=True, max_length=254)
    name = me.StringField(required=True, min_length=1, max_length=100)
    role = me.StringField(required=True, choices=TENANT_ROLES, default="member")
    active = me.BooleanField(default=True)
    password_hash = me.StringField(db_field="passwordHash")
    last_login_at = me.DateTimeField(db_field="lastLoginAt")
    # Who the person is at the tenant's identity provider (its issuer and subject), bound at their first
    # single sign-on: later ones must come from the same subject, whatever email the provider sends.
    sso_issuer = me.StringField(db_field="ssoIssuer")
    sso_subject = me.StringField(db_field="ssoSubject")
    erased_at = me.DateTimeField(db_field="erasedAt")
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)
    updated_at = me.DateTimeField(db_field="updatedAt", default=clock.utcnow)

    # Left out of GDPR exports.
    export_exclude = ("password_hash", "totp_secret_encrypted", "recovery_code_hashes")

    meta = {
        "collection": "users",
        "indexes": [
            {"fields": ["tenant_id", "email"], "unique": True},
            {"fields": ["tenant_id", "role"]},
            {"fields": ["tenant_id", "-created_at"]},
            {"fields": ["tenant_id", "sso_subject", "sso_issuer"]},
            {"fields": ["tenant_id", "two_factor_enabled"]},
            # The users list (erased users left out), by role, by active flag or both, oldest first;
            # the owners count and impersonation's default owner use the last one.
            {"fields": ["tenant_id", "erased_at", "created_at", "id"]},
            {"fields": ["tenant_id", "erased_at", "role", "created_at", "id"]},
            {"fields": ["tenant_id", "erased_at", "active", "created_at", "id"]},
            {"fields": ["tenant_id", "erased_at", "role", "active", "created_at", "id"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }

    def clean(self) -> None:
        self.email = self.email.strip().lower() if self.email else self.email
        self.updated_at = clock.utcnow()


class PlatformUser(SignInFields, me.Document):
    """A platform superadmin. Global on purpose: superadmins belong to no tenant, and keeping them out of
    `users` lets the fail-closed core keep refusing to list tenant users without a tenant."""

    email = me.EmailField(required=True, max_length=254)
    name = me.StringField(required=True, min_length=1, max_length=100)
    role = me.StringField(required=True, choices=("superadmin",), default="superadmin")
    active = me.BooleanField(default=True)
    password_hash = me.StringField(db_field="passwordHash", required=True)
    last_login_at = me.DateTimeField(db_field="lastLoginAt")
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)

    meta = {
        "collection": "platform_users",
        "auto_create_index": False,
        "indexes": [{"fields": ["email"], "unique": True}],
    }

    def clean(self) -> None:
        self.email = self.email.strip().lower() if self.email else self.email


class EmailDirectory(me.Document):
    """Which tenants an email has a user in: how a login without a tenant hint finds its user.

    Global on purpose: a lookup by email alone across tenants would need an index on `users` that does
    not start with tenantId. The user service keeps it in step with `users`."""

    email = me.StringField(required=True, max_length=254)
    tenant_id = me.ObjectIdField(db_field="tenantId", required=True)
    user_id = me.ObjectIdField(db_field="userId", required=True)

    meta = {
        "collection": "email_directory",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["email", "tenant_id"], "unique": True},
            {"fields": ["tenant_id"]},
        ],
    }
