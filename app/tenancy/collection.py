"""A guard around the pymongo collection of every tenant-owned document class.

MongoEngine reaches the database through `Document._get_collection()`; for tenant documents that returns
this wrapper, so every read and write, the ODM's own and any raw call, is checked before it is sent:
outside `unscoped()`, its filter must bind the tenant in context, inserted documents must carry that
tenant, updates may not touch `tenantId`, and aggregation pipelines may not reach other collections.
Operations it does not know are refused (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flask import current_app, has_app_context
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne

from .context import TenancyError, TenantContextMissing, current_state

log = logging.getLogger("app.tenancy")

TENANT_FIELD = "tenantId"

# Stages that read or write another collection: a way around the tenant filter of the first $match.
FORBIDDEN_STAGES = frozenset({"$lookup", "$graphLookup", "$unionWith", "$out", "$merge"})

# Read-only attributes and index management, which carry no documents.
PASSTHROUGH = frozenset(
    {
        "name",
        "full_name",
        "database",
        "codec_options",
        "read_preference",
        "write_concern",
        "read_concern",
        "create_index",
        "create_indexes",
        "index_information",
        "list_indexes",
        "drop_index",
        "drop_indexes",
        "options",
    }
)


def _debugging() -> bool:
    """Whether the app in context logs every tenant filter the guard lets through (TENANT_DEBUG)."""
    return has_app_context() and bool(current_app.config.get("TENANT_DEBUG"))


class TenantViolation(TenancyError):
    """An operation on a tenant collection would have crossed the tenant boundary."""


def _binds_tenant(filter_: Mapping[str, Any] | None, tenant_id: Any) -> bool:
    """Tell whether `filter_` restricts its matches to `tenant_id`."""
    if not filter_:
        return False
    if TENANT_FIELD in filter_:
        return filter_[TENANT_FIELD] == tenant_id
    clauses = filter_.get("$and")
    return isinstance(clauses, list) and any(_binds_tenant(c, tenant_id) for c in clauses)


def touches_tenant_field(update: Any) -> bool:
    """Tell whether an update document or pipeline would write `tenantId`."""
    if isinstance(update, list):
        return any(touches_tenant_field(stage) for stage in update)
    if not isinstance(update, Mapping):
        return False
    for operator, fields in update.items():
        if not operator.startswith("$"):
            return TENANT_FIELD in update
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                if key.split(".")[0] == TENANT_FIELD:
                    return True
                if operator == "$rename" and str(value).split(".")[0] == TENANT_FIELD:
                    return True
    return False


def _forbidden_stage(node: Any) -> str | None:
    """Find a stage that reaches another collection anywhere in a pipeline (nested ones included)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in FORBIDDEN_STAGES:
                return key
            found = _forbidden_stage(value)
            if found:
                return found
    elif isinstance(node, list):
        for item in node:
            found = _forbidden_stage(item)
            if found:
                return found
    return None


class GuardedCollection:
    """Wrap a pymongo (or mongomock) collection of a tenant-owned document class."""

    __slots__ = ("_raw", "_owner")

    def __init__(self, raw: Any, owner: str):
        self._raw = raw
        self._owner = owner

    def __repr__(self) -> str:
        return f"GuardedCollection({self._raw.name!r})"

    def __getattr__(self, name: str) -> Any:
        if name in PASSTHROUGH:
            return getattr(self._raw, name)
        raise TenantViolation(
            f"{self._owner}: collection method {name}() is not allowed on a tenant collection"
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GuardedCollection):
            return self._raw == other._raw
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._raw.full_name)

    # -- checks -------------------------------------------------------------------------------------

    def _tenant(self, operation: str) -> Any:
        """Return the tenant id operations must bind, or None inside unscoped()."""
        state = current_state()
        if state.unscoped_reason is not None:
            return None
        if state.tenant_id is None:
            raise TenantContextMissing(
                f"{self._owner}.{operation}: no tenant in context (use tenant_scope or unscoped)"
            )
        return state.tenant_id

    def _check_filter(self, operation: str, filter_: Mapping[str, Any] | None) -> None:
        tenant_id = self._tenant(operation)
        if tenant_id is None:
            return
        if not _binds_tenant(filter_, tenant_id):
            raise TenantViolation(f"{self._owner}.{operation}: the filter does not bind the current tenant")
        if _debugging():
            log.debug(
                "tenant filter",
                extra={"collection": self._raw.name, "op": operation, "filter": str(filter_)},
            )

    def _check_update(self, operation: str, update: Any) -> None:
        if touches_tenant_field(update) and current_state().unscoped_reason is None:
            raise TenantViolation(f"{self._owner}.{operation}: tenantId is write-once")

    def _check_document(self, operation: str, document: Mapping[str, Any]) -> None:
        tenant_id = self._tenant(operation)
        if tenant_id is not None and document.get(TENANT_FIELD) != tenant_id:
            raise TenantViolation(
                f"{self._owner}.{operation}: the document does not belong to the current tenant"
            )

    # -- reads --------------------------------------------------------------------------------------

    def find(self, filter: Mapping[str, Any] | None = None, *args: Any, **kwargs: Any) -> Any:
        self._check_filter("find", filter)
        return self._raw.find(filter, *args, **kwargs)

    def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        self._check_filter("find_one", filter)
        return self._raw.find_one(filter, *args, **kwargs)

    def count_documents(self, filter: Mapping[str, Any], *args: Any, **kwargs: Any) -> int:
        self._check_filter("count_documents", filter)
        return self._raw.count_documents(filter, *args, **kwargs)

    def estimated_document_count(self, **kwargs: Any) -> int:
        self._check_filter("estimated_document_count", None)
        return self._raw.estimated_document_count(**kwargs)

    def distinct(self, key: str, filter: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        self._check_filter("distinct", filter)
        return self._raw.distinct(key, filter, **kwargs)

    def aggregate(self, pipeline: list[Mapping[str, Any]], *args: Any, **kwargs: Any) -> Any:
        tenant_id = self._tenant("aggregate")
        if tenant_id is not None:
            first = pipeline[0] if pipeline else {}
            self._check_filter("aggregate", first.get("$match") if "$match" in first else None)
            stage = _forbidden_stage(pipeline)
            if stage:
                raise TenantViolation(f"{self._owner}.aggregate: {stage} is not allowed")
        return self._raw.aggregate(pipeline, *args, **kwargs)

    # -- writes -------------------------------------------------------------------------------------

    def insert_one(self, document: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._check_document("insert_one", document)
        return self._raw.insert_one(document, *args, **kwargs)

    def insert_many(self, documents: Iterable[Mapping[str, Any]], *args: Any, **kwargs: Any) -> Any:
        documents = list(documents)
        for document in documents:
            self._check_document("insert_many", document)
        return self._raw.insert_many(documents, *args, **kwargs)

    def _updating(self, operation: str, filter_: Any, update: Any) -> None:
        self._check_filter(operation, filter_)
        self._check_update(operation, update)

    def update_one(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        self._updating("update_one", filter, update)
        return self._raw.update_one(filter, update, *args, **kwargs)

    def update_many(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        self._updating("update_many", filter, update)
        return self._raw.update_many(filter, update, *args, **kwargs)

    def replace_one(self, filter: Any, replacement: Any, *args: Any, **kwargs: Any) -> Any:
        self._check_filter("replace_one", filter)
        self._check_document("replace_one", replacement)
        return self._raw.replace_one(filter, replacement, *args, **kwargs)

    def find_one_and_update(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        self._updating("find_one_and_update", filter, update)
        return self._raw.find_one_and_update(filter, update, *args, **kwargs)

    def find_one_and_replace(self, filter: Any, replacement: Any, *args: Any, **kwargs: Any) -> Any:
        self._check_filter("find_one_and_replace", filter)
        self._check_document("find_one_and_replace", replacement)
        return self._raw.find_one_and_replace(filter, replacement, *args, **kwargs)

    def find_one_and_delete(self, filter: Any, *args: Any, **kwargs: Any) -> Any:
        self._check_filter("find_one_and_delete", filter)
        return self._raw.find_one_and_delete(filter, *args, **kwargs)

    def delete_one(self, filter: Any, *args: Any, **kwargs: Any) -> Any:
        self._check_filter("delete_one", filter)
        return self._raw.delete_one(filter, *args, **kwargs)

    def delete_many(self, filter: Any, *args: Any, **kwargs: Any) -> Any:
        self._check_filter("delete_many", filter)
        return self._raw.delete_many(filter, *args, **kwargs)

    def bulk_write(self, requests: list[Any], *args: Any, **kwargs: Any) -> Any:
        for request in requests:
            if isinstance(request, InsertOne):
                self._check_document("bulk_write", request._doc)
            elif isinstance(request, (UpdateOne, UpdateMany)):
                self._updating("bulk_write", request._filter, request._doc)
            elif isinstance(request, ReplaceOne):
                self._check_filter("bulk_write", request._filter)
                self._check_document("bulk_write", request._doc)
            elif isinstance(request, (DeleteOne, DeleteMany)):
                self._check_filter("bulk_write", request._filter)
            else:
                raise TenantViolation(f"{self._owner}.bulk_write: unknown request {request!r}")
        return self._raw.bulk_write(requests, *args, **kwargs)

    def with_options(self, *args: Any, **kwargs: Any) -> GuardedCollection:
        return GuardedCollection(self._raw.with_options(*args, **kwargs), self._owner)

    def drop(self, *args: Any, **kwargs: Any) -> None:
        if current_state().unscoped_reason is None:
            raise TenantViolation(f"{self._owner}.drop: only inside unscoped()")
        self._raw.drop(*args, **kwargs)
