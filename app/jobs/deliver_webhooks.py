"""Deliver the webhook events that are due (the sender itself is app.webhooks.delivery)."""

from __future__ import annotations

from app.webhooks.delivery import deliver_pending


def run() -> dict[str, int]:
    """One pass over the pending deliveries."""
    return deliver_pending()
