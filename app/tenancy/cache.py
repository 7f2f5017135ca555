"""Caches with a TTL and in-process invalidation.

`tenant_cache()` is the app in context's cache of tenants by id, slug and domain (kept on the app by
`init_app`, for TENANT_CACHE_TTL seconds): every request needs its tenant, and the cache saves the
round trip. A change to a tenant made in this process clears it at once (Tenant's post_save and
post_delete signals and the tenant service call `forget_tenants()`); other processes see it within
TENANT_CACHE_TTL seconds. Misses are cached too, so that a stream of requests for an unknown host costs
one query per TTL. Cached documents are shared between threads: read them, never change them (load a
fresh copy to change a tenant).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

import cachetools
from flask import Flask, current_app, has_app_context

from app import clock

TENANTS = "tenant_cache"


class TTLCache:
    """Values by key for `ttl` seconds of `timer`, at most `max_entries` of them: past that the least
    recently used goes (keys may come from requests: a stream of unknown hosts or keys must not grow
    it without bound, nor push out the keys in use). Safe to share between threads."""

    def __init__(
        self, ttl: float = 60.0, max_entries: int = 10_000, timer: Callable[[], float] = clock.monotonic
    ):
        self._ttl = ttl
        self._timer = timer
        self.max_entries = max_entries
        self._generation = 0
        self._lock = threading.Lock()
        self._entries: cachetools.TTLCache[Hashable, Any] = cachetools.TTLCache(max_entries, ttl, timer=timer)

    @property
    def ttl(self) -> float:
        return self._ttl

    @ttl.setter
    def ttl(self, ttl: float) -> None:
        """Keep values `ttl` seconds from now on (0: keep none); forgets everything."""
        self._ttl = ttl
        self._rebuild()

    @property
    def timer(self) -> Callable[[], float]:
        return self._timer

    @timer.setter
    def timer(self, timer: Callable[[], float]) -> None:
        """Count time with `timer` from now on (tests move a clock by hand); forgets everything."""
        self._timer = timer
        self._rebuild()

    def _rebuild(self) -> None:
        with self._lock:
            self._entries = cachetools.TTLCache(self.max_entries, self._ttl, timer=self._timer)
            self._generation += 1

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """Return the cached value of `key`, calling `load()` on a miss or after the TTL."""
        with self._lock:
            try:
                return self._entries[key]
            except KeyError:
                generation = self._generation
        value = load()
        with self._lock:
            # A change that happened while we loaded makes our value stale: do not keep it.
            if generation == self._generation and self._ttl > 0:
                self._entries[key] = value
        return value

    def discard(self, key: Hashable) -> None:
        """Forget `key` (its value changed)."""
        with self._lock:
            self._entries.pop(key, None)
            self._generation += 1

    def clear(self) -> None:
        """Forget everything (something cached changed in this process)."""
        with self._lock:
            self._entries.clear()
            self._generation += 1


def init_app(app: Flask) -> None:
    """Keep the app's cache of tenants on the app, for its TENANT_CACHE_TTL seconds."""
    app.extensions[TENANTS] = TTLCache(ttl=app.config["TENANT_CACHE_TTL"])


def tenant_cache() -> TTLCache:
    """The cache of tenants of the app in context."""
    cache: TTLCache = current_app.extensions[TENANTS]
    return cache


def forget_tenants() -> None:
    """Forget the tenants the app in context cached (a tenant changed); outside an app there is no
    cache to forget."""
    if has_app_context():
        tenant_cache().clear()
