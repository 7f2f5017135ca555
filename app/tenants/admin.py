"""What a platform superadmin does to tenants: list, change, suspend, activate, delete, count."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import mongoengine as me
from bson import ObjectId
from flask import current_app
from pymongo import UpdateOne

from app import clock, leases
from app.audit.service import record, record_platform
from app.errors import Conflict, ValidationFailed, found
from app.pagination import paginate
from app.signals import notify
from app.tenancy.cache import forget_tenants
from app.tenancy.context import tenant_scope

from .models import GAUGES, Tenant, search_terms, search_text
from .plans import DEFAULT_PLAN, LIMIT_NAMES
from .service import erase_tenant

# The suspension reason of a tenant being deleted.
DELETING = "deleting"


def get_tenant(tenant_id: ObjectId) -> Tenant:
    """Return a tenant by id (fresh from the database), or 404."""
    return found(Tenant.objects(id=tenant_id).first(), "tenant")


def list_tenants(
    paging: Mapping[str, Any], status: str | None = None, plan: str | None = None, q: str | None = None
) -> dict[str, Any]:
    """Return a page of tenants, newest first, filtered by status, plan and a search term: the
    beginning of their name, slug or domain, or of a word of them, in any case."""
    tenants = Tenant.objects
    if status:
        tenants = tenants.filter(status=status)
    if plan:
        tenants = tenants.filter(plan=plan)
    if q and search_text(q):
        tenants = tenants.filter(search_terms=re.compile("^" + re.escape(search_text(q))))
    return paginate(tenants, ("-created_at", "-id"), paging)


def fill_search_terms(batch_size: int = 500) -> int:
    """Write the search terms of the tenants an older version stored without them (or that were
    changed behind the service's back), reading the tenants in _id order, one bulk write per batch;
    return how many changed. Each write applies only while the name, slug and domain are still the
    ones the terms were made from."""
    changed = 0
    last = None
    while True:
        tenants = Tenant.objects(**({"id__gt": last} if last else {})).order_by("id").limit(batch_size)
        rows = list(tenants.only("name", "slug", "domain", "search_terms").as_pymongo())
        if not rows:
            return changed
        last = rows[-1]["_id"]
        writes = [
            UpdateOne(
                {"_id": row["_id"], "name": row["name"], "slug": row["slug"], "domain": row.get("domain")},
                {"$set": {"searchTerms": terms}},
            )
            for row in rows
            if (terms := search_terms(row["name"], row["slug"], row.get("domain"))) != row.get("searchTerms")
        ]
        if writes:
            changed += Tenant._get_collection().bulk_write(writes, ordered=False).modified_count
            forget_tenants()


def _audit_both(action: str, tenant: Tenant, summary: dict[str, Any]) -> None:
    """Write a superadmin action to the tenant's log and to the platform trail."""
    record(action, tenant=tenant, target_type="tenant", target_id=tenant.id, summary=summary)
    record_platform(action, tenant=tenant, target_type="tenant", target_id=tenant.id, summary=summary)


def _described(tenant: Tenant) -> dict[str, Any]:
    """What a superadmin's change is audited by: plan, overrides and billing, before and after."""
    billing = tenant.billing
    return {
        "plan": tenant.plan,
        "limits": dict(tenant.limits),
        "features": dict(tenant.features),
        "billing": {
            "status": billing.status,
            "trialEndsAt": billing.trial_ends_at.isoformat() if billing.trial_ends_at else None,
            "priceCents": billing.price_cents,
            "email": billing.email,
        },
    }


def _check_trial(tenant: Tenant) -> None:
    """A trial (billing status trialing) needs its end, and a plan to try other than free."""
    if tenant.billing.status != "trialing":
        return
    if tenant.billing.trial_ends_at is None:
        raise ValidationFailed(details={"billing": {"trialEndsAt": ["A trial needs its end."]}})
    if tenant.plan == DEFAULT_PLAN:
        raise ValidationFailed(details={"billing": {"status": ["The free plan has no trial."]}})


def update_tenant(tenant_id: ObjectId, changes: dict[str, Any]) -> Tenant:
    """Change a tenant's name, domain, plan, overrides of limits and features, or billing (its trial
    included: a later trialEndsAt extends it). Changing the plan of a trialing tenant ends its trial,
    unless the same change sets the billing status."""
    tenant = get_tenant(tenant_id)
    before = _described(tenant)
    # What the trial rules below read: the save applies only while it is still so (the trial-end job
    # or a conversion may change it meanwhile).
    read: dict[str, Any] = {"plan": tenant.plan, "billing__status__ne": "trialing"}
    if tenant.billing.status == "trialing":
        read = {
            "plan": tenant.plan,
            "billing__status": "trialing",
            "billing__trial_ends_at": tenant.billing.trial_ends_at,
        }
    domain = changes.get("domain")
    base = current_app.config["BASE_DOMAIN"]
    if domain and base and (domain == base or domain.endswith("." + base)):
        raise ValidationFailed(details={"domain": [f"Subdomains of {base} name tenants by slug already."]})
    for name in ("name", "domain", "plan"):
        if name in changes:
            setattr(tenant, name, changes[name])
    if "limits" in changes:
        tenant.limits = {k: changes["limits"][k] for k in LIMIT_NAMES if k in changes["limits"]}
    if "features" in changes:
        tenant.features = dict(changes["features"])
    billing = changes.get("billing", {})
    for name, value in billing.items():
        setattr(tenant.billing, name, value)
    if tenant.plan != before["plan"] and tenant.billing.status == "trialing" and "status" not in billing:
        # The platform chose the plan: the trial-end job must not move the tenant to free.
        tenant.billing.status = "active"
    _check_trial(tenant)
    try:
        tenant.save(save_condition=read)
    except me.NotUniqueError:
        raise Conflict("Another tenant uses this domain", details={"domain": domain}) from None
    except me.errors.SaveConditionError:
        raise Conflict("The tenant's plan or trial changed meanwhile: look again, then retry") from None
    after = _described(tenant)
    changed = {k: {"from": before[k], "to": after[k]} for k in before if before[k] != after[k]}
    others = sorted(set(changes) - set(before))
    _audit_both("tenant.updated", tenant, {"changed": changed, "fields": others})
    return tenant


def _move_status(tenant_id: ObjectId, where: dict[str, Any], **changes: Any) -> tuple[Tenant, Tenant] | None:
    """Change a tenant's status in one update conditional on `where` (never one being deleted); return
    the tenant before and after, or None when it no longer matched."""
    update = {
        (f"unset__{name}" if value is None else f"set__{name}"): value for name, value in changes.items()
    }
    before = Tenant.objects(id=tenant_id, suspended_reason__ne=DELETING, **where).modify(
        **update, set__updated_at=clock.utcnow()
    )
    if before is None:
        return None
    forget_tenants()  # at once in this worker, as a save would
    return before, get_tenant(tenant_id)


def _refused_move(tenant_id: ObjectId) -> Conflict:
    get_tenant(tenant_id)  # 404 when it is gone
    return Conflict("This tenant is being deleted")


def suspend_tenant(tenant_id: ObjectId, reason: str, *, only_active: bool = False) -> Tenant | None:
    """Suspend a tenant: its users, keys and tokens are refused from the next request on. With
    `only_active`, only a tenant that is active at that moment (None when it is not)."""
    moved = _move_status(
        tenant_id,
        {"status": "active"} if only_active else {},
        status="suspended",
        suspended_reason=reason,
        suspended_at=clock.utcnow(),
    )
    if moved is None:
        if only_active:
            return None
        raise _refused_move(tenant_id)
    _before, tenant = moved
    _audit_both("tenant.suspended", tenant, {"reason": reason})
    with tenant_scope(tenant):
        notify("tenant.suspended", {"tenantId": str(tenant.id), "reason": reason})
    return tenant


def activate_tenant(tenant_id: ObjectId, *, only_reason: str | None = None) -> Tenant | None:
    """Lift a suspension. With `only_reason`, only a suspension for that reason (None when the tenant
    is not suspended for it at that moment: a superadmin's suspension outlives a payment)."""
    where = {"status": "suspended", "suspended_reason": only_reason} if only_reason else {}
    moved = _move_status(tenant_id, where, status="active", suspended_reason=None, suspended_at=None)
    if moved is None:
        if only_reason:
            return None
        raise _refused_move(tenant_id)
    before, tenant = moved
    previous = before.suspended_reason
    _audit_both("tenant.activated", tenant, {"previousReason": previous})
    leases.wake_tenant(tenant.id)  # its messages waited: the dispatcher looks again at once
    with tenant_scope(tenant):
        notify("tenant.activated", {"tenantId": str(tenant.id)})
    return tenant


def delete_tenant(tenant_id: ObjectId) -> dict[str, int]:
    """Delete a tenant and everything it owns; the platform trail records what was removed."""
    tenant = get_tenant(tenant_id)
    if (
        not current_app.config["ENABLE_MULTI_TENANT"]
        and tenant.slug == current_app.config["DEFAULT_TENANT_SLUG"]
    ):
        raise Conflict("This installation serves only this tenant: it cannot be deleted")
    # Suspend first so that no request of the tenant's can write while its data is being removed; the
    # deletion sweep (app/jobs/deletion_sweep.py) finishes a deletion that stops halfway.
    Tenant.objects(id=tenant.id).update_one(
        set__status="suspended", set__suspended_reason=DELETING, set__updated_at=clock.utcnow()
    )
    forget_tenants()
    removed = erase_tenant(tenant)
    record_platform(
        "tenant.deleted",
        tenant=tenant,
        target_type="tenant",
        target_id=tenant.id,
        summary={"name": tenant.name, "removed": removed},
    )
    return removed


def tenant_stats() -> dict[str, Any]:
    """Count tenants by status and plan, and add up their usage gauges: one aggregation, reading the
    tenants in the order of the (status, plan) index."""
    by_status: dict[str, int] = {}
    by_plan: dict[str, int] = {}
    usage = dict.fromkeys(GAUGES, 0)
    totals = {name: {"$sum": f"$usage.{name}"} for name in GAUGES}
    pipeline = [
        {"$sort": {"status": 1, "plan": 1}},
        {"$group": {"_id": {"status": "$status", "plan": "$plan"}, "n": {"$sum": 1}, **totals}},
    ]
    for row in Tenant.objects.aggregate(pipeline):
        by_status[row["_id"]["status"]] = by_status.get(row["_id"]["status"], 0) + row["n"]
        by_plan[row["_id"]["plan"]] = by_plan.get(row["_id"]["plan"], 0) + row["n"]
        for name in GAUGES:
            usage[name] += row[name]
    return {
        "tenants": {"total": sum(by_status.values()), "by_status": by_status, "by_plan": by_plan},
        "usage": usage,
    }
