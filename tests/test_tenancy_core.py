"""The fail-closed rules of the tenancy core (docs/architecture.md "Tenancy core"), each shown to hold."""

from __future__ import annotations

import contextvars
import threading

import mongoengine as me
import pytest
from bson import ObjectId
from mongoengine.base.common import _document_registry
from mongoengine.errors import SaveConditionError

from app import TenancyConfigurationError
from app.tenancy import registry
from app.tenancy.collection import TenantViolation
from app.tenancy.context import (
    TenancyError,
    TenantContextMissing,
    TenantState,
    UnscopedLeak,
    current_state,
    tenant_scope,
    unscoped,
)
from app.tenancy.documents import TenantDocument, tenancy_problems
from app.tenancy.registry import tenant_document_classes
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.users.models import User

from .support import Attachment, Note, log_records, run_together

pytestmark = pytest.mark.multitenant


@pytest.fixture
def notes(app, tenant, other_tenant):
    """One note in each tenant; returns (note of tenant, note of other_tenant)."""
    with tenant_scope(tenant):
        mine = Note(title="mine").save()
    with tenant_scope(other_tenant):
        theirs = Note(title="theirs").save()
    return mine, theirs


def _raw_titles():
    with unscoped("test: read every note"):
        return sorted(n.title for n in Note.objects)


class TestNoTenantNoQuery:
    def test_objects_without_tenant_raises(self, notes):
        with pytest.raises(TenantContextMissing):
            Note.objects.count()

    def test_raw_collection_without_tenant_raises(self, notes):
        with pytest.raises(TenantContextMissing):
            list(Note._get_collection().find({}))

    def test_save_without_tenant_raises(self, app):
        with pytest.raises(TenantContextMissing):
            Note(title="orphan").save()

    def test_unscoped_sees_all_and_is_logged(self, notes):
        with log_records("app.tenancy") as records, unscoped("test: count every note"):
            assert Note.objects.count() == 2
        assert any(getattr(r, "reason", None) == "test: count every note" for r in records)

    def test_unscoped_needs_a_reason(self):
        with pytest.raises(TenancyError), unscoped(" "):
            pass

    def test_query_set_created_in_unscoped_cannot_run_outside(self, notes):
        with unscoped("test: build a query set"):
            queryset = Note.objects.all()
        with pytest.raises(TenantContextMissing):
            list(queryset)

    def test_each_tenant_sees_only_its_own(self, notes, tenant, other_tenant):
        with tenant_scope(tenant):
            assert [n.title for n in Note.objects] == ["mine"]
        with tenant_scope(other_tenant):
            assert [n.title for n in Note.objects] == ["theirs"]


class TestFindStored:
    """Model.find_stored(**equal): one document as stored, bound to the tenant as Model.objects is."""

    def test_reads_the_tenants_own_document_as_stored(self, notes, tenant):
        mine, _theirs = notes
        with tenant_scope(tenant):
            stored = Note.find_stored(id=mine.id)
        assert stored == {"_id": mine.id, "tenantId": tenant.id, "title": "mine"}

    def test_another_tenants_document_is_not_found(self, notes, tenant):
        _mine, theirs = notes
        with tenant_scope(tenant):
            assert Note.find_stored(id=theirs.id) is None
            assert Note.find_stored(title="theirs") is None

    def test_every_field_named_must_match(self, notes, tenant):
        mine, _theirs = notes
        with tenant_scope(tenant):
            assert Note.find_stored(id=mine.id, title="mine") is not None
            assert Note.find_stored(id=mine.id, title="other") is None
            # A field's value is converted as the field stores it: an id given as text finds the same.
            assert Note.find_stored(id=str(mine.id)) is not None

    def test_without_tenant_raises(self, notes):
        mine, _theirs = notes
        with pytest.raises(TenantContextMissing):
            Note.find_stored(id=mine.id)

    def test_unscoped_reads_any_tenants(self, notes, other_tenant):
        _mine, theirs = notes
        with unscoped("test: read a note by id"):
            assert Note.find_stored(id=theirs.id)["tenantId"] == other_tenant.id


class TestTenantIdOnWrites:
    def test_tenant_id_is_filled_from_the_context(self, tenant):
        with tenant_scope(tenant):
            note = Note(title="filled").save()
        assert note.tenant_id == tenant.id

    def test_saving_under_another_tenant_is_refused(self, tenant, other_tenant):
        with tenant_scope(tenant), pytest.raises(TenantViolation):
            Note(title="planted", tenant_id=other_tenant.id).save()

    def test_tenant_id_is_write_once(self, notes, tenant, other_tenant):
        mine, _ = notes
        with tenant_scope(tenant):
            with pytest.raises(me.OperationError):
                mine.tenant_id = other_tenant.id
            with pytest.raises(TenantViolation):
                Note.objects(id=mine.id).update(set__tenant_id=other_tenant.id)
            with pytest.raises(TenantViolation):
                Note._get_collection().update_one(
                    {"tenantId": tenant.id, "_id": mine.id}, {"$set": {"tenantId": other_tenant.id}}
                )
            with pytest.raises(TenantViolation):
                Note._get_collection().update_one({"tenantId": tenant.id}, {"$rename": {"title": "tenantId"}})
        with tenant_scope(tenant):
            assert Note.objects.get(id=mine.id).tenant_id == tenant.id

    def test_document_loaded_under_b_cannot_be_saved_under_a(self, notes, tenant, other_tenant):
        _, theirs = notes
        with tenant_scope(other_tenant):
            loaded = Note.objects.get(id=theirs.id)
        loaded.title = "overwritten"
        with tenant_scope(tenant), pytest.raises(TenantViolation):
            loaded.save()
        assert _raw_titles() == ["mine", "theirs"]

    def test_save_filter_holds_the_tenant(self, notes, tenant, other_tenant):
        """Even past the save() check, the update's filter names the document's tenant (shard key)."""
        _, theirs = notes
        with tenant_scope(other_tenant):
            loaded = Note.objects.get(id=theirs.id)
        loaded.title = "overwritten"
        with tenant_scope(tenant), pytest.raises(TenantViolation):
            me.Document.save(loaded)
        assert _raw_titles() == ["mine", "theirs"]

    def test_delete_and_update_of_another_tenants_document_are_refused(self, notes, tenant):
        _, theirs = notes
        with tenant_scope(tenant):
            with pytest.raises(TenantViolation):
                theirs.delete()
            with pytest.raises(TenantViolation):
                theirs.update(set__title="changed")
            assert Note.objects(id=theirs.id).delete() == 0
            assert Note.objects(id=theirs.id).update(set__title="changed") == 0
        assert _raw_titles() == ["mine", "theirs"]

    def test_same_id_in_another_tenant_does_not_replace(self, notes, tenant):
        _, theirs = notes
        with tenant_scope(tenant), pytest.raises(me.NotUniqueError):
            Note(id=theirs.id, title="same id").save()
        assert _raw_titles() == ["mine", "theirs"]


class TestWritesSayWhatTheyDid:
    """A write racing a delete neither brings the document back nor counts what it did not remove."""

    def test_saving_a_document_deleted_meanwhile_stores_nothing(self, notes, tenant):
        mine, _ = notes
        with tenant_scope(tenant):
            stale = Note.objects.get(id=mine.id)
            assert Note.objects(id=mine.id).delete() == 1
            stale.title = "changed"
            with pytest.raises(SaveConditionError):
                stale.save()
            assert Note.objects(id=mine.id).count() == 0
        assert _raw_titles() == ["theirs"]

    def test_a_tenant_deleted_meanwhile_is_not_saved_back(self, app):
        tenant = create_tenant("Ephemeral", "ephemeral")
        stale = Tenant.objects.get(id=tenant.id)
        tenant.delete()
        stale.name = "Back again"
        with pytest.raises(SaveConditionError):
            stale.save()
        assert Tenant.objects(id=tenant.id).count() == 0

    def test_a_save_with_a_condition_applies_only_while_it_holds(self, notes, tenant):
        mine, _ = notes
        with tenant_scope(tenant):
            stale = Note.objects.get(id=mine.id)
            Note.objects(id=mine.id).update_one(set__title="moved")
            stale.title = "overwritten"
            with pytest.raises(SaveConditionError):
                stale.save(save_condition={"title": "mine"})
            assert Note.objects.get(id=mine.id).title == "moved"

    @pytest.mark.parametrize("signals", [False, True], ids=["plain", "with delete signals"])
    def test_deletes_count_only_what_they_removed(self, notes, tenant, monkeypatch, signals):
        if signals:
            # MongoEngine deletes one by one where delete signals are connected (as for users).
            monkeypatch.setattr(me.signals.post_delete, "has_receivers_for", lambda sender: True)
        mine, _ = notes
        with tenant_scope(tenant):
            stale = Note.objects.get(id=mine.id)
            first = Note.objects(id=mine.id)
            assert first.delete() == 1
            assert Note.objects(id=mine.id).delete() == 0
            assert stale.delete() == 0

    def test_of_concurrent_deletes_of_a_user_one_counts(
        self, app, tenant, make_user, frequent_thread_switches
    ):
        for _repetition in range(10):
            user = make_user(tenant, "member")

            def delete(_index, user_id=user.id):
                with tenant_scope(tenant):
                    return User.objects(id=user_id).delete()

            assert sorted(run_together(6, delete)) == [0, 0, 0, 0, 0, 1]


class TestBypassesAreClosed:
    def test_in_bulk_goes_through_the_filter(self, notes, tenant):
        mine, theirs = notes
        with tenant_scope(tenant):
            found = Note.objects.in_bulk([mine.id, theirs.id])
        assert list(found) == [mine.id]

    def test_raw_collection_needs_the_tenant_filter(self, notes, tenant, other_tenant):
        with tenant_scope(tenant):
            collection = Note._get_collection()
            with pytest.raises(TenantViolation):
                collection.find_one({"title": "theirs"})
            with pytest.raises(TenantViolation):
                collection.find({"tenantId": other_tenant.id})
            with pytest.raises(TenantViolation):
                collection.count_documents({})
            with pytest.raises(TenantViolation):
                collection.delete_many({"title": {"$exists": True}})
            with pytest.raises(TenantViolation):
                collection.insert_one({"title": "planted", "tenantId": other_tenant.id})
            with pytest.raises(TenantViolation):
                collection.insert_one({"title": "orphan"})
            with pytest.raises(TenantViolation):
                collection.watch()
            assert [d["title"] for d in collection.find({"tenantId": tenant.id})] == ["mine"]
        assert _raw_titles() == ["mine", "theirs"]

    def test_with_options_stays_guarded(self, notes, tenant):
        with tenant_scope(tenant), pytest.raises(TenantViolation):
            Note._get_collection().with_options().find({})

    def test_aggregate_lookup_and_unfiltered_pipelines_are_refused(self, notes, tenant):
        lookup = {"$lookup": {"from": "test_notes", "pipeline": [], "as": "all"}}
        with tenant_scope(tenant):
            with pytest.raises(TenantViolation):
                list(Note.objects.aggregate([lookup]))
            with pytest.raises(TenantViolation):
                list(Note.objects.aggregate([{"$facet": {"x": [{"$unionWith": "test_notes"}]}}]))
            with pytest.raises(TenantViolation):
                list(Note._get_collection().aggregate([{"$match": {}}]))
            counted = list(Note.objects.aggregate([{"$count": "n"}]))
        assert counted == [{"n": 1}]

    def test_query_set_insert_validates_and_binds(self, tenant, other_tenant):
        with tenant_scope(tenant):
            with pytest.raises(me.ValidationError):
                Note.objects.insert([Note(title="x" * 51)])
            with pytest.raises(TenantViolation):
                Note.objects.insert([Note(title="planted", tenant_id=other_tenant.id)])
            Note.objects.insert([Note(title="bulk")])
            assert Note.objects.get(title="bulk").tenant_id == tenant.id

    def test_javascript_helpers_raise(self, notes, tenant):
        with tenant_scope(tenant):
            with pytest.raises(TenantViolation):
                Note.objects.exec_js("function() { return db.test_notes.find(); }")
            with pytest.raises(TenantViolation):
                Note.objects.map_reduce("function() {}", "function() {}", "inline")

    def test_raw_filter_cannot_widen_the_tenant_filter(self, notes, tenant, other_tenant):
        with tenant_scope(tenant):
            widened = Note.objects(__raw__={"tenantId": other_tenant.id})
            assert [n.title for n in widened] == []


class TestReferences:
    def test_reference_into_another_tenant_is_refused_on_save(self, notes, tenant):
        _, theirs = notes
        with tenant_scope(tenant):
            with pytest.raises(me.ValidationError):
                Attachment(note=theirs).save()
            with pytest.raises(me.ValidationError):
                Attachment(note=theirs.id).save()
            assert Attachment.objects.count() == 0

    def test_reference_within_the_tenant_dereferences(self, notes, tenant):
        mine, _ = notes
        with tenant_scope(tenant):
            attachment = Attachment(note=mine, label="ok").save()
            assert Attachment.objects.get(id=attachment.id).note.title == "mine"

    def test_dereference_into_another_tenant_finds_nothing(self, notes, tenant, other_tenant):
        """A reference planted by a migration or a bug still does not load another tenant's document."""
        _, theirs = notes
        with unscoped("test: plant a cross-tenant reference"):
            Attachment._get_collection().insert_one(
                {"tenantId": tenant.id, "note": theirs.id, "label": "planted"}
            )
        with tenant_scope(tenant):
            planted = Attachment.objects.get(label="planted")
            with pytest.raises(me.DoesNotExist):
                _ = planted.note
            assert Attachment.objects.select_related().get(label="planted").pk == planted.pk


class TestStartupRules:
    def test_every_document_class_follows_the_index_rules(self, app):
        classes = tenant_document_classes()
        assert User in classes and Note in classes
        for cls in classes:
            for spec in cls._meta["index_specs"]:
                assert spec["fields"][0][0] == "tenantId", (cls.__name__, spec)
            assert cls._meta["shard_key"] == ("tenant_id",)
        assert tenancy_problems() == []

    def test_indexes_in_the_database_start_with_tenant_id(self, app):
        for cls in tenant_document_classes():
            with unscoped("test: read index definitions"):
                indexes = cls._get_collection().index_information()
            for name, index in indexes.items():
                if name != "_id_":
                    assert index["key"][0][0] == "tenantId", (cls.__name__, name)

    def test_app_refuses_to_start_with_a_bad_document_class(self, app_factory):
        class GlobalEmail(TenantDocument):
            email = me.StringField(unique=True)
            phone = me.StringField()
            owner = me.ReferenceField(Note)
            meta = {"collection": "test_bad", "indexes": ["phone"]}

        registry.declare_tenant_owned(GlobalEmail)
        try:
            problems = tenancy_problems([GlobalEmail])
            assert any("unique index ['email']" in p for p in problems)
            assert any("GlobalEmail: index ['phone']" in p for p in problems)
            assert any("GlobalEmail.owner" in p for p in problems)
            with pytest.raises(TenancyConfigurationError, match="GlobalEmail"):
                app_factory()
        finally:
            registry.undeclare(GlobalEmail)
            _document_registry.pop("GlobalEmail")

    def test_references_nested_in_lists_are_refused(self):
        class Bundle(TenantDocument):
            notes = me.ListField(me.ReferenceField(Note))
            meta = {"collection": "test_bundles"}

        try:
            assert any("Bundle.notes" in p for p in tenancy_problems([Bundle]))
        finally:
            _document_registry.pop("Bundle")


class TestContextNeverLeaks:
    def test_second_request_on_the_same_thread_sees_no_tenant(self, app_factory):
        from .support import register_probe

        app = app_factory()
        register_probe(app)
        with app.app_context():
            from app.tenants.service import create_tenant

            create_tenant("Acme Corp", "acme")
        client = app.test_client()
        first = client.get("/api/v1/probe/tenant", headers={"X-Tenant-Id": "acme"})
        assert first.json == {"slug": "acme"}
        second = client.get("/api/v1/probe/tenant")
        assert second.json == {"slug": None}

    def test_context_is_reset_after_an_error(self, app_factory):
        from .support import register_probe

        app = app_factory(PROPAGATE_EXCEPTIONS=False)
        register_probe(app)
        with app.app_context():
            from app.tenants.service import create_tenant

            create_tenant("Acme Corp", "acme")
        client = app.test_client()
        crashed = client.get("/api/v1/probe/crash", headers={"X-Tenant-Id": "acme"})
        assert crashed.status_code == 500
        assert client.get("/api/v1/probe/tenant").json == {"slug": None}

    def test_tenant_scope_restores_the_previous_tenant(self, tenant, other_tenant):
        from app.tenancy.context import current_tenant_id

        with tenant_scope(tenant):
            with tenant_scope(other_tenant):
                assert current_tenant_id() == other_tenant.id
            assert current_tenant_id() == tenant.id
        assert current_tenant_id() is None

    def test_tenant_scope_needs_a_saved_tenant(self):
        class Unsaved:
            id = None

        with pytest.raises(TenancyError), tenant_scope(Unsaved()):
            pass

    def test_context_does_not_flow_into_new_threads(self, tenant):
        import threading

        seen = []
        with tenant_scope(tenant):
            thread = threading.Thread(target=lambda: seen.append(_try_count()))
            thread.start()
            thread.join()
        assert seen == ["missing"]


def _try_count():
    try:
        Note.objects.count()
    except TenantContextMissing:
        return "missing"
    return "counted"


def _titles_unscoped():
    """A function that reads across tenants itself: what unscoped() is for."""
    with unscoped("test: read every title"):
        return sorted(note.title for note in Note.objects)


def _yielding_inside_unscoped():
    """The shape that leaked: a generator that yields while its unscoped() block is open."""
    with unscoped("test: a generator that yields inside its block"):
        yield from Note.objects.order_by("title")


class TestUnscopedStaysInItsBlock:
    """unscoped() covers the block that enters it and the code that block calls, nothing else."""

    def test_code_the_block_calls_runs_unscoped(self, notes):
        with unscoped("test: call a helper"):
            assert _titles_unscoped() == ["mine", "theirs"]
            assert Note.objects.count() == 2
        assert current_state() == TenantState()

    def test_a_generator_reads_unscoped_while_it_runs(self, notes):
        assert [note.title for note in _yielding_inside_unscoped()] == ["mine", "theirs"]
        assert current_state() == TenantState()

    @pytest.mark.parametrize(
        "query",
        [
            lambda: Note.objects.count(),
            lambda: list(Note._get_collection().find({})),
            lambda: Note._get_collection().delete_many({}),
            lambda: Note(title="planted").save(),
            lambda: Note._get_collection().drop(),
        ],
        ids=["query set", "raw find", "raw delete", "insert", "drop"],
    )
    def test_the_consumer_of_a_generator_that_yields_inside_it_cannot_use_it(self, notes, query):
        consumed = 0
        for _note in _yielding_inside_unscoped():
            consumed += 1
            with pytest.raises(UnscopedLeak):
                query()
        assert consumed == 2
        assert _raw_titles() == ["mine", "theirs"]

    def test_the_consumer_may_still_scope_itself(self, notes, tenant, other_tenant):
        seen = []
        for note in _yielding_inside_unscoped():
            with tenant_scope(other_tenant if note.title == "theirs" else tenant):
                seen.append([n.title for n in Note.objects])
        assert seen == [["mine"], ["theirs"]]

    def test_a_generator_left_unfinished_leaks_nothing_once_closed(self, notes):
        generator = _yielding_inside_unscoped()
        next(generator)
        with pytest.raises(UnscopedLeak):
            Note.objects.count()
        generator.close()
        assert current_state() == TenantState()
        with pytest.raises(TenantContextMissing):
            Note.objects.count()

    def test_a_copy_of_the_context_in_another_thread_cannot_use_it(self, notes):
        outcome = []

        def count():
            try:
                outcome.append(Note.objects.count())
            except TenancyError as error:
                outcome.append(type(error))

        with unscoped("test: hand the context to a thread"):
            copied = contextvars.copy_context()
            thread = threading.Thread(target=copied.run, args=(count,))
            thread.start()
            thread.join()
            assert Note.objects.count() == 2
        assert outcome == [UnscopedLeak]


def test_object_ids_of_unknown_documents_look_the_same(notes, tenant):
    """Another tenant's id and an id that does not exist give the same answer."""
    _, theirs = notes
    with tenant_scope(tenant):
        assert Note.objects(id=theirs.id).first() is None
        assert Note.objects(id=ObjectId()).first() is None
