"""Invoices on the wire (amounts in cents)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.fields import UtcDateTime
from app.pagination import PageArgs

from .models import INVOICE_STATUSES


class InvoiceSchema(Schema):
    id = fields.String()
    number = fields.Integer()
    period = fields.String()
    plan = fields.String()
    price_cents = fields.Integer(
        data_key="priceCents", allow_none=True, metadata={"description": "the monthly price at the close"}
    )
    billed_from = UtcDateTime(
        data_key="billedFrom",
        allow_none=True,
        metadata={"description": "the billed part of the period starts here (trial days are not billed)"},
    )
    amount_cents = fields.Integer(data_key="amountCents", metadata={"description": "the price pro rata"})
    currency = fields.String()
    status = fields.String()
    usage = fields.Dict(metadata={"description": "used and limit of every limit in the period"})
    issued_at = UtcDateTime(data_key="issuedAt")
    due_at = UtcDateTime(data_key="dueAt")
    paid_at = UtcDateTime(data_key="paidAt", allow_none=True)
    closed_at = UtcDateTime(data_key="closedAt", allow_none=True)


class InvoiceListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(INVOICE_STATUSES))


class WebhookReceiptSchema(Schema):
    received = fields.Boolean()
    duplicate = fields.Boolean()
    applied = fields.Boolean()
