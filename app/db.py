"""Connect MongoEngine to MongoDB, or to the embedded in-memory store for development and tests.

`MONGODB_URI=mongomock://host/db` selects the embedded store (mongomock): the scheme is ours, translated
here to a mongodb:// URI and mongomock's client class. Every other URI goes to a real server.

mongomock is not thread-safe: it changes stored documents in place and copies them out without a lock,
so a read racing an update in another thread can fail ("dictionary changed size during iteration"),
and its conditional writes find, then write, re-checking nothing, so two threads could both pass the
condition of a quota's reservation. The embedded store therefore runs one operation at a time in a
process (`_serialize_embedded_store`), each atomic as a server applies a single-document write. A
server needs none of this.

mongomock also has no indexes: every query reads the whole collection, a lookup by `_id` included,
and one tenant's query reads every tenant's documents. `_embedded_indexes` gives it what a server's
`_id` index and the tenantId prefix of every tenant index give: a filter that names its `_id`s or its
tenants reads only those documents; and its check of a unique index, which scans the collection for
every document written, looks the key up among those the store holds. And its `bulk_write` breaks
on the `sort` argument pymongo 4.11 passes to every update: the shim accepts it when it is unset, as it
always is here.
"""

from __future__ import annotations

import copy
import functools
import itertools
import threading
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import bson
import mongoengine as me
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.errors import InvalidDocument
from mongoengine.connection import get_db
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.tenancy.collection import TENANT_FIELD, touches_tenant_field
from config import EMBEDDED_SCHEME, is_embedded


def connect(uri: str, **options: Any) -> None:
    """Open the default connection (replacing any previous one)."""
    me.disconnect()
    kwargs: dict[str, Any] = {"tz_aware": True, "uuidRepresentation": "standard", **options}
    if is_embedded(uri):
        import mongomock

        _serialize_embedded_store()
        _embedded_indexes()
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

        run.__dict__["embedded_lock"] = True
        return run

    targets: list[tuple[type, str]] = [
        (mongomock.collection.Collection, name) for name in EMBEDDED_OPERATIONS
    ]
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


# The types whose values, all of one type, Python orders as BSON does (compared exactly: a bool is
# not an int here; floats are not among them, for NaN, which BSON orders first and Python nowhere).
PLAIN_SORTED = frozenset({ObjectId, datetime, str, int, bool})

# How the embedded store sends a whole document, by whether its client is tz-aware: as BSON, decoded
# as the driver decodes what a server sends.
SENT: dict[bool, CodecOptions[dict[str, Any]]] = {
    aware: CodecOptions(tz_aware=aware) for aware in (False, True)
}


def _through_bson(document: dict[str, Any], aware: bool) -> dict[str, Any] | None:
    """A copy of a stored document as the driver decodes what a server sends (SENT), or None for
    one BSON cannot hold."""
    try:
        return bson.decode(bson.encode(document, codec_options=SENT[aware]), codec_options=SENT[aware])
    except (InvalidDocument, OverflowError):
        return None


# The values a lookup takes as they are (a regular expression, a list or a document is matched
# another way).
PLAIN_VALUES = (ObjectId, str, int, float, uuid.UUID)


def _values_named(filter_: Any, field: str) -> list[Any] | None:
    """The values of `field` a filter names, or None when it names none (a plain value or a plain
    `$in` list at the top of the filter, or of one of its `$and` clauses: MongoEngine puts every
    condition in a clause of its own when the filter has an `$or`)."""
    if isinstance(filter_, dict) and set(filter_) == {"$and"}:
        named = (_values_named(clause, field) for clause in filter_["$and"])
        return next((values for values in named if values is not None), None)
    if not isinstance(filter_, dict) or field not in filter_:
        return None
    value = filter_[field]
    if isinstance(value, dict) and set(value) == {"$in"} and isinstance(value["$in"], list):
        values = value["$in"]
        return list(dict.fromkeys(values)) if all(isinstance(v, PLAIN_VALUES) for v in values) else None
    return [value] if isinstance(value, PLAIN_VALUES) else None


def _tenants_of(store: Any) -> dict[Any, dict[Any, None]]:
    """The store's `_id`s by tenant (in insertion order), built when missing (None: a document
    without a tenant)."""
    if getattr(store, "by_tenant", None) is None:
        by_tenant: dict[Any, dict[Any, None]] = {}
        for key, document in store._documents.items():
            by_tenant.setdefault(document.get(TENANT_FIELD), {})[key] = None
        store.by_tenant = by_tenant
    return store.by_tenant


def _unique_key(document: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[Any, ...] | None:
    """The key of a unique index in a document, as mongomock's check looks it up (a missing field is
    None), or None when one of its values is not a plain value (an array matches by its elements)."""
    from mongomock import helpers

    key = []
    for name in fields:
        try:
            value = helpers.get_value_by_dot(document, name)
        except KeyError:
            value = None
        if value is not None and not isinstance(value, PLAIN_VALUES):
            return None
        key.append(value)
    return tuple(key)


UniqueKeys = list[tuple[tuple[str, ...], bool, dict[Any, dict[Any, None]]]]


def _unique_keys(store: Any) -> UniqueKeys | None:
    """Each unique index of the store: its fields, whether it is sparse, and the `_id`s of the
    documents by key. Built when missing or when the unique indexes changed, then kept as documents
    are written: an entry may name a document that no longer holds its key, never miss one that does.
    None (until the unique indexes change): mongomock's scan checks them, because an index has a
    partial filter, or a document a key or an `_id` that is not a plain value."""
    unique = tuple(
        (tuple(name for name, _direction in index["key"]), bool(index.get("sparse")))
        for index in store.indexes.values()
        if index.get("unique")
    )
    cached = getattr(store, "unique_keys", None)
    if cached is not None and cached[0] == unique:
        return cached[1]
    keys: UniqueKeys = [(fields, sparse, {}) for fields, sparse in unique]
    mappable = all(index.get("partialFilterExpression") is None for index in store.indexes.values())
    for key_id, document in store._documents.items() if mappable else ():
        found = [_unique_key(document, fields) for fields, _sparse, _by_key in keys]
        if not isinstance(key_id, PLAIN_VALUES) or None in found:
            mappable = False
            break
        for (_fields, _sparse, by_key), key in zip(keys, found, strict=True):
            by_key.setdefault(key, {})[key_id] = None
    store.unique_keys = (unique, keys if mappable else None)
    return store.unique_keys[1]


def _exists_test(filter_: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool] | None:
    """For a filter that only asks whether top-level fields exist (the migration's), a test of a
    document's keys that answers as mongomock's filter does, in a fraction of its time; None for any
    other filter (an empty one included)."""
    if not filter_:
        return None
    exists = {}
    for name, condition in filter_.items():
        if "." in name or name.startswith("$") or not isinstance(condition, dict):
            return None
        if set(condition) != {"$exists"} or not isinstance(condition["$exists"], bool):
            return None
        exists[name] = condition["$exists"]
    return lambda document: all((name in document) == wanted for name, wanted in exists.items())


def _embedded_indexes() -> None:
    """Give the embedded store what a server's indexes give (once per process): a filter naming its
    `_id`s reads only those documents (a find_one by a plain `_id`, without building a cursor), and
    one naming its `tenantId`s only those tenants' documents (every index of a tenant collection
    starts with tenantId). The documents of each tenant are kept
    as they are written and deleted; an update that writes tenantId itself (the migration's
    backfill) makes the store group them again when next asked. An aggregation's leading $match,
    $sort and $project run as a find, as a server runs them, and a cursor hands out its documents by
    position instead of copying the rest of its results for each, each whole document decoded from
    BSON as the driver decodes a server's (instead of mongomock's copies in Python; so is the copy
    it keeps of a document it updates), and sort keys of one plain type sort as Python sorts them
    (instead of by mongomock's comparisons). A unique index is checked by looking its key up in a
    map of the store's keys (`_unique_keys`), and a filter that only asks whether fields exist by
    looking at the document's keys (`_exists_test`). Bulk updates get past pymongo 4.11's `sort`
    argument, which mongomock does not know."""
    import mongomock.aggregate
    import mongomock.collection
    import mongomock.helpers
    import mongomock.store
    from mongomock.filtering import filter_applies, resolve_key

    collection: Any = mongomock.collection.Collection
    scan = collection._iter_documents
    if getattr(scan, "indexed", False):
        return

    def iter_documents(self: Any, filter: Any) -> Any:
        # The documents found by the values named hold those values: the rest of the filter decides
        # (as a server's index does; mongomock would look each document up in the list of values).
        # The store is read as mongomock reads it, expired documents removed first, but once per
        # query instead of once per document looked up.
        store = self._store
        ids = _values_named(filter, "_id")
        tenants = None if ids is not None else _values_named(filter, TENANT_FIELD)
        if ids is None and tenants is None:
            exists = _exists_test(filter)
            if exists is None or store.is_empty:
                return scan(self, filter)
            return (document for document in list(store.documents) if exists(document))
        store._remove_expired_documents()
        documents = store._documents

        def test(rest: dict[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
            return _exists_test(rest) or functools.partial(filter_applies, rest)

        if ids is not None:
            applies = test({name: value for name, value in filter.items() if name != "_id"})
            found = [documents[i] for i in ids if i in documents]
            return iter([document for document in found if applies(document)])
        by_tenant = _tenants_of(store)
        applies = test({name: value for name, value in filter.items() if name != TENANT_FIELD})
        untenanted = test(filter)
        found = [documents[key] for tenant in tenants or () for key in by_tenant.get(tenant, ())]
        return iter(
            [document for document in found if applies(document)]
            + [document for key in by_tenant.get(None, ()) if untenanted(document := documents[key])]
        )

    iter_documents.__dict__["indexed"] = True
    collection._iter_documents = iter_documents

    update = collection._update

    def update_keeping_tenants(self: Any, spec: Any, document: Any, *args: Any, **kwargs: Any) -> Any:
        if touches_tenant_field(document):
            self._store.by_tenant = None
        return update(self, spec, document, *args, **kwargs)

    collection._update = update_keeping_tenants

    ensure_uniques = collection._ensure_uniques

    def ensure_uniques_by_key(self: Any, new_data: Any) -> None:
        # A unique index's key looked up among the keys the store holds, as a server's index does;
        # mongomock scans the collection for every key of every document written. `new_data` is
        # stored already.
        store, key_id = self._store, new_data["_id"]
        keys = _unique_keys(store)
        found = [_unique_key(new_data, fields) for fields, _sparse, _by_key in keys or ()]
        if keys is None or not isinstance(key_id, PLAIN_VALUES) or None in found:
            if keys is not None:
                store.unique_keys = (store.unique_keys[0], None)
            return ensure_uniques(self, new_data)
        for (fields, sparse, by_key), key in zip(keys, found, strict=True):
            if key is None or (sparse and set(key) == {None}):
                continue
            holders = by_key.setdefault(key, {})
            for other in list(holders):
                held = store._documents.get(other)
                if other != key_id and held is not None and _unique_key(held, fields) == key:
                    raise DuplicateKeyError("E11000 Duplicate Key Error", DUPLICATE_KEY)
                if other != key_id and (held is None or _unique_key(held, fields) != key):
                    holders.pop(other)
            holders[key_id] = None
        return None

    collection._ensure_uniques = ensure_uniques_by_key

    store_class: Any = mongomock.store.CollectionStore
    set_item, del_item, drop = store_class.__setitem__, store_class.__delitem__, store_class.drop

    def set_document(self: Any, key: Any, document: Any) -> None:
        by_tenant = getattr(self, "by_tenant", None)
        tenant = document.get(TENANT_FIELD)
        replaced = self._documents.get(key)
        if by_tenant is not None and replaced is not None and replaced.get(TENANT_FIELD) != tenant:
            by_tenant.get(replaced.get(TENANT_FIELD), {}).pop(key, None)
        set_item(self, key, document)
        if by_tenant is not None:
            by_tenant.setdefault(tenant, {})[key] = None

    def del_document(self: Any, key: Any) -> None:
        if getattr(self, "by_tenant", None) is not None:
            self.by_tenant.get(self._documents[key].get(TENANT_FIELD), {}).pop(key, None)
        del_item(self, key)

    def drop_documents(self: Any) -> None:
        drop(self)
        self.by_tenant = None
        self.unique_keys = None

    store_class.__setitem__ = set_document
    store_class.__delitem__ = del_document
    store_class.drop = drop_documents

    aggregate = collection.aggregate

    def aggregate_through_find(self: Any, pipeline: Any, session: Any = None, **kwargs: Any) -> Any:
        # A server runs a leading $match, $sort and inclusion $project as a query, through an index;
        # mongomock would copy the whole collection first.
        stages = list(pipeline)
        query: dict[str, Any] = {}
        for operator in ("$match", "$sort", "$project"):
            if stages and set(stages[0]) == {operator}:
                query[operator] = stages.pop(0)[operator]
        if not query or not all(value in (0, 1) for value in query.get("$project", {}).values()):
            return aggregate(self, pipeline, session, **kwargs)
        cursor = self.find(query.get("$match"), query.get("$project"))
        if "$sort" in query:
            cursor = cursor.sort(list(query["$sort"].items()))
        return mongomock.aggregate.process_pipeline(list(cursor), self.database, stages, session)

    collection.aggregate = aggregate_through_find

    get_dataset = collection._get_dataset

    def dataset_sorted_natively(self: Any, spec: Any, sort: Any, fields: Any, as_class: Any) -> Any:
        # A server walks an index in the sort's order; mongomock compares each pair of documents
        # through a Python wrapper of BSON's order. Keys of one plain type in every document sort as
        # Python sorts them, which is BSON's order within that type: any other key (missing, an
        # array, mixed types) is mongomock's to sort.
        keys = list(sort.items() if isinstance(sort, dict) else sort or ())
        documents = list(self._iter_documents(spec)) if keys else []
        for key, direction in reversed(keys):
            values = [resolve_key(key, document) for document in documents]
            kinds = {type(value) for value in values}
            try:
                if key.startswith("$") or len(kinds) > 1 or not kinds <= PLAIN_SORTED:
                    raise TypeError(key)
                order = sorted(range(len(documents)), key=values.__getitem__, reverse=direction < 0)
            except TypeError:  # aware and naive date-times do not compare either
                yield from get_dataset(self, spec, sort, fields, as_class)
                return
            documents = [documents[position] for position in order]
        if not keys:
            documents = self._iter_documents(spec)
        for document in documents:
            yield self._copy_only_fields(document, fields, as_class)

    collection._get_dataset = dataset_sorted_natively

    copy_only_fields = collection._copy_only_fields

    def copy_as_sent(self: Any, document: Any, fields: Any, container: Any) -> Any:
        # A server sends a whole document as BSON, which the driver decodes into new objects (in C),
        # its datetimes aware of UTC with a tz-aware client: mongomock copies it field by field in
        # Python, and once more to make its datetimes aware. A projection is mongomock's to apply.
        aware = self.codec_options.tz_aware
        sent = None if fields else _through_bson(document, aware)
        if sent is not None:
            return sent
        copied = copy_only_fields(self, document, fields, container)
        return mongomock.helpers.make_datetime_timezone_aware_in_document(copied) if aware else copied

    collection._copy_only_fields = copy_as_sent

    find_one = collection.find_one

    def find_one_by_id(self: Any, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        # A lookup by a plain _id reads its document, as a server's _id index does, and tests the
        # rest of the filter on it: mongomock builds a cursor for it, with a copy of the filter.
        if args or not set(kwargs) <= {"projection", "sort"} or kwargs.get("sort") is not None:
            return find_one(self, filter, *args, **kwargs)
        if not isinstance(filter, dict) or type(filter.get("_id")) not in PLAIN_VALUES:
            return find_one(self, filter, *args, **kwargs)
        rest = {name: value for name, value in filter.items() if name != "_id"}
        rest = mongomock.helpers.patch_datetime_awareness_in_document(rest) if rest else rest
        with _embedded_lock:
            self._store._remove_expired_documents()
            document = self._store._documents.get(filter["_id"])
            if document is None or (rest and not filter_applies(rest, document)):
                return None
            return self._copy_only_fields(document, kwargs.get("projection"), dict)

    find_one_by_id.__dict__["embedded_lock"] = True  # it holds the lock itself
    collection.find_one = find_one_by_id

    def deepcopy(value: Any) -> Any:
        # mongomock copies with copy.deepcopy, in Python, a whole document before each update (to
        # tell whether it changed, and to put it back on a duplicate key): a document is copied
        # through BSON (in C), as its reads are; anything else as before.
        copied = _through_bson(value, aware=False) if type(value) is dict else None
        return copy.deepcopy(value) if copied is None else copied

    module: Any = mongomock.collection
    module.copy = types.SimpleNamespace(copy=copy.copy, deepcopy=deepcopy)

    cursor_class: Any = mongomock.collection.Cursor

    def window(self: Any) -> list[Any]:
        # A server sends the documents between skip and limit: copy only those (and the skipped
        # ones, which mongomock copies as it goes), not every document the filter matches.
        key = (self._factory, self._skip, self._limit)
        if getattr(self, "_window_key", None) != key:
            end = self._skip + abs(self._limit) if self._limit else None
            with _embedded_lock:
                results = list(itertools.islice(self._factory(), self._skip, end))
            self._window_results, self._window_key = results, key
        return self._window_results

    def next_document(self: Any) -> Any:
        # By position: mongomock copies the rest of its results for every document it returns.
        results = self._results_in_window()
        if self._emitted >= len(results):
            raise StopIteration
        self._emitted += 1
        return results[self._emitted - 1]

    cursor_class._results_in_window = window
    cursor_class.__next__ = cursor_class.next = next_document

    builder: Any = mongomock.collection.BulkOperationBuilder
    add_update = builder.add_update

    def add_update_with_sort(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("the embedded store cannot sort the documents of a bulk update")
        return add_update(self, *args, **kwargs)

    builder.add_update = add_update_with_sort


_counts: Counter[str] = Counter()
_counting = threading.Lock()
_depth = threading.local()


def _install_counter() -> None:
    """Count every operation of the embedded store in `_counts` (once per process)."""
    import mongomock.collection

    _embedded_indexes()  # the cursor's window, which a count wraps, comes from there

    collection: Any = mongomock.collection.Collection
    if getattr(collection.insert_one, "counted", False):
        return

    def count(key: str) -> None:
        with _counting:
            _counts[key] += 1

    for name in DOCUMENT_OPERATIONS:
        original = getattr(collection, name)

        def counted(
            self: Any, *args: Any, __original: Any = original, __name: str = name, **kwargs: Any
        ) -> Any:
            depth = getattr(_depth, "depth", 0)
            if depth == 0:
                count(f"{self.name}.{__name}")
            _depth.depth = depth + 1
            try:
                return __original(self, *args, **kwargs)
            finally:
                _depth.depth = depth

        counted.__dict__["counted"] = True
        setattr(collection, name, counted)

    cursor: Any = mongomock.collection.Cursor
    compute = cursor._compute_results

    def counted_find(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent = not self._results or self._factory_last_generated_results != self._factory
        if sent and getattr(_depth, "depth", 0) == 0:
            count(f"{self.collection.name}.find")
        return compute(self, *args, **kwargs)

    window = cursor._results_in_window

    def counted_window(self: Any) -> Any:
        sent = getattr(self, "_window_key", None) != (self._factory, self._skip, self._limit)
        if sent and getattr(_depth, "depth", 0) == 0:
            count(f"{self.collection.name}.find")
        return window(self)

    cursor._compute_results = counted_find
    cursor._results_in_window = counted_window


@contextmanager
def counted_operations() -> Iterator[dict[str, int]]:
    """Count the embedded store's operations in the block, in every thread, by "collection.method",
    and under "total" (benchmarks and tests: mongomock emits no command events). Each call of a read
    or write method counts once, an operation mongomock builds on others included; a find counts
    when its cursor is first read, which is when a driver sends it."""
    _install_counter()
    with _counting:
        _counts.clear()
    result: dict[str, int] = {}
    yield result
    with _counting:
        result.update(_counts)
    result["total"] = sum(_counts.values())


DUPLICATE_KEY = 11000


def insert_missing(collection: Any, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert each document unless a unique index of the collection holds one with the same key, and
    return those that went in: one unordered insert, whose duplicate key errors name (by position) the
    documents stored already, by a run before or one running at the same time."""
    if not documents:
        return []
    try:
        collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details["writeErrors"]
        if any(error["code"] != DUPLICATE_KEY for error in errors):
            raise
        stored_already = {error["index"] for error in errors}
        return [document for index, document in enumerate(documents) if index not in stored_already]
    return documents


def stored_like(template: me.Document, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The stored forms of documents that are `template` but for the fields each row gives (Python
    names, stored values; None leaves the field out, as the ODM does). The template is validated once:
    a batch of documents built by the same code differs only in values of the same kinds, and building
    each through the ODM would cost more than writing it."""
    template.validate()
    stored = template.to_mongo().to_dict()
    documents = []
    for row in rows:
        document = dict(stored)
        for name, value in row.items():
            key = template._fields[name].db_field
            if value is None:
                document.pop(key, None)
            else:
                document[key] = value
        documents.append(document)
    return documents
