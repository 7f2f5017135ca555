"""Lists page by cursor (`nextCursor`, `?cursor=`) as well as by number, with a capped total; a page
costs the same operations however much data the tenant holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from app import clock, pagination
from app.audit.models import Actor, PlatformAuditLog
from app.billing.models import Invoice
from app.db import database
from app.messages.models import Message
from app.tenancy.collection import TENANT_FIELD
from app.tenancy.context import tenant_scope
from app.tenants.service import create_tenant
from app.webhooks.models import WebhookDelivery

from .support import create_bot, error_code, file_part, multipart

API = "/api/v1"
MESSAGES = f"{API}/messages"
BASE = datetime(2030, 1, 1, tzinfo=UTC)


def insert_messages(tenant, count: int, start: int = 0, same_time_every: int = 1) -> list[ObjectId]:
    """Insert `count` messages of `tenant` in one insert_many, the later the newer; `same_time_every`
    messages in a row share their queue time (so that the id orders them). Return their ids."""
    documents = []
    for index in range(start, start + count):
        message = Message(
            campaign_id=ObjectId(),
            telegram_account_id=ObjectId(),
            chat="@chan1",
            text="hi",
            status="sent",
            queued_at=BASE + timedelta(seconds=index // same_time_every),
        )
        documents.append({**message.to_mongo().to_dict(), "_id": ObjectId(), TENANT_FIELD: tenant.id})
    with tenant_scope(tenant):
        database().messages.insert_many(documents)
    return [document["_id"] for document in documents]


def listed(client, headers, **query):
    response = client.get(MESSAGES, query_string=query, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def walk(client, headers, per_page: int, between=lambda page: None) -> list[str]:
    """Every id of the list, page after page by cursor; `between(n)` runs after page n."""
    body = listed(client, headers, perPage=per_page)
    seen = [item["id"] for item in body["items"]]
    while body["nextCursor"]:
        between(body["page"])
        body = listed(client, headers, perPage=per_page, cursor=body["nextCursor"])
        seen += [item["id"] for item in body["items"]]
    return seen


def newest_first(tenant) -> list[str]:
    with tenant_scope(tenant):
        return [str(m.id) for m in Message.objects.order_by("-queued_at", "-id")]


class TestCursorWalk:
    def test_every_document_once_in_order_with_ties_broken_by_id(self, client, tenant, auth_headers):
        insert_messages(tenant, 11, same_time_every=3)
        assert walk(client, auth_headers, per_page=4) == newest_first(tenant)

    def test_inserts_between_pages_neither_repeat_nor_hide_a_document(self, client, tenant, auth_headers):
        insert_messages(tenant, 10)
        before = newest_first(tenant)
        newer, older = [], []

        def insert(page: int) -> None:
            newer.extend(insert_messages(tenant, 1, start=1000 + page))  # before the walk's place
            older.extend(insert_messages(tenant, 1, start=-1 - page))  # still ahead of it

        seen = walk(client, auth_headers, per_page=3, between=insert)
        assert seen == before + [str(i) for i in older]
        assert len(newer) == len(older) > 3

    def test_pages_are_numbered_from_the_first(self, client, tenant, auth_headers):
        insert_messages(tenant, 5)
        first = listed(client, auth_headers, perPage=2)
        second = listed(client, auth_headers, perPage=2, cursor=first["nextCursor"])
        third = listed(client, auth_headers, perPage=2, cursor=second["nextCursor"], page=9)
        assert [first["page"], second["page"], third["page"]] == [1, 2, 3]
        assert third["nextCursor"] is None and len(third["items"]) == 1
        by_number = listed(client, auth_headers, perPage=2, page=2)
        assert by_number["items"] == second["items"] and by_number["nextCursor"] == second["nextCursor"]

    def test_an_ascending_list_walks_oldest_first(self, client, tenant, auth_headers, make_user):
        for index in range(4):
            make_user(tenant, email=f"user{index}@acme.example.com")
        first = client.get(f"{API}/users", query_string={"perPage": 2}, headers=auth_headers).json
        seen = [item["id"] for item in first["items"]]
        cursor = first["nextCursor"]
        while cursor:
            body = client.get(
                f"{API}/users", query_string={"perPage": 2, "cursor": cursor}, headers=auth_headers
            ).json
            seen += [item["id"] for item in body["items"]]
            cursor = body["nextCursor"]
        everyone = client.get(f"{API}/users", query_string={"perPage": 100}, headers=auth_headers).json[
            "items"
        ]
        assert seen == [item["id"] for item in everyone] and len(seen) == 5


def fill_every_list(client, tenant, headers, make_user) -> dict[str, str]:
    """Two or more documents in each of the tenant's lists; return the ids of what lists hold others."""
    for index in range(2):
        make_user(tenant, role="admin", email=f"admin{index}@acme.example.com")
        assert (
            client.post(f"{API}/api-keys", json={"name": f"key {index}"}, headers=headers).status_code == 201
        )
        create_bot(client, headers)
        media = multipart({"file": file_part(b"hello", f"f{index}.txt", "text/plain")})
        assert client.post(f"{API}/media", headers=headers, **media).status_code == 201
        campaign = {"name": f"c{index}", "message": {"text": "hi"}, "targets": ["@channel1"]}
        assert client.post(f"{API}/campaigns", json=campaign, headers=headers).status_code == 201
        hook = {"url": f"https://hooks.acme.example.com/{index}", "events": ["campaign.completed"]}
        webhook = client.post(f"{API}/webhooks", json=hook, headers=headers).json["id"]
    now = clock.utcnow()
    with tenant_scope(tenant):
        for number in (1, 2):
            Invoice(
                number=number, period=f"2030-0{number}", plan="starter", amount_cents=100, due_at=now
            ).save()
            WebhookDelivery(webhook_id=webhook, event="campaign.completed", payload={"n": number}).save()
    for action in ("tenant.created", "tenant.updated"):
        PlatformAuditLog(action=action, actor=Actor(kind="system"), tenant_id=tenant.id).save()
    insert_messages(tenant, 2)
    create_tenant("Corp Two", "corp-two")
    return {"webhook": webhook, "tenant": str(tenant.id)}


# Every list of the API (a path with {names} filled from fill_every_list), with and without filters.
LISTS = [
    ("/users", {}),
    ("/users", {"role": "admin", "active": "true"}),
    ("/api-keys", {}),
    ("/telegram-accounts", {}),
    ("/telegram-accounts", {"active": "true"}),
    ("/audit-logs", {}),
    ("/audit-logs", {"action": "webhook.created", "since": "2000-01-01T00:00:00Z"}),
    ("/media", {}),
    ("/campaigns", {}),
    ("/campaigns", {"status": "draft"}),
    ("/messages", {}),
    ("/messages", {"status": "sent"}),
    ("/webhooks", {}),
    ("/webhooks", {"active": "true"}),
    ("/webhooks/{webhook}/deliveries", {}),
    ("/billing/invoices", {}),
    ("/billing/invoices", {"status": "open"}),
    ("/tenants/{tenant}/invoices", {}),
    ("/tenants", {}),
    ("/tenants", {"status": "active", "q": "corp"}),
    ("/platform/audit-logs", {}),
    ("/platform/audit-logs", {"tenantId": "{tenant}"}),
]


def test_every_list_pages_by_cursor(
    client, tenant, other_tenant, auth_headers, superadmin_headers, make_user
):
    names = fill_every_list(client, tenant, auth_headers, make_user)
    for path, filters in LISTS:
        url = API + path.format(**names)
        query = {name: value.format(**names) for name, value in filters.items()}
        headers = superadmin_headers if path.startswith(("/tenants", "/platform")) else auth_headers
        first = client.get(url, query_string={**query, "perPage": 1}, headers=headers)
        assert first.status_code == 200, (path, first.json)
        assert first.json["nextCursor"], (path, filters)
        cursor = first.json["nextCursor"]
        second = client.get(url, query_string={**query, "perPage": 1, "cursor": cursor}, headers=headers)
        assert second.status_code == 200, (path, second.json)
        assert second.json["page"] == 2 and second.json["items"] != first.json["items"], (path, filters)


class TestBadCursors:
    @pytest.fixture
    def cursor(self, client, tenant, auth_headers) -> str:
        insert_messages(tenant, 3)
        return listed(client, auth_headers, perPage=1)["nextCursor"]

    def refused(self, client, headers, cursor: str, path: str = MESSAGES) -> None:
        response = client.get(path, query_string={"cursor": cursor}, headers=headers)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"
        assert response.json["error"]["details"]["cursor"] == [pagination.NOT_A_CURSOR]

    def test_malformed(self, client, auth_headers, cursor):
        for bad in ("x", "", "not.a.cursor", "%%%", "A" * (pagination.MAX_CURSOR + 1)):
            self.refused(client, auth_headers, bad)

    def test_tampered(self, client, auth_headers, cursor):
        payload, signature = cursor.rsplit(".", 1)
        flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
        self.refused(client, auth_headers, f"{flipped}.{signature}")
        self.refused(client, auth_headers, f"{payload}.{signature[::-1]}")

    def test_signed_with_another_secret(self, app, client, auth_headers, cursor):
        app.config["SECRET_KEY"] = "another secret key of this deployment"
        self.refused(client, auth_headers, cursor)

    def test_from_a_list_of_another_order(self, client, auth_headers, cursor, make_user, tenant):
        make_user(tenant, email="second@acme.example.com")
        users = client.get(f"{API}/users", query_string={"perPage": 1}, headers=auth_headers).json
        self.refused(client, auth_headers, users["nextCursor"])
        self.refused(client, auth_headers, cursor, path=f"{API}/users")


class TestTenants:
    def test_another_tenants_cursor_reads_only_this_tenants_list(
        self, client, tenant, other_tenant, auth_headers, other_headers
    ):
        insert_messages(tenant, 6)
        theirs = {str(i) for i in insert_messages(other_tenant, 6)}
        cursor = listed(client, auth_headers, perPage=2)["nextCursor"]
        body = listed(client, other_headers, perPage=10, cursor=cursor)
        assert {item["id"] for item in body["items"]} <= theirs
        assert body["total"] == 6


class TestTotal:
    def test_the_total_is_counted_up_to_the_cap(self, client, tenant, auth_headers, monkeypatch):
        monkeypatch.setattr(pagination, "TOTAL_CAP", 4)
        insert_messages(tenant, 4)
        body = listed(client, auth_headers, perPage=2)
        assert (body["total"], body["totalIsLowerBound"]) == (4, False)
        insert_messages(tenant, 1, start=10)
        body = listed(client, auth_headers, perPage=2)
        assert (body["total"], body["totalIsLowerBound"]) == (4, True)

    def test_the_page_envelope_documents_its_fields(self, client):
        schemas = client.get(f"{API}/openapi.json").json["components"]["schemas"]
        pages = {name: schema for name, schema in schemas.items() if name.endswith("Page")}
        assert pages and all(
            {"totalIsLowerBound", "nextCursor"} <= set(schema["required"]) for schema in pages.values()
        )


class TestOperations:
    """Counted, never timed: a page's operations do not depend on how many documents the tenant has."""

    def operations(self, client, headers, count_operations, **query) -> tuple[int, dict]:
        listed(client, headers, perPage=5, **query)  # caches warm
        with count_operations() as counted:
            body = listed(client, headers, perPage=5, **query)
        return counted["total"], body

    def test_a_page_costs_the_same_at_any_size(self, client, tenant, auth_headers, count_operations):
        costs = []
        held = 0
        for size in (20, 200, 2000):
            insert_messages(tenant, size - held, start=held)
            held = size
            first, _ = self.operations(client, auth_headers, count_operations)
            numbered, near_the_end = self.operations(
                client, auth_headers, count_operations, page=size // 5 - 1
            )
            by_cursor, last = self.operations(
                client, auth_headers, count_operations, cursor=near_the_end["nextCursor"]
            )
            assert last["page"] == size // 5 and last["nextCursor"] is None
            costs.append((first, numbered, by_cursor))
        assert len(set(costs)) == 1, costs
