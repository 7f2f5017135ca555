"""Payments, and payment methods on file, from payment providers' signed webhooks. Stripe: the signature
is checked offline with the `stripe` package; each event is handled once (providers deliver at least
once)."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import mongoengine as me
import stripe
from bson import ObjectId
from flask import current_app

from app import clock
from app.errors import BadRequest, NotFound
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant

from . import service, trials
from .models import Invoice, ProcessedEvent

KEEP_EVENTS = timedelta(days=90)
PAID_EVENTS = ("invoice.paid", "invoice.payment_succeeded")
CLOSING_EVENTS = {"invoice.voided": "void", "invoice.marked_uncollectible": "uncollectible"}
# A Checkout Session (subscription or setup mode) whose metadata names the tenant: its customer has a
# payment method on file, which converts a running trial.
CUSTOMER_EVENTS = ("checkout.session.completed",)


def _our_tenant(obj: dict[str, Any]) -> Tenant | None:
    """Find the tenant a provider object names in its metadata (tenantId), or None."""
    tenant_id = (obj.get("metadata") or {}).get("tenantId")
    if not ObjectId.is_valid(tenant_id):
        return None
    return Tenant.objects(id=tenant_id).first()


def _our_invoice(obj: dict[str, Any]) -> Invoice | None:
    """Find the invoice a provider object names in its metadata (tenantId, invoiceId), or None."""
    invoice_id = (obj.get("metadata") or {}).get("invoiceId")
    tenant = _our_tenant(obj) if ObjectId.is_valid(invoice_id) else None
    if tenant is None:
        return None
    with tenant_scope(tenant):
        return Invoice.objects(id=invoice_id).first()


def _add_customer(obj: dict[str, Any]) -> bool:
    """Record the customer of a completed checkout for the tenant it names; False when it names none."""
    tenant, customer = _our_tenant(obj), obj.get("customer")
    if tenant is None or not isinstance(customer, str) or not 0 < len(customer) <= 200:
        return False
    return trials.add_customer(tenant, customer)


def handle_stripe(payload: bytes, signature: str | None) -> dict[str, Any]:
    """Verify and apply a Stripe event; a repeated event changes nothing."""
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not secret:
        raise NotFound("Stripe payments are not configured")
    try:
        event = stripe.Webhook.construct_event(payload, signature or "", secret)
    except stripe.SignatureVerificationError:
        raise BadRequest("The Stripe signature does not match", code="invalid_signature") from None
    except ValueError:
        raise BadRequest("The event is not valid JSON") from None
    event_id, kind = event["id"], event["type"]
    if ProcessedEvent.objects(provider="stripe", event_id=event_id).first() is not None:
        return {"received": True, "duplicate": True}
    obj = (
        event["data"]["object"].to_dict()
        if hasattr(event["data"]["object"], "to_dict")
        else event["data"]["object"]
    )
    invoice = _our_invoice(obj) if kind in PAID_EVENTS or kind in CLOSING_EVENTS else None
    applied = _add_customer(obj) if kind in CUSTOMER_EVENTS else False
    if invoice is not None:
        with tenant_scope(Tenant.objects.get(id=invoice.tenant_id)):
            if kind in PAID_EVENTS:
                applied = service.mark_paid(invoice, provider_ref=obj.get("id"))
            else:
                applied = service.close_unpaid(invoice, CLOSING_EVENTS[kind])
    # Recorded after it was applied: a crash in between lets the provider's retry apply it again,
    # which the invoice's conditional state changes make harmless.
    with contextlib.suppress(me.NotUniqueError):
        ProcessedEvent(provider="stripe", event_id=event_id, expires_at=clock.utcnow() + KEEP_EVENTS).save(
            force_insert=True
        )
    return {"received": True, "applied": applied}
