"""The resolver chain: which tenant a request names.

The credential (access token or API key) is the authority and is read by the middleware; this module
reads the hints, in this order of precedence: `X-Tenant-Id` (id or slug), `?tenant=` (slug or id),
custom domain (Host equal to a tenant's `domain`), subdomain (`<slug>.<BASE_DOMAIN>`).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from app.errors import TenantNotFound
from app.tenants.models import Tenant
from app.tenants.slugs import RESERVED

from .cache import tenant_cache

log = logging.getLogger("app.tenancy")


@dataclass(frozen=True)
class Hint:
    source: str  # header | param | domain | subdomain | default (single-tenant mode)
    value: str


def _host_name(host: str) -> str:
    """Return the host name of a Host header, lowercased, without port or trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") <= 1 else host


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_hint(host: str, base_domain: str) -> Hint | None:
    """Read the tenant a Host header names: a subdomain of BASE_DOMAIN or a custom domain."""
    name = _host_name(host)
    if not name or name == base_domain or _is_address(name) or "." not in name:
        return None
    if base_domain and name.endswith("." + base_domain):
        label = name[: -len(base_domain) - 1]
        return None if label in RESERVED else Hint("subdomain", label)
    return Hint("domain", name)


def request_hints(headers: Any, args: Any, host: str, base_domain: str) -> list[Hint]:
    """Return every tenant hint of a request, highest precedence first."""
    hints = []
    if header := headers.get("X-Tenant-Id", "").strip():
        hints.append(Hint("header", header))
    if param := args.get("tenant", "").strip():
        hints.append(Hint("param", param))
    if from_host := host_hint(host, base_domain):
        hints.append(from_host)
    return hints


def tenant_by_id(tenant_id: Any) -> Tenant | None:
    """Return the tenant with this id (cached), or None."""
    if not ObjectId.is_valid(tenant_id):
        return None
    oid = ObjectId(tenant_id)
    return tenant_cache.get(("id", oid), lambda: Tenant.objects(id=oid).first())


def tenant_by_slug(slug: str) -> Tenant | None:
    """Return the tenant with this slug (cached), or None. Non-ASCII never matches."""
    if not slug.isascii():
        return None
    slug = slug.lower()
    return tenant_cache.get(("slug", slug), lambda: Tenant.objects(slug=slug).first())


def tenant_by_domain(domain: str) -> Tenant | None:
    """Return the tenant whose custom domain this is (cached), or None."""
    return tenant_cache.get(("domain", domain), lambda: Tenant.objects(domain=domain).first())


def resolve_hint(hint: Hint) -> Tenant | None:
    """Return the tenant a hint names; raise TenantNotFound when it names none.

    An unknown custom domain is not an error (the service is reachable under host names that are not
    tenants': its own, a load balancer's); it simply names no tenant.
    """
    if hint.source == "domain":
        tenant = tenant_by_domain(hint.value)
        if tenant is None:
            return None
    elif hint.source == "subdomain":
        tenant = tenant_by_slug(hint.value)
    else:
        tenant = tenant_by_id(hint.value) if ObjectId.is_valid(hint.value) else None
        tenant = tenant or tenant_by_slug(hint.value)
    if tenant is None:
        raise TenantNotFound(details={"source": hint.source})
    return tenant
