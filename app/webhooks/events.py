"""Emit tenant events: one pending delivery per active webhook subscribed to the event, and a wake-up
of each webhook's lane for the dispatcher."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from app import leases, signals
from app.clock import utcnow
from app.tenancy.context import current_tenant_id

from .models import Webhook, WebhookDelivery

LANE = "webhook"


def connect() -> None:
    """Queue the events that other packages send (app.signals) for the webhooks."""
    signals.webhook_event.connect(_webhook_event)
    signals.usage_threshold_crossed.connect(_usage_threshold_crossed)


def _webhook_event(_sender: object, *, event: str, items: Sequence[dict[str, Any]]) -> None:
    emit_many(event, items)


def _usage_threshold_crossed(_sender: object, *, data: dict[str, Any]) -> None:
    emit("usage.threshold", data)


def emit(event: str, data: dict[str, Any]) -> int:
    """Queue `event` for the tenant in context's webhooks; return how many deliveries were queued."""
    return emit_many(event, [data])


def emit_many(event: str, items: Sequence[dict[str, Any]]) -> int:
    """Queue one `event` per item of data (one query and one insert for all of them)."""
    if not items:
        return 0
    now = utcnow()
    webhooks = list(Webhook.objects(active=True, events=event).scalar("id"))
    payloads = [
        {"id": uuid.uuid4().hex, "event": event, "createdAt": now.isoformat(), "data": data} for data in items
    ]
    deliveries = [
        WebhookDelivery(webhook_id=webhook_id, event=event, payload=payload, next_attempt_at=now)
        for payload in payloads
        for webhook_id in webhooks
    ]
    if deliveries:
        WebhookDelivery.objects.insert(deliveries, load_bulk=False)
        for webhook_id in webhooks:
            leases.wake(leases.lane_name(LANE, webhook_id), current_tenant_id(), now)
    return len(deliveries)
