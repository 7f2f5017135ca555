"""Emit tenant events: one pending delivery per active webhook subscribed to the event."""

from __future__ import annotations

import uuid
from typing import Any

from app.clock import utcnow
from app.tenancy.context import current_tenant_id
from app.tenants.models import Tenant

from .models import Webhook, WebhookDelivery


def emit(event: str, data: dict[str, Any]) -> int:
    """Queue `event` for the tenant in context's webhooks; return how many deliveries were queued."""
    now = utcnow()
    payload = {"id": uuid.uuid4().hex, "event": event, "createdAt": now.isoformat(), "data": data}
    deliveries = [
        WebhookDelivery(webhook_id=webhook.id, event=event, payload=payload, next_attempt_at=now)
        for webhook in Webhook.objects(active=True, events=event).only("id")
    ]
    if deliveries:
        WebhookDelivery.objects.insert(deliveries, load_bulk=False)
        Tenant.mark_pending(current_tenant_id(), "webhooks")
    return len(deliveries)
