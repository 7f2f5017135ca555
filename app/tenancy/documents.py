"""TenantDocument: the base of every tenant-owned document class, and the rules the app checks at start.

- `Model.objects` binds the tenant in context when the query set is created, and raises without one
  (outside `unscoped()`); `tenantId` is filled from the context on insert and is write-once (it is
  MongoEngine's shard key, which MongoEngine refuses to change and adds to the filter of every
  `save()`, `update()` and `delete()` of a document).
- save() never re-inserts a document that was deleted meanwhile, and every delete returns how many
  documents it removed (ExactWrites).
- The collection is a GuardedCollection (collection.py), so raw access through `_get_collection()` is
  checked too.
- The ODM's known ways around a filter are closed: `in_bulk()` goes through the filter, `insert()`
  validates and binds the tenant, `select_related()` and the DeReference helper are not used (a
  `TenantReferenceField` dereferences through the tenant-bound query set), JavaScript helpers raise.
"""

from __future__ import annotations

from types import MethodType
from typing import TYPE_CHECKING, Any, cast

import mongoengine as me
from bson import DBRef
from mongoengine.base import BaseField
from mongoengine.queryset import QuerySet, QuerySetManager
from mongoengine.queryset.visitor import Q

from .collection import TENANT_FIELD, GuardedCollection, TenantViolation
from .context import TenantContextMissing, current_state
from .registry import declared, tenant_document_classes


class TenantQuerySet(QuerySet):
    """A query set whose filter always holds `tenantId` (added by TenantQuerySetManager)."""

    def in_bulk(self, object_ids: Any) -> dict[Any, Any]:
        """Return {id: document} for the ids that exist in this (tenant-filtered) query set."""
        return {doc.pk: doc for doc in self.filter(pk__in=list(object_ids))}

    def delete(
        self, write_concern: Any = None, _from_doc_delete: bool = False, cascade_refs: Any = None
    ) -> int:
        """Delete the matched documents; return how many this call removed.

        Where delete signals are connected, MongoEngine deletes the documents it found one by one and
        counts what it found, so a document a concurrent request deleted first was counted twice."""
        signals = (me.signals.pre_delete, me.signals.post_delete)
        one_by_one = any(signal.has_receivers_for(self._document) for signal in signals)
        if _from_doc_delete or not (one_by_one or self._skip or self._limit):
            return super().delete(write_concern, _from_doc_delete, cascade_refs)
        return sum(found.delete(**(write_concern or {})) for found in self.clone())

    def insert(self, doc_or_docs: Any, load_bulk: bool = True, **kwargs: Any) -> Any:
        """Insert documents after binding them to the tenant and validating them (the ODM skips both)."""
        docs = doc_or_docs if isinstance(doc_or_docs, (list, tuple)) else [doc_or_docs]
        for doc in docs:
            if not isinstance(doc, self._document):
                raise TenantViolation(f"{self._document.__name__}.insert() takes documents only")
            doc.bind_tenant()
            doc.validate()
        return super().insert(doc_or_docs, load_bulk=load_bulk, **kwargs)

    def select_related(self, max_depth: int = 1) -> TenantQuerySet:
        """Return the query set unchanged: references are loaded lazily through the tenant filter."""
        return self.clone()

    def map_reduce(self, *args: Any, **kwargs: Any) -> Any:
        raise TenantViolation("map_reduce() reads the collection outside the tenant filter")

    def exec_js(self, *args: Any, **kwargs: Any) -> Any:
        raise TenantViolation("exec_js() reads the collection outside the tenant filter")


class TenantQuerySetManager(QuerySetManager):
    """`Model.objects`: a query set bound to the tenant in context at the moment it is created."""

    default = TenantQuerySet

    def __get__(self, instance: Any, owner: Any) -> Any:
        if instance is not None:
            return self
        queryset = super().__get__(instance, owner)
        state = current_state()
        if state.unscoped_reason is not None:
            return queryset
        if state.tenant_id is None:
            raise TenantContextMissing(f"{owner.__name__}.objects: no tenant in context")
        # The query set is new and this manager's alone: filter it in place (filter() would clone it).
        queryset._query_obj &= Q(tenant_id=state.tenant_id)
        return queryset


class TenantReferenceField(me.ReferenceField):
    """A reference to a document of the same tenant; dereferenced through the tenant-bound query set."""

    @staticmethod
    def _lazy_load_ref(ref_cls: Any, dbref: DBRef) -> Any:
        doc = ref_cls.objects(pk=dbref.id).first()
        if doc is None:
            raise me.DoesNotExist(f"{ref_cls.__name__} {dbref.id} does not exist")
        return doc

    if TYPE_CHECKING:
        # A descriptor, as every MongoEngine field is (its base class is untyped).
        def __get__(self, instance: Any, owner: Any) -> Any: ...
        def __set__(self, instance: Any, value: Any) -> None: ...


if TYPE_CHECKING:
    from mongoengine import Document as _Document
else:
    _Document = object


class ExactWrites(_Document):
    """Mixin: writes that say what they did, whatever a concurrent request does.

    save() of a stored document updates it where it still is, and raises SaveConditionError where it
    is gone: MongoEngine's save() upserts, which brings a document deleted meanwhile back as a
    fragment holding only the fields that changed. delete() returns how many documents it removed
    (0 when a concurrent request removed it first), so that a caller gives back only what it freed."""

    def save(self, *args: Any, **kwargs: Any) -> Any:
        if not self._created and not kwargs.get("force_insert"):
            kwargs.setdefault("save_condition", {})
        return super().save(*args, **kwargs)

    def delete(self, signal_kwargs: dict[str, Any] | None = None, **write_concern: Any) -> int:
        signal_kwargs = signal_kwargs or {}
        me.signals.pre_delete.send(type(self), document=self, **signal_kwargs)
        removed = self._qs.filter(**self._object_key).delete(
            write_concern=write_concern, _from_doc_delete=True
        )
        me.signals.post_delete.send(type(self), document=self, **signal_kwargs)
        return removed


class TenantDocument(ExactWrites, me.Document):
    """Base of every tenant-owned document class."""

    tenant_id = me.ObjectIdField(db_field=TENANT_FIELD, required=True)

    objects = TenantQuerySetManager()

    meta = {
        "abstract": True,
        "queryset_class": TenantQuerySet,
        "shard_key": ("tenant_id",),
        "allow_inheritance": False,
        "index_cls": False,
        # Indexes are created by create_app (or, on an old database, by the migration, in its order).
        "auto_create_index": False,
    }

    @classmethod
    def _get_collection(cls) -> GuardedCollection:
        raw = super()._get_collection()
        guarded = cls.__dict__.get("_guarded_collection")
        if guarded is None or guarded._raw is not raw:
            guarded = GuardedCollection(raw, cls.__name__)
            cls._guarded_collection = guarded
        return guarded

    @classmethod
    def find_stored(cls, **equal: Any) -> dict[str, Any] | None:
        """The document of the tenant in context whose fields (by their names here) equal `equal`, as
        stored, or None: one find_one through the guarded collection, as `Model.objects(**equal)`
        reads it, without building the query set (a read by id costs a third of MongoEngine's)."""
        stored = {
            cls._fields[name].db_field: None if value is None else cls._fields[name].to_mongo(value)
            for name, value in equal.items()
        }
        state = current_state()
        if state.unscoped_reason is None:
            if state.tenant_id is None:
                raise TenantContextMissing(f"{cls.__name__}.find_stored: no tenant in context")
            stored[TENANT_FIELD] = state.tenant_id
        found: dict[str, Any] | None = cls._get_collection().find_one(stored)
        return found

    def bind_tenant(self) -> None:
        """Fill `tenant_id` from the context, or check that it is the tenant in context."""
        state = current_state()
        if self.tenant_id is None:
            if state.tenant_id is None:
                raise TenantContextMissing(f"{type(self).__name__}: no tenant in context to save under")
            self.tenant_id = state.tenant_id
        elif state.unscoped_reason is None and self.tenant_id != state.tenant_id:
            raise TenantViolation(f"{type(self).__name__} belongs to another tenant")

    def save(self, *args: Any, **kwargs: Any) -> Any:
        self.bind_tenant()
        return super().save(*args, **kwargs)

    def reference_id(self, name: str) -> Any:
        """Return the id a TenantReferenceField holds, without loading the document (no query)."""
        value = self._data.get(name)
        return getattr(value, "id", value)

    def validate(self, clean: bool = True) -> None:
        super().validate(clean)
        for name, field in self._fields.items():
            if isinstance(field, TenantReferenceField):
                self._check_reference(name, field, self._data.get(name))

    def _check_reference(self, name: str, field: TenantReferenceField, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, TenantDocument):
            same_tenant = value.tenant_id == self.tenant_id
        else:
            ref_id = value.id if isinstance(value, DBRef) else value
            found = field.document_type.objects(pk=ref_id, tenant_id=self.tenant_id)
            same_tenant = found.only("id").first() is not None
        if not same_tenant:
            raise me.ValidationError(
                f"{name} must refer to a document of the same tenant",
                errors={name: "refers to a document of another tenant or to none"},
            )


# -- the rules the app checks at start ------------------------------------------------------------


def _reference_problems(owner: str, fields: dict[str, BaseField], nested: bool) -> list[str]:
    problems = []
    for name, field in fields.items():
        where = f"{owner}.{name}"
        if isinstance(field, TenantReferenceField):
            if nested:
                problems.append(
                    f"{where}: references inside lists, maps or embedded documents are dereferenced "
                    "outside the tenant filter; store ids"
                )
            elif not issubclass(field.document_type, TenantDocument):
                problems.append(f"{where}: a TenantReferenceField must point to a tenant document")
        elif isinstance(
            field,
            (
                me.ReferenceField,
                me.GenericReferenceField,
                me.LazyReferenceField,
                me.GenericLazyReferenceField,
                me.CachedReferenceField,
            ),
        ):
            problems.append(
                f"{where}: use TenantReferenceField (other reference fields bypass the tenant filter)"
            )
        inner = getattr(field, "field", None)
        if isinstance(inner, BaseField):
            problems += _reference_problems(owner, {name: inner}, nested=True)
        if isinstance(field, me.EmbeddedDocumentField):
            problems += _reference_problems(where, field.document_type._fields, nested=True)
    return problems


def _manager_problems(cls: type) -> list[str]:
    problems = []
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if isinstance(value, QuerySetManager) and not isinstance(value, TenantQuerySetManager):
                problems.append(
                    f"{cls.__name__}.{name}: query set managers of tenant documents "
                    "must be TenantQuerySetManager"
                )
    return problems


def tenancy_problems(classes: list[type[TenantDocument]] | None = None) -> list[str]:
    """List every way in which the declared document classes (app.tenancy.registry), or `classes`,
    break the tenancy rules (empty when none)."""
    problems = []
    if classes is None:
        for entry in declared():
            if entry.tenant_owned != issubclass(entry.document, TenantDocument):
                kind = "tenant-owned" if entry.tenant_owned else "global"
                problems.append(f"{entry.document.__name__}: declared {kind}, but is not")
    for cls in tenant_document_classes() if classes is None else classes:
        name = cls.__name__
        for spec in cls._meta.get("index_specs") or []:
            keys = [key for key, _direction in spec["fields"]]
            if not keys or keys[0] != TENANT_FIELD:
                kind = "unique index" if spec.get("unique") else "index"
                problems.append(f"{name}: {kind} {keys} must start with {TENANT_FIELD}")
        if tuple(cls._meta.get("shard_key") or ()) != ("tenant_id",):
            problems.append(f"{name}: shard_key must be ('tenant_id',)")
        if (
            cast(MethodType, cls._get_collection).__func__
            is not cast(MethodType, TenantDocument._get_collection).__func__
        ):
            problems.append(f"{name}: _get_collection() must not be overridden")
        problems += _reference_problems(name, cls._fields, nested=False)
        problems += _manager_problems(cls)
    return problems
