"""The migration of a single-tenant database to the multi-tenant layout, from start to end: the
default tenant, the tenancy core's steps (app.tenancy.migration), then the tenant's usage recomputed
from its data. The command line (`migrate-to-multitenant`) and scripts/migrate_to_multitenant.py
call it; it is idempotent, and a run stopped halfway finishes when run again."""

from __future__ import annotations

from app.tenancy import migration
from app.tenants.models import Tenant
from app.tenants.service import create_tenant

from .reconcile import recompute_usage


def migrate_to_multitenant(
    slug: str, name: str, plan: str, batch_size: int, progress: migration.Progress = migration.no_progress
) -> tuple[list[migration.CollectionReport], dict[str, int]]:
    """Move every document without a tenant to the tenant `slug` (created with `name` and `plan` when
    it does not exist); return the report of each collection and the tenant's usage recomputed."""
    tenant = Tenant.objects(slug=slug).first() or create_tenant(name, slug, plan=plan)
    reports = migration.migrate(tenant, batch_size=batch_size, progress=progress)
    return reports, recompute_usage(tenant)
