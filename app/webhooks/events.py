"""Emit tenant events: one pending delivery per active webhook subscribed to the event, and a wake-up
of each webhook's lane for the dispatcher."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app import clock, leases, signals
from app.db import stored_like
from app.tenancy.context import current_tenant_id

from .models import Webhook, WebhookDelivery

LANE = "webhook"


def connect() -> None:
    """Queue the events that other packages send (app.signals) for the webhooks."""
    signals.webhook_event.connect(_webhook_event)
    signals.webhook_events_of_tenants.connect(_webhook_events_of_tenants)
    signals.usage_threshold_crossed.connect(_usage_threshold_crossed)


def _webhook_event(_sender: object, *, event: str, items: Sequence[dict[str, Any]]) -> None:
    emit_many(event, items)


def _webhook_events_of_tenants(
    _sender: object, *, event: str, items: Mapping[Any, Sequence[dict[str, Any]]]
) -> None:
    emit_for_tenants(event, items)


def _usage_threshold_crossed(_sender: object, *, data: dict[str, Any]) -> None:
    emit("usage.threshold", data)


def emit(event: str, data: dict[str, Any]) -> int:
    """Queue `event` for the tenant in context's webhooks; return how many deliveries were queued."""
    return emit_many(event, [data])


def _payloads(event: str, items: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return [
        {"id": uuid.uuid4().hex, "event": event, "createdAt": now.isoformat(), "data": data} for data in items
    ]


def emit_many(event: str, items: Sequence[dict[str, Any]]) -> int:
    """Queue one `event` per item of data (one query and one insert for all of them)."""
    if not items:
        return 0
    now = clock.utcnow()
    webhooks = list(Webhook.objects(active=True, events=event).scalar("id"))
    deliveries = [
        WebhookDelivery(webhook_id=webhook_id, event=event, payload=payload, next_attempt_at=now)
        for payload in _payloads(event, items, now)
        for webhook_id in webhooks
    ]
    if deliveries:
        WebhookDelivery.objects.insert(deliveries, load_bulk=False)
        tenant_id = current_tenant_id()
        leases.wake_many({leases.lane_name(LANE, webhook_id): tenant_id for webhook_id in webhooks}, now)
    return len(deliveries)


def emit_for_tenants(event: str, items: Mapping[Any, Sequence[dict[str, Any]]]) -> int:
    """Queue one `event` per item of data of each tenant id in `items`, for that tenant's webhooks:
    one query, one insert and one bulk wake for all of them (cross-tenant work inside `unscoped()`:
    every delivery and lane names its tenant). Return how many deliveries were queued."""
    if not items:
        return 0
    now = clock.utcnow()
    subscribed: dict[Any, list[Any]] = {}
    webhooks = Webhook.objects(tenant_id__in=list(items), active=True, events=event).only("id", "tenant_id")
    for webhook in webhooks.as_pymongo():
        subscribed.setdefault(webhook["tenantId"], []).append(webhook["_id"])
    rows = [
        {"tenant_id": tenant_id, "webhook_id": webhook_id, "payload": payload}
        for tenant_id, webhook_ids in subscribed.items()
        for payload in _payloads(event, items[tenant_id], now)
        for webhook_id in webhook_ids
    ]
    if not rows:
        return 0
    template = WebhookDelivery(**rows[0], event=event, next_attempt_at=now, created_at=now)
    WebhookDelivery._get_collection().insert_many(stored_like(template, rows), ordered=False)
    lanes = {
        leases.lane_name(LANE, webhook_id): tenant_id
        for tenant_id, webhook_ids in subscribed.items()
        for webhook_id in webhook_ids
    }
    leases.wake_many(lanes, now)
    return len(rows)
