"""Convert a database written by the single-tenant version of the service to the multi-tenant layout.

Order, chosen so that the data is never without a unique index that is right for it:
1. the default tenant is created (or reused);
2. the tenant-prefixed indexes are created next to the old global ones: on documents that all lack
   tenantId, a unique (tenantId, email) holds exactly when the old unique email did;
3. tenantId is backfilled in batches (one update_many per batch, never one write per document);
4. the old indexes that do not start with tenantId are dropped (the new ones protect the data now);
5. the document counts before and after must match in every collection;
6. (app.maintenance.reconcile.recompute_usage, which app.maintenance.migration calls after this module's
   steps) the usage counters and the email directory are recomputed from the data.
Every step skips what is done already, so a second run changes nothing and an interrupted run,
run again, finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TextIO

from bson import json_util
from pymongo.errors import OperationFailure

from .collection import TENANT_FIELD
from .context import unscoped
from .registry import tenant_document_classes

MISSING = {TENANT_FIELD: {"$exists": False}}
Progress = Callable[[int, str], AbstractContextManager[Any]]


class MigrationError(RuntimeError):
    """The migration cannot go on safely; the message says why and what to do."""


@dataclass
class CollectionReport:
    collection: str
    before: int = 0
    missing_tenant: int = 0
    backfilled: int = 0
    after: int = 0
    old_indexes: list[str] = field(default_factory=list)
    new_indexes: list[str] = field(default_factory=list)


def no_progress(length: int, label: str) -> AbstractContextManager[Any]:
    return nullcontext(None)


def _old_indexes(collection: Any) -> list[str]:
    """Indexes of a tenant collection that do not start with tenantId (the single-tenant ones)."""
    return sorted(
        name
        for name, index in collection.index_information().items()
        if name != "_id_" and index["key"][0][0] != TENANT_FIELD
    )


def _missing_indexes(document_class: Any, collection: Any) -> list[str]:
    existing = {tuple(index["key"]) for index in collection.index_information().values()}
    wanted = []
    for spec in document_class._meta.get("index_specs") or []:
        keys = tuple((name, direction) for name, direction in spec["fields"])
        if keys not in existing:
            wanted.append("_".join(f"{name}_{direction}" for name, direction in keys))
    return wanted


def inspect() -> list[CollectionReport]:
    """Describe what the migration would do to each tenant collection; write nothing."""
    reports = []
    with unscoped("migration: inspect the single-tenant data"):
        for document_class in sorted(tenant_document_classes(), key=lambda c: c._get_collection_name()):
            collection = document_class._get_collection()
            reports.append(
                CollectionReport(
                    collection=collection.name,
                    before=collection.count_documents({}),
                    missing_tenant=collection.count_documents(MISSING),
                    old_indexes=_old_indexes(collection),
                    new_indexes=_missing_indexes(document_class, collection),
                )
            )
    return reports


def write_backup(out: TextIO, reports: Iterable[CollectionReport]) -> int:
    """Write, as one JSON document, every document the migration will change and every index it will
    drop; return the number of documents written."""
    written = 0
    by_name = {c._get_collection_name(): c for c in tenant_document_classes()}
    out.write('{"collections": {')
    with unscoped("migration: back up what will change"):
        for position, report in enumerate(reports):
            collection = by_name[report.collection]._get_collection()
            indexes = {name: collection.index_information()[name] for name in report.old_indexes}
            out.write(("" if position == 0 else ", ") + json_util.dumps(report.collection) + ": {")
            out.write('"droppedIndexes": ' + json_util.dumps(indexes) + ', "documents": [')
            for index, document in enumerate(collection.find(MISSING)):
                out.write(
                    ("" if index == 0 else ", ")
                    + json_util.dumps(document, json_options=json_util.RELAXED_JSON_OPTIONS)
                )
                written += 1
            out.write("]}")
    out.write("}}\n")
    return written


def _batches_of_ids(collection: Any, batch_size: int) -> Iterator[list[Any]]:
    """The `_id`s of the documents without tenantId, in `_id` order, `batch_size` at a time: one
    cursor, which the server walks along the `_id` index and sends a batch at a time (an update of a
    batch moves no `_id`, so no document is seen twice). A projection in an aggregation, because a
    find's cursor on the embedded store copies its results for every document it returns."""
    pipeline = [{"$match": MISSING}, {"$sort": {"_id": 1}}, {"$project": {"_id": 1}}]
    ids = []
    for document in collection.aggregate(pipeline, batchSize=batch_size):
        ids.append(document["_id"])
        if len(ids) == batch_size:
            yield ids
            ids = []
    if ids:
        yield ids


def migrate(tenant: Any, batch_size: int = 1000, progress: Progress = no_progress) -> list[CollectionReport]:
    """Run steps 2 to 5 for every tenant collection, backfilling `tenant`; return a report per collection."""
    if batch_size < 1:
        raise MigrationError("the batch size must be at least 1")
    reports = inspect()
    by_name = {c._get_collection_name(): c for c in tenant_document_classes()}
    with unscoped("migration: backfill tenantId and replace the single-tenant indexes"):
        for report in reports:
            document_class = by_name[report.collection]
            collection = document_class._get_collection()
            try:
                document_class.ensure_indexes()
            except OperationFailure as exc:
                raise MigrationError(
                    f"{report.collection}: the tenant-prefixed indexes cannot be created ({exc}); "
                    "the data breaks a unique constraint of the multi-tenant layout: fix it and run again"
                ) from exc
            with (
                progress(report.missing_tenant, report.collection)
                if report.missing_tenant
                else nullcontext() as bar
            ):
                for ids in _batches_of_ids(collection, batch_size):
                    # Still without tenantId: a run at the same time may have done some.
                    batch = {"_id": {"$in": ids}, **MISSING}
                    result = collection.update_many(batch, {"$set": {TENANT_FIELD: tenant.id}})
                    report.backfilled += result.modified_count
                    if bar is not None:
                        bar.update(len(ids))
            for name in _old_indexes(collection):
                collection.drop_index(name)
            report.after = collection.count_documents({})
            if report.after != report.before or collection.count_documents(MISSING):
                raise MigrationError(
                    f"{report.collection}: {report.before} documents before, {report.after} after, "
                    f"{collection.count_documents(MISSING)} without tenantId; restore the backup "
                    "and report this"
                )
    return reports
