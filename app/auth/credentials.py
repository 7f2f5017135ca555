"""Read the request's credential into a Principal, rechecking the account on every request.

A token is only as good as the account behind it now: a deactivated user, a user moved out of the
tenant, a deleted tenant, a revoked token, and a token issued before its account's sessions were ended
(its `ver` is not the account's token version: a new password, 2FA turned on or off, a deactivation)
stop working on the next request, not when the token expires; so does a password session the tenant's
rules no longer admit (single sign-on only, 2FA required). The role used for authorization is the
account's current role, and an API key acts with at most its creator's. The answers come from the
per-process auth cache (app/auth/cache.py): a change made in another process counts there within
AUTH_CACHE_TTL seconds.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from flask import request

from app import clock
from app.errors import TokenRevoked, Unauthorized
from app.tenancy.access import SUPERADMIN, Principal, Rule
from app.tenancy.context import tenant_scope
from app.tenants.directory import tenant_by_id
from app.tenants.service import require_feature
from app.users.models import PlatformUser, User

from . import tokens
from .cache import auth_cache
from .models import ApiKey
from .sso import password_login_allowed
from .two_factor import ENROLLMENT_SCOPE

API_KEY_PREFIX = "tmk"
SESSION_ENDED = (
    "This session has ended (the account's password, two-factor authentication or status changed): "
    "sign in again"
)
LAST_USED_RESOLUTION = timedelta(minutes=1)


def authenticate(rule: Rule) -> Principal | None:
    """Return the caller, None without a credential; raise 401 for a credential that is not valid."""
    authorization = request.headers.get("Authorization", "")
    api_key = request.headers.get("X-API-Key", "")
    if authorization and api_key:
        raise Unauthorized("Send one credential: a bearer token or an API key")
    if api_key:
        return _api_key_principal(api_key)
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use 'Authorization: Bearer <token>'")
    claims = tokens.decode(token.strip())
    if claims.get("type") != rule.token_type:
        raise Unauthorized(f"This route takes an {rule.token_type} token")
    if claims.get("scope") == ENROLLMENT_SCOPE and not rule.enrollment:
        raise Unauthorized("This token only enrols two-factor authentication")
    tokens.check_not_revoked(claims)
    return _token_principal(claims)


def _token_principal(claims: dict[str, Any]) -> Principal:
    subject: str = claims["sub"]  # decode() refuses a token without one
    via = f"{claims['type']}_token"
    if claims.get("role") == SUPERADMIN:
        admin = _current_superadmin(subject, claims)
        return Principal(
            subject=subject, role=SUPERADMIN, tenant_id=None, via=via, account=admin, claims=claims
        )
    tenant = tenant_by_id(claims.get("tenantId"))
    if tenant is None or not ObjectId.is_valid(subject):
        raise Unauthorized("The account of this token no longer exists")
    user = auth_cache().get(("user", tenant.id, subject), lambda: _user(tenant, subject))
    if user is None or not user.active:
        raise Unauthorized("The account of this token is no longer active")
    _check_version(user, claims)
    impersonator = None
    if "act" in claims:
        impersonator = str(_current_superadmin(claims["act"].get("sub"), claims["act"]).id)
    else:
        _check_sign_in_rules(tenant, user, claims)
    return Principal(
        subject=subject,
        role=user.role,
        tenant_id=tenant.id,
        via=via,
        account=user,
        impersonator=impersonator,
        claims=claims,
    )


def _check_version(account: User | PlatformUser, claims: dict[str, Any]) -> None:
    """Refuse a token issued before a change that ended its account's sessions (app.auth.tokens)."""
    if tokens.version_of(claims) != account.token_version:
        raise TokenRevoked(SESSION_ENDED)


def _check_sign_in_rules(tenant: Any, user: User, claims: dict[str, Any]) -> None:
    """Refuse a password session that the tenant's rules do not admit now: where single sign-on has
    replaced passwords, or without a second factor where the tenant requires one. (Turning require2fa
    on also ends the sessions of the users without 2FA for good: app.tenants.service.)"""
    methods = tokens.signed_in_by(claims)
    if tokens.PASSWORD not in methods:
        return
    if not password_login_allowed(tenant, user):
        raise Unauthorized("This tenant signs in with single sign-on now: sign in again through it")
    second_factor = tokens.ONE_TIME_CODE in methods or claims.get("scope") == ENROLLMENT_SCOPE
    if tenant.settings.security.require_2fa and not second_factor:
        raise Unauthorized(
            "This tenant requires two-factor authentication: sign in again with your one-time code"
        )


def fresh_account(principal: Principal) -> User | PlatformUser:
    """Load the person behind a token again (the principal's account is cached, shared and may be
    AUTH_CACHE_TTL seconds old): to change it or to show it."""
    if principal.is_superadmin:
        account = PlatformUser.objects(id=principal.subject).first()
    else:
        account = _user(tenant_by_id(principal.tenant_id), principal.subject)
    if account is None:
        raise Unauthorized("The account of this token no longer exists")
    return account


def _user(tenant: Any, subject: str) -> User | None:
    with tenant_scope(tenant):
        return User.objects(id=subject).first()


def _current_superadmin(subject: Any, claims: dict[str, Any]) -> PlatformUser:
    """The active superadmin whose token (or whose impersonation's `act` claim) `claims` are."""
    admin = None
    if ObjectId.is_valid(subject):
        admin = auth_cache().get(("superadmin", subject), lambda: PlatformUser.objects(id=subject).first())
    if admin is None or not admin.active:
        raise Unauthorized("The account of this token is no longer active")
    _check_version(admin, claims)
    return admin


def _api_key(tenant: Any, key_hash: str) -> ApiKey | None:
    with tenant_scope(tenant):
        return ApiKey.objects(key_hash=key_hash).first()


# When this process last wrote each key's lastUsedAt (the cached key does not see its own update).
_last_used_written: dict[Any, datetime] = {}


def _note_use(tenant: Any, api_key: ApiKey) -> None:
    """Keep lastUsedAt to the minute: at most one write per key and minute from each process."""
    now = clock.utcnow()
    last = max(filter(None, (api_key.last_used_at, _last_used_written.get(api_key.id))), default=None)
    if last is not None and now - last <= LAST_USED_RESOLUTION:
        return
    _last_used_written[api_key.id] = now
    with tenant_scope(tenant):
        ApiKey.objects(id=api_key.id).update_one(set__last_used_at=now)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# A key acts with at most its creator's current rights: the creator's role must reach the key's.
RANK = {"member": 0, "admin": 1, "owner": 2, SUPERADMIN: 3}


def _creator(tenant: Any, creator_id: str | None) -> User | PlatformUser | None:
    """The tenant user or the superadmin who created a key (None when neither exists any more)."""
    if creator_id is None or not ObjectId.is_valid(creator_id):
        return None
    return _user(tenant, creator_id) or PlatformUser.objects(id=creator_id).first()


def _check_creator(tenant: Any, api_key: ApiKey) -> None:
    """Refuse a key whose creator was deleted, is deactivated or no longer holds the key's role."""
    creator_id = api_key.created_by
    creator = auth_cache().get(("creator", tenant.id, creator_id), lambda: _creator(tenant, creator_id))
    if creator is None or not creator.active or RANK[creator.role] < RANK[api_key.role]:
        raise Unauthorized(
            "This API key no longer works: the person who created it was removed, deactivated or "
            "no longer holds its role"
        )


def _api_key_principal(key: str) -> Principal:
    """Keys look like tmk_<tenant id>_<secret>: the tenant id scopes the lookup of the key's hash."""
    parts = key.strip().split("_")
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not ObjectId.is_valid(parts[1]):
        raise Unauthorized("The API key is not valid")
    tenant = tenant_by_id(parts[1])
    if tenant is None:
        raise Unauthorized("The API key is not valid")
    key_hash = hash_api_key(key.strip())
    api_key = auth_cache().get(("api_key", tenant.id, key_hash), lambda: _api_key(tenant, key_hash))
    if api_key is None:
        raise Unauthorized("The API key is not valid")
    _check_creator(tenant, api_key)
    require_feature(tenant, "apiAccess")
    _note_use(tenant, api_key)
    return Principal(
        subject=str(api_key.id), role=api_key.role, tenant_id=tenant.id, via="api_key", account=api_key
    )
