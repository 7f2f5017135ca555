"""Health probes, API docs, request ids, JSON logs and demo data."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId
from flask import session
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, ServerSelectionTimeoutError

from app import demo
from app.db import database
from app.logs import JsonFormatter, request_id_var
from app.tenancy.context import tenant_scope, unscoped
from app.tenants.models import Tenant
from app.users.models import PlatformUser, User

from .support import embedded_only, run_together


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_pings_the_database(client, monkeypatch):
    assert client.get("/readyz").json == {"status": "ready"}

    def down():
        raise ServerSelectionTimeoutError("no server")

    monkeypatch.setattr("app.db.ping", down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "unavailable"


def test_health_ignores_tenant_hints(client):
    assert client.get("/healthz", headers={"X-Tenant-Id": "nobody"}).status_code == 200


def test_openapi_documents_the_tenancy_routes(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "get" in spec["paths"]["/api/v1/tenants/current"]
    assert "get" in spec["paths"]["/api/v1/plans"]
    assert "Tenant" in spec["components"]["schemas"]


def _published_accepts(prop: dict, value) -> bool:
    """What a client reading the document would conclude (enum, pattern, maxLength, anyOf)."""
    if "anyOf" in prop:
        return any(_published_accepts(option, value) for option in prop["anyOf"])
    if prop.get("type") == "integer":
        return isinstance(value, int) and prop["minimum"] <= value <= prop["maximum"]
    if not isinstance(value, str):
        return False
    return (
        ("enum" not in prop or value in prop["enum"])
        and ("pattern" not in prop or re.search(prop["pattern"], value) is not None)
        and len(value) <= prop.get("maxLength", len(value))
    )


@pytest.mark.parametrize(
    ("schema", "field", "accepted", "refused"),
    [
        ("GeneralPatch", "timezone", "Europe/Berlin", "Mars/Olympus_Mons"),
        ("GeneralPatch", "currency", "EUR", "XYZ"),
        ("GeneralPatch", "language", "pt-BR", "portuguese"),
        ("BrandingPatch", "primaryColor", "#1a2b3c", "red"),
        ("TenantPatch", "domain", "marketing.example.com", "Example.com"),
        ("TenantPatch", "name", "Acme", "   "),
        ("SignupTenant", "slug", "acme-2", "-acme"),
        ("CampaignCreate", "telegramAccountId", "a" * 24, "a" * 23),
        ("TelegramAccountCreate", "token", "123456789:" + "A" * 35, "١٢٣٤٥٦:" + "A" * 35),
    ],
)
def test_openapi_publishes_what_the_validators_accept(client, schema, field, accepted, refused):
    prop = client.get("/api/v1/openapi.json").json["components"]["schemas"][schema]["properties"][field]
    assert _published_accepts(prop, accepted) and not _published_accepts(prop, refused)


def test_openapi_publishes_chat_targets(client):
    schemas = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    target = schemas["CampaignCreate"]["properties"]["targets"]["items"]
    for value in ("@channel1", "-1001234567890", -1001234567890):
        assert _published_accepts(target, value)
    for value in ("@ab", "channel", None, 10**21):
        assert not _published_accepts(target, value)


def test_reads_racing_updates_in_other_threads_do_not_fail(app):
    """The embedded store copies documents out while updates change them in place: without its lock,
    this fails with 'dictionary changed size during iteration' within a few hundred reads."""
    collection = database()["race"]
    collection.insert_one({"_id": 1, **{f"k{i}": i for i in range(50)}})

    def work(index):
        for step in range(1500):
            if index % 2:
                assert len(list(collection.find({"_id": 1}))) == 1
            else:
                collection.update_one({"_id": 1}, {"$set": {f"x{step % 200}": step}})
                collection.update_one({"_id": 1}, {"$unset": {f"x{(step + 100) % 200}": ""}})

    failures = [result for result in run_together(4, work) if isinstance(result, BaseException)]
    assert failures == []


@embedded_only
class TestEmbeddedStoreIndexes:
    """Filters that name their _ids or their tenants read only those documents, with the results a
    scan would give."""

    @pytest.fixture
    def collection(self, app):
        collection = database()["lookups"]
        collection.insert_many([{"_id": n, "even": n % 2 == 0, "name": f"n{n}"} for n in range(200)])
        return collection

    @pytest.fixture
    def scans(self, monkeypatch):
        """How many documents the embedded store's full scan tested."""
        import mongomock.collection

        tested = {"documents": 0}
        applies = mongomock.collection.filter_applies

        def counting(*args, **kwargs):
            tested["documents"] += 1
            return applies(*args, **kwargs)

        monkeypatch.setattr(mongomock.collection, "filter_applies", counting)
        return tested

    @pytest.mark.parametrize(
        ("filter_", "expected"),
        [
            ({"_id": 4}, [4]),
            ({"_id": 4, "even": False}, []),
            ({"_id": 999}, []),
            ({"_id": {"$in": [5, 4, 5, 999]}}, [4, 5]),
            ({"_id": {"$in": [3, 4, 6]}, "even": True}, [4, 6]),
            ({"_id": {"$in": []}}, []),
        ],
    )
    def test_the_named_documents_are_found_without_a_scan(self, collection, scans, filter_, expected):
        assert sorted(doc["_id"] for doc in collection.find(filter_)) == expected
        assert collection.count_documents(filter_) == len(expected)
        assert scans["documents"] == 0

    @pytest.mark.parametrize(
        "filter_",
        [{"_id": {"$gte": 198}}, {"_id": {"$in": [1, 2], "$ne": 2}}, {"_id": re.compile("^1..$")}, {}],
    )
    def test_other_filters_still_scan(self, collection, scans, filter_):
        scan = sorted(doc["_id"] for doc in collection.find(filter_))
        assert scans["documents"] >= 200
        assert scan == sorted(d["_id"] for d in collection.find() if filter_applies_plainly(filter_, d))

    def test_one_document_by_id_is_read_as_the_filter_finds_it(self, collection, scans):
        moment = datetime(2026, 3, 1, 12, tzinfo=UTC)
        collection.update_one({"_id": 6}, {"$set": {"at": moment, "tags": ["x", "y"]}})
        assert collection.find_one({"_id": 6})["at"] == moment
        assert collection.find_one({"_id": 6, "even": True, "at": moment})["name"] == "n6"
        assert collection.find_one({"_id": 6, "tags": "y"})["name"] == "n6"  # an array holds it
        assert collection.find_one({"_id": 6, "even": False}) is None
        assert collection.find_one({"_id": 6, "at": moment + timedelta(seconds=1)}) is None
        assert collection.find_one({"_id": 999}) is None
        assert collection.find_one({"_id": 6, "missing": None})["name"] == "n6"
        assert collection.find_one({"_id": 6}, projection={"name": 1}) == {"_id": 6, "name": "n6"}
        assert collection.find_one({"_id": 6}, {"name": 0, "tags": 0, "at": 0}) == {"_id": 6, "even": True}
        assert scans["documents"] <= 6  # the documents named, each tested on the rest of its filter

    def test_updates_and_deletes_by_id_touch_only_their_documents(self, collection, scans):
        assert (
            collection.update_one({"_id": 7, "even": False}, {"$set": {"name": "seven"}}).modified_count == 1
        )
        assert (
            collection.update_many(
                {"_id": {"$in": [8, 9, 10]}, "even": True}, {"$set": {"tag": 1}}
            ).modified_count
            == 2
        )
        assert collection.delete_one({"_id": 11}).deleted_count == 1
        assert scans["documents"] == 0
        assert collection.find_one({"_id": 7})["name"] == "seven"
        assert sorted(doc["_id"] for doc in collection.find({"tag": 1})) == [8, 10]
        assert collection.count_documents({}) == 199

    @pytest.fixture
    def tenants(self, app):
        collection = database()["by_tenant"]
        first, second = ObjectId(), ObjectId()
        collection.insert_many(
            [{"_id": n, "tenantId": first if n % 2 else second, "n": n} for n in range(100)]
        )
        return collection, first, second

    def test_a_tenants_documents_are_found_without_a_scan(self, tenants, scans):
        collection, first, second = tenants
        assert [doc["n"] for doc in collection.find({"tenantId": first})] == list(range(1, 100, 2))
        assert collection.count_documents({"tenantId": second, "n": {"$lt": 10}}) == 5
        assert collection.count_documents({"tenantId": {"$in": [first, second]}}) == 100
        assert collection.count_documents({"tenantId": ObjectId()}) == 0
        assert scans["documents"] == 0

    def test_writes_keep_each_tenant_in_step(self, tenants, scans):
        collection, first, second = tenants
        collection.insert_one({"_id": 500, "tenantId": first, "n": 500})
        collection.delete_many({"tenantId": first, "n": {"$lt": 50}})
        collection.replace_one({"_id": 51}, {"tenantId": first, "n": 5100})
        collection.update_one({"_id": 53, "tenantId": first}, {"$set": {"n": 5300}})
        assert [doc["n"] for doc in collection.find({"tenantId": first})][:3] == [5100, 5300, 55]
        assert collection.count_documents({"tenantId": first}) == 26
        assert collection.count_documents({"tenantId": second}) == 50
        assert scans["documents"] == 0

    def test_an_update_that_writes_the_tenant_is_seen(self, tenants):
        collection, first, second = tenants
        collection.insert_many([{"_id": 1000 + n, "n": n} for n in range(3)])  # the migration's input
        assert collection.count_documents({"tenantId": first}) == 50
        collection.update_many({"tenantId": {"$exists": False}}, {"$set": {"tenantId": first}})
        assert collection.count_documents({"tenantId": first}) == 53
        collection.update_one({"_id": 1000}, {"$set": {"tenantId": second}})
        assert collection.count_documents({"tenantId": first}) == 52
        assert collection.count_documents({"tenantId": second}) == 51

    def test_a_dropped_collection_forgets_its_tenants(self, tenants):
        collection, first, _ = tenants
        collection.drop()
        assert collection.count_documents({"tenantId": first}) == 0
        collection.insert_one({"_id": 1, "tenantId": first})
        assert collection.count_documents({"tenantId": first}) == 1

    def test_bulk_updates_work(self, collection):
        result = collection.bulk_write(
            [UpdateOne({"_id": n}, {"$set": {"bulk": n}}) for n in (1, 2, 3)]
            + [UpdateOne({"_id": 500}, {"$set": {"bulk": 0}})],
            ordered=False,
        )
        assert (result.matched_count, result.modified_count) == (3, 3)
        assert sorted(doc["bulk"] for doc in collection.find({"bulk": {"$exists": True}})) == [1, 2, 3]
        with pytest.raises(NotImplementedError, match="sort"):
            collection.bulk_write([UpdateOne({"even": True}, {"$set": {"x": 1}}, sort={"_id": -1})])

    @pytest.fixture
    def unique(self, app):
        collection = database()["unique_keys"]
        collection.create_index([("tenantId", 1), ("email", 1)], unique=True)
        collection.create_index("code", unique=True, sparse=True)
        collection.insert_many([{"_id": n, "tenantId": 1, "email": f"u{n}", "code": n} for n in range(10)])
        return collection

    def test_a_unique_index_is_checked_by_its_key_without_a_scan(self, unique, scans):
        with pytest.raises(DuplicateKeyError):
            unique.insert_one({"_id": 10, "tenantId": 1, "email": "u3"})
        with pytest.raises(DuplicateKeyError):
            unique.insert_one({"_id": 10, "tenantId": 2, "email": "u3", "code": 3})
        unique.insert_one({"_id": 11, "tenantId": 2, "email": "u3"})  # another tenant, no code
        unique.insert_one({"_id": 12, "tenantId": 2, "email": "u4"})  # two without a code: sparse
        # A key an update left, or a deletion, is free again; one an update took is not.
        unique.update_one({"_id": 3}, {"$set": {"email": "moved", "code": 103}})
        unique.delete_one({"_id": 5})
        unique.insert_many(
            [{"_id": 13, "tenantId": 1, "email": "u3", "code": 3}, {"_id": 14, "tenantId": 1, "email": "u5"}]
        )
        with pytest.raises(DuplicateKeyError):
            unique.update_one({"_id": 4}, {"$set": {"email": "moved"}})
        assert unique.find_one({"_id": 4})["email"] == "u4"  # the failed update left it as it was
        with pytest.raises(BulkWriteError) as failed:
            unique.insert_many(
                [
                    {"_id": 20, "tenantId": 1, "email": "u6"},
                    {"_id": 21, "tenantId": 1, "email": "new"},
                    {"_id": 22, "tenantId": 1, "email": "other", "code": 103},
                ],
                ordered=False,
            )
        assert [error["index"] for error in failed.value.details["writeErrors"]] == [0, 2]
        assert scans["documents"] == 0
        assert unique.count_documents({}) == 14

    def test_updates_count_what_they_changed_and_a_refused_one_changes_nothing(self, unique):
        moment = datetime(2026, 3, 1, 12, tzinfo=UTC)
        unique.update_one({"_id": 1}, {"$set": {"profile": {"at": moment, "tags": ["a", "b"]}}})
        before = unique.find_one({"_id": 1})
        assert unique.update_one({"_id": 1}, {"$set": {"profile.tags": ["a", "b"]}}).modified_count == 0
        assert unique.update_one({"_id": 1}, {"$inc": {"code": 0}}).modified_count == 0
        with pytest.raises(DuplicateKeyError):
            unique.update_one({"_id": 1}, {"$set": {"email": "u2", "profile.tags": []}})
        assert unique.find_one({"_id": 1}) == before
        assert before["profile"]["at"] == moment
        assert unique.update_one({"_id": 1}, {"$push": {"profile.tags": "c"}}).modified_count == 1
        assert unique.find_one({"_id": 1})["profile"]["tags"] == ["a", "b", "c"]

    def test_a_key_that_is_not_a_plain_value_falls_back_to_the_scan(self, unique):
        unique.insert_one({"_id": 30, "tenantId": 4, "email": ["a", "b"]})  # matched by its elements
        with pytest.raises(DuplicateKeyError):
            unique.insert_one({"_id": 31, "tenantId": 4, "email": "b"})
        unique.drop_index("tenantId_1_email_1")
        unique.insert_one({"_id": 31, "tenantId": 4, "email": "b"})
        with pytest.raises(DuplicateKeyError):
            unique.insert_one({"_id": 32, "tenantId": 4, "email": "c", "code": 2})

    def test_a_filter_on_the_existence_of_fields_finds_what_a_scan_finds(self, collection, scans):
        collection.update_many({"_id": {"$in": [1, 2, 3]}}, {"$set": {"tag": None}})
        assert sorted(doc["_id"] for doc in collection.find({"tag": {"$exists": True}})) == [1, 2, 3]
        assert collection.count_documents({"tag": {"$exists": False}, "name": {"$exists": True}}) == 197
        assert collection.count_documents({"_id": {"$in": [2, 4]}, "tag": {"$exists": False}}) == 1
        assert scans["documents"] == 0

    @pytest.fixture
    def sortable(self, app):
        collection = database()["sortable"]
        moment = datetime(2026, 3, 1, tzinfo=UTC)
        collection.insert_many(
            [
                {
                    "_id": ObjectId(),
                    "n": n % 7,
                    "flag": n % 2 == 0,
                    "name": f"név {n % 5}",
                    "when": moment + timedelta(minutes=n % 4),
                    "mixed": [n, str(n), None, 1.5][n % 4],
                    "tags": [f"t{(n * 3) % 5}", "z"],
                    "nested": {"k": n % 3},
                    **({"sometimes": n} if n % 3 else {}),
                }
                for n in range(40)
            ]
        )
        return collection

    @pytest.mark.parametrize(
        ("sort", "natively"),
        [
            ([("n", 1), ("_id", 1)], True),
            ([("n", -1), ("_id", -1)], True),
            ([("when", -1), ("flag", 1), ("_id", 1)], True),
            ([("name", 1), ("_id", -1)], True),
            ([("nested.k", -1), ("_id", 1)], True),
            ([("mixed", 1), ("_id", 1)], False),
            ([("sometimes", -1), ("_id", 1)], False),
            ([("tags", 1), ("_id", 1)], False),
        ],
    )
    def test_sorts_keep_mongomocks_order(self, sortable, monkeypatch, sort, natively):
        """Keys of one plain type sort without mongomock's comparisons; every sort gives its order."""
        from mongomock import filtering

        documents = list(sortable.find())
        for key, direction in reversed(sort):  # as mongomock sorts
            documents.sort(
                key=lambda document, key=key: filtering.resolve_sort_key(key, document), reverse=direction < 0
            )
        compared = []
        resolve = filtering.resolve_sort_key
        monkeypatch.setattr(filtering, "resolve_sort_key", lambda *args: compared.append(1) or resolve(*args))
        assert [doc["_id"] for doc in sortable.find({}, sort=sort)] == [doc["_id"] for doc in documents]
        assert [doc["_id"] for doc in sortable.find({}, sort=sort, skip=5, limit=3)] == [
            doc["_id"] for doc in documents[5:8]
        ]
        assert (compared == []) is natively

    def test_documents_come_out_as_a_driver_decodes_them_and_apart_from_the_store(self, app):
        collection = database()["decoded"]
        written = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
        collection.insert_one({"_id": 1, "at": written, "big": 2**40, "nested": {"items": [{"at": written}]}})
        read = collection.find_one({"_id": 1})
        expected_at = written.replace(microsecond=123000)  # BSON keeps milliseconds
        assert read["at"] == expected_at and read["at"].utcoffset() == timedelta(0)
        assert read["nested"]["items"][0]["at"] == expected_at
        assert read["big"] == 2**40
        read["nested"]["items"].append("changed")  # a copy: the store keeps what was written
        assert collection.find_one({"_id": 1})["nested"] == {"items": [{"at": expected_at}]}
        projected = collection.find_one({"_id": 1}, {"nested": 1})
        assert projected == {"_id": 1, "nested": {"items": [{"at": expected_at}]}}
        assert projected["nested"]["items"][0]["at"].utcoffset() == timedelta(0)


def filter_applies_plainly(filter_, document):
    """The filters of test_other_filters_still_scan, evaluated by hand."""
    if not filter_:
        return True
    if isinstance(filter_["_id"], re.Pattern):  # a regular expression matches strings only
        return isinstance(document["_id"], str) and bool(filter_["_id"].match(document["_id"]))
    if "$gte" in filter_["_id"]:
        return document["_id"] >= filter_["_id"]["$gte"]
    return document["_id"] in filter_["_id"]["$in"] and document["_id"] != filter_["_id"]["$ne"]


def test_docs_are_served_without_a_cdn(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    asset = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    asset.close()


def test_request_id_is_returned_and_kept_when_safe(client):
    generated = client.get("/healthz").headers["X-Request-Id"]
    assert len(generated) == 32
    kept = client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"]
    assert kept == "abc-123"
    replaced = client.get("/healthz", headers={"X-Request-Id": "bad id!"}).headers["X-Request-Id"]
    assert replaced != "bad id!" and len(replaced) == 32


def test_log_lines_are_json_with_request_and_tenant(app, tenant):
    record = logging.LogRecord("app.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.extra_field = 42
    token = request_id_var.set("req-1")
    try:
        with tenant_scope(tenant):
            line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "hello world"
    assert line["requestId"] == "req-1"
    assert line["tenantId"] == str(tenant.id)
    assert line["extra_field"] == 42
    assert line["level"] == "info"


def test_access_log_carries_the_request_id(client):
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(json.loads(JsonFormatter().format(record)))
    logger = logging.getLogger("app.access")
    logger.addHandler(handler)
    try:
        client.get("/healthz", headers={"X-Request-Id": "trace-me"})
    finally:
        logger.removeHandler(handler)
    line = lines[-1]
    assert line["status"] == 200 and line["path"] == "/healthz"
    assert line["requestId"] == "trace-me"


class TestDemo:
    def test_seed_creates_a_superadmin_and_two_tenants_with_a_user(self, app):
        accounts = demo.seed_demo(app)
        assert [a["role"] for a in accounts] == ["superadmin", "owner", "owner"]
        assert PlatformUser.objects(email=app.config["SUPERADMIN_EMAIL"]).count() == 1
        assert sorted(t.slug for t in Tenant.objects) == ["acme", "globex"]
        for tenant in Tenant.objects:
            with tenant_scope(tenant):
                owners = list(User.objects)
            assert [u.role for u in owners] == ["owner"]
            assert owners[0].password_hash.startswith("$argon2id$")

    def test_seed_is_idempotent(self, app):
        demo.seed_demo(app)
        demo.seed_demo(app)
        assert Tenant.objects.count() == 2
        assert PlatformUser.objects.count() == 1
        with unscoped("test: count users of every tenant"):
            assert User.objects.count() == 2

    def test_seeded_at_start_when_asked(self, app_factory, capsys):
        app = app_factory(SEED_DEMO=True)
        with app.app_context():
            assert Tenant.objects.count() == 2
        printed = capsys.readouterr().out
        assert app.config["SUPERADMIN_PASSWORD"] in printed

    @pytest.mark.parametrize("password", ["demo-password-123", "wrong"])
    def test_demo_passwords_verify(self, app, password):
        from app.users.passwords import verify_password

        demo.seed_demo(app)
        with tenant_scope(Tenant.objects.get(slug="acme")):
            user = User.objects.get()
        assert verify_password(user.password_hash, password) is (password == demo.DEMO_PASSWORD)


def test_no_cookie_session_is_read_or_written(app, client, auth_headers):
    """Callers authenticate with tokens and keys: a session cookie is ignored and none is set."""
    client.set_cookie("session", "eyJhIjoxfQ.forged.cookie")
    response = client.get("/api/v1/tenants/current", headers=auth_headers)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    with app.test_request_context("/", headers={"Cookie": "session=eyJhIjoxfQ.forged.cookie"}):
        assert session.get("a") is None
        with pytest.raises(RuntimeError):
            session["a"] = 1
