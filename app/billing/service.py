"""Invoices at the close of each period, payments from the provider, and overdue suspensions.

Numbering: the tenant document holds the last invoice number and the last invoiced period. For a
batch of tenants, one bulk write of conditional updates, one per distinct counter value read (not one
per tenant), moves both forward only from the values read and only while the period is later than the
last invoiced one, so of two closes of one period only one gets a number, and a number, once taken,
always gets its invoice (a close that died in between is repaired by the next run, which finds the
number on the tenant). The invoices are inserted in one unordered insert, each only if its period has
none (the unique (tenantId, period) index). Amounts are in cents; the balance on the tenant adds up its
open invoices, raised with one update per distinct amount.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from flask import current_app
from pymongo import UpdateMany

from app import clock
from app.audit.models import Actor
from app.audit.service import record, record_for_tenants
from app.db import insert_missing, stored_like
from app.errors import found
from app.pagination import paginate
from app.signals import notify, notify_tenants
from app.tenancy.context import tenant_scope, unscoped
from app.tenants.admin import activate_tenant, suspend_tenant
from app.tenants.billing import CURRENCY, monthly_price_cents
from app.tenants.models import Tenant
from app.tenants.plans import period_bounds

from .models import Invoice

log = logging.getLogger("app.billing")

OVERDUE_REASON = "payment_overdue"
SYSTEM = Actor(kind="system")


def _describe(invoice: Invoice) -> dict[str, Any]:
    return _described(invoice.to_mongo())


def _described(invoice: Mapping[str, Any]) -> dict[str, Any]:
    """What an invoice's audit entries and events say of it, from the invoice as stored."""
    billed_from = invoice.get("billedFrom")
    return {
        "invoiceId": str(invoice["_id"]),
        "number": invoice["number"],
        "period": invoice["period"],
        "priceCents": invoice.get("priceCents"),
        "billedFrom": billed_from.isoformat() if billed_from else None,
        "amountCents": invoice["amountCents"],
        "currency": invoice["currency"],
        "status": invoice["status"],
    }


# What invoicing reads of a tenant (stored names, the same as its fields' here).
INVOICED_FIELDS = ("plan", "billing")


def _allocate_numbers(tenants: Sequence[Mapping[str, Any]], period: str) -> dict[Any, int]:
    """Take the next invoice number of each of `tenants` (as stored, with `billing`) for `period`, once;
    return the number each holds for `period` (none for a tenant with a later period invoiced already).

    A counter that says `period` already holds its number (taken by a close that stopped before its
    invoice: a number, once taken, gets its invoice). Every other counter moves on from the value read
    with an update conditional on that value, one per distinct value (the tenants that joined in the
    same month share theirs: a handful per batch), all in one bulk write. A condition fails only when a
    close running at the same time moved a counter since it was read; then the counters not yet at
    `period` or later move on from whatever they hold (a string compares only with strings, so $not
    $gte matches a period never invoiced, missing or null in one clause), and one read returns what
    each holds."""
    numbers: dict[Any, int] = {}
    moving: dict[tuple[Any, Any], list[Any]] = {}
    for tenant in tenants:
        billing = tenant.get("billing") or {}
        last, invoiced = billing.get("lastInvoiceNumber"), billing.get("lastInvoicedPeriod")
        if invoiced == period:
            numbers[tenant["_id"]] = billing["lastInvoiceNumber"]
        elif not (isinstance(invoiced, str) and invoiced > period):
            moving.setdefault((last, invoiced), []).append(tenant["_id"])
    if not moving:
        return numbers
    tenants_collection = Tenant._get_collection()
    moves = [
        UpdateMany(
            {"_id": {"$in": ids}, "billing.lastInvoiceNumber": last, "billing.lastInvoicedPeriod": invoiced},
            {"$set": {"billing.lastInvoiceNumber": (last or 0) + 1, "billing.lastInvoicedPeriod": period}},
        )
        for (last, invoiced), ids in moving.items()
    ]
    moved = tenants_collection.bulk_write(moves, ordered=False).matched_count
    ids = [tenant_id for group in moving.values() for tenant_id in group]
    if moved == len(ids):
        numbers.update(
            {tenant_id: (last or 0) + 1 for (last, _), group in moving.items() for tenant_id in group}
        )
        return numbers
    tenants_collection.update_many(
        {"_id": {"$in": ids}, "billing.lastInvoicedPeriod": {"$not": {"$gte": period}}},
        {"$inc": {"billing.lastInvoiceNumber": 1}, "$set": {"billing.lastInvoicedPeriod": period}},
    )
    for tenant in Tenant.objects(id__in=ids).only("billing").as_pymongo():
        if tenant["billing"].get("lastInvoicedPeriod") == period:
            numbers[tenant["_id"]] = tenant["billing"]["lastInvoiceNumber"]
    return numbers


def billed_part(plan: str, billing: Mapping[str, Any], period: str) -> tuple[datetime, int]:
    """Return where the billed part of `period` starts and what it costs in cents (pro rata, rounded
    down) for a tenant on `plan` with `billing` (as stored): trial days are never billed, and neither is
    a tenant still trialing at the close, whose trial runs on or ended unconverted (the trial-end job
    moves it to free)."""
    start, end = period_bounds(period)
    if billing.get("status") == "trialing":
        since = end
    else:
        since = min(max(start, billing.get("trialEndsAt") or start), end)
    billed = int((end - since).total_seconds())
    price = monthly_price_cents(plan, billing.get("priceCents")) or 0
    return since, price * billed // int((end - start).total_seconds())


def issue_invoice(
    tenant: Tenant, period: str, usage: dict[str, Any], now: datetime | None = None
) -> Invoice | None:
    """Bill `tenant` for a closed period, issued `now` (the close); None when that period is billed
    already (idempotent)."""
    with unscoped("billing: invoice one tenant for a closed period"):
        stored = Tenant.objects(id=tenant.id).only(*INVOICED_FIELDS).as_pymongo().first()
        issued = issue_invoices([stored], period, {tenant.id: usage}, now or clock.utcnow())
        return Invoice.objects.get(id=issued[0]["_id"]) if issued else None


def issue_invoices(
    tenants: Sequence[Mapping[str, Any]], period: str, usage: Mapping[Any, dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Bill each of `tenants` (as stored, with INVOICED_FIELDS) for a closed period with its usage in
    it, issued `now` (the close); return the invoices issued by this call, as stored (a period billed
    already is billed no more). Run inside `unscoped()`: a constant number of operations for the whole
    batch, each naming its tenants."""
    ids = [tenant["_id"] for tenant in tenants]
    billed = {
        found["tenantId"]
        for found in Invoice.objects(tenant_id__in=ids, period=period).only("tenant_id").as_pymongo()
    }
    pending = [tenant for tenant in tenants if tenant["_id"] not in billed]
    numbers = _allocate_numbers(pending, period)
    if len(numbers) < len(pending):
        log.warning(
            "period older than the last invoiced one; not billed",
            extra={"period": period, "tenants": len(pending) - len(numbers)},
        )
    numbered = [tenant for tenant in pending if tenant["_id"] in numbers]
    if not numbered:
        return []
    rows = []
    for tenant in numbered:
        billing = tenant.get("billing", {})
        billed_from, amount = billed_part(tenant["plan"], billing, period)
        rows.append(
            {
                "id": ObjectId(),
                "tenant_id": tenant["_id"],
                "number": numbers[tenant["_id"]],
                "plan": tenant["plan"],
                "price_cents": monthly_price_cents(tenant["plan"], billing.get("priceCents")) or 0,
                "billed_from": billed_from,
                "amount_cents": amount,
                "status": "open" if amount else "paid",
                "usage": usage[tenant["_id"]],
                "paid_at": None if amount else now,
            }
        )
    template = Invoice(
        **rows[0],
        period=period,
        currency=CURRENCY,
        issued_at=now,
        due_at=now + timedelta(days=current_app.config["BILLING_GRACE_DAYS"]),
    )
    # Those that went in are this call's (a concurrent close wrote the others).
    issued = insert_missing(Invoice._get_collection(), stored_like(template, rows))
    by_amount: dict[int, list[Any]] = {}
    for invoice in issued:
        if invoice["amountCents"]:
            by_amount.setdefault(invoice["amountCents"], []).append(invoice["tenantId"])
    if by_amount:
        Tenant._get_collection().bulk_write(
            [
                UpdateMany({"_id": {"$in": ids}}, {"$inc": {"billing.balanceCents": amount}})
                for amount, ids in by_amount.items()
            ],
            ordered=False,
        )
    described = {invoice["tenantId"]: _described(invoice) for invoice in issued}
    record_for_tenants(
        "invoice.created",
        [(invoice["tenantId"], invoice["_id"], described[invoice["tenantId"]]) for invoice in issued],
        target_type="invoice",
        actor=SYSTEM,
    )
    notify_tenants("invoice.created", {tenant_id: [summary] for tenant_id, summary in described.items()})
    return issued


def _settle(invoice: Invoice, status: str, **changes: Any) -> bool:
    """Move an open (or uncollectible) invoice to `status`; False when it was settled already."""
    before = Invoice.objects(id=invoice.id, status__in=("open", "uncollectible")).modify(
        **{"set__status": status, **{f"set__{k}": v for k, v in changes.items()}}
    )
    # The status it moved from, not the one read earlier: an invoice written off meanwhile has left
    # the balance already.
    if before is not None and before.status == "open":
        Tenant.objects(id=invoice.tenant_id).update_one(dec__billing__balance_cents=invoice.amount_cents)
    return before is not None


def mark_paid(invoice: Invoice, provider_ref: str | None = None) -> bool:
    """Record a payment; lift an overdue suspension once nothing overdue is left."""
    if not _settle(invoice, "paid", paid_at=clock.utcnow(), provider_ref=provider_ref):
        return False
    invoice.reload()
    record(
        "invoice.paid", target_type="invoice", target_id=invoice.id, summary=_describe(invoice), actor=SYSTEM
    )
    notify("invoice.paid", _describe(invoice))
    tenant = Tenant.objects.get(id=invoice.tenant_id)
    if (
        tenant.status == "suspended"
        and tenant.suspended_reason == OVERDUE_REASON
        and not _overdue(clock.utcnow())
    ):
        # Only while the suspension is still the overdue one: a superadmin's meanwhile stays.
        activate_tenant(tenant.id, only_reason=OVERDUE_REASON)
    return True


def close_unpaid(invoice: Invoice, status: str) -> bool:
    """Void an invoice, or write it off as uncollectible."""
    if status == "uncollectible":
        moved = Invoice.objects(id=invoice.id, status="open").update_one(
            set__status="uncollectible", set__closed_at=clock.utcnow()
        )
        if moved:
            Tenant.objects(id=invoice.tenant_id).update_one(dec__billing__balance_cents=invoice.amount_cents)
    else:
        moved = _settle(invoice, "void", closed_at=clock.utcnow())
    if moved:
        invoice.reload()
        record(
            f"invoice.{status}",
            target_type="invoice",
            target_id=invoice.id,
            summary=_describe(invoice),
            actor=SYSTEM,
        )
    return bool(moved)


def _overdue(now: datetime) -> list[Invoice]:
    """The open invoices of the tenant in context whose grace period is over."""
    return list(Invoice.objects(status="open", due_at__lt=now))


def suspend_overdue(tenant: Tenant, now: datetime) -> bool:
    """Suspend an active tenant with an invoice unpaid past its grace period; True when it did."""
    with tenant_scope(tenant):
        overdue = _overdue(now)
        if not overdue or tenant.status != "active":
            return False
        for invoice in overdue:
            notify("invoice.overdue", _describe(invoice))
    # Only a tenant still active: another suspension (or a deletion) begun meanwhile is left alone.
    return suspend_tenant(tenant.id, OVERDUE_REASON, only_active=True) is not None


def list_invoices(paging: Mapping[str, Any], status: str | None = None) -> dict[str, Any]:
    """Return a page of the tenant in context's invoices, newest first."""
    invoices = Invoice.objects
    if status:
        invoices = invoices.filter(status=status)
    return paginate(invoices, ("-number",), paging)


def tenant_invoices(tenant_id: Any, paging: Mapping[str, Any], status: str | None = None) -> dict[str, Any]:
    """Return a page of one tenant's invoices (superadmin)."""
    tenant = found(Tenant.objects(id=tenant_id).first(), "tenant")
    with tenant_scope(tenant):
        return list_invoices(paging, status)
