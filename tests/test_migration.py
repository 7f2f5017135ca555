"""flask migrate-to-multitenant: a single-tenant database converted to the multi-tenant layout.

Each test builds the database the single-tenant version wrote (about 3,000 documents without tenantId
and the old global indexes) with raw pymongo writes, then runs the command as an operator would.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import mongomock.collection
import pytest
from bson import ObjectId, json_util
from bson.json_util import JSONOptions
from flask_jwt_extended import decode_token
from pymongo.errors import AutoReconnect

from app.clock import utcnow
from app.db import database
from app.errors import Conflict
from app.maintenance import migration as default_tenant
from app.tenancy import migration
from app.tenancy.context import tenant_scope
from app.tenancy.registry import tenant_document_classes
from app.tenants.models import Tenant
from app.tenants.plans import period_bounds, period_of
from app.tenants.service import create_tenant
from app.usage.models import UsageCounter
from app.users.models import EmailDirectory, User
from app.users.passwords import hash_password
from app.users.service import create_user

from . import support
from .conftest import PASSWORD

run_script = partial(support.run_script, "migrate_to_multitenant.py")
MISSING = {"tenantId": {"$exists": False}}
SUCCESS = "Migration finished"
Collection = mongomock.collection.Collection

# The single-tenant database: documents per collection (3,000 in all, spread over the collections).
USERS = 200  # the last one erased (GDPR): not counted, not in the email directory
CAMPAIGNS = 400
MESSAGES_THIS_MONTH = 450
MESSAGES_EARLIER = 250
BOTS = 40
WEBHOOKS = 60
DELIVERIES = 400
AUDIT_LOGS = 700
MEDIA_FILES = 100  # the first 80 complete
MEDIA_CHUNKS = 300
API_KEYS = 100
MESSAGES = MESSAGES_THIS_MONTH + MESSAGES_EARLIER
LOGIN_EMAIL = "ada@legacy.example.com"

# The indexes the single-tenant version created: name -> (keys, unique).
OLD_INDEXES = {
    "users": {"email_1": ([("email", 1)], True)},
    "campaigns": {"createdAt_-1": ([("createdAt", -1)], False)},
    "telegram_accounts": {"botId_1": ([("botId", 1)], True)},
    "messages": {"campaignId_1": ([("campaignId", 1)], False)},
    "media_chunks": {"mediaId_1_n_1": ([("mediaId", 1), ("n", 1)], True)},
}


@dataclass
class Legacy:
    app: Any
    db: Any
    counts: dict[str, int]
    storage: int
    messages_this_month: int


def _at(moment: datetime) -> datetime:
    """Whole seconds: what every store (and the JSON backup) keeps exactly."""
    return moment.replace(microsecond=0)


def _legacy_documents() -> dict[str, list[dict[str, Any]]]:
    now = _at(utcnow())
    month_start, _ = period_bounds(period_of(utcnow()))
    password_hash = hash_password(PASSWORD)
    users = [
        {
            "_id": ObjectId(),
            "email": LOGIN_EMAIL if n == 0 else f"user{n}@legacy.example.com",
            "name": f"User {n}",
            "role": "owner" if n == 0 else ("admin" if n < 5 else "member"),
            "passwordHash": password_hash,
            "active": True,
            "createdAt": now - timedelta(days=400 - n),
        }
        for n in range(USERS)
    ]
    users[-1]["erasedAt"] = now - timedelta(days=3)
    bots = [
        {
            "_id": ObjectId(),
            "name": f"Bot {n}",
            "botId": 7_000_000 + n,
            "tokenEncrypted": f"encrypted-{n}",
            "tokenLast4": f"{n:04d}",
            "active": True,
            "createdAt": now - timedelta(days=300),
        }
        for n in range(BOTS)
    ]
    campaigns = [
        {
            "_id": ObjectId(),
            "name": f"Campaign {n}",
            "message": {"text": f"Hello number {n}"},
            "targets": ["@channel_one", "-1001234567890"],
            "telegramAccountId": bots[n % BOTS]["_id"],
            "status": "completed" if n % 3 else "draft",
            "createdBy": str(users[0]["_id"]),
            "createdAt": now - timedelta(days=200, minutes=n),
            "updatedAt": now - timedelta(days=100, minutes=n),
        }
        for n in range(CAMPAIGNS)
    ]
    messages = []
    for n in range(MESSAGES):
        campaign = campaigns[n % CAMPAIGNS]
        queued_at = (
            month_start + timedelta(seconds=n)
            if n < MESSAGES_THIS_MONTH
            else month_start - timedelta(days=1, seconds=n)
        )
        messages.append(
            {
                "_id": ObjectId(),
                "campaignId": campaign["_id"],
                "telegramAccountId": campaign["telegramAccountId"],
                "chat": f"@chat_{n % 97}",
                "text": campaign["message"]["text"],
                "status": "sent",
                "attempts": 1,
                "queuedAt": _at(queued_at),
                "sentAt": _at(queued_at + timedelta(seconds=2)),
            }
        )
    webhooks = [
        {
            "_id": ObjectId(),
            "url": f"https://hooks.example.com/{n}",
            "events": ["campaign.completed"],
            "secretEncrypted": f"secret-{n}",
            "active": True,
            "consecutiveFailures": 0,
            "createdAt": now - timedelta(days=50),
        }
        for n in range(WEBHOOKS)
    ]
    deliveries = [
        {
            "_id": ObjectId(),
            "webhookId": webhooks[n % WEBHOOKS]["_id"],
            "event": "campaign.completed",
            "payload": {"campaignId": str(campaigns[n]["_id"])},
            "status": "delivered",
            "attempts": 1,
            "createdAt": now - timedelta(days=10),
        }
        for n in range(DELIVERIES)
    ]
    audit_logs = [
        {
            "_id": ObjectId(),
            "action": "auth.login",
            "actor": {"kind": "user", "id": str(users[n % USERS]["_id"]), "label": users[n % USERS]["email"]},
            "targetType": "user",
            "targetId": str(users[n % USERS]["_id"]),
            "summary": {},
            "ip": "203.0.113.7",
            "createdAt": now - timedelta(hours=n),
        }
        for n in range(AUDIT_LOGS)
    ]
    media_files = [
        {
            "_id": ObjectId(),
            "filename": f"banner-{n}.png",
            "contentType": "image/png",
            "size": 1000 + n,
            "sha256": f"{n:064x}",
            "chunkSize": 255 * 1024,
            "complete": n < 80,
            "createdAt": now - timedelta(days=20),
        }
        for n in range(MEDIA_FILES)
    ]
    media_chunks = [
        {
            "_id": ObjectId(),
            "mediaId": media_files[n % MEDIA_FILES]["_id"],
            "n": n // MEDIA_FILES,
            "data": b"\x89PNG",
        }
        for n in range(MEDIA_CHUNKS)
    ]
    api_keys = [
        {
            "_id": ObjectId(),
            "name": f"Key {n}",
            "keyHash": f"{n:064x}",
            "createdAt": now - timedelta(days=30),
        }
        for n in range(API_KEYS)
    ]
    return {
        "users": users,
        "telegram_accounts": bots,
        "campaigns": campaigns,
        "messages": messages,
        "webhooks": webhooks,
        "webhook_deliveries": deliveries,
        "audit_logs": audit_logs,
        "media_files": media_files,
        "media_chunks": media_chunks,
        "api_keys": api_keys,
    }


@pytest.fixture
def legacy_factory(app_factory):
    """Build the single-tenant database on an app that leaves the indexes to the migration."""
    contexts = []

    def build(**overrides) -> Legacy:
        app = app_factory(CREATE_INDEXES=False, **overrides)
        contexts.append(app.app_context())
        contexts[-1].push()
        db = database()
        documents = _legacy_documents()
        for name, docs in documents.items():
            db[name].insert_many(docs)
        for name, indexes in OLD_INDEXES.items():
            for index_name, (keys, unique) in indexes.items():
                assert db[name].create_index(keys, unique=unique) == index_name
        storage = sum(f["size"] for f in documents["media_files"] if f["complete"])
        counts = {name: len(docs) for name, docs in documents.items()}
        return Legacy(app, db, counts, storage, MESSAGES_THIS_MONTH)

    yield build
    for context in reversed(contexts):
        context.pop()


@pytest.fixture
def legacy(legacy_factory) -> Legacy:
    return legacy_factory()


# -- helpers ----------------------------------------------------------------------------------------


def migrate(app, *args: str, input: str | None = None):
    return app.test_cli_runner().invoke(args=["migrate-to-multitenant", *args], input=input)


def tenant_collections() -> list[str]:
    return sorted(cls._get_collection_name() for cls in tenant_document_classes())


def snapshot(db) -> dict[str, Any]:
    """Every document and every index of every collection of the database."""
    return {
        name: {
            "documents": list(db[name].find({}).sort("_id", 1)),
            "indexes": db[name].index_information(),
        }
        for name in sorted(db.list_collection_names())
    }


def documents(db) -> dict[str, list[dict[str, Any]]]:
    return {name: list(db[name].find({}).sort("_id", 1)) for name in tenant_collections()}


def assert_migrated(db, before: dict[str, list[dict[str, Any]]], tenant_id: ObjectId) -> None:
    """Every document is the one from before with tenantId added, and nothing else changed (the
    collections the single-tenant version did not have get only what the usage recount writes)."""
    for name in tenant_collections():
        assert db[name].count_documents(MISSING) == 0, name
        if not before.get(name):
            continue
        expected = [{**doc, "tenantId": tenant_id} for doc in before[name]]
        assert list(db[name].find({}).sort("_id", 1)) == expected, name


def table(output: str) -> dict[str, tuple[int, int, int, str]]:
    """The rows of the command's report: collection -> (documents, without tenantId, backfilled, old)."""
    rows = {}
    for line in output.splitlines():
        match = re.match(r"^([a-z_]+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*?)\s*$", line)
        if match:
            name, total, missing, changed, old = match.groups()
            rows[name] = (int(total), int(missing), int(changed), old)
    return rows


def index_keys(db, name: str) -> dict[tuple, bool]:
    """The indexes of a collection as {keys: unique}."""
    return {
        tuple(tuple(key) for key in index["key"]): bool(index.get("unique"))
        for index in db[name].index_information().values()
    }


def count_update_many(monkeypatch) -> dict[str, list[int]]:
    """Record, per collection, how many documents each update_many of the migration changed."""
    batches: dict[str, list[int]] = defaultdict(list)
    original = Collection.update_many

    def counting(self, filter, update, *args, **kwargs):
        result = original(self, filter, update, *args, **kwargs)
        batches[self.name].append(result.modified_count)
        return result

    monkeypatch.setattr(Collection, "update_many", counting)
    return batches


# -- the default tenant -----------------------------------------------------------------------------


class TestDefaultTenant:
    def test_creates_the_default_tenant_named_by_the_settings(self, legacy_factory):
        legacy = legacy_factory(DEFAULT_TENANT_SLUG="main")
        assert Tenant.objects.count() == 0
        result = migrate(legacy.app, "--yes")
        assert result.exit_code == 0, result.output
        [tenant] = Tenant.objects
        assert (tenant.slug, tenant.name, tenant.plan, tenant.status) == (
            "main",
            "Default",
            "enterprise",
            "active",
        )
        assert "Default tenant: main (will be created, plan enterprise)" in result.output
        assert legacy.db.users.count_documents({"tenantId": tenant.id}) == USERS

    def test_slug_name_and_plan_options(self, legacy):
        result = migrate(
            legacy.app, "--yes", "--slug", "legacy", "--name", "Legacy Co", "--plan", "professional"
        )
        assert result.exit_code == 0, result.output
        [tenant] = Tenant.objects
        assert (tenant.slug, tenant.name, tenant.plan) == ("legacy", "Legacy Co", "professional")
        for name in tenant_collections():
            assert legacy.db[name].count_documents({"tenantId": {"$ne": tenant.id}}) == 0, name

    def test_an_existing_tenant_of_that_slug_is_reused(self, legacy):
        existing = create_tenant("Our Company", "default", plan="professional")
        result = migrate(legacy.app, "--yes")
        assert result.exit_code == 0, result.output
        assert "Default tenant: default (exists)" in result.output
        [tenant] = Tenant.objects
        assert (tenant.id, tenant.name, tenant.plan) == (existing.id, "Our Company", "professional")
        assert legacy.db.messages.count_documents({"tenantId": existing.id}) == legacy.counts["messages"]


# -- backfill ---------------------------------------------------------------------------------------


class TestBackfill:
    @pytest.mark.parametrize("batch_size", [None, "97"], ids=["default-batch", "small-batch"])
    def test_every_document_of_every_collection_gets_the_tenant(self, legacy, batch_size):
        assert sum(legacy.counts.values()) == 3000
        before = documents(legacy.db)
        args = ["--yes"] + (["--batch-size", batch_size] if batch_size else [])
        result = migrate(legacy.app, *args)
        assert result.exit_code == 0, result.output
        tenant = Tenant.objects.get(slug="default")
        assert_migrated(legacy.db, before, tenant.id)
        assert SUCCESS in result.output

    def test_the_report_has_the_counts_of_every_collection(self, legacy):
        result = migrate(legacy.app, "--yes")
        assert result.exit_code == 0, result.output
        rows = table(result.output)
        assert set(rows) == set(tenant_collections())
        for name in tenant_collections():
            n = legacy.counts.get(name, 0)
            total, missing, backfilled, old = rows[name]
            assert (total, missing, backfilled) == (n, n, n), name
            assert old == ", ".join(sorted(OLD_INDEXES.get(name, {}))) or "-", name

    def test_one_update_many_per_batch(self, legacy, monkeypatch):
        batches = count_update_many(monkeypatch)
        result = migrate(legacy.app, "--yes", "--batch-size", "250")
        assert result.exit_code == 0, result.output
        for name in tenant_collections():
            n = legacy.counts.get(name, 0)
            assert len(batches[name]) == math.ceil(n / 250), name
            assert sum(batches[name]) == n, name
            assert all(size <= 250 for size in batches[name]), name
        assert len(batches["messages"]) == 3
        total = sum(legacy.counts.values())
        assert sum(len(calls) for calls in batches.values()) < total / 100


# -- indexes ----------------------------------------------------------------------------------------


class TestIndexes:
    def test_old_global_indexes_are_replaced_by_tenant_prefixed_ones(self, legacy):
        result = migrate(legacy.app, "--yes")
        assert result.exit_code == 0, result.output
        for cls in tenant_document_classes():
            name = cls._get_collection_name()
            keys = index_keys(legacy.db, name)
            assert all(key[0][0] in ("_id", "tenantId") for key in keys), (name, keys)
            for spec in cls._meta["index_specs"]:
                assert keys.get(tuple(spec["fields"])) == bool(spec.get("unique")), (name, spec)
        info = legacy.db.users.index_information()
        assert "email_1" not in info
        assert info["tenantId_1_email_1"]["unique"] is True
        assert "botId_1" not in legacy.db.telegram_accounts.index_information()

    def test_no_unique_index_is_dropped_before_its_tenant_prefixed_successor_exists(
        self, legacy, monkeypatch
    ):
        dropped = []
        original_drop = Collection.drop_index

        def checked_drop(self, index_or_name):
            info = self.index_information()
            old = info[index_or_name]
            successor = [("tenantId", 1), *old["key"]]
            protected = any(
                index.get("unique") and list(index["key"]) == successor for index in info.values()
            )
            dropped.append((self.name, index_or_name, bool(old.get("unique")), protected))
            return original_drop(self, index_or_name)

        # While tenantId is written, a unique index on email (the old one or the new one) holds.
        unprotected_writes = []
        original_update = Collection.update_many

        def checked_update(self, filter, update, *args, **kwargs):
            if self.name == "users" and (("tenantId", 1), ("email", 1)) not in index_keys(
                database(), "users"
            ):
                unprotected_writes.append(filter)
            return original_update(self, filter, update, *args, **kwargs)

        monkeypatch.setattr(Collection, "drop_index", checked_drop)
        monkeypatch.setattr(Collection, "update_many", checked_update)
        result = migrate(legacy.app, "--yes")
        assert result.exit_code == 0, result.output

        expected = {(c, name) for c, indexes in OLD_INDEXES.items() for name in indexes}
        assert {(c, name) for c, name, _unique, _protected in dropped} == expected
        unique_drops = [entry for entry in dropped if entry[2]]
        assert {c for c, *_ in unique_drops} == {"users", "telegram_accounts", "media_chunks"}
        assert all(protected for *_, protected in unique_drops), unique_drops
        assert unprotected_writes == []

    def test_after_migration_another_tenant_may_use_the_same_email(self, legacy):
        assert migrate(legacy.app, "--yes").exit_code == 0
        default = Tenant.objects.get(slug="default")
        second = create_tenant("Second Co", "second-co")
        with tenant_scope(second):
            user = create_user(LOGIN_EMAIL, "Ada Elsewhere", PASSWORD, "owner")
        assert user.tenant_id == second.id
        with tenant_scope(default), pytest.raises(Conflict):
            create_user(LOGIN_EMAIL, "Ada Again", PASSWORD, "member")
        assert legacy.db.users.count_documents({"email": LOGIN_EMAIL}) == 2


# -- usage and the email directory ------------------------------------------------------------------


class TestUsage:
    def test_counters_are_recomputed_from_the_data(self, legacy):
        result = migrate(legacy.app, "--yes")
        assert result.exit_code == 0, result.output
        tenant = Tenant.objects.get(slug="default")
        assert tenant.usage.users == USERS - 1
        assert tenant.usage.campaigns == CAMPAIGNS
        assert tenant.usage.telegram_accounts == BOTS
        assert tenant.usage.webhooks == WEBHOOKS
        assert tenant.usage.storage == legacy.storage
        assert tenant.owners.active == 1  # the single-tenant version's one owner keeps the tenant
        with tenant_scope(tenant):
            counter = UsageCounter.objects.get(resource="messagesPerMonth", period=period_of(utcnow()))
        assert counter.used == legacy.messages_this_month
        assert "Usage of default recomputed" in result.output

    def test_the_email_directory_is_filled_and_logins_by_email_work(self, legacy):
        client = legacy.app.test_client()
        login = {"email": LOGIN_EMAIL, "password": PASSWORD}
        assert client.post("/api/v1/auth/login", json=login).status_code == 401

        assert migrate(legacy.app, "--yes").exit_code == 0
        tenant = Tenant.objects.get(slug="default")
        entries = EmailDirectory.objects(tenant_id=tenant.id)
        with tenant_scope(tenant):
            live = {user.email: user.id for user in User.objects(erased_at=None)}
        assert {entry.email: entry.user_id for entry in entries} == live
        assert len(live) == USERS - 1

        response = client.post("/api/v1/auth/login", json=login)
        assert response.status_code == 200, response.json
        assert response.json["tenant"]["slug"] == "default"
        assert decode_token(response.json["accessToken"])["tenantId"] == str(tenant.id)
        headers = {"Authorization": f"Bearer {response.json['accessToken']}"}
        current = client.get("/api/v1/tenants/current", headers=headers)
        assert current.status_code == 200
        assert current.json["usage"]["users"] == USERS - 1


# -- dry run, second run, interrupted run -----------------------------------------------------------


class TestRuns:
    def test_dry_run_reports_and_writes_nothing(self, legacy):
        before = snapshot(legacy.db)
        result = migrate(legacy.app, "--dry-run")
        assert result.exit_code == 0, result.output
        assert snapshot(legacy.db) == before
        assert Tenant.objects.count() == 0
        assert "Dry run" in result.output
        assert "will be created" in result.output
        rows = table(result.output)
        assert rows["users"] == (USERS, USERS, USERS, "email_1")
        assert rows["messages"] == (MESSAGES, MESSAGES, MESSAGES, "campaignId_1")
        assert rows["telegram_accounts"][3] == "botId_1"
        assert rows["campaigns"][3] == "createdAt_-1"
        assert SUCCESS not in result.output

    def test_a_second_run_changes_nothing(self, legacy):
        assert migrate(legacy.app, "--yes").exit_code == 0
        after_first = snapshot(legacy.db)
        result = migrate(legacy.app, "--yes")
        assert result.exit_code == 0, result.output
        assert snapshot(legacy.db) == after_first
        assert "Default tenant: default (exists)" in result.output
        for name, (total, missing, backfilled, old) in table(result.output).items():
            assert (missing, backfilled, old) == (0, 0, "-"), name
            assert total == legacy.db[name].count_documents({}) == legacy.counts.get(name, total), name
        assert Tenant.objects.count() == 1

    def test_an_interrupted_run_run_again_finishes(self, legacy, monkeypatch):
        before = documents(legacy.db)
        calls = []
        original = Collection.update_many

        def flaky(self, *args, **kwargs):
            calls.append(self.name)
            if len(calls) == 3:
                raise AutoReconnect("connection reset by peer")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Collection, "update_many", flaky)
        first = migrate(legacy.app, "--yes", "--batch-size", "100")
        assert first.exit_code != 0
        assert SUCCESS not in first.output
        missing = sum(legacy.db[name].count_documents(MISSING) for name in tenant_collections())
        assert 0 < missing < sum(legacy.counts.values())

        monkeypatch.setattr(Collection, "update_many", original)
        second = migrate(legacy.app, "--yes", "--batch-size", "100")
        assert second.exit_code == 0, second.output
        [tenant] = Tenant.objects
        assert_migrated(legacy.db, before, tenant.id)
        for name, (total, *_rest) in table(second.output).items():
            assert total == legacy.counts.get(name, 0), name


# -- counts -----------------------------------------------------------------------------------------


class TestCounts:
    def test_counts_are_equal_before_and_after(self, legacy):
        result = migrate(legacy.app, "--yes")
        assert result.exit_code == 0, result.output
        for name in legacy.counts:
            assert legacy.db[name].count_documents({}) == legacy.counts[name], name

    @pytest.mark.parametrize("change", ["vanishes", "appears"])
    def test_a_count_that_changed_is_refused(self, legacy, monkeypatch, change):
        original = Collection.update_many
        done = []

        def meddling(self, filter, update, *args, **kwargs):
            if self.name == "messages" and not done:
                done.append(True)
                if change == "vanishes":
                    self.delete_one({"_id": self.find_one(filter)["_id"]})
                else:
                    self.insert_one({"chat": "@late", "text": "written by the old version meanwhile"})
            return original(self, filter, update, *args, **kwargs)

        monkeypatch.setattr(Collection, "update_many", meddling)
        result = migrate(legacy.app, "--yes")
        assert result.exit_code != 0
        after = MESSAGES - 1 if change == "vanishes" else MESSAGES + 1
        assert f"messages: {MESSAGES} documents before, {after} after" in result.output
        assert "restore the backup" in result.output
        assert SUCCESS not in result.output
        assert "Usage of default recomputed" not in result.output

    def test_a_count_that_lies_is_refused(self, legacy, monkeypatch):
        original = Collection.count_documents

        def lying(self, filter, *args, **kwargs):
            n = original(self, filter, *args, **kwargs)
            if self.name == "campaigns" and filter == {} and self.find_one(MISSING) is None:
                return n - 1
            return n

        monkeypatch.setattr(Collection, "count_documents", lying)
        result = migrate(legacy.app, "--yes")
        assert result.exit_code != 0
        assert f"campaigns: {CAMPAIGNS} documents before, {CAMPAIGNS - 1} after" in result.output
        assert SUCCESS not in result.output


# -- backups ----------------------------------------------------------------------------------------


class TestBackup:
    def test_without_backup_or_yes_it_asks_and_no_aborts(self, legacy):
        before = snapshot(legacy.db)
        result = migrate(legacy.app, input="n\n")
        assert result.exit_code != 0
        assert "Back up the database first" in result.output
        assert "Migrate without a backup?" in result.output
        assert snapshot(legacy.db) == before
        assert Tenant.objects.count() == 0

    def test_answering_yes_migrates(self, legacy):
        result = migrate(legacy.app, input="y\n")
        assert result.exit_code == 0, result.output
        assert legacy.db.users.count_documents(MISSING) == 0

    def test_backup_holds_every_document_and_dropped_index_before_anything_changes(
        self, legacy, monkeypatch, tmp_path
    ):
        path = tmp_path / "before-migration.json"
        before = documents(legacy.db)
        seen_at = {}

        def backup_complete() -> bool:
            return path.exists() and bool(json.loads(path.read_text())["collections"])

        original_create, original_migrate = default_tenant.create_tenant, migration.migrate

        def create_tenant_after_backup(*args, **kwargs):
            seen_at["create_tenant"] = backup_complete()
            return original_create(*args, **kwargs)

        def migrate_after_backup(*args, **kwargs):
            seen_at["migrate"] = backup_complete()
            return original_migrate(*args, **kwargs)

        monkeypatch.setattr(default_tenant, "create_tenant", create_tenant_after_backup)
        monkeypatch.setattr(migration, "migrate", migrate_after_backup)

        result = migrate(legacy.app, "--backup", str(path))
        assert result.exit_code == 0, result.output
        assert seen_at == {"create_tenant": True, "migrate": True}
        assert f"Backed up {sum(legacy.counts.values())} documents" in result.output

        with path.open() as file:
            backup = json.load(file)
        saved = backup["collections"]
        for name in tenant_collections():
            ids = sorted(doc["_id"]["$oid"] for doc in saved[name]["documents"])
            assert ids == sorted(str(doc["_id"]) for doc in before[name]), name
            assert all("tenantId" not in doc for doc in saved[name]["documents"]), name
            assert set(saved[name]["droppedIndexes"]) == set(OLD_INDEXES.get(name, {})), name
        assert saved["users"]["droppedIndexes"]["email_1"]["unique"] is True
        assert saved["users"]["droppedIndexes"]["email_1"]["key"] == [["email", 1]]

        # The backup restores the documents exactly as they were.
        restored = json_util.loads(path.read_text(), json_options=JSONOptions(tz_aware=True, tzinfo=UTC))
        for name in ("users", "messages", "media_chunks", "audit_logs"):
            saved_documents = sorted(restored["collections"][name]["documents"], key=lambda doc: doc["_id"])
            assert saved_documents == before[name], name


# -- refusals ---------------------------------------------------------------------------------------


class TestRefusals:
    def test_the_command_uses_no_deprecated_click_api(self, legacy):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = migrate(legacy.app, "--yes")
        assert result.exit_code == 0, result.output
        deprecated = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
        assert deprecated == []

    def test_a_duplicate_under_a_new_unique_index_stops_with_a_clear_message(self, legacy):
        legacy.db.users.drop_index("email_1")  # an old database that never had the unique index
        duplicate = {**legacy.db.users.find_one({"email": LOGIN_EMAIL}), "_id": ObjectId(), "name": "Ada 2"}
        legacy.db.users.insert_one(duplicate)
        users_before = list(legacy.db.users.find({}).sort("_id", 1))

        result = migrate(legacy.app, "--yes")
        assert result.exit_code != 0
        assert "users" in result.output and "unique constraint" in result.output
        assert "fix it and run again" in result.output
        assert SUCCESS not in result.output
        assert list(legacy.db.users.find({}).sort("_id", 1)) == users_before
        assert (("tenantId", 1), ("email", 1)) not in index_keys(legacy.db, "users")

        legacy.db.users.delete_one({"_id": duplicate["_id"]})
        again = migrate(legacy.app, "--yes")
        assert again.exit_code == 0, again.output
        assert legacy.db.users.count_documents(MISSING) == 0
        assert Tenant.objects.count() == 1

    def test_refused_while_the_app_creates_the_indexes_itself(self, app_factory):
        app = app_factory()
        assert app.config["CREATE_INDEXES"] is True
        with app.app_context():
            result = migrate(app, "--yes")
            assert result.exit_code != 0
            assert "CREATE_INDEXES=false" in result.output
            assert Tenant.objects.count() == 0


# -- the script -------------------------------------------------------------------------------------


class TestScript:
    def test_help(self):
        result = run_script("--help")
        assert result.returncode == 0, result.stderr
        for option in ("--dry-run", "--backup", "--batch-size", "--slug", "--yes"):
            assert option in result.stdout
        assert "back up first" in result.stdout

    def test_dry_run_on_an_empty_store(self):
        result = run_script("--dry-run", MONGODB_URI="mongomock://localhost/migration_script")
        assert result.returncode == 0, result.stderr
        assert "Dry run: nothing was written." in result.stdout
