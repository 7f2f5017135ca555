"""Read the request's credential into a Principal, rechecking the account on every request.

A token is only as good as the account behind it now: a deactivated user, a user moved out of the
tenant, a deleted tenant or a revoked token stop working on the next request, not when the token
expires. The role used for authorization is the account's current role.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from bson import ObjectId
from flask import request

from app.clock import utcnow
from app.errors import Unauthorized
from app.tenancy.access import SUPERADMIN, Principal, Rule
from app.tenancy.context import tenant_scope
from app.tenancy.resolver import tenant_by_id
from app.tenants.service import require_feature
from app.users.models import PlatformUser, User

from . import tokens
from .models import ApiKey
from .two_factor import ENROLLMENT_SCOPE

API_KEY_PREFIX = "tmk"
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
    subject = claims.get("sub")
    via = f"{claims['type']}_token"
    if claims.get("role") == SUPERADMIN:
        admin = _active_superadmin(subject)
        return Principal(
            subject=subject, role=SUPERADMIN, tenant_id=None, via=via, account=admin, claims=claims
        )
    tenant = tenant_by_id(claims.get("tenantId"))
    if tenant is None or not ObjectId.is_valid(subject):
        raise Unauthorized("The account of this token no longer exists")
    with tenant_scope(tenant):
        user = User.objects(id=subject).first()
    if user is None or not user.active:
        raise Unauthorized("The account of this token is no longer active")
    impersonator = None
    if "act" in claims:
        impersonator = str(_active_superadmin(claims["act"].get("sub")).id)
    return Principal(
        subject=subject,
        role=user.role,
        tenant_id=tenant.id,
        via=via,
        account=user,
        impersonator=impersonator,
        claims=claims,
    )


def _active_superadmin(subject: Any) -> PlatformUser:
    admin = PlatformUser.objects(id=subject).first() if ObjectId.is_valid(subject) else None
    if admin is None or not admin.active:
        raise Unauthorized("The account of this token is no longer active")
    return admin


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _api_key_principal(key: str) -> Principal:
    """Keys look like tmk_<tenant id>_<secret>: the tenant id scopes the lookup of the key's hash."""
    parts = key.strip().split("_")
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not ObjectId.is_valid(parts[1]):
        raise Unauthorized("The API key is not valid")
    tenant = tenant_by_id(parts[1])
    if tenant is None:
        raise Unauthorized("The API key is not valid")
    with tenant_scope(tenant):
        api_key = ApiKey.objects(key_hash=hash_api_key(key.strip())).first()
        if api_key is None:
            raise Unauthorized("The API key is not valid")
        require_feature(tenant, "apiAccess")
        now = utcnow()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects(id=api_key.id).update_one(set__last_used_at=now)
    return Principal(
        subject=str(api_key.id), role=api_key.role, tenant_id=tenant.id, via="api_key", account=api_key
    )
