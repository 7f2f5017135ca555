"""/api/v1/telegram-accounts: CRUD, the bot token encrypted at rest and never returned, the plan limit."""

from __future__ import annotations

import json

import pytest

from app import crypto
from app.audit.models import AuditLog
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant

from .support import bot_token, created, error_of, random_id, set_limits, stagger, stored_accounts

ACCOUNTS = "/api/v1/telegram-accounts"


def connect(client, headers, name="Sales bot", bot_id=123456789, **extra):
    return client.post(ACCOUNTS, headers=headers, json={"name": name, "token": bot_token(bot_id), **extra})


def used_accounts(tenant) -> int:
    return Tenant.objects.get(id=tenant.id).usage.telegram_accounts


class TestCreate:
    @pytest.mark.parametrize("role", ["owner", "admin"])
    def test_owner_and_admin_connect_a_bot(self, client, tenant, make_user, headers_for, role):
        body = created(connect(client, headers_for(make_user(tenant, role)), bot_id=555000111))
        assert body["name"] == "Sales bot"
        assert body["botId"] == 555000111
        assert body["tokenLast4"] == bot_token(555000111)[-4:]
        assert body["active"] is True
        assert body["apiBaseUrl"] is None
        assert len(body["id"]) == 24 and body["createdAt"]
        assert "token" not in body and "tokenEncrypted" not in body
        assert [a.bot_id for a in stored_accounts(tenant)] == [555000111]
        assert used_accounts(tenant) == 1

    def test_member_cannot_connect(self, client, tenant, make_user, headers_for):
        response = connect(client, headers_for(make_user(tenant, "member")))
        assert error_of(response, 403)["code"] == "forbidden"
        assert stored_accounts(tenant) == []
        assert used_accounts(tenant) == 0

    def test_name_is_trimmed(self, client, auth_headers):
        assert created(connect(client, auth_headers, name="  Padded  "))["name"] == "Padded"

    @pytest.mark.parametrize(
        "token",
        [
            "1234:AAE" + "a" * 32,  # bot id too short
            "1234567890123456:AAE" + "a" * 32,  # bot id too long
            "abcdefgh:AAE" + "a" * 32,  # bot id not numeric
            "١٢٣٤٥٦٧٨٩:AAE" + "a" * 32,  # digits of another script
            "123456789:" + "a" * 29,  # secret too short
            "123456789:" + "a" * 65,  # secret too long
            "123456789:" + "a" * 34 + "!",  # a character outside [A-Za-z0-9_-]
            "123456789" + "a" * 35,  # no colon
            " 123456789:AAE" + "a" * 32,  # surrounding space
            "123456789:AAE" + "a" * 32 + "\n",
            "",
        ],
    )
    def test_bad_token_shape_is_422_and_stores_nothing(self, client, auth_headers, tenant, token):
        response = client.post(ACCOUNTS, headers=auth_headers, json={"name": "Bot", "token": token})
        error = error_of(response, 422)
        assert error["code"] == "validation_error"
        assert "token" in error["details"]
        assert token.strip() == "" or token not in response.get_data(as_text=True)
        assert stored_accounts(tenant) == []
        assert used_accounts(tenant) == 0

    @pytest.mark.parametrize("token", [123456789, None, ["123456789:AAE" + "a" * 32]])
    def test_token_of_another_type_is_422(self, client, auth_headers, tenant, token):
        response = client.post(ACCOUNTS, headers=auth_headers, json={"name": "Bot", "token": token})
        assert "token" in error_of(response, 422)["details"]
        assert stored_accounts(tenant) == []

    @pytest.mark.parametrize(
        ("body", "fields"),
        [
            ({}, {"name", "token"}),
            ({"token": bot_token()}, {"name"}),
            ({"name": "Bot"}, {"token"}),
            ({"name": "", "token": bot_token()}, {"name"}),
            ({"name": "x" * 101, "token": bot_token()}, {"name"}),
            ({"name": "Bot", "token": bot_token(), "apiBaseUrl": "ftp://bots.example.com"}, {"apiBaseUrl"}),
            ({"name": "Bot", "token": bot_token(), "apiBaseUrl": "not a url"}, {"apiBaseUrl"}),
        ],
    )
    def test_missing_or_bad_fields_are_422(self, client, auth_headers, tenant, body, fields):
        error = error_of(client.post(ACCOUNTS, headers=auth_headers, json=body), 422)
        assert error["code"] == "validation_error"
        assert fields <= set(error["details"])
        assert stored_accounts(tenant) == []

    @pytest.mark.parametrize(
        "field", ["tenantId", "botId", "tokenEncrypted", "tokenLast4", "active", "botUsername", "id"]
    )
    def test_unknown_fields_are_422(self, client, auth_headers, tenant, field):
        body = {"name": "Bot", "token": bot_token(), field: "123456789"}
        error = error_of(client.post(ACCOUNTS, headers=auth_headers, json=body), 422)
        assert field in error["details"]
        assert stored_accounts(tenant) == []

    def test_a_non_json_body_is_415(self, client, auth_headers, tenant):
        payload = json.dumps({"name": "Bot", "token": bot_token()})
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            response = client.post(
                ACCOUNTS, headers={**auth_headers, "Content-Type": content_type}, data=payload
            )
            assert error_of(response, 415)["code"] == "unsupported_media_type"
        assert stored_accounts(tenant) == []

    def test_the_same_bot_twice_in_one_tenant_is_409(self, client, auth_headers, tenant):
        created(connect(client, auth_headers, name="First", bot_id=700700700))
        again = connect(client, auth_headers, name="Second", bot_id=700700700)
        assert error_of(again, 409)["code"] == "conflict"
        assert [a.name for a in stored_accounts(tenant)] == ["First"]
        assert used_accounts(tenant) == 1  # the refused connection gave its slot back

    def test_the_same_bot_with_a_new_secret_is_still_the_same_bot(self, client, auth_headers, tenant):
        created(connect(client, auth_headers, bot_id=700700700))
        other_secret = "700700700:" + "Z" * 40
        response = client.post(ACCOUNTS, headers=auth_headers, json={"name": "Again", "token": other_secret})
        assert error_of(response, 409)["code"] == "conflict"
        assert len(stored_accounts(tenant)) == 1

    def test_another_tenant_may_connect_the_same_bot(
        self, client, auth_headers, other_owner, headers_for, tenant, other_tenant
    ):
        created(connect(client, auth_headers, bot_id=700700700))
        created(connect(client, headers_for(other_owner), bot_id=700700700))
        assert len(stored_accounts(tenant)) == 1 and len(stored_accounts(other_tenant)) == 1


class TestTokenSecrecy:
    def test_the_token_is_stored_encrypted(self, client, auth_headers, tenant):
        token = bot_token(424242424)
        created(connect(client, auth_headers, bot_id=424242424))
        with tenant_scope(tenant):
            account = TelegramAccount.objects.get(bot_id=424242424)
            raw = json.dumps(account.to_mongo().to_dict(), default=str)
        assert token not in account.token_encrypted
        assert token.split(":", 1)[1] not in raw  # the secret part appears nowhere in the document
        assert crypto.decrypt(account.token_encrypted) == token
        assert account.token_last4 == token[-4:]

    def test_a_replaced_token_is_stored_encrypted_too(self, client, auth_headers, tenant):
        account_id = created(connect(client, auth_headers, bot_id=424242424))["id"]
        new_token = "424242424:" + "N" * 20 + "ew_Token-1234567"
        response = client.patch(f"{ACCOUNTS}/{account_id}", headers=auth_headers, json={"token": new_token})
        assert response.status_code == 200
        assert response.json["tokenLast4"] == "4567"
        (account,) = stored_accounts(tenant)
        assert new_token not in account.token_encrypted
        assert crypto.decrypt(account.token_encrypted) == new_token

    def test_no_response_contains_the_token(self, client, auth_headers, tenant):
        token = bot_token(424242424)
        new_token = "424242424:" + "R" * 40
        bodies = []

        def call(method, url, **kwargs):
            response = client.open(url, method=method, headers=auth_headers, **kwargs)
            assert response.status_code < 300, response.get_data(as_text=True)
            bodies.append(response.get_data(as_text=True))
            return response

        account_id = call("POST", ACCOUNTS, json={"name": "Bot", "token": token}).json["id"]
        call("GET", ACCOUNTS)
        call("GET", f"{ACCOUNTS}/{account_id}")
        call("PATCH", f"{ACCOUNTS}/{account_id}", json={"name": "Renamed"})
        call("PATCH", f"{ACCOUNTS}/{account_id}", json={"token": new_token})
        call("GET", f"{ACCOUNTS}/{account_id}")
        for secret in (token, new_token, token.split(":")[1], new_token.split(":")[1]):
            assert all(secret not in body for body in bodies)
        assert all('"token"' not in body for body in bodies)

    def test_the_audit_trail_does_not_keep_the_token(self, client, auth_headers, tenant):
        token = bot_token(424242424)
        account_id = created(connect(client, auth_headers, bot_id=424242424))["id"]
        client.patch(
            f"{ACCOUNTS}/{account_id}", headers=auth_headers, json={"token": "424242424:" + "R" * 40}
        )
        with tenant_scope(tenant):
            entries = [json.dumps(e.to_mongo().to_dict(), default=str) for e in AuditLog.objects]
        assert {"telegram_account.created", "telegram_account.updated"} <= {
            json.loads(e)["action"] for e in entries
        }
        assert all(token.split(":")[1] not in e and "R" * 40 not in e for e in entries)

    def test_audit_log_and_export_routes_do_not_return_the_token(self, client, auth_headers):
        token = bot_token(424242424)
        created(connect(client, auth_headers, bot_id=424242424))
        for path in ("/api/v1/audit-logs", "/api/v1/tenants/current/export"):
            response = client.get(path, headers=auth_headers)
            assert response.status_code == 200, (path, response.get_data(as_text=True))
            assert token.split(":")[1] not in response.get_data(as_text=True)


class TestApiBaseUrl:
    def test_professional_tenant_sets_a_custom_api_base_url(
        self, client, auth_headers, tenant, fake_telegram
    ):
        # The fake Bot API stands in for a self-hosted Bot API server; getMe goes there.
        body = created(connect(client, auth_headers, apiBaseUrl=fake_telegram.url))
        assert body["apiBaseUrl"] == fake_telegram.url
        assert stored_accounts(tenant)[0].api_base_url == fake_telegram.url
        assert [r["method"] for r in fake_telegram.requests] == ["getMe"]

    def test_starter_tenant_needs_custom_integrations(self, client, other_owner, headers_for, other_tenant):
        response = connect(client, headers_for(other_owner), apiBaseUrl="https://bots.globex.example.com")
        assert error_of(response, 403)["code"] == "feature_not_available"
        assert stored_accounts(other_tenant) == []
        assert used_accounts(other_tenant) == 0

    def test_starter_tenant_connects_without_one(self, client, other_owner, headers_for, other_tenant):
        body = created(connect(client, headers_for(other_owner)))
        assert body["apiBaseUrl"] is None

    def test_starter_tenant_cannot_patch_one_in(self, client, other_owner, headers_for, other_tenant):
        headers = headers_for(other_owner)
        account_id = created(connect(client, headers))["id"]
        response = client.patch(
            f"{ACCOUNTS}/{account_id}", headers=headers, json={"apiBaseUrl": "https://bots.example.com"}
        )
        assert error_of(response, 403)["code"] == "feature_not_available"
        assert stored_accounts(other_tenant)[0].api_base_url is None

    def test_the_url_can_be_cleared(self, client, auth_headers, tenant, fake_telegram):
        account_id = created(connect(client, auth_headers, apiBaseUrl=fake_telegram.url))["id"]
        response = client.patch(f"{ACCOUNTS}/{account_id}", headers=auth_headers, json={"apiBaseUrl": None})
        assert response.status_code == 200 and response.json["apiBaseUrl"] is None
        assert stored_accounts(tenant)[0].api_base_url is None


class TestReadUpdateDelete:
    def test_list_is_paginated_newest_first(self, client, auth_headers, tenant):
        ids = [
            created(connect(client, auth_headers, name=f"Bot {i}", bot_id=100000 + i))["id"] for i in range(5)
        ]
        stagger(tenant, TelegramAccount, ids)
        first = client.get(ACCOUNTS, headers=auth_headers, query_string={"perPage": 2})
        assert first.status_code == 200
        assert {k: first.json[k] for k in ("page", "perPage", "total")} == {
            "page": 1,
            "perPage": 2,
            "total": 5,
        }
        seen = []
        for page in (1, 2, 3):
            body = client.get(ACCOUNTS, headers=auth_headers, query_string={"page": page, "perPage": 2}).json
            assert body["total"] == 5 and body["page"] == page
            seen += [item["id"] for item in body["items"]]
        assert seen == list(reversed(ids))
        beyond = client.get(ACCOUNTS, headers=auth_headers, query_string={"page": 4, "perPage": 2}).json
        assert beyond["items"] == [] and beyond["total"] == 5

    def test_default_and_largest_page(self, client, auth_headers):
        created(connect(client, auth_headers))
        body = client.get(ACCOUNTS, headers=auth_headers).json
        assert (body["page"], body["perPage"], body["total"]) == (1, 20, 1)
        assert client.get(ACCOUNTS, headers=auth_headers, query_string={"perPage": 100}).status_code == 200

    @pytest.mark.parametrize("query", ["perPage=101", "perPage=0", "page=0", "page=x", "active=maybe"])
    def test_bad_paging_is_422(self, client, auth_headers, query):
        assert error_of(client.get(f"{ACCOUNTS}?{query}", headers=auth_headers), 422)["code"] == (
            "validation_error"
        )

    def test_filter_by_active(self, client, auth_headers):
        keep = created(connect(client, auth_headers, name="On", bot_id=111111))["id"]
        off = created(connect(client, auth_headers, name="Off", bot_id=222222))["id"]
        client.patch(f"{ACCOUNTS}/{off}", headers=auth_headers, json={"active": False})
        body = client.get(ACCOUNTS, headers=auth_headers, query_string={"active": "true"}).json
        assert [item["id"] for item in body["items"]] == [keep] and body["total"] == 1

    def test_members_read(self, client, auth_headers, tenant, make_user, headers_for):
        account_id = created(connect(client, auth_headers))["id"]
        member = headers_for(make_user(tenant, "member"))
        listed = client.get(ACCOUNTS, headers=member)
        assert listed.status_code == 200 and listed.json["total"] == 1
        one = client.get(f"{ACCOUNTS}/{account_id}", headers=member)
        assert one.status_code == 200 and one.json["id"] == account_id

    def test_members_cannot_write(self, client, auth_headers, tenant, make_user, headers_for):
        account_id = created(connect(client, auth_headers))["id"]
        member = headers_for(make_user(tenant, "member"))
        patch = client.patch(f"{ACCOUNTS}/{account_id}", headers=member, json={"name": "Mine"})
        assert error_of(patch, 403)["code"] == "forbidden"
        delete = client.delete(f"{ACCOUNTS}/{account_id}", headers=member)
        assert error_of(delete, 403)["code"] == "forbidden"
        (account,) = stored_accounts(tenant)
        assert account.name == "Sales bot"

    def test_get_one(self, client, auth_headers):
        account = created(connect(client, auth_headers))
        response = client.get(f"{ACCOUNTS}/{account['id']}", headers=auth_headers)
        assert response.status_code == 200 and response.json == account

    def test_patch_changes_name_and_active(self, client, auth_headers, tenant):
        account_id = created(connect(client, auth_headers))["id"]
        response = client.patch(
            f"{ACCOUNTS}/{account_id}", headers=auth_headers, json={"name": "Support bot", "active": False}
        )
        assert response.status_code == 200
        assert response.json["name"] == "Support bot" and response.json["active"] is False
        (account,) = stored_accounts(tenant)
        assert account.name == "Support bot" and account.active is False

    @pytest.mark.parametrize(
        "body",
        [
            {"name": ""},
            {"token": "nope"},
            {"active": "sometimes"},
            {"botId": 1},
            {"tenantId": "x"},
            {"tokenLast4": "abcd"},
        ],
    )
    def test_bad_patch_is_422_and_changes_nothing(self, client, auth_headers, tenant, body):
        account_id = created(connect(client, auth_headers))["id"]
        before = stored_accounts(tenant)[0].to_mongo().to_dict()
        error = error_of(client.patch(f"{ACCOUNTS}/{account_id}", headers=auth_headers, json=body), 422)
        assert set(body) <= set(error["details"])
        assert stored_accounts(tenant)[0].to_mongo().to_dict() == before

    def test_patch_to_a_bot_already_connected_is_409(self, client, auth_headers, tenant):
        created(connect(client, auth_headers, name="A", bot_id=111111))
        second = created(connect(client, auth_headers, name="B", bot_id=222222))["id"]
        response = client.patch(
            f"{ACCOUNTS}/{second}", headers=auth_headers, json={"token": bot_token(111111)}
        )
        assert error_of(response, 409)["code"] == "conflict"
        assert sorted(a.bot_id for a in stored_accounts(tenant)) == [111111, 222222]

    def test_delete_removes_and_gives_the_slot_back(self, client, auth_headers, tenant):
        set_limits(tenant, telegramAccounts=1)
        account_id = created(connect(client, auth_headers, bot_id=111111))["id"]
        assert error_of(connect(client, auth_headers, bot_id=222222), 403)["code"] == "limit_exceeded"
        response = client.delete(f"{ACCOUNTS}/{account_id}", headers=auth_headers)
        assert response.status_code == 204 and response.get_data() == b""
        assert stored_accounts(tenant) == []
        assert used_accounts(tenant) == 0
        assert (
            error_of(client.get(f"{ACCOUNTS}/{account_id}", headers=auth_headers), 404)["code"] == "not_found"
        )
        assert error_of(client.delete(f"{ACCOUNTS}/{account_id}", headers=auth_headers), 404)
        assert used_accounts(tenant) == 0  # a second delete refunds nothing
        created(connect(client, auth_headers, bot_id=222222))
        assert used_accounts(tenant) == 1

    def test_unknown_and_malformed_ids_are_404(self, client, auth_headers):
        for path in (f"{ACCOUNTS}/{random_id()}", f"{ACCOUNTS}/not-an-id"):
            assert error_of(client.get(path, headers=auth_headers), 404)["code"] == "not_found"


class TestLimit:
    def test_professional_allows_ten(self, client, auth_headers, tenant):
        limits = client.get("/api/v1/tenants/current", headers=auth_headers).json["limits"]
        assert limits["telegramAccounts"] == 10

    def test_starter_allows_three_and_refuses_the_fourth(
        self, client, other_owner, headers_for, other_tenant
    ):
        headers = headers_for(other_owner)
        for bot_id in (111111, 222222, 333333):
            created(connect(client, headers, bot_id=bot_id))
        error = error_of(connect(client, headers, bot_id=444444), 403)
        assert error["code"] == "limit_exceeded"
        assert error["details"] == {"resource": "telegramAccounts", "limit": 3, "used": 3, "requested": 1}
        assert len(stored_accounts(other_tenant)) == 3

    def test_the_boundary_with_an_override(self, client, auth_headers, tenant):
        set_limits(tenant, telegramAccounts=2)
        created(connect(client, auth_headers, bot_id=111111))
        created(connect(client, auth_headers, bot_id=222222))
        error = error_of(connect(client, auth_headers, bot_id=333333), 403)
        assert error["code"] == "limit_exceeded"
        assert error["details"] == {"resource": "telegramAccounts", "limit": 2, "used": 2, "requested": 1}
        assert [a.bot_id for a in stored_accounts(tenant)] == [111111, 222222]
        assert used_accounts(tenant) == 2


class TestCrossTenant:
    """The second tenant's credentials with the first tenant's ids: 404, like an id that does not exist."""

    @pytest.fixture
    def account_id(self, client, auth_headers):
        return created(connect(client, auth_headers, bot_id=987654321))["id"]

    @pytest.mark.parametrize(
        ("method", "body"),
        [
            ("GET", None),
            ("PATCH", {"name": "Stolen"}),
            ("PATCH", {"token": bot_token(111111)}),
            ("PATCH", {"active": False}),
            ("DELETE", None),
        ],
    )
    def test_another_tenant_gets_404(
        self, client, tenant, account_id, other_owner, headers_for, method, body
    ):
        before = stored_accounts(tenant)[0].to_mongo().to_dict()
        headers = headers_for(other_owner)
        foreign = client.open(f"{ACCOUNTS}/{account_id}", method=method, headers=headers, json=body)
        unknown = client.open(f"{ACCOUNTS}/{random_id()}", method=method, headers=headers, json=body)
        assert error_of(foreign, 404)["code"] == "not_found"
        assert foreign.json == unknown.json
        assert stored_accounts(tenant)[0].to_mongo().to_dict() == before
        assert used_accounts(tenant) == 1

    def test_another_tenant_lists_nothing(self, client, account_id, other_owner, headers_for):
        body = client.get(ACCOUNTS, headers=headers_for(other_owner)).json
        assert body["items"] == [] and body["total"] == 0

    def test_a_campaign_cannot_use_another_tenants_bot(
        self, client, account_id, other_owner, headers_for, other_tenant
    ):
        response = client.post(
            "/api/v1/campaigns",
            headers=headers_for(other_owner),
            json={
                "name": "Borrowed bot",
                "message": {"text": "hi"},
                "targets": ["@channel1"],
                "telegramAccountId": account_id,
            },
        )
        assert "telegramAccountId" in error_of(response, 422)["details"]
