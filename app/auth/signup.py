"""Signup: a new tenant and its owner, logged in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app

from app import clock
from app.audit.service import record
from app.errors import Forbidden, ValidationFailed
from app.tenancy.context import tenant_scope
from app.tenants.models import Billing
from app.tenants.plans import SELF_SERVICE_ONLY, SELF_SERVICE_PLANS, has_trial
from app.tenants.service import create_tenant, erase_tenant
from app.users.service import create_user

from . import tokens


def signup(tenant_fields: dict[str, Any], owner_fields: dict[str, Any], plan: str) -> dict[str, Any]:
    """Create a tenant and its owner and log the owner in: all or nothing. Only self-service plans;
    a paid one starts as a trial of TRIAL_DAYS days."""
    if not current_app.config["ENABLE_MULTI_TENANT"]:
        raise Forbidden("This installation serves one tenant: signing up new tenants is off")
    if plan not in SELF_SERVICE_PLANS:
        choices = ", ".join(SELF_SERVICE_PLANS)
        raise ValidationFailed(details={"plan": [SELF_SERVICE_ONLY.format(choices=choices)]})
    billing = Billing()
    if has_trial(plan):
        billing.status = "trialing"
        billing.trial_ends_at = clock.utcnow() + timedelta(days=current_app.config["TRIAL_DAYS"])
    tenant = create_tenant(tenant_fields["name"], tenant_fields.get("slug"), plan=plan, billing=billing)
    try:
        with tenant_scope(tenant):
            owner = create_user(
                owner_fields["email"], owner_fields["name"], owner_fields["password"], "owner"
            )
            summary = {"plan": plan, "billingStatus": billing.status}
            if billing.trial_ends_at is not None:
                summary["trialEndsAt"] = billing.trial_ends_at.isoformat()
            record("tenant.created", target_type="tenant", target_id=tenant.id, summary=summary)
    except BaseException:
        erase_tenant(tenant)
        raise
    return {**tokens.issue(owner, [tokens.PASSWORD]), "tenant": tenant, "user": owner}
