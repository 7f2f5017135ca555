"""Read the tenant registry in batches, for work done across tenants a batch at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .models import Tenant

TENANTS_PER_BATCH = 1000


def tenant_batches(*fields: str, raw: bool = False, size: int = TENANTS_PER_BATCH) -> Iterator[list[Any]]:
    """Yield every tenant (only its id and `fields`; as stored when `raw`, else as Tenant documents)
    in `_id` order, `size` at a time: one query per batch, each starting after the last id of the one
    before, so that no cursor waits open while the caller works through a batch."""
    after = None
    while True:
        query = Tenant.objects if after is None else Tenant.objects(id__gt=after)
        query = query.only(*fields).order_by("id").limit(size)
        batch = list(query.as_pymongo() if raw else query)
        if batch:
            yield batch
        if len(batch) < size:
            return
        after = batch[-1]["_id"] if raw else batch[-1].id
