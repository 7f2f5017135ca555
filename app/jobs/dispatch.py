"""Send the queued messages that are due (the dispatcher itself is app.messages.delivery)."""

from __future__ import annotations

from app.messages.delivery import dispatch


def run() -> dict[str, int]:
    """One pass of the dispatcher."""
    return dispatch()
