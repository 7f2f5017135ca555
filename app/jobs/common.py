"""What every job shares: the loop over tenants."""

from __future__ import annotations

from collections.abc import Iterator

from app.tenants.models import Tenant


def each_tenant(*, include_suspended: bool = True) -> Iterator[Tenant]:
    """Yield every tenant, oldest first, with no tenant in context: the caller does each tenant's work
    in tenant_scope(), and a tenant-owned query outside it raises instead of reading every tenant."""
    # The tenant registry is global: reading it needs no unscoped access, and none must be open while
    # the caller's loop body runs.
    tenants = Tenant.objects.order_by("created_at", "id")
    if not include_suspended:
        tenants = tenants.filter(status="active")
    yield from tenants.no_cache()
