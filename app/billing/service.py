"""Invoices at the close of each period, payments from the provider, and overdue suspensions.

Numbering: the tenant document holds the last invoice number and the last invoiced period. One
conditional update moves both forward, so of two closes of one period only one gets a number, and a
number, once taken, always gets its invoice (a close that died in between is repaired by the next
run). Amounts are in cents; the balance on the tenant adds up its open invoices.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import mongoengine as me
from flask import current_app

from app.audit.models import Actor
from app.audit.service import record
from app.clock import utcnow
from app.errors import found
from app.pagination import paginate
from app.signals import notify
from app.tenancy.context import tenant_scope
from app.tenants.admin import activate_tenant, suspend_tenant
from app.tenants.billing import CURRENCY, price_cents
from app.tenants.models import Tenant
from app.usage.service import period_bounds

from .models import Invoice

log = logging.getLogger("app.billing")

OVERDUE_REASON = "payment_overdue"
SYSTEM = Actor(kind="system")


def _describe(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoiceId": str(invoice.id),
        "number": invoice.number,
        "period": invoice.period,
        "priceCents": invoice.price_cents,
        "billedFrom": invoice.billed_from.isoformat() if invoice.billed_from else None,
        "amountCents": invoice.amount_cents,
        "currency": invoice.currency,
        "status": invoice.status,
    }


def _allocate_number(tenant: Tenant, period: str) -> int | None:
    """Take the next invoice number for `period`, once; None when a later period is invoiced already."""
    # Never invoiced (no field, or null) or last invoiced before `period`: a string compares only with
    # strings, so $not $gte matches all three in one clause.
    earlier = {"billing.lastInvoicedPeriod": {"$not": {"$gte": period}}}
    moved = (
        Tenant.objects(id=tenant.id, __raw__=earlier)
        .only("billing")
        .modify(new=True, inc__billing__last_invoice_number=1, set__billing__last_invoiced_period=period)
    )
    if moved is not None:
        return moved.billing.last_invoice_number
    current = Tenant.objects(id=tenant.id).only("billing").first()
    if current.billing.last_invoiced_period == period:
        return current.billing.last_invoice_number  # taken by a close that stopped before its invoice
    return None


def billed_part(tenant: Tenant, period: str) -> tuple[datetime, int]:
    """Return where the billed part of `period` starts and what it costs in cents (pro rata, rounded
    down): trial days are never billed, and neither is a tenant still trialing at the close, whose trial
    runs on or ended unconverted (the trial-end job moves it to free)."""
    start, end = period_bounds(period)
    if tenant.billing.status == "trialing":
        since = end
    else:
        since = min(max(start, tenant.billing.trial_ends_at or start), end)
    billed = int((end - since).total_seconds())
    return since, (price_cents(tenant) or 0) * billed // int((end - start).total_seconds())


def issue_invoice(
    tenant: Tenant, period: str, usage: dict[str, Any], now: datetime | None = None
) -> Invoice | None:
    """Bill `tenant` for a closed period, issued `now` (the close); None when that period is billed
    already (idempotent)."""
    with tenant_scope(tenant):
        if Invoice.objects(period=period).only("id").first() is not None:
            return None
        number = _allocate_number(tenant, period)
        if number is None:
            log.warning("period older than the last invoiced one; not billed", extra={"period": period})
            return None
        billed_from, amount = billed_part(tenant, period)
        now = now or utcnow()
        invoice = Invoice(
            number=number,
            period=period,
            plan=tenant.plan,
            price_cents=price_cents(tenant) or 0,
            billed_from=billed_from,
            amount_cents=amount,
            currency=CURRENCY,
            status="open" if amount else "paid",
            usage=usage,
            issued_at=now,
            due_at=now + timedelta(days=current_app.config["BILLING_GRACE_DAYS"]),
            paid_at=None if amount else now,
        )
        try:
            invoice.save(force_insert=True)
        except me.NotUniqueError:
            return None  # a concurrent close of the same period wrote it
        if amount:
            Tenant.objects(id=tenant.id).update_one(inc__billing__balance_cents=amount)
        record(
            "invoice.created",
            target_type="invoice",
            target_id=invoice.id,
            summary=_describe(invoice),
            actor=SYSTEM,
        )
        notify("invoice.created", _describe(invoice))
        return invoice


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
    if not _settle(invoice, "paid", paid_at=utcnow(), provider_ref=provider_ref):
        return False
    invoice.reload()
    record(
        "invoice.paid", target_type="invoice", target_id=invoice.id, summary=_describe(invoice), actor=SYSTEM
    )
    notify("invoice.paid", _describe(invoice))
    tenant = Tenant.objects.get(id=invoice.tenant_id)
    if tenant.status == "suspended" and tenant.suspended_reason == OVERDUE_REASON and not _overdue(utcnow()):
        # Only while the suspension is still the overdue one: a superadmin's meanwhile stays.
        activate_tenant(tenant.id, only_reason=OVERDUE_REASON)
    return True


def close_unpaid(invoice: Invoice, status: str) -> bool:
    """Void an invoice, or write it off as uncollectible."""
    if status == "uncollectible":
        moved = Invoice.objects(id=invoice.id, status="open").update_one(
            set__status="uncollectible", set__closed_at=utcnow()
        )
        if moved:
            Tenant.objects(id=invoice.tenant_id).update_one(dec__billing__balance_cents=invoice.amount_cents)
    else:
        moved = _settle(invoice, "void", closed_at=utcnow())
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


def list_invoices(page: int, per_page: int, status: str | None = None) -> dict[str, Any]:
    """Return a page of the tenant in context's invoices, newest first."""
    invoices = Invoice.objects.order_by("-number")
    if status:
        invoices = invoices.filter(status=status)
    return paginate(invoices, page, per_page)


def tenant_invoices(tenant_id: Any, page: int, per_page: int, status: str | None = None) -> dict[str, Any]:
    """Return a page of one tenant's invoices (superadmin)."""
    tenant = found(Tenant.objects(id=tenant_id).first(), "tenant")
    with tenant_scope(tenant):
        return list_invoices(page, per_page, status)
