"""Login as tenant: a superadmin acts as one of a tenant's users, briefly and on the record."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from flask import Flask, Response, g, request

from app.audit.service import record, record_platform
from app.errors import NotFound, TenantSuspended, ValidationFailed
from app.tenancy.access import Principal
from app.tenancy.context import current_tenant, tenant_scope
from app.tenants.models import Tenant
from app.users.models import PlatformUser, User

from . import tokens
from .models import ImpersonationSession

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _target_user(tenant: Tenant, user_id: str | None) -> User:
    with tenant_scope(tenant):
        if user_id is None:
            user = (
                User.objects(role="owner", active=True, erased_at=None).order_by("created_at", "id").first()
            )
        else:
            user = User.objects(id=user_id).first() if ObjectId.is_valid(user_id) else None
    if user is None:
        raise NotFound("No such user in this tenant")
    if not user.active:
        raise ValidationFailed(details={"userId": ["This user is deactivated."]})
    return user


def impersonate(tenant: Tenant, superadmin: Principal, reason: str, user_id: str | None) -> dict[str, Any]:
    """Return a 15-minute access token acting as a user of `tenant` (default: its first owner)."""
    if not tenant.is_active:
        raise TenantSuspended("Activate the tenant before logging in as it")
    admin: PlatformUser = superadmin.account
    user = _target_user(tenant, user_id)
    token, claims = tokens.issue_impersonation(user, admin)
    expires_at = tokens.expires_at(claims)
    ImpersonationSession(
        jti=claims["jti"],
        tenant_id=tenant.id,
        user_id=user.id,
        superadmin_id=admin.id,
        reason=reason,
        expires_at=expires_at,
    ).save()
    summary = {"reason": reason, "userEmail": user.email, "expiresAt": expires_at.isoformat()}
    record("impersonation.started", tenant=tenant, target_type="user", target_id=user.id, summary=summary)
    record_platform(
        "impersonation.started", tenant=tenant, target_type="user", target_id=user.id, summary=summary
    )
    return {"access_token": token, "expires_at": expires_at, "user": user}


def init_app(app: Flask) -> None:
    @app.after_request
    def mark_impersonation(response: Response) -> Response:
        """Flag responses made under an impersonation token, and audit every write made with one."""
        principal = g.get("principal")
        if principal is None or not principal.impersonator:
            return response
        response.headers["X-Impersonating"] = "true"
        if request.method in WRITE_METHODS and current_tenant() is not None:
            record(
                "impersonation.write",
                target_type="request",
                target_id=request.path,
                summary={"method": request.method, "status": response.status_code},
            )
        return response
