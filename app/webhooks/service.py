"""The tenant's webhooks (limit `webhooks`)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from bson import ObjectId
from flask import current_app

from app import crypto, egress, wire
from app.audit.service import record
from app.errors import NotFound, ValidationFailed, found
from app.pagination import paginate
from app.usage import service as usage

from .models import Webhook, WebhookDelivery

SECRET_PREFIX = "whsec_"


def _check_url(url: str) -> None:
    """Deliveries go over https, except to a development receiver, to a URL the egress policy allows."""
    config = current_app.config
    if not url.startswith("https://") and config["APP_ENV"] == "production":
        raise ValidationFailed(details={"url": ["Use an https:// URL."]})
    try:
        egress.Policy.for_tenants(config).check(url)
    except egress.Refused as exc:
        raise ValidationFailed(details={"url": [str(exc)]}) from None


def _new_secret(webhook: Webhook) -> None:
    secret = SECRET_PREFIX + secrets.token_hex(24)
    webhook.secret_encrypted = crypto.encrypt(secret)
    webhook.secret = secret


def create_webhook(url: str, events: list[str]) -> Webhook:
    """Subscribe a URL to events (within the plan's `webhooks` limit); the secret is shown once."""
    _check_url(url)
    webhook = Webhook(url=url, events=sorted(set(events)))
    _new_secret(webhook)
    with usage.reserved("webhooks"):
        webhook.save(force_insert=True)
    record(
        "webhook.created", target_type="webhook", target_id=webhook.id, summary={"url": url, "events": events}
    )
    return webhook


def list_webhooks(paging: Mapping[str, Any], active: bool | None = None) -> dict:
    webhooks = Webhook.objects
    if active is not None:
        webhooks = webhooks.filter(active=active)
    return paginate(webhooks, ("-created_at", "-id"), paging)


def show_webhook(webhook_id: ObjectId) -> wire.Stored:
    """A webhook as stored, for its response (not built into a document)."""
    return found(wire.stored(Webhook, Webhook.find_stored(id=webhook_id)), "webhook")


def get_webhook(webhook_id: ObjectId) -> Webhook:
    return found(Webhook.objects(id=webhook_id).first(), "webhook")


def update_webhook(webhook_id: ObjectId, changes: dict[str, Any]) -> Webhook:
    """Change the URL or events, (re)activate, or rotate the secret (shown once more)."""
    webhook = get_webhook(webhook_id)
    if "url" in changes:
        _check_url(changes["url"])
        webhook.url = changes["url"]
    if "events" in changes:
        webhook.events = sorted(set(changes["events"]))
    if "active" in changes:
        webhook.active = changes["active"]
        if webhook.active:
            webhook.consecutive_failures = 0
            webhook.disabled_reason = None
    if changes.get("rotate_secret"):
        _new_secret(webhook)
    webhook.save()
    record(
        "webhook.updated", target_type="webhook", target_id=webhook.id, summary={"fields": sorted(changes)}
    )
    return webhook


def delete_webhook(webhook_id: ObjectId) -> None:
    """Remove a webhook and its pending deliveries."""
    webhook = get_webhook(webhook_id)
    # The delete's own count decides the refund: of two concurrent deletes, one gives the seat back.
    if not Webhook.objects(id=webhook.id).delete():
        raise NotFound("No such webhook")
    WebhookDelivery.objects(webhook_id=webhook.id).delete()
    usage.refund("webhooks")
    record("webhook.deleted", target_type="webhook", target_id=webhook_id, summary={"url": webhook.url})


def list_deliveries(webhook_id: ObjectId, paging: Mapping[str, Any]) -> dict:
    """Return a page of a webhook's deliveries, newest first."""
    webhook = get_webhook(webhook_id)
    return paginate(WebhookDelivery.objects(webhook_id=webhook.id), ("-created_at", "-id"), paging)
