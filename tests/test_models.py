"""The registry of document classes (app/models.py, app/tenancy/registry.py): complete, consistent, and
what the purge reads."""

from __future__ import annotations

import importlib
import pkgutil

import mongoengine as me
import pytest
from mongoengine.base.common import _document_registry

import app
from app import TenancyConfigurationError
from app.tenancy import registry
from app.tenancy.documents import TenantDocument, tenancy_problems
from app.tenants.admin import delete_tenant
from app.tenants.service import create_tenant

from .support import Note

pytestmark = pytest.mark.multitenant


def app_document_classes() -> list[type[me.Document]]:
    """Every concrete document class defined in a module of the app, each module imported first."""
    for module in pkgutil.walk_packages(app.__path__, "app."):
        importlib.import_module(module.name)
    return [
        cls
        for cls in _document_registry.values()
        if cls.__module__.startswith("app.")
        and issubclass(cls, me.Document)
        and not cls._meta.get("abstract")
    ]


def test_every_document_class_of_the_app_is_declared():
    declared = {entry.document for entry in registry.declared()}
    missing = sorted(cls.__name__ for cls in app_document_classes() if cls not in declared)
    assert missing == [], f"declare these in app/models.py: {missing}"


def test_each_class_is_declared_in_the_role_it_has():
    for entry in registry.declared():
        assert entry.tenant_owned == issubclass(entry.document, TenantDocument), entry
    assert tenancy_problems() == []


def test_a_global_class_with_a_tenant_field_says_so():
    for cls in registry.global_document_classes():
        holds = any(field.db_field == "tenantId" for field in cls._fields.values())
        [entry] = [e for e in registry.declared() if e.document is cls]
        assert (entry.tenant_field is not None) == holds, cls.__name__


def test_declaring_twice_changes_nothing():
    before = registry.declared()
    registry.declare_tenant_owned(Note)
    assert registry.declared() == before


def test_only_a_class_that_names_a_tenant_can_go_with_it():
    class Loose(me.Document):
        meta = {"collection": "test_loose"}

    try:
        with pytest.raises(ValueError, match="holds a tenant's id"):
            registry.declare_global(Loose, removed_with_tenant=True)
    finally:
        _document_registry.pop("Loose")


def test_the_app_refuses_a_class_declared_in_the_wrong_role(app_factory):
    class Stray(me.Document):
        meta = {"collection": "test_strays"}

    registry.declare_tenant_owned(Stray)
    try:
        assert "Stray: declared tenant-owned, but is not" in tenancy_problems()
        with pytest.raises(TenancyConfigurationError, match="Stray"):
            app_factory()
    finally:
        registry.undeclare(Stray)
        _document_registry.pop("Stray")


def test_the_purge_removes_the_declared_global_documents_that_go_with_the_tenant(app, tenant, other_tenant):
    class Badge(me.Document):
        tenant_id = me.ObjectIdField(db_field="tenantId")
        meta = {"collection": "test_badges"}

    registry.declare_global(Badge, tenant_field="tenant_id", removed_with_tenant=True)
    try:
        Badge(tenant_id=tenant.id).save()
        Badge(tenant_id=tenant.id).save()
        Badge(tenant_id=other_tenant.id).save()
        removed = delete_tenant(tenant.id)
        assert removed["test_badges"] == 2
        assert [badge.tenant_id for badge in Badge.objects] == [other_tenant.id]
    finally:
        registry.undeclare(Badge)
        _document_registry.pop("Badge")


def test_a_global_document_that_outlives_its_tenant_stays(app):
    doomed = create_tenant("Doomed", "doomed")

    class Trace(me.Document):
        tenant_id = me.ObjectIdField(db_field="tenantId")
        meta = {"collection": "test_traces"}

    registry.declare_global(Trace, tenant_field="tenant_id")
    try:
        Trace(tenant_id=doomed.id).save()
        assert "test_traces" not in delete_tenant(doomed.id)
        assert Trace.objects(tenant_id=doomed.id).count() == 1
    finally:
        registry.undeclare(Trace)
        _document_registry.pop("Trace")
