"""The resolver chain: which tenant a request names.

The credential (access token or API key) is the authority and is read by the middleware; this module
reads the hints, in this order of precedence: `X-Tenant-Id` (id or slug), `?tenant=` (slug or id),
custom domain (Host equal to a tenant's `domain`), subdomain (`<slug>.<BASE_DOMAIN>`).

The core knows no tenant model: the app gives it a TenantDirectory (how to find a tenant, which
subdomain labels are the platform's own), and a tenant is whatever has the attributes of TenantRecord.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any, Protocol

from bson import ObjectId

from app.errors import TenantNotFound

log = logging.getLogger("app.tenancy")


class TenantRecord(Protocol):
    """What the core reads of a tenant."""

    @property
    def id(self) -> Any: ...

    @property
    def slug(self) -> str: ...

    @property
    def is_active(self) -> bool: ...

    @property
    def ip_whitelist(self) -> list[str]: ...


@dataclass(frozen=True)
class TenantDirectory:
    """How the core finds tenants (each lookup returns None for no such tenant), and the slug rule:
    the labels under BASE_DOMAIN that are the platform's own host names, never a tenant's."""

    by_id: Callable[[Any], TenantRecord | None]
    by_slug: Callable[[str], TenantRecord | None]
    by_domain: Callable[[str], TenantRecord | None]
    reserved: Container[str]


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


def host_hint(host: str, base_domain: str, reserved: Container[str]) -> Hint | None:
    """Read the tenant a Host header names: a subdomain of BASE_DOMAIN that is not `reserved`, or a
    custom domain."""
    name = _host_name(host)
    if not name or name == base_domain or _is_address(name) or "." not in name:
        return None
    if base_domain and name.endswith("." + base_domain):
        label = name[: -len(base_domain) - 1]
        return None if label in reserved else Hint("subdomain", label)
    return Hint("domain", name)


def request_hints(
    headers: Any, args: Any, host: str, base_domain: str, reserved: Container[str]
) -> list[Hint]:
    """Return every tenant hint of a request, highest precedence first."""
    hints = []
    if header := headers.get("X-Tenant-Id", "").strip():
        hints.append(Hint("header", header))
    if param := args.get("tenant", "").strip():
        hints.append(Hint("param", param))
    if from_host := host_hint(host, base_domain, reserved):
        hints.append(from_host)
    return hints


def resolve_hint(hint: Hint, directory: TenantDirectory) -> TenantRecord | None:
    """Return the tenant a hint names; raise TenantNotFound when it names none.

    An unknown custom domain is not an error (the service is reachable under host names that are not
    tenants': its own, a load balancer's); it simply names no tenant.
    """
    if hint.source == "domain":
        tenant = directory.by_domain(hint.value)
        if tenant is None:
            return None
    elif hint.source == "subdomain":
        tenant = directory.by_slug(hint.value)
    else:
        tenant = directory.by_id(hint.value) if ObjectId.is_valid(hint.value) else None
        tenant = tenant or directory.by_slug(hint.value)
    if tenant is None:
        raise TenantNotFound(details={"source": hint.source})
    return tenant
