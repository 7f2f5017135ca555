"""What every job shares: the loop over tenants."""

from __future__ import annotations

from collections.abc import Iterator

from app.tenants.models import Tenant

TENANTS_PER_BATCH = 100


def each_tenant(*, include_suspended: bool = True) -> Iterator[Tenant]:
    """Yield every tenant, oldest first, with no tenant in context: the caller does each tenant's work
    in tenant_scope(), and a tenant-owned query outside it raises instead of reading every tenant."""
    # The tenant registry is global: reading it needs no unscoped access, and none must be open while
    # the caller's loop body runs.
    # Small batches: a server closes a cursor left idle for ten minutes, and the cursor waits while
    # the caller works through each batch's tenants.
    tenants = Tenant.objects.order_by("created_at", "id").batch_size(TENANTS_PER_BATCH)
    if not include_suspended:
        tenants = tenants.filter(status="active")
    yield from tenants.no_cache()
