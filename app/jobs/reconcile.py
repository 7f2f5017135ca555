"""Recount each tenant's gauges from its data and repair drift (app.maintenance.reconcile)."""

from __future__ import annotations

from app import clock
from app.maintenance.reconcile import recount_all


def run() -> dict[str, int]:
    """Reconcile every tenant."""
    return recount_all(clock.utcnow())
