"""Finish tenant deletions: those that stopped halfway, and documents written after one.

Deleting a tenant suspends it for deletion, then removes its documents and the tenant itself. A
deletion can stop halfway (the process dies), and a request another worker accepted before it saw the
suspension (its tenant cache may be TENANT_CACHE_TTL seconds old) can still write after the purge. So
this job purges every tenant left suspended for deletion for longer than STALE_DELETION, then removes
the documents of tenants that no longer exist. The tenant ids of each collection are read before the
tenants are: a document's tenant exists before the document does, so a tenant created meanwhile is
never taken for a deleted one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import mongoengine as me

from app import clock
from app.leases import Lease
from app.tenancy.collection import TENANT_FIELD
from app.tenancy.context import unscoped
from app.tenancy.registry import tenant_document_classes
from app.tenants.admin import DELETING
from app.tenants.models import Tenant
from app.tenants.service import erase_tenant
from app.users.models import EmailDirectory

log = logging.getLogger("app.jobs")

# A deletion suspended this long ago and not finished has stopped (a purge takes seconds, not minutes).
STALE_DELETION = timedelta(minutes=15)
SWEEP_REASON = "deletion sweep: remove the documents of deleted tenants"


def _tenant_ids(document_class: type[me.Document]) -> set[Any]:
    """The tenant ids a collection holds documents of (streamed: distinct's answer is one document,
    which many tenants would push past MongoDB's 16 MB). Sorted first on tenantId, which an index of
    the collection starts with, so that the server groups index keys instead of reading every
    document."""
    pipeline = [{"$sort": {TENANT_FIELD: 1}}, {"$group": {"_id": f"${TENANT_FIELD}"}}]
    return {row["_id"] for row in document_class.objects.aggregate(pipeline) if row["_id"] is not None}


def run(now: datetime | None = None) -> dict[str, int]:
    """Finish stale deletions, then remove documents whose tenant is gone."""
    now = now or clock.utcnow()
    stale = Tenant.objects(status="suspended", suspended_reason=DELETING, updated_at__lt=now - STALE_DELETION)
    finished = 0
    for tenant in list(stale):
        removed = erase_tenant(tenant)
        finished += 1
        log.warning("tenant deletion finished", extra={"tenant": tenant.slug, "removed": removed})
    orphans = 0
    with unscoped(SWEEP_REASON):
        classes: list[type[me.Document]] = [EmailDirectory, Lease, *tenant_document_classes()]
        owners = [(cls, _tenant_ids(cls)) for cls in classes]
        existing = set(Tenant.objects.order_by("id").scalar("id"))  # the _id index alone
        for document_class, tenant_ids in owners:
            gone = list(tenant_ids - existing)
            if not gone:
                continue
            count = document_class.objects(tenant_id__in=gone).delete()
            orphans += count
            log.warning(
                "documents of deleted tenants removed",
                extra={"collection": document_class._get_collection_name(), "count": count},
            )
    return {"deletionsFinished": finished, "orphansRemoved": orphans}
