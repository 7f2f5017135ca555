"""What every job shares: the loop over tenants."""

from __future__ import annotations

from collections.abc import Iterator

from app.tenancy.context import unscoped
from app.tenants.models import Tenant


def each_tenant(reason: str, *, include_suspended: bool = True) -> Iterator[Tenant]:
    """Yield every tenant, oldest first; the caller does each tenant's work in tenant_scope()."""
    with unscoped(reason):
        tenants = Tenant.objects.order_by("created_at", "id")
        if not include_suspended:
            tenants = tenants.filter(status="active")
        yield from tenants.no_cache()
