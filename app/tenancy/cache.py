"""Per-process caches with a TTL and in-process invalidation.

`tenant_cache` holds tenants by id, slug and domain: every request needs its tenant, and the cache saves
the round trip. A change to a tenant made in this process clears the cache at once (Tenant's
post_save/post_delete signals and the tenant service); other processes see it within TENANT_CACHE_TTL
seconds. Misses are cached too, so that a stream of requests for an unknown host costs one query per
TTL. Cached documents are shared between threads: read them, never change them (load a fresh copy to
change a tenant).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class TTLCache:
    """Values by key for `ttl` seconds; at `max_entries` it starts again empty (keys may come from
    requests: a stream of unknown hosts or keys must not grow it without bound)."""

    def __init__(self, ttl: float = 60.0, max_entries: int = 10_000):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """Return the cached value of `key`, calling `load()` on a miss or after the TTL."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            generation = self._generation
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        with self._lock:
            # A change that happened while we loaded makes our value stale: do not keep it.
            if generation == self._generation and self.ttl > 0:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self.ttl, value)
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


tenant_cache = TTLCache()
