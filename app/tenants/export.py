"""GDPR export: every document the tenant owns, as one JSON document, streamed collection by collection.

Secrets and hashes are left out (each document class names them in `export_exclude`). Values use
MongoDB Extended JSON (relaxed) so that ids, dates and binary data survive the round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from bson import json_util

from app import clock
from app.audit.service import record
from app.tenancy.context import current_tenant, tenant_scope
from app.tenancy.registry import tenant_document_classes

from .schemas import TenantSchema

BATCH = 500


def _json(value: Any) -> str:
    return json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS)


def _documents(document_class: Any) -> Iterator[str]:
    """The tenant's documents of a class in `_id` order, read BATCH at a time, each batch by a query of
    its own: the export streams at the pace of its client, and a server closes a cursor left idle
    for ten minutes, which one held open between a slow client's reads would be."""
    excluded = getattr(document_class, "export_exclude", ())
    documents = document_class.objects.exclude(*excluded).order_by("id").as_pymongo()
    after = None
    while True:
        batch = documents.filter(id__gt=after) if after is not None else documents
        rows = list(batch.limit(BATCH))
        for document in rows:
            yield _json(document)
        if len(rows) < BATCH:
            return
        after = rows[-1]["_id"]


def export_tenant() -> tuple[str, Iterator[str]]:
    """Return a file name and an iterator of the JSON text of the tenant in context's data."""
    tenant = current_tenant()
    classes = sorted(tenant_document_classes(), key=lambda cls: cls._get_collection_name())
    names = [cls._get_collection_name() for cls in classes]
    record("tenant.exported", target_type="tenant", target_id=tenant.id, summary={"collections": names})
    now = clock.utcnow()

    def chunks() -> Iterator[str]:
        with tenant_scope(tenant):
            yield '{"exportedAt": ' + json.dumps(now.isoformat())
            yield ', "tenant": ' + json.dumps(TenantSchema().dump(tenant))
            yield ', "collections": {'
            for index, document_class in enumerate(classes):
                yield ("" if index == 0 else ", ") + json.dumps(document_class._get_collection_name()) + ": ["
                for position, document in enumerate(_documents(document_class)):
                    yield ("" if position == 0 else ", ") + document
                yield "]"
            yield "}}"

    return f"{tenant.slug}-export-{now:%Y%m%d-%H%M%S}.json", chunks()
