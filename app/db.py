"""Connect MongoEngine to MongoDB, or to the embedded in-memory store for development and tests.

`MONGODB_URI=mongomock://host/db` selects the embedded store (mongomock): the scheme is ours, translated
here to a mongodb:// URI and mongomock's client class. Every other URI goes to a real server.

mongomock is not thread-safe: it changes stored documents in place and copies them out without a lock,
so a read racing an update in another thread can fail ("dictionary changed size during iteration"),
and its conditional writes find, then write, re-checking nothing, so two threads could both pass the
condition of a quota's reservation. The embedded store therefore runs one operation at a time in a
process (`_serialize_embedded_store`), each atomic as a server applies a single-document write. A
server needs none of this.
"""

from __future__ import annotations

import functools
import threading
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

        _serialize_embedded_store()
        uri = "mongodb://" + uri[len(EMBEDDED_SCHEME) :]
        kwargs["mongo_client_class"] = mongomock.MongoClient
    else:
        kwargs.setdefault("serverSelectionTimeoutMS", 5000)
    me.connect(host=uri, **kwargs)


# The collection methods that read or write documents (a find runs when its cursor is first read).
DOCUMENT_OPERATIONS = (
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "find_one",
    "find_one_and_delete",
    "find_one_and_replace",
    "find_one_and_update",
    "delete_one",
    "delete_many",
    "count_documents",
    "estimated_document_count",
    "distinct",
    "aggregate",
    "bulk_write",
)
EMBEDDED_OPERATIONS = (
    *DOCUMENT_OPERATIONS,
    "create_index",
    "create_indexes",
    "drop_index",
    "drop_indexes",
    "drop",
)
_embedded_lock = threading.RLock()


def _serialize_embedded_store() -> None:
    """Make every mongomock operation hold one process-wide lock (once per process)."""
    import mongomock.collection

    def locked(method: Any) -> Any:
        @functools.wraps(method)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _embedded_lock:
                return method(*args, **kwargs)

        run.embedded_lock = True
        return run

    targets = [(mongomock.collection.Collection, name) for name in EMBEDDED_OPERATIONS]
    targets.append((mongomock.collection.Cursor, "_compute_results"))
    for owner, name in targets:
        method = getattr(owner, name)
        if not getattr(method, "embedded_lock", False):
            setattr(owner, name, locked(method))


def database() -> Any:
    """Return the pymongo Database (for the tenancy core, health checks and operations only)."""
    return get_db()


def ping() -> None:
    """Raise if the database does not answer."""
    database().command("ping")
