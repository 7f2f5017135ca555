"""Counting events in fixed windows (the `limits` library), for the rate limits of any package: the
app's limiter counts in RATELIMIT_STORAGE_URI, `memory://` per process (development, tests), a shared
store (`mongodb://...`) across workers and hosts. This module knows no tenant and no domain: what is
counted, and against which limit, is its callers' (app.usage.rate_limits, the audit log)."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from flask import Flask, current_app
from limits import RateLimitItem, parse, storage, strategies

LIMITER = "rate_limits"


class MemoryStorage(storage.MemoryStorage):
    """limits' in-process storage (`memory://`), with its counters read, counted and expired under one
    lock, and its expiry timer restarted under another (limits 5.8.0). Without them, two requests at
    once could both restart the timer (the second `start()` raised "threads can only be started once",
    a 500), and a count could be lost: the first count of a window sets its expiry only after counting,
    and a read in between took the counter for expired and dropped it."""

    STORAGE_SCHEME = ["memory"]  # takes the scheme over from limits' own class

    def __init__(self, *args: Any, **kwargs: Any):
        self.restarting = threading.Lock()
        self.counting = threading.RLock()
        super().__init__(*args, **kwargs)

    def get(self, key: str) -> int:
        with self.counting:
            return super().get(key)

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        with self.counting:
            return super().incr(key, expiry, amount)

    def _MemoryStorage__expire_events(self) -> None:  # the name-mangled method the timer runs
        with self.counting:
            cast(Any, super())._MemoryStorage__expire_events()

    def _MemoryStorage__schedule_expiry(self) -> None:  # the name-mangled method it replaces
        with self.restarting:
            if not self.timer.is_alive():
                self.timer = threading.Timer(0.01, cast(Any, self)._MemoryStorage__expire_events)
                self.timer.start()


def init_app(app: Flask) -> None:
    """Keep the app's limiter, counting in its RATELIMIT_STORAGE_URI, on the app."""
    uri = app.config["RATELIMIT_STORAGE_URI"]
    app.extensions[LIMITER] = strategies.FixedWindowRateLimiter(storage.storage_from_string(uri))


def limiter() -> strategies.FixedWindowRateLimiter:
    """The limiter of the app in context."""
    counter: strategies.FixedWindowRateLimiter = current_app.extensions[LIMITER]
    return counter


def within(limit: str, namespace: str, *keys: str) -> bool:
    """Count one event of `keys` against `limit` ("5/minute"); tell whether it stayed within it."""
    return limiter().hit(parse(limit), namespace, *keys)


def window_headers(item: RateLimitItem, namespace: str, key: str, refused: bool = False) -> dict[str, str]:
    """X-RateLimit-Limit/Remaining/Reset of `key`'s window, and Retry-After for a refusal."""
    reset_at, remaining = limiter().get_window_stats(item, namespace, key)
    headers = {
        "X-RateLimit-Limit": str(item.amount),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(reset_at)),
    }
    if refused:
        headers["Retry-After"] = str(max(1, int(reset_at - time.time())))
    return headers
