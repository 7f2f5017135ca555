"""Tenants by id, slug and custom domain, through the tenant cache: what the tenancy core resolves
requests with (DIRECTORY, given to it by create_app) and what credentials are checked against."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from app.tenancy.cache import tenant_cache
from app.tenancy.resolver import TenantDirectory

from .models import Tenant
from .slugs import RESERVED


def tenant_by_id(tenant_id: Any) -> Tenant | None:
    """Return the tenant with this id (cached), or None."""
    if not ObjectId.is_valid(tenant_id):
        return None
    oid = ObjectId(tenant_id)
    return tenant_cache().get(("id", oid), lambda: Tenant.objects(id=oid).first())


def tenant_by_slug(slug: str) -> Tenant | None:
    """Return the tenant with this slug (cached), or None. Non-ASCII never matches."""
    if not slug.isascii():
        return None
    slug = slug.lower()
    return tenant_cache().get(("slug", slug), lambda: Tenant.objects(slug=slug).first())


def tenant_by_domain(domain: str) -> Tenant | None:
    """Return the tenant whose custom domain this is (cached), or None."""
    return tenant_cache().get(("domain", domain), lambda: Tenant.objects(domain=domain).first())


DIRECTORY = TenantDirectory(
    by_id=tenant_by_id, by_slug=tenant_by_slug, by_domain=tenant_by_domain, reserved=RESERVED
)
