"""/api/v1/billing (the tenant's invoices, the payment provider's webhook) and a tenant's invoices
for the superadmin."""

from __future__ import annotations

from flask import request
from flask.views import MethodView

from app.errors import NotFound
from app.extensions import Blueprint
from app.pagination import page_schema
from app.tenancy.access import platform, public, roles

from . import providers, service
from .schemas import InvoiceListArgs, InvoiceSchema, WebhookReceiptSchema

blp = Blueprint("billing", __name__, url_prefix="/api/v1/billing", description="Invoices and payments")
admin_blp = Blueprint(
    "tenant-invoices", __name__, url_prefix="/api/v1/tenants", description="A tenant's invoices (superadmin)"
)


@blp.route("/invoices")
class Invoices(MethodView):
    @roles("owner")
    @blp.arguments(InvoiceListArgs, location="query")
    @blp.response(200, page_schema(InvoiceSchema))
    def get(self, args):
        """List the tenant's invoices, newest first."""
        return service.list_invoices(args, args.get("status"))


@blp.route("/webhooks/<provider>")
class PaymentWebhook(MethodView):
    @public
    @blp.doc(operationId="receivePaymentWebhook")
    @blp.response(200, WebhookReceiptSchema)
    def post(self, provider):
        """Receive a payment provider's signed event (Stripe): a paid invoice is marked paid."""
        if provider != "stripe":
            raise NotFound("Unknown payment provider")
        return providers.handle_stripe(request.get_data(), request.headers.get("Stripe-Signature"))


@admin_blp.route("/<objectid:tenant_id>/invoices")
class TenantInvoices(MethodView):
    @platform
    @admin_blp.arguments(InvoiceListArgs, location="query")
    @admin_blp.response(200, page_schema(InvoiceSchema))
    def get(self, args, tenant_id):
        """List one tenant's invoices."""
        return service.tenant_invoices(tenant_id, args, args.get("status"))
