"""What authentication rechecks on every request, cached by the app (`auth_cache()`, kept on the app by
`init_app`) for AUTH_CACHE_TTL seconds.

Every request rechecks its credential: the token's revocation, the account behind it (still there,
still active, its current role) or the API key. Asking the database each time costs two operations per
request, so the answers are kept here. A change made in this process clears the cache at once: saving
or deleting a user, superadmin or API key (post_save/post_delete signals), revoking a token, erasing a
user. A change made by another process (another gunicorn worker, the command line) takes effect there
within AUTH_CACHE_TTL seconds (5 by default), the same bound TENANT_CACHE_TTL puts on a suspension.
AUTH_CACHE_TTL=0 turns the cache off: every request asks the database again.

Cached accounts are shared between threads and may be that old: read them, never change them, and load
a fresh copy to change or show one.
"""

from __future__ import annotations

import mongoengine as me
from flask import Flask, current_app, has_app_context

from app import signals
from app.tenancy.cache import TTLCache
from app.users.models import PlatformUser, User

from .models import ApiKey

CACHE = "auth_cache"


def init_app(app: Flask) -> None:
    """Keep the app's cache of credentials on the app, for its AUTH_CACHE_TTL seconds."""
    app.extensions[CACHE] = TTLCache(ttl=app.config["AUTH_CACHE_TTL"])


def auth_cache() -> TTLCache:
    """The cache of credentials of the app in context."""
    cache: TTLCache = current_app.extensions[CACHE]
    return cache


def forget(*_args: object, **_kwargs: object) -> None:
    """Clear the app in context's cache (an account, key or revocation changed in this process);
    outside an app there is no cache to clear."""
    if has_app_context():
        auth_cache().clear()


def connect() -> None:
    """Clear the cache when another package changes credentials by a write that saves no document."""
    signals.credentials_changed.connect(forget)


for _document_class in (User, PlatformUser, ApiKey):
    me.signals.post_save.connect(forget, sender=_document_class)
    me.signals.post_delete.connect(forget, sender=_document_class)
