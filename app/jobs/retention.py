"""Delete what each tenant's retention window no longer covers (app.maintenance.retention)."""

from __future__ import annotations

from datetime import datetime

from app import clock
from app.maintenance.retention import purge_expired


def run(now: datetime | None = None) -> dict[str, int]:
    """Purge every tenant that has a retention window."""
    return purge_expired(now or clock.utcnow())
