"""The registry of document classes: every class the app stores, declared by name, never found by
what happened to be imported.

`app/models.py` declares the app's classes (create_app imports it before the start-up check); the
tests declare their own documents the same way. Tenant-owned classes are filtered by the tenancy
core; global classes are not, and those among them that hold a tenant's id say so, and whether their
documents go with the tenant when it is deleted (the email directory, leases) or outlive it (the
platform trail, revocations that expire by themselves). Export, purge, index creation, sharding,
the migration and the start-up check all read this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import mongoengine as me

    from .documents import TenantDocument


@dataclass(frozen=True)
class Declared:
    document: type[me.Document]
    tenant_owned: bool
    # A global document's field that holds a tenant's id (None: it names no tenant).
    tenant_field: str | None = None
    # Whether a global document that names a tenant is removed with it.
    removed_with_tenant: bool = False

    def naming(self, tenant_id: Any) -> Any:
        """The query set of this global class's documents that name the tenant `tenant_id`."""
        if self.tenant_field is None:
            raise ValueError(f"{self.document.__name__} names no tenant")
        return self.document.objects(**{self.tenant_field: tenant_id})


_declared: dict[type[me.Document], Declared] = {}


def declare_tenant_owned(*classes: type[TenantDocument]) -> None:
    """Declare tenant-owned document classes (declaring one again changes nothing)."""
    for cls in classes:
        _declared[cls] = Declared(cls, tenant_owned=True)


def declare_global(
    *classes: type[me.Document], tenant_field: str | None = None, removed_with_tenant: bool = False
) -> None:
    """Declare global document classes; `tenant_field` names the field that holds a tenant's id."""
    if removed_with_tenant and tenant_field is None:
        raise ValueError("only a document that holds a tenant's id can be removed with the tenant")
    for cls in classes:
        _declared[cls] = Declared(cls, False, tenant_field, removed_with_tenant)


def undeclare(*classes: type[me.Document]) -> None:
    """Forget document classes (a test's own, once the test is over)."""
    for cls in classes:
        _declared.pop(cls, None)


def declared() -> list[Declared]:
    """Every declared class, in the order of declaration."""
    return list(_declared.values())


def tenant_document_classes() -> list[type[TenantDocument]]:
    """Every declared tenant-owned document class."""
    return [entry.document for entry in _declared.values() if entry.tenant_owned]


def global_document_classes() -> list[type[me.Document]]:
    """Every declared global document class."""
    return [entry.document for entry in _declared.values() if not entry.tenant_owned]


def removed_with_tenant() -> list[Declared]:
    """The global classes whose documents name a tenant and are removed with it."""
    return [entry for entry in _declared.values() if entry.removed_with_tenant]
