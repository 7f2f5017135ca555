"""/api/v1/webhooks: CRUD, the signing secret (shown at creation and rotation only), the plan limit,
and the deliveries of each webhook."""

from __future__ import annotations

import json
from functools import partial

import pytest
from bson import ObjectId

from app import crypto
from app.audit.models import AuditLog
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.webhooks.events import emit
from app.webhooks.models import WEBHOOK_EVENTS, Webhook, WebhookDelivery

from .support import created, error_of, random_id, stagger, stored_documents

WEBHOOKS = "/api/v1/webhooks"
HOOK_URL = "https://hooks.acme.example.com/telegram"


def subscribe(client, headers, url=HOOK_URL, events=("campaign.completed",), **extra):
    return client.post(WEBHOOKS, headers=headers, json={"url": url, "events": list(events), **extra})


stored_webhooks = partial(stored_documents, Webhook)


def stored_secret(tenant, webhook_id) -> str:
    with tenant_scope(tenant):
        return crypto.decrypt(Webhook.objects.get(id=webhook_id).secret_encrypted)


def snapshot(tenant) -> list[dict]:
    with tenant_scope(tenant):
        hooks = [w.to_mongo().to_dict() for w in Webhook.objects.order_by("created_at")]
        deliveries = [d.to_mongo().to_dict() for d in WebhookDelivery.objects.order_by("created_at")]
    return hooks + deliveries


def used_webhooks(tenant) -> int:
    return Tenant.objects.get(id=tenant.id).usage.webhooks


def queue(tenant, event="campaign.completed", times=1) -> None:
    """Queue tenant events, as the service does when they happen."""
    with tenant_scope(tenant):
        for index in range(times):
            emit(event, {"n": index})


class TestCreate:
    @pytest.mark.parametrize("role", ["owner", "admin"])
    def test_owner_and_admin_subscribe(self, client, tenant, make_user, headers_for, role):
        body = created(
            subscribe(
                client, headers_for(make_user(tenant, role)), events=["usage.threshold", "message.failed"]
            )
        )
        assert body["url"] == HOOK_URL
        assert body["events"] == ["message.failed", "usage.threshold"]
        assert body["active"] is True and body["consecutiveFailures"] == 0
        assert len(body["id"]) == 24 and body["createdAt"]
        assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
        assert len(stored_webhooks(tenant)) == 1
        assert used_webhooks(tenant) == 1

    def test_every_event_can_be_subscribed(self, client, auth_headers):
        body = created(subscribe(client, auth_headers, events=WEBHOOK_EVENTS))
        assert sorted(body["events"]) == sorted(WEBHOOK_EVENTS)

    def test_repeated_events_are_kept_once(self, client, auth_headers):
        body = created(subscribe(client, auth_headers, events=["usage.threshold", "usage.threshold"]))
        assert body["events"] == ["usage.threshold"]

    def test_each_webhook_gets_its_own_secret(self, client, auth_headers):
        first = created(subscribe(client, auth_headers))["secret"]
        second = created(subscribe(client, auth_headers))["secret"]
        assert first != second

    def test_member_cannot_subscribe(self, client, tenant, make_user, headers_for):
        response = subscribe(client, headers_for(make_user(tenant, "member")))
        assert error_of(response, 403)["code"] == "forbidden"
        assert stored_webhooks(tenant) == []
        assert used_webhooks(tenant) == 0

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"url": HOOK_URL, "events": ["campaign.exploded"]}, "events"),
            ({"url": HOOK_URL, "events": ["campaign.completed", "nope"]}, "events"),
            ({"url": HOOK_URL, "events": []}, "events"),
            ({"url": HOOK_URL, "events": "campaign.completed"}, "events"),
            ({"url": HOOK_URL}, "events"),
            ({"events": ["campaign.completed"]}, "url"),
            ({"url": "not a url", "events": ["campaign.completed"]}, "url"),
            ({"url": "ftp://hooks.example.com/x", "events": ["campaign.completed"]}, "url"),
            ({"url": "https://" + "a" * 2050 + ".example.com", "events": ["campaign.completed"]}, "url"),
            ({"url": "https://user:pw@hooks.example.com/x", "events": ["campaign.completed"]}, "url"),
        ],
    )
    def test_bad_bodies_are_422_and_store_nothing(self, client, auth_headers, tenant, body, field):
        error = error_of(client.post(WEBHOOKS, headers=auth_headers, json=body), 422)
        assert error["code"] == "validation_error"
        assert field in error["details"]
        assert stored_webhooks(tenant) == []
        assert used_webhooks(tenant) == 0

    @pytest.mark.parametrize(
        "field", ["secret", "tenantId", "active", "consecutiveFailures", "secretEncrypted", "rotateSecret"]
    )
    def test_unknown_fields_are_422(self, client, auth_headers, tenant, field):
        error = error_of(subscribe(client, auth_headers, **{field: "whsec_mine"}), 422)
        assert field in error["details"]
        assert stored_webhooks(tenant) == []

    def test_a_non_json_body_is_415(self, client, auth_headers, tenant):
        payload = json.dumps({"url": HOOK_URL, "events": ["campaign.completed"]})
        for content_type in ("text/plain", "multipart/form-data", "application/xml"):
            response = client.post(
                WEBHOOKS, headers={**auth_headers, "Content-Type": content_type}, data=payload
            )
            assert error_of(response, 415)["code"] == "unsupported_media_type"
        assert stored_webhooks(tenant) == []


class TestSecret:
    def test_the_secret_is_stored_encrypted(self, client, auth_headers, tenant):
        body = created(subscribe(client, auth_headers))
        (webhook,) = stored_webhooks(tenant)
        raw = json.dumps(webhook.to_mongo().to_dict(), default=str)
        assert body["secret"] not in raw
        assert body["secret"].removeprefix("whsec_") not in raw
        assert crypto.decrypt(webhook.secret_encrypted) == body["secret"]

    def test_the_secret_is_never_read_back(self, client, auth_headers, tenant, make_user, headers_for):
        body = created(subscribe(client, auth_headers))
        secret = body["secret"]
        queue(tenant)
        admin = headers_for(make_user(tenant, "admin"))
        responses = [
            client.get(WEBHOOKS, headers=auth_headers),
            client.get(f"{WEBHOOKS}/{body['id']}", headers=auth_headers),
            client.get(f"{WEBHOOKS}/{body['id']}", headers=admin),
            client.get(f"{WEBHOOKS}/{body['id']}/deliveries", headers=auth_headers),
            client.patch(f"{WEBHOOKS}/{body['id']}", headers=auth_headers, json={"active": False}),
        ]
        for response in responses:
            assert response.status_code == 200, response.get_data(as_text=True)
            text = response.get_data(as_text=True)
            assert secret not in text and secret.removeprefix("whsec_") not in text
            assert '"secret"' not in text

    def test_the_audit_trail_does_not_keep_the_secret(self, client, auth_headers, tenant):
        body = created(subscribe(client, auth_headers))
        rotated = client.patch(f"{WEBHOOKS}/{body['id']}", headers=auth_headers, json={"rotateSecret": True})
        with tenant_scope(tenant):
            entries = [json.dumps(e.to_mongo().to_dict(), default=str) for e in AuditLog.objects]
        assert any("webhook.created" in e for e in entries)
        for secret in (body["secret"], rotated.json["secret"]):
            assert all(secret.removeprefix("whsec_") not in e for e in entries)

    def test_rotation_shows_a_new_secret_once(self, client, auth_headers, tenant):
        body = created(subscribe(client, auth_headers))
        response = client.patch(f"{WEBHOOKS}/{body['id']}", headers=auth_headers, json={"rotateSecret": True})
        assert response.status_code == 200
        new_secret = response.json["secret"]
        assert new_secret.startswith("whsec_") and new_secret != body["secret"]
        assert stored_secret(tenant, body["id"]) == new_secret
        again = client.get(f"{WEBHOOKS}/{body['id']}", headers=auth_headers)
        assert "secret" not in again.json and new_secret not in again.get_data(as_text=True)

    @pytest.mark.parametrize("changes", [{"rotateSecret": False}, {"url": "https://new.example.com/h"}, {}])
    def test_other_changes_keep_the_secret(self, client, auth_headers, tenant, changes):
        body = created(subscribe(client, auth_headers))
        response = client.patch(f"{WEBHOOKS}/{body['id']}", headers=auth_headers, json=changes)
        assert response.status_code == 200
        assert "secret" not in response.json
        assert stored_secret(tenant, body["id"]) == body["secret"]


class TestReadUpdateDelete:
    def test_list_is_paginated_newest_first(self, client, auth_headers, tenant):
        ids = [
            created(subscribe(client, auth_headers, url=f"https://h{i}.example.com/"))["id"] for i in range(5)
        ]
        stagger(tenant, Webhook, ids)
        seen = []
        for page in (1, 2, 3):
            body = client.get(WEBHOOKS, headers=auth_headers, query_string={"page": page, "perPage": 2}).json
            assert (body["page"], body["perPage"], body["total"]) == (page, 2, 5)
            assert all("secret" not in item for item in body["items"])
            seen += [item["id"] for item in body["items"]]
        assert seen == list(reversed(ids))
        default = client.get(WEBHOOKS, headers=auth_headers).json
        assert (default["page"], default["perPage"], len(default["items"])) == (1, 20, 5)

    @pytest.mark.parametrize("query", ["perPage=101", "perPage=0", "page=0", "active=perhaps"])
    def test_bad_paging_is_422(self, client, auth_headers, query):
        assert error_of(client.get(f"{WEBHOOKS}?{query}", headers=auth_headers), 422)["code"] == (
            "validation_error"
        )

    def test_per_page_of_100_is_allowed(self, client, auth_headers):
        response = client.get(WEBHOOKS, headers=auth_headers, query_string={"perPage": 100})
        assert response.status_code == 200 and response.json["perPage"] == 100

    def test_filter_by_active(self, client, auth_headers):
        on = created(subscribe(client, auth_headers))["id"]
        off = created(subscribe(client, auth_headers))["id"]
        client.patch(f"{WEBHOOKS}/{off}", headers=auth_headers, json={"active": False})
        body = client.get(WEBHOOKS, headers=auth_headers, query_string={"active": "false"}).json
        assert [item["id"] for item in body["items"]] == [off]
        body = client.get(WEBHOOKS, headers=auth_headers, query_string={"active": "true"}).json
        assert [item["id"] for item in body["items"]] == [on]

    def test_get_one(self, client, auth_headers):
        body = created(subscribe(client, auth_headers))
        response = client.get(f"{WEBHOOKS}/{body['id']}", headers=auth_headers)
        assert response.status_code == 200
        assert response.json == {k: v for k, v in body.items() if k != "secret"}

    def test_members_read(self, client, auth_headers, tenant, make_user, headers_for):
        webhook_id = created(subscribe(client, auth_headers))["id"]
        member = headers_for(make_user(tenant, "member"))
        for path in (WEBHOOKS, f"{WEBHOOKS}/{webhook_id}", f"{WEBHOOKS}/{webhook_id}/deliveries"):
            response = client.get(path, headers=member)
            assert response.status_code == 200, (path, response.get_data(as_text=True))
            assert '"secret"' not in response.get_data(as_text=True)

    def test_members_cannot_write(self, client, auth_headers, tenant, make_user, headers_for):
        webhook_id = created(subscribe(client, auth_headers))["id"]
        before = snapshot(tenant)
        member = headers_for(make_user(tenant, "member"))
        for response in (
            client.patch(
                f"{WEBHOOKS}/{webhook_id}", headers=member, json={"url": "https://evil.example.com"}
            ),
            client.patch(f"{WEBHOOKS}/{webhook_id}", headers=member, json={"rotateSecret": True}),
            client.delete(f"{WEBHOOKS}/{webhook_id}", headers=member),
        ):
            assert error_of(response, 403)["code"] == "forbidden"
            assert "whsec_" not in response.get_data(as_text=True)
        assert snapshot(tenant) == before

    def test_patch_changes_url_events_and_active(self, client, auth_headers, tenant):
        webhook_id = created(subscribe(client, auth_headers))["id"]
        changes = {"url": "https://new.example.com/hook", "events": ["tenant.suspended"], "active": False}
        response = client.patch(f"{WEBHOOKS}/{webhook_id}", headers=auth_headers, json=changes)
        assert response.status_code == 200
        assert {k: response.json[k] for k in changes} == changes
        (webhook,) = stored_webhooks(tenant)
        assert (webhook.url, webhook.events, webhook.active) == (
            "https://new.example.com/hook",
            ["tenant.suspended"],
            False,
        )

    def test_reactivation_clears_the_failures(self, client, auth_headers, tenant):
        webhook_id = created(subscribe(client, auth_headers))["id"]
        with tenant_scope(tenant):
            Webhook.objects(id=webhook_id).update_one(
                set__active=False, set__consecutive_failures=9, set__disabled_reason="410 Gone"
            )
        response = client.patch(f"{WEBHOOKS}/{webhook_id}", headers=auth_headers, json={"active": True})
        assert response.status_code == 200
        assert response.json["consecutiveFailures"] == 0 and response.json["disabledReason"] is None

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"events": ["campaign.exploded"]}, "events"),
            ({"events": []}, "events"),
            ({"url": "javascript:alert(1)"}, "url"),
            ({"url": "https://u:p@hooks.example.com/"}, "url"),
            ({"active": "yes please"}, "active"),
            ({"rotateSecret": "always"}, "rotateSecret"),
            ({"secret": "whsec_mine"}, "secret"),
            ({"tenantId": str(ObjectId())}, "tenantId"),
        ],
    )
    def test_bad_patch_is_422_and_changes_nothing(self, client, auth_headers, tenant, body, field):
        webhook_id = created(subscribe(client, auth_headers))["id"]
        before = snapshot(tenant)
        error = error_of(client.patch(f"{WEBHOOKS}/{webhook_id}", headers=auth_headers, json=body), 422)
        assert field in error["details"]
        assert snapshot(tenant) == before

    def test_delete_removes_the_webhook_and_its_deliveries(self, client, auth_headers, tenant):
        keep = created(subscribe(client, auth_headers, events=["campaign.failed"]))["id"]
        gone = created(subscribe(client, auth_headers))["id"]
        queue(tenant, "campaign.completed", times=2)
        queue(tenant, "campaign.failed")
        response = client.delete(f"{WEBHOOKS}/{gone}", headers=auth_headers)
        assert response.status_code == 204 and response.get_data() == b""
        assert [str(w.id) for w in stored_webhooks(tenant)] == [keep]
        with tenant_scope(tenant):
            assert WebhookDelivery.objects(webhook_id=gone).count() == 0
            assert WebhookDelivery.objects(webhook_id=keep).count() == 1
        assert used_webhooks(tenant) == 1
        assert error_of(client.get(f"{WEBHOOKS}/{gone}", headers=auth_headers), 404)["code"] == "not_found"
        assert error_of(client.delete(f"{WEBHOOKS}/{gone}", headers=auth_headers), 404)["code"] == "not_found"
        assert used_webhooks(tenant) == 1

    def test_unknown_and_malformed_ids_are_404(self, client, auth_headers):
        for path in (f"{WEBHOOKS}/{random_id()}", f"{WEBHOOKS}/zzz", f"{WEBHOOKS}/{random_id()}/deliveries"):
            assert error_of(client.get(path, headers=auth_headers), 404)["code"] == "not_found"


class TestDeliveries:
    def test_a_webhooks_deliveries_newest_first_and_paginated(self, client, auth_headers, tenant):
        webhook_id = created(
            subscribe(client, auth_headers, events=["campaign.completed", "usage.threshold"])
        )["id"]
        queue(tenant, "campaign.completed", times=2)
        queue(tenant, "usage.threshold")
        with tenant_scope(tenant):
            in_order = [d.id for d in WebhookDelivery.objects.order_by("event", "id")]
        stagger(tenant, WebhookDelivery, in_order)
        response = client.get(f"{WEBHOOKS}/{webhook_id}/deliveries", headers=auth_headers)
        assert response.status_code == 200
        body = response.json
        assert (body["page"], body["perPage"], body["total"]) == (1, 20, 3)
        assert [item["event"] for item in body["items"]][0] == "usage.threshold"
        item = body["items"][0]
        assert item["webhookId"] == webhook_id and item["status"] == "pending" and item["attempts"] == 0
        assert {"id", "nextAttemptAt", "createdAt", "lastError", "deliveredAt"} <= set(item)
        page = client.get(
            f"{WEBHOOKS}/{webhook_id}/deliveries",
            headers=auth_headers,
            query_string={"page": 2, "perPage": 2},
        ).json
        assert (page["page"], page["perPage"], page["total"], len(page["items"])) == (2, 2, 3, 1)

    def test_only_the_webhooks_own_deliveries(self, client, auth_headers, tenant):
        completed = created(subscribe(client, auth_headers, events=["campaign.completed"]))["id"]
        failed = created(subscribe(client, auth_headers, events=["campaign.failed"]))["id"]
        queue(tenant, "campaign.completed", times=2)
        body = client.get(f"{WEBHOOKS}/{failed}/deliveries", headers=auth_headers).json
        assert body["items"] == [] and body["total"] == 0
        body = client.get(f"{WEBHOOKS}/{completed}/deliveries", headers=auth_headers).json
        assert body["total"] == 2 and {item["webhookId"] for item in body["items"]} == {completed}

    def test_inactive_webhooks_get_no_deliveries(self, client, auth_headers, tenant):
        webhook_id = created(subscribe(client, auth_headers))["id"]
        client.patch(f"{WEBHOOKS}/{webhook_id}", headers=auth_headers, json={"active": False})
        queue(tenant)
        assert client.get(f"{WEBHOOKS}/{webhook_id}/deliveries", headers=auth_headers).json["total"] == 0

    @pytest.mark.parametrize("query", ["perPage=101", "page=0"])
    def test_bad_paging_is_422(self, client, auth_headers, query):
        webhook_id = created(subscribe(client, auth_headers))["id"]
        response = client.get(f"{WEBHOOKS}/{webhook_id}/deliveries?{query}", headers=auth_headers)
        assert error_of(response, 422)["code"] == "validation_error"

    def test_another_tenants_events_reach_only_its_webhooks(
        self, client, auth_headers, tenant, other_tenant, other_owner, headers_for
    ):
        ours = created(subscribe(client, auth_headers))["id"]
        theirs = created(subscribe(client, headers_for(other_owner)))["id"]
        queue(other_tenant, times=3)
        assert client.get(f"{WEBHOOKS}/{ours}/deliveries", headers=auth_headers).json["total"] == 0
        body = client.get(f"{WEBHOOKS}/{theirs}/deliveries", headers=headers_for(other_owner)).json
        assert body["total"] == 3


class TestLimit:
    @pytest.fixture
    def free_headers(self, app, make_user, headers_for):
        free = create_tenant("Initech", "initech", plan="free")
        return free, headers_for(make_user(free, "owner"))

    def test_free_plan_has_none(self, client, free_headers):
        free, headers = free_headers
        error = error_of(subscribe(client, headers), 403)
        assert error["code"] == "limit_exceeded"
        assert error["details"] == {"resource": "webhooks", "limit": 0, "used": 0, "requested": 1}
        assert stored_webhooks(free) == []
        assert used_webhooks(free) == 0

    def test_starter_allows_five(self, client, other_owner, headers_for, other_tenant):
        headers = headers_for(other_owner)
        for index in range(4):
            created(subscribe(client, headers, url=f"https://h{index}.example.com/"))
        assert used_webhooks(other_tenant) == 4
        created(subscribe(client, headers, url="https://h4.example.com/"))
        error = error_of(subscribe(client, headers, url="https://h5.example.com/"), 403)
        assert error["code"] == "limit_exceeded"
        assert error["details"] == {"resource": "webhooks", "limit": 5, "used": 5, "requested": 1}
        assert len(stored_webhooks(other_tenant)) == 5

    def test_delete_gives_the_slot_back(self, client, other_owner, headers_for, other_tenant):
        headers = headers_for(other_owner)
        ids = [created(subscribe(client, headers))["id"] for _ in range(5)]
        assert error_of(subscribe(client, headers), 403)["code"] == "limit_exceeded"
        assert client.delete(f"{WEBHOOKS}/{ids[0]}", headers=headers).status_code == 204
        created(subscribe(client, headers))
        assert used_webhooks(other_tenant) == 5


class TestCrossTenant:
    """The second tenant's credentials with the first tenant's ids: 404, like an id that does not exist."""

    @pytest.fixture
    def webhook_id(self, client, auth_headers, tenant):
        webhook_id = created(subscribe(client, auth_headers))["id"]
        queue(tenant, times=2)
        return webhook_id

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("GET", "", None),
            ("PATCH", "", {"url": "https://evil.example.com/steal"}),
            ("PATCH", "", {"rotateSecret": True}),
            ("PATCH", "", {"active": False}),
            ("DELETE", "", None),
            ("GET", "/deliveries", None),
        ],
    )
    def test_another_tenant_gets_404(
        self, client, tenant, webhook_id, other_owner, headers_for, method, suffix, body
    ):
        before = snapshot(tenant)
        headers = headers_for(other_owner)
        foreign = client.open(f"{WEBHOOKS}/{webhook_id}{suffix}", method=method, headers=headers, json=body)
        unknown = client.open(f"{WEBHOOKS}/{random_id()}{suffix}", method=method, headers=headers, json=body)
        assert error_of(foreign, 404)["code"] == "not_found"
        assert foreign.json == unknown.json
        assert "whsec_" not in foreign.get_data(as_text=True)
        assert snapshot(tenant) == before
        assert used_webhooks(tenant) == 1

    def test_another_tenant_lists_nothing(self, client, webhook_id, other_owner, headers_for):
        body = client.get(WEBHOOKS, headers=headers_for(other_owner)).json
        assert body["items"] == [] and body["total"] == 0
