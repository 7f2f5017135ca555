"""Connect MongoEngine to MongoDB, or to the embedded in-memory store for development and tests.

`MONGODB_URI=mongomock://host/db` selects the embedded store (mongomock): the scheme is ours, translated
here to a mongodb:// URI and mongomock's client class. Every other URI goes to a real server.
"""

from __future__ import annotations

from typing import Any

import mongoengine as me
from mongoengine.connection import get_db

from config import EMBEDDED_SCHEME, is_embedded


def connect(uri: str, **options: Any) -> None:
    """Open the default connection (replacing any previous one)."""
    me.disconnect()
    kwargs: dict[str, Any] = {"tz_aware": True, "uuidRepresentation": "standard", **options}
    if is_embedded(uri):
        import mongomock

        uri = "mongodb://" + uri[len(EMBEDDED_SCHEME) :]
        kwargs["mongo_client_class"] = mongomock.MongoClient
    else:
        kwargs.setdefault("serverSelectionTimeoutMS", 5000)
    me.connect(host=uri, **kwargs)


def database() -> Any:
    """Return the pymongo Database (for the tenancy core, health checks and operations only)."""
    return get_db()


def ping() -> None:
    """Raise if the database does not answer."""
    database().command("ping")
