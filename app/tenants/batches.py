"""Read the tenant registry in batches, for work done across tenants a batch at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .models import Tenant

TENANTS_PER_BATCH = 1000


def tenant_batches(*fields: str, size: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """Yield every tenant as stored (its `_id` and the stored `fields`), in `_id` order, `size` at a
    time (TENANTS_PER_BATCH by default): one cursor along the `_id` index, which the server sends a
    batch at a time. A batch's work takes a constant number of operations, so the cursor never waits
    near the ten minutes after which a server closes an idle one."""
    size = size or TENANTS_PER_BATCH
    pipeline = [{"$sort": {"_id": 1}}, {"$project": dict.fromkeys(fields, 1)}]
    batch = []
    for tenant in Tenant._get_collection().aggregate(pipeline, batchSize=size):
        batch.append(tenant)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
