"""/api/v1/webhooks."""

from __future__ import annotations

from flask.views import MethodView

from app.extensions import Blueprint
from app.pagination import PageArgs, page_schema
from app.tenancy.access import roles

from . import service
from .schemas import (
    DeliverySchema,
    WebhookCreateSchema,
    WebhookListArgs,
    WebhookPatchSchema,
    WebhookSchema,
    WebhookWithSecretSchema,
)

blp = Blueprint(
    "webhooks", __name__, url_prefix="/api/v1/webhooks", description="Signed deliveries of tenant events"
)


@blp.route("")
class Webhooks(MethodView):
    @blp.arguments(WebhookListArgs, location="query")
    @blp.response(200, page_schema(WebhookSchema))
    def get(self, args):
        """List the tenant's webhooks."""
        return service.list_webhooks(args, args.get("active"))

    @roles("owner", "admin")
    @blp.arguments(WebhookCreateSchema)
    @blp.response(201, WebhookWithSecretSchema)
    def post(self, body):
        """Subscribe a URL to tenant events; the signing secret is shown only in this answer."""
        return service.create_webhook(body["url"], body["events"])


@blp.route("/<objectid:webhook_id>")
class WebhookById(MethodView):
    @blp.response(200, WebhookSchema)
    def get(self, webhook_id):
        """Show one webhook (never its secret)."""
        return service.show_webhook(webhook_id)

    @roles("owner", "admin")
    @blp.arguments(WebhookPatchSchema)
    @blp.response(200, WebhookWithSecretSchema)
    def patch(self, body, webhook_id):
        """Change a webhook; with rotateSecret the new secret is shown only in this answer."""
        return service.update_webhook(webhook_id, body)

    @roles("owner", "admin")
    @blp.response(204)
    def delete(self, webhook_id):
        """Remove a webhook and its pending deliveries."""
        service.delete_webhook(webhook_id)


@blp.route("/<objectid:webhook_id>/deliveries")
class WebhookDeliveries(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(DeliverySchema))
    def get(self, args, webhook_id):
        """List a webhook's deliveries and their attempts, newest first."""
        return service.list_deliveries(webhook_id, args)
