"""The end of a trial: a tenant whose trial ran out without converting moves to the free plan.

A trial converts when the tenant has a payment method on file with the payment provider
(`billing.customerRef`, set by Stripe's checkout.session.completed; app.billing.providers), or when a
superadmin makes its billing active or changes its plan. Moving to free keeps everything the tenant
holds; what exceeds free's limits stays, and creating more is refused by the metering, which checks
usage against the limits of the plan in force.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from app import clock
from app.audit.service import record, record_platform
from app.signals import notify
from app.tenancy.cache import forget_tenants
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.plans import DEFAULT_PLAN

from .service import SYSTEM


def due_trials(now: datetime) -> Iterable[Tenant]:
    """The tenants whose trial ended by `now` without converting, oldest first."""
    return (
        Tenant.objects(
            billing__status="trialing", billing__trial_ends_at__lte=now, billing__customer_ref=None
        )
        .order_by("created_at", "id")
        .no_cache()
    )


def end_trial(tenant: Tenant, now: datetime) -> bool:
    """Move `tenant` to the free plan if its trial ended by `now` unconverted; True when this call did."""
    billing = tenant.billing
    if (
        billing.status != "trialing"
        or billing.trial_ends_at is None
        or billing.trial_ends_at > now
        or billing.customer_ref
    ):
        return False
    # One write conditional on all that was checked: a conversion, a superadmin's change of the plan or
    # of the trial, or another run of the job since the tenant was read makes it match nothing.
    moved = Tenant.objects(
        id=tenant.id,
        plan=tenant.plan,
        billing__status="trialing",
        billing__trial_ends_at=billing.trial_ends_at,
        billing__customer_ref=None,
    ).update_one(set__plan=DEFAULT_PLAN, set__billing__status="active", set__updated_at=clock.utcnow())
    if not moved:
        return False
    forget_tenants()
    summary = {"from": tenant.plan, "to": DEFAULT_PLAN, "trialEndedAt": billing.trial_ends_at.isoformat()}
    record(
        "trial.ended", tenant=tenant, target_type="tenant", target_id=tenant.id, summary=summary, actor=SYSTEM
    )
    record_platform("trial.ended", tenant=tenant, target_type="tenant", target_id=tenant.id, summary=summary)
    with tenant_scope(tenant):
        notify(
            "trial.ended",
            {
                "tenantId": str(tenant.id),
                "previousPlan": tenant.plan,
                "plan": DEFAULT_PLAN,
                "trialEndedAt": billing.trial_ends_at.isoformat(),
            },
        )
    return True


def add_customer(tenant: Tenant, customer_ref: str) -> bool:
    """Record the tenant's customer at the payment provider (a payment method on file): a running
    trial converts, keeping its plan (its days stay unbilled). False when nothing changed."""
    now = clock.utcnow()
    converted = Tenant.objects(id=tenant.id, billing__status="trialing").update_one(
        set__billing__customer_ref=customer_ref, set__billing__status="active", set__updated_at=now
    )
    if not converted and not Tenant.objects(id=tenant.id, billing__customer_ref__ne=customer_ref).update_one(
        set__billing__customer_ref=customer_ref, set__updated_at=now
    ):
        return False
    forget_tenants()
    action = "trial.converted" if converted else "billing.customer_updated"
    summary = {"customerRef": customer_ref, "plan": tenant.plan}
    record(action, tenant=tenant, target_type="tenant", target_id=tenant.id, summary=summary, actor=SYSTEM)
    return True
