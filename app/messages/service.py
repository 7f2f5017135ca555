"""The list of the tenant's messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.pagination import paginate

from .models import Message


def list_messages(
    paging: Mapping[str, Any], campaign_id: str | None = None, status: str | None = None
) -> dict:
    """Return a page of messages, newest first, filtered by campaign and status."""
    messages = Message.objects
    if campaign_id:
        messages = messages.filter(campaign_id=campaign_id)
    if status:
        messages = messages.filter(status=status)
    return paginate(messages, ("-queued_at", "-id"), paging)
