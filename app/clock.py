"""Time in one place: the app reads the time through this module (`clock.utcnow()`,
`clock.monotonic()`), never by a name imported elsewhere, so that a test moves it by patching
`app.clock` once (or with time-machine), not each module that reads it."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current UTC time, to the millisecond (MongoDB's precision, so that a document reads
    back exactly as it was written)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def monotonic() -> float:
    """Seconds on a clock that never goes back (rate windows, caches, deadlines): for durations only."""
    return time.monotonic()
