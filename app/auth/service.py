"""Login, refresh, logout and 'who am I'."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app

from app import clock, wire
from app.audit.service import record, record_anonymous, record_platform
from app.errors import InvalidCredentials, TenantRequired, TenantSuspended, Unauthorized, ValidationFailed
from app.tenancy.access import Principal
from app.tenancy.context import current_tenant, tenant_scope
from app.tenancy.middleware import check_ip_whitelist
from app.tenants.directory import tenant_by_id
from app.tenants.models import Tenant
from app.tenants.service import current_tenant_to_show
from app.users.models import PlatformUser, User
from app.users.passwords import verify_password
from app.users.service import normalize_email, tenant_ids_of_email

from . import sso, tokens, two_factor
from .credentials import fresh_account
from .models import ImpersonationSession

# A login without a tenant hint looks at most this many tenants of one email.
MAX_TENANTS_PER_EMAIL = 20
NEVER = datetime.min.replace(tzinfo=UTC)


def _tenant_user(tenant: Tenant, email: str) -> User | None:
    with tenant_scope(tenant):
        return User.objects(email=email).first()


def _user_login(
    tenant: Tenant, user: User | None, password: str, address: str | None, code: str | None
) -> dict[str, Any]:
    """Check a tenant user's password, state, single sign-on rule and second factor; issue tokens."""
    if not verify_password(user.password_hash if user else None, password) or user is None or not user.active:
        if user is not None:
            subject = str(user.id)
            record_anonymous(
                "auth.login_failed", tenant=tenant, subject=subject, target_type="user", target_id=subject
            )
        raise InvalidCredentials()
    if not tenant.is_active:
        raise TenantSuspended()
    # Checked after the password, so that sso_required tells nothing to someone who does not know it.
    if not sso.password_login_allowed(tenant, user):
        record(
            "auth.login_failed",
            tenant=tenant,
            target_type="user",
            target_id=user.id,
            summary={"reason": "single sign-on required"},
        )
        raise sso.SsoRequired()
    check_ip_whitelist(tenant, address)
    with tenant_scope(tenant):
        second_factor = two_factor.check_login_code(user, code)
        user.last_login_at = clock.utcnow()
        User.objects(id=user.id).update_one(set__last_login_at=user.last_login_at)
    record("auth.login", tenant=tenant, target_type="user", target_id=user.id)
    # Issued for the token version read with the password hash just checked: a password change that
    # lands meanwhile ends these tokens too.
    issued = tokens.issue(user, [tokens.PASSWORD, *second_factor])
    return {**issued, "user": user, "tenant": tenant}


def _superadmin_login(admin: PlatformUser, password: str, code: str | None) -> dict[str, Any]:
    if not verify_password(admin.password_hash, password) or not admin.active:
        raise InvalidCredentials()
    second_factor = two_factor.check_login_code(admin, code)
    admin.last_login_at = clock.utcnow()
    PlatformUser.objects(id=admin.id).update_one(set__last_login_at=admin.last_login_at)
    record_platform("auth.login", target_type="superadmin", target_id=admin.id)
    return {**tokens.issue(admin, [tokens.PASSWORD, *second_factor]), "user": admin, "tenant": None}


def _last_signed_in(tenants: list[Tenant], email: str) -> tuple[Tenant, User] | None:
    """Return the active account of `email` in `tenants` that signed in last (of those that never did,
    the oldest)."""
    accounts = []
    for tenant in tenants:
        user = _tenant_user(tenant, email)
        if user is not None and user.active:
            accounts.append((tenant, user))

    def recency(account: tuple[Tenant, User]) -> tuple[datetime, float]:
        user = account[1]
        return user.last_login_at or NEVER, -user.created_at.timestamp()

    return max(accounts, key=recency, default=None)


def login(email: str, password: str, address: str | None, code: str | None = None) -> dict[str, Any]:
    """Log in with a tenant hint (the tenant in context) or, without one, by the email alone.

    Without a hint: a superadmin's email logs in as the superadmin; an email with one tenant logs into
    it; an email in several tenants is checked against the account it signed in with last, and when the
    password is right there, answered 409 tenant_required naming that tenant (and no other). Every
    request costs exactly one password check, whether the email exists or not and however many tenants
    it belongs to, and every failure looks the same.
    """
    email = normalize_email(email)
    tenant = current_tenant()
    # In single-tenant mode every request names the default tenant; superadmins still log in here.
    single_tenant = not current_app.config["ENABLE_MULTI_TENANT"]
    admin = PlatformUser.objects(email=email).first() if tenant is None or single_tenant else None
    if admin is not None:
        return _superadmin_login(admin, password, code)
    if tenant is not None:
        return _user_login(tenant, _tenant_user(tenant, email), password, address, code)
    tenants = [t for t in map(tenant_by_id, tenant_ids_of_email(email)[:MAX_TENANTS_PER_EMAIL]) if t]
    if len(tenants) <= 1:
        tenant = tenants[0] if tenants else None
        if tenant is None:
            verify_password(None, password)
            raise InvalidCredentials()
        return _user_login(tenant, _tenant_user(tenant, email), password, address, code)
    account = _last_signed_in(tenants, email)
    tenant, user = account if account is not None else (None, None)
    if not verify_password(user.password_hash if user else None, password) or tenant is None:
        raise InvalidCredentials()
    raise TenantRequired(
        "This email belongs to several tenants: say which (X-Tenant-Id or ?tenant=); "
        "the password is right for the one listed",
        details={"tenants": [tenant.slug]},
    )


def enable_two_factor(principal: Principal, account: User | PlatformUser, code: str) -> dict[str, Any]:
    """Turn on 2FA for `account`, the person behind the caller's token, which ends their sessions (this
    one too). An enrollment token completes the login that asked for it: the answer then holds its
    tokens."""
    account, codes = two_factor.enable(account, code)
    answer: dict[str, Any] = {"recovery_codes": codes}
    assert principal.claims is not None, "a token's caller"
    if principal.claims.get("scope") == two_factor.ENROLLMENT_SCOPE:
        User.objects(id=account.id).update_one(set__last_login_at=clock.utcnow())
        record("auth.login", target_type="user", target_id=account.id, summary={"enrolled": True})
        answer.update(tokens.issue(account, [tokens.PASSWORD, tokens.ONE_TIME_CODE]))
    return answer


def refresh(principal: Principal) -> dict[str, str]:
    """Issue a new access token for the account of a (rechecked) refresh token."""
    assert principal.claims is not None, "a token's caller"
    return {"access_token": tokens.issue_access(principal.claims, principal.role)}


def logout(principal: Principal, refresh_token: str | None) -> None:
    """Revoke the presented token, and the refresh token given in the body when there is one."""
    claims = principal.claims
    if claims is None:
        raise ValidationFailed("API keys are revoked with DELETE /api-keys/{id}")
    if refresh_token:
        refresh_claims = tokens.decode(refresh_token)
        if refresh_claims.get("type") != tokens.REFRESH or refresh_claims.get("sub") != claims.get("sub"):
            raise ValidationFailed(details={"refreshToken": ["Not a refresh token of this account."]})
        tokens.revoke(refresh_claims)
    tokens.revoke(claims)
    if principal.impersonator:
        ImpersonationSession.objects(jti=claims["jti"]).update_one(set__expires_at=clock.utcnow())
    summary = {"impersonation": bool(principal.impersonator), "refreshTokenRevoked": bool(refresh_token)}
    if principal.tenant_id is not None:
        record(
            "auth.logout",
            tenant=current_tenant(),
            target_type="token",
            target_id=claims["jti"],
            summary=summary,
        )
    else:
        record_platform("auth.logout", target_type="token", target_id=claims["jti"], summary=summary)


def _account_to_show(principal: Principal) -> wire.Stored | User | PlatformUser:
    """The caller's account as it is now, to show: a tenant user as stored (app.wire dumps it without
    building it), a superadmin loaded."""
    if principal.is_superadmin:
        return fresh_account(principal)
    # Read in the tenant in context: the tenancy core put the caller's own there (it refuses a hint
    # that names another), and in any other the account is not found (401).
    stored = wire.stored(User, User.find_stored(id=principal.subject))
    if stored is None:
        raise Unauthorized("The account of this token no longer exists")
    return stored


def me(principal: Principal) -> dict[str, Any]:
    """Describe the caller: the user (none for an API key), the tenant (as stored now, as
    GET /tenants/current shows it) and the impersonator."""
    claims = principal.claims or {}
    impersonator = None
    if principal.impersonator:
        impersonator = {"id": principal.impersonator, "email": claims.get("act", {}).get("email")}
    return {
        "user": None if principal.via == "api_key" else _account_to_show(principal),
        "tenant": None if current_tenant() is None else current_tenant_to_show(),
        "impersonator": impersonator,
        "credential": {
            "type": principal.via,
            "role": principal.role,
            "expires_at": tokens.expires_at(claims) if claims else None,
        },
    }
