"""Delete what each tenant's retention window no longer covers (app.tenants.retention)."""

from __future__ import annotations

from datetime import datetime

from app import clock
from app.tenants.retention import purge_expired


def run(now: datetime | None = None) -> dict[str, int]:
    """Purge every tenant that has a retention window."""
    return purge_expired(now or clock.utcnow())
