"""Invoices at the close of each period, payments from the provider, and overdue suspensions.

Numbering: the tenant document holds the last invoice number and the last invoiced period. One
conditional update per tenant, sent for a whole batch of tenants in one bulk write, moves both forward
only while the period is later than the last invoiced one, so of two closes of one period only one
gets a number, and a number, once taken, always gets its invoice (a close that died in between is
repaired by the next run, which finds the number on the tenant). The invoice is inserted only if its
period has none (the unique (tenantId, period) index). Amounts are in cents; the balance on the tenant
adds up its open invoices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from flask import current_app
from pymongo import UpdateOne

from app.audit.models import Actor
from app.audit.service import record, record_for_tenants
from app.clock import utcnow
from app.db import insert_missing
from app.errors import found
from app.pagination import paginate
from app.tenancy.collection import TENANT_FIELD
from app.tenancy.context import tenant_scope, unscoped
from app.tenants.admin import activate_tenant, suspend_tenant
from app.tenants.billing import CURRENCY, price_cents
from app.tenants.models import Tenant
from app.usage.service import period_bounds
from app.webhooks.events import emit, emit_for_tenants

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


def _allocate_numbers(tenants: Sequence[Tenant], period: str) -> dict[Any, int]:
    """Take the next invoice number of each of `tenants` for `period`, once; return the number each
    holds for `period` (none for a tenant with a later period invoiced already).

    One bulk write moves the counter of every tenant not yet invoiced for `period` or a later one
    (never invoiced, no field or null, or last invoiced before: a string compares only with strings,
    so $not $gte matches all three in one clause); one read returns the counters. A number taken by a
    close that stopped before its invoice is found again, so a number, once taken, gets its invoice."""
    earlier = {"billing.lastInvoicedPeriod": {"$not": {"$gte": period}}}
    moves = [
        UpdateOne(
            {"_id": tenant.id, **earlier},
            {"$inc": {"billing.lastInvoiceNumber": 1}, "$set": {"billing.lastInvoicedPeriod": period}},
        )
        for tenant in tenants
    ]
    if not moves:
        return {}
    Tenant._get_collection().bulk_write(moves, ordered=False)
    counters = Tenant.objects(id__in=[tenant.id for tenant in tenants]).only("billing")
    return {
        tenant.id: tenant.billing.last_invoice_number
        for tenant in counters
        if tenant.billing.last_invoiced_period == period
    }


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
    with unscoped("billing: invoice one tenant for a closed period"):
        issued = issue_invoices([tenant], period, {tenant.id: usage}, now or utcnow())
    return issued[0] if issued else None


def issue_invoices(
    tenants: Sequence[Tenant], period: str, usage: Mapping[Any, dict[str, Any]], now: datetime
) -> list[Invoice]:
    """Bill each of `tenants` for a closed period with its usage in it, issued `now` (the close);
    return the invoices issued by this call (a period billed already is billed no more). Run inside
    `unscoped()`: a constant number of operations for the whole batch, each naming its tenants."""
    ids = [tenant.id for tenant in tenants]
    billed = set(Invoice.objects(tenant_id__in=ids, period=period).scalar("tenant_id"))
    pending = [tenant for tenant in tenants if tenant.id not in billed]
    numbers = _allocate_numbers(pending, period)
    if len(numbers) < len(pending):
        log.warning(
            "period older than the last invoiced one; not billed",
            extra={"period": period, "tenants": len(pending) - len(numbers)},
        )
    due_at = now + timedelta(days=current_app.config["BILLING_GRACE_DAYS"])
    drafts = {}
    for tenant in pending:
        if tenant.id not in numbers:
            continue
        billed_from, amount = billed_part(tenant, period)
        invoice = Invoice(
            id=ObjectId(),
            tenant_id=tenant.id,
            number=numbers[tenant.id],
            period=period,
            plan=tenant.plan,
            price_cents=price_cents(tenant) or 0,
            billed_from=billed_from,
            amount_cents=amount,
            currency=CURRENCY,
            status="open" if amount else "paid",
            usage=usage[tenant.id],
            issued_at=now,
            due_at=due_at,
            paid_at=None if amount else now,
        )
        invoice.validate()
        drafts[invoice.id] = invoice
    if not drafts:
        return []
    insert_missing(
        Invoice._get_collection(),
        [invoice.to_mongo().to_dict() for invoice in drafts.values()],
        (TENANT_FIELD, "period"),
    )
    # Those stored with the id given here are this call's (a concurrent close wrote the others).
    stored = Invoice.objects(tenant_id__in=[i.tenant_id for i in drafts.values()], period=period).scalar("id")
    issued = [drafts[invoice_id] for invoice_id in stored if invoice_id in drafts]
    balances = [
        UpdateOne({"_id": invoice.tenant_id}, {"$inc": {"billing.balanceCents": invoice.amount_cents}})
        for invoice in issued
        if invoice.amount_cents
    ]
    if balances:
        Tenant._get_collection().bulk_write(balances, ordered=False)
    summaries = {invoice.tenant_id: [_describe(invoice)] for invoice in issued}
    record_for_tenants(
        "invoice.created",
        [(invoice.tenant_id, invoice.id, summaries[invoice.tenant_id][0]) for invoice in issued],
        target_type="invoice",
        actor=SYSTEM,
    )
    emit_for_tenants("invoice.created", summaries)
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
    if not _settle(invoice, "paid", paid_at=utcnow(), provider_ref=provider_ref):
        return False
    invoice.reload()
    record(
        "invoice.paid", target_type="invoice", target_id=invoice.id, summary=_describe(invoice), actor=SYSTEM
    )
    emit("invoice.paid", _describe(invoice))
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
            emit("invoice.overdue", _describe(invoice))
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
