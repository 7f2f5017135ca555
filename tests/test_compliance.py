"""Compliance through the HTTP API: the audit trail (tenant and platform), the IP whitelist (direct and
behind a trusted proxy), the GDPR export and erasure, and two-factor authentication."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pyotp
import pytest
from bson import ObjectId

from app import crypto
from app.audit.models import AuditLog, PlatformAuditLog
from app.auth import tokens
from app.campaigns.models import Campaign, CampaignMessage
from app.tenancy.context import tenant_scope
from app.tenancy.registry import tenant_document_classes
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.usage.models import UsageSnapshot
from app.users.models import EmailDirectory, User
from app.users.service import create_user, pseudonym_of

from .conftest import PASSWORD
from .support import (
    all_tenant_documents,
    bearer,
    enrol,
    error_code,
    file_part,
    impersonation_headers,
    multipart,
    next_code,
    wrong_code,
)

API = "/api/v1"
AUDIT = f"{API}/audit-logs"
PLATFORM_AUDIT = f"{API}/platform/audit-logs"
CURRENT = f"{API}/tenants/current"
SETTINGS = f"{CURRENT}/settings"
EXPORT = f"{CURRENT}/export"
LOGIN = f"{API}/auth/login"
USERS = f"{API}/users"
TWO_FA = f"{API}/auth/2fa"

OUTSIDE = {"REMOTE_ADDR": "198.51.100.7"}
WHITELIST = ["127.0.0.1/32", "2001:db8::/48"]
BOT_TOKEN = "123456789:AAE" + "x7Kq_9-bZ" * 3 + "LmN4pQrS"  # "AAE" and 33 more characters


# -- helpers ----------------------------------------------------------------------------------------


def audit_entries(client, headers, **query) -> list[dict]:
    """Every audit entry the caller sees (all pages), newest first."""
    items, page = [], 1
    while True:
        response = client.get(AUDIT, headers=headers, query_string={**query, "perPage": 100, "page": page})
        assert response.status_code == 200, response.get_data(as_text=True)
        items += response.json["items"]
        if page * 100 >= response.json["total"]:
            return items
        page += 1


def platform_entries(client, headers, **query) -> list[dict]:
    response = client.get(PLATFORM_AUDIT, headers=headers, query_string={**query, "perPage": 100})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["items"]


def login(client, email, password=PASSWORD, code=None, tenant="acme", environ=None):
    body = {"email": email, "password": password}
    if code is not None:
        body["code"] = code
    headers = {"X-Tenant-Id": tenant} if tenant else {}
    return client.post(LOGIN, json=body, headers=headers, environ_base=environ or {})


def patch_settings(client, headers, body, environ=None):
    return client.patch(SETTINGS, headers=headers, json=body, environ_base=environ or {})


def add_user(client, headers, email, name="Jane Doe", role="member", password=PASSWORD) -> dict:
    response = client.post(
        USERS, headers=headers, json={"email": email, "name": name, "role": role, "password": password}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def create_api_key(client, headers, role="admin") -> dict:
    response = client.post(f"{API}/api-keys", headers=headers, json={"name": "CI", "role": role})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def used_users(client, headers) -> int:
    """The seats in use, as the metering endpoint reports them."""
    response = client.get(f"{CURRENT}/usage", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["resources"]["users"]["used"]


def stagger_audit(tenant, times_by_id: dict) -> None:
    """Give audit entries chosen creation times (the clock may not tick between two requests)."""
    with tenant_scope(tenant):
        for entry_id, moment in times_by_id.items():
            AuditLog.objects(id=entry_id).update_one(set__created_at=moment)


def global_documents_of(tenant) -> dict[str, list[dict]]:
    """The global documents that belong to `tenant` (email directory, platform trail)."""
    return {
        "email_directory": sorted(
            (e.to_mongo().to_dict() for e in EmailDirectory.objects(tenant_id=tenant.id)),
            key=lambda d: str(d["_id"]),
        ),
        "platform_audit_logs": sorted(
            (e.to_mongo().to_dict() for e in PlatformAuditLog.objects(tenant_id=tenant.id)),
            key=lambda d: str(d["_id"]),
        ),
    }


def upload(client, headers, data: bytes, filename: str) -> dict:
    response = client.post(
        f"{API}/media", headers=headers, **multipart({"file": file_part(data, filename, "text/plain")})
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def populate(client, headers, tenant, bot_id: int) -> dict:
    """Give a tenant documents in every collection the API can fill; return the secrets it was given."""

    def ok(response, status=201):
        assert response.status_code == status, response.get_data(as_text=True)
        return response.json

    hook = ok(
        client.post(
            f"{API}/webhooks",
            headers=headers,
            json={
                "url": f"https://hooks.{tenant.slug}.example.com/in",
                "events": ["usage.threshold", "campaign.completed"],
            },
        )
    )
    # A 10% alert threshold: the first bot crosses it (a usage alert, an audit entry, a delivery).
    ok(patch_settings(client, headers, {"notifications": {"usageAlertThresholds": [10]}}), 200)
    bot_token = f"{bot_id}:AAE" + "Zz9_" * 8 + "k"
    bot = ok(
        client.post(f"{API}/telegram-accounts", headers=headers, json={"name": "Bot", "token": bot_token})
    )
    campaign = ok(
        client.post(
            f"{API}/campaigns",
            headers=headers,
            json={
                "name": f"Launch of {tenant.slug}",
                "message": {"text": "Hello"},
                "targets": ["@news", "-1001234567890"],
                "telegramAccountId": bot["id"],
            },
        )
    )
    ok(client.post(f"{API}/campaigns/{campaign['id']}/send", headers=headers), 202)
    key = create_api_key(client, headers)
    add_user(client, headers, f"someone@{tenant.slug}.example.com", name=f"Someone of {tenant.slug}")
    upload(client, headers, f"file of {tenant.slug}".encode() * 10, f"{tenant.slug}.txt")
    with tenant_scope(tenant):
        UsageSnapshot(period="2025-12", plan=tenant.plan, resources={"users": {"used": 1}}).save()
    return {"webhookSecret": hook["secret"], "botToken": bot_token, "apiKey": key["key"]}


# -- the tenant's audit log: reading it ---------------------------------------------------------------


class TestAuditLogAccess:
    def test_owner_and_admin_read_member_cannot(self, client, tenant, owner, make_user, headers_for):
        patch_settings(client, headers_for(owner), {"general": {"language": "de"}})
        for role in ("owner", "admin"):
            response = client.get(AUDIT, headers=headers_for(make_user(tenant, role)))
            assert response.status_code == 200, response.get_data(as_text=True)
            assert [e["action"] for e in response.json["items"]] == ["tenant.settings_updated"]
        member = client.get(AUDIT, headers=headers_for(make_user(tenant, "member")))
        assert member.status_code == 403 and error_code(member) == "forbidden"
        assert client.get(AUDIT).status_code == 401

    def test_newest_first_by_creation_time(self, client, tenant, auth_headers):
        for language in ("de", "fr", "it", "es"):
            assert (
                patch_settings(client, auth_headers, {"general": {"language": language}}).status_code == 200
            )
        created = list(reversed(audit_entries(client, auth_headers)))
        assert [e["summary"]["general"]["language"] for e in created] == ["de", "fr", "it", "es"]
        # Times that do not follow insertion order: the list follows the time, not the id.
        start = datetime(2026, 3, 1, tzinfo=UTC)
        order = [2, 0, 3, 1]
        stagger_audit(
            tenant, {e["id"]: start + timedelta(hours=hour) for e, hour in zip(created, order, strict=True)}
        )
        listed = [e["summary"]["general"]["language"] for e in audit_entries(client, auth_headers)]
        assert listed == ["it", "de", "es", "fr"]
        times = [e["createdAt"] for e in audit_entries(client, auth_headers)]
        assert times == sorted(times, reverse=True)

    def test_pages_split_the_list_without_overlap(self, client, auth_headers):
        for index in range(7):
            patch_settings(client, auth_headers, {"general": {"timezone": f"Etc/GMT+{index + 1}"}})
        everything = [e["id"] for e in audit_entries(client, auth_headers)]
        assert len(everything) == 7
        seen = []
        for page in (1, 2, 3, 4):
            body = client.get(AUDIT, headers=auth_headers, query_string={"page": page, "perPage": 2}).json
            assert body["total"] == 7 and body["page"] == page and body["perPage"] == 2
            assert len(body["items"]) == (1 if page == 4 else 2)
            seen += [e["id"] for e in body["items"]]
        assert seen == everything
        assert client.get(AUDIT, headers=auth_headers, query_string={"perPage": 101}).status_code == 422

    def test_filter_by_action(self, client, auth_headers):
        patch_settings(client, auth_headers, {"general": {"language": "de"}})
        client.patch(f"{CURRENT}/branding", headers=auth_headers, json={"primaryColor": "#123456"})
        patch_settings(client, auth_headers, {"general": {"language": "fr"}})
        body = client.get(
            AUDIT, headers=auth_headers, query_string={"action": "tenant.settings_updated"}
        ).json
        assert body["total"] == 2
        assert {e["action"] for e in body["items"]} == {"tenant.settings_updated"}
        branding = audit_entries(client, auth_headers, action="tenant.branding_updated")
        assert len(branding) == 1 and "#123456" in branding[0]["summary"].values()
        assert audit_entries(client, auth_headers, action="no.such_action") == []

    def test_filter_by_actor(self, client, tenant, owner, auth_headers, make_user, headers_for):
        admin = make_user(tenant, "admin")
        patch_settings(client, auth_headers, {"general": {"language": "de"}})
        patch_settings(client, headers_for(admin), {"general": {"language": "fr"}})
        patch_settings(client, auth_headers, {"general": {"language": "it"}})
        by_admin = audit_entries(client, auth_headers, actor=str(admin.id))
        assert [e["summary"]["general"]["language"] for e in by_admin] == ["fr"]
        assert by_admin[0]["actor"]["id"] == str(admin.id)
        by_owner = audit_entries(client, auth_headers, actor=str(owner.id))
        assert [e["summary"]["general"]["language"] for e in by_owner] == ["it", "de"]
        assert audit_entries(client, auth_headers, actor=str(ObjectId())) == []

    def test_filter_by_since_and_until(self, client, tenant, auth_headers):
        for language in ("de", "fr", "it", "es", "nl"):
            patch_settings(client, auth_headers, {"general": {"language": language}})
        created = list(reversed(audit_entries(client, auth_headers)))
        start = datetime(2026, 1, 1, tzinfo=UTC)
        stagger_audit(tenant, {e["id"]: start + timedelta(hours=i) for i, e in enumerate(created)})

        def languages(**query):
            return [e["summary"]["general"]["language"] for e in audit_entries(client, auth_headers, **query)]

        half_past = timedelta(minutes=30)
        assert languages(since=(start + timedelta(hours=2) + half_past).isoformat()) == ["nl", "es"]
        assert languages(until=(start + timedelta(hours=1) + half_past).isoformat()) == ["fr", "de"]
        assert languages(
            since=(start + half_past).isoformat(), until=(start + timedelta(hours=3) + half_past).isoformat()
        ) == ["es", "it", "fr"]
        assert languages(since=(start + timedelta(days=1)).isoformat()) == []

    def test_since_after_until_is_422(self, client, auth_headers):
        response = client.get(
            AUDIT,
            headers=auth_headers,
            query_string={"since": "2026-02-01T00:00:00+00:00", "until": "2026-01-01T00:00:00+00:00"},
        )
        assert response.status_code == 422 and error_code(response) == "validation_error"
        assert "since" in response.json["error"]["details"]

    @pytest.mark.parametrize("query", [{"since": "yesterday"}, {"until": "2026-13-01T00:00:00Z"}])
    def test_bad_dates_are_422(self, client, auth_headers, query):
        response = client.get(AUDIT, headers=auth_headers, query_string=query)
        assert response.status_code == 422 and error_code(response) == "validation_error"

    def test_another_tenant_never_sees_them(
        self, client, tenant, owner, auth_headers, other_owner, headers_for
    ):
        patch_settings(client, auth_headers, {"general": {"language": "de"}})
        assert login(client, owner.email).status_code == 200
        acme_ids = {e["id"] for e in audit_entries(client, auth_headers)}
        assert len(acme_ids) == 2
        other = headers_for(other_owner)
        assert not acme_ids & {e["id"] for e in audit_entries(client, other)}
        assert audit_entries(client, other, actor=str(owner.id)) == []
        assert audit_entries(client, other, action="tenant.settings_updated") == []
        for hint in ({"X-Tenant-Id": "acme"}, {"X-Tenant-Id": str(tenant.id)}):
            refused = client.get(AUDIT, headers={**other, **hint})
            assert refused.status_code == 403 and error_code(refused) == "tenant_mismatch"
        refused = client.get(AUDIT, headers=other, query_string={"tenant": "acme"})
        assert refused.status_code == 403 and error_code(refused) == "tenant_mismatch"
        # The attempts are on the caller's record, and acme's log is unchanged.
        assert len(audit_entries(client, other, action="auth.tenant_mismatch")) == 3
        assert {e["id"] for e in audit_entries(client, auth_headers)} == acme_ids

    @pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
    def test_no_route_changes_or_deletes_entries(
        self, client, tenant, auth_headers, superadmin_headers, method
    ):
        patch_settings(client, auth_headers, {"general": {"language": "de"}})
        before = audit_entries(client, auth_headers)
        entry_id = before[0]["id"]
        call = getattr(client, method)
        collection = call(AUDIT, headers=auth_headers, json={"action": "x"})
        assert collection.status_code == 405
        one = call(f"{AUDIT}/{entry_id}", headers=auth_headers, json={"action": "x"})
        assert one.status_code in (404, 405)
        platform = call(PLATFORM_AUDIT, headers=superadmin_headers, json={"action": "x"})
        assert platform.status_code == 405
        assert audit_entries(client, auth_headers) == before
        with tenant_scope(tenant):
            assert AuditLog.objects.count() == 1


# -- the tenant's audit log: what an entry says ---------------------------------------------------------


class TestAuditEntryContents:
    def test_who_what_when_and_from_where(self, client, owner, auth_headers):
        before = datetime.now(UTC) - timedelta(seconds=1)
        response = patch_settings(
            client, auth_headers, {"general": {"language": "de"}}, environ={"REMOTE_ADDR": "192.0.2.10"}
        )
        after = datetime.now(UTC) + timedelta(seconds=1)
        assert response.status_code == 200
        [entry] = audit_entries(client, auth_headers)
        assert entry["actor"]["kind"] == "user"
        assert entry["actor"]["id"] == str(owner.id)
        assert entry["actor"]["label"] == owner.email
        assert entry["actor"].get("impersonatorId") is None
        assert entry["action"] == "tenant.settings_updated"
        assert entry["targetType"] == "tenant"
        assert entry["targetId"] == str(owner.tenant_id)
        assert entry["summary"] == {"general": {"language": "de"}}
        assert before <= datetime.fromisoformat(entry["createdAt"]) <= after
        assert entry["ip"] == "192.0.2.10"
        assert entry["requestId"] and entry["requestId"] == response.headers["X-Request-Id"]

    def test_a_client_request_id_is_kept(self, client, auth_headers):
        response = client.patch(
            SETTINGS,
            headers={**auth_headers, "X-Request-Id": "trace-42.abc"},
            json={"general": {"language": "fr"}},
        )
        assert response.headers["X-Request-Id"] == "trace-42.abc"
        assert audit_entries(client, auth_headers)[0]["requestId"] == "trace-42.abc"

    def test_an_api_key_is_the_actor_of_its_requests(self, client, auth_headers):
        key = create_api_key(client, auth_headers)
        response = patch_settings(client, {"X-API-Key": key["key"]}, {"general": {"language": "de"}})
        assert response.status_code == 200
        entry = audit_entries(client, auth_headers, action="tenant.settings_updated")[0]
        assert entry["actor"]["kind"] == "api_key" and entry["actor"]["id"] == key["id"]

    def test_impersonation_names_the_superadmin(
        self, client, tenant, owner, auth_headers, superadmin, superadmin_headers
    ):
        headers = impersonation_headers(client, superadmin_headers, tenant)
        response = patch_settings(client, headers, {"general": {"language": "de"}})
        assert response.status_code == 200
        started = audit_entries(client, auth_headers, action="impersonation.started")
        assert len(started) == 1
        assert started[0]["targetId"] == str(owner.id) and started[0]["summary"]["reason"] == "support"
        assert started[0]["actor"]["kind"] == "superadmin" and started[0]["actor"]["id"] == str(superadmin.id)
        [change] = audit_entries(client, auth_headers, action="tenant.settings_updated")
        assert change["actor"]["id"] == str(owner.id)
        assert change["actor"]["impersonatorId"] == str(superadmin.id)
        [write] = audit_entries(client, auth_headers, action="impersonation.write")
        assert write["actor"]["impersonatorId"] == str(superadmin.id)
        assert write["summary"]["method"] == "PATCH" and write["summary"]["status"] == 200
        assert write["requestId"] == response.headers["X-Request-Id"]

    def test_no_entry_holds_a_secret(self, client, tenant, auth_headers, make_user):
        member = make_user(tenant, "member")
        key = create_api_key(client, auth_headers)
        new_password = "Zebra-Orbit-7731-unique"
        changed = client.patch(f"{USERS}/{member.id}", headers=auth_headers, json={"password": new_password})
        assert changed.status_code == 200
        bot = client.post(
            f"{API}/telegram-accounts", headers=auth_headers, json={"name": "Sales bot", "token": BOT_TOKEN}
        )
        assert bot.status_code == 201, bot.get_data(as_text=True)
        hook = client.post(
            f"{API}/webhooks",
            headers=auth_headers,
            json={"url": "https://hooks.acme.example.com/x", "events": ["campaign.completed"]},
        )
        assert hook.status_code == 201
        entries = audit_entries(client, auth_headers)
        actions = {e["action"] for e in entries}
        assert {"api_key.created", "user.updated", "telegram_account.created", "webhook.created"} <= actions
        text = json.dumps(entries)
        secrets = [key["key"], key["key"].rsplit("_", 1)[1], new_password, BOT_TOKEN, BOT_TOKEN.split(":")[1]]
        secrets.append(hook.json["secret"])
        for secret in secrets:
            assert secret not in text
        with tenant_scope(tenant):
            stored = json.dumps([e.to_mongo().to_dict() for e in AuditLog.objects], default=str)
        for secret in secrets:
            assert secret not in stored


def _login(w):
    assert login(w.client, w.owner.email).status_code == 200
    return str(w.owner.id)


def _failed_login(w):
    response = login(w.client, w.owner.email, password="not the password")
    assert response.status_code == 401 and error_code(response) == "invalid_credentials"
    return str(w.owner.id)


def _logout(w):
    token = login(w.client, w.owner.email).json["accessToken"]
    assert w.client.post(f"{API}/auth/logout", headers=bearer(token)).status_code == 204
    revoked = w.client.get(CURRENT, headers=bearer(token))
    assert revoked.status_code == 401 and error_code(revoked) == "token_revoked"
    return tokens.decode(token)["jti"]


def _role_change(w):
    member = w.make_user(w.tenant, "member")
    response = w.client.patch(f"{USERS}/{member.id}", headers=w.auth_headers, json={"role": "admin"})
    assert response.status_code == 200
    return str(member.id)


def _settings(w):
    assert patch_settings(w.client, w.auth_headers, {"security": {"require2fa": False}}).status_code == 200
    return str(w.tenant.id)


def _branding(w):
    response = w.client.patch(f"{CURRENT}/branding", headers=w.auth_headers, json={"primaryColor": "#abcdef"})
    assert response.status_code == 200
    return str(w.tenant.id)


def _plan_and_limits(w):
    response = w.client.patch(
        f"{API}/tenants/{w.tenant.id}",
        headers=w.superadmin_headers,
        json={"plan": "enterprise", "limits": {"users": 50}},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(w.tenant.id)


def _suspend_and_activate(w):
    suspended = w.client.post(
        f"{API}/tenants/{w.tenant.id}/suspend", headers=w.superadmin_headers, json={"reason": "unpaid"}
    )
    assert suspended.status_code == 200
    assert w.client.get(CURRENT, headers=w.auth_headers).status_code == 403
    assert (
        w.client.post(f"{API}/tenants/{w.tenant.id}/activate", headers=w.superadmin_headers).status_code
        == 200
    )
    return str(w.tenant.id)


def _impersonation(w):
    headers = impersonation_headers(w.client, w.superadmin_headers, w.tenant)
    assert patch_settings(w.client, headers, {"general": {"language": "de"}}).status_code == 200


def _api_key_created(w):
    return create_api_key(w.client, w.auth_headers)["id"]


def _api_key_revoked(w):
    key = create_api_key(w.client, w.auth_headers)
    assert w.client.delete(f"{API}/api-keys/{key['id']}", headers=w.auth_headers).status_code == 204
    return key["id"]


def _export(w):
    response = w.client.get(EXPORT, headers=w.auth_headers)
    assert response.status_code == 200
    json.loads(response.get_data(as_text=True))
    return str(w.tenant.id)


def _erasure(w):
    user = add_user(w.client, w.auth_headers, "erase.me@acme.example.com")
    response = w.client.delete(
        f"{USERS}/{user['id']}", headers=w.auth_headers, query_string={"erase": "true"}
    )
    assert response.status_code == 204
    return user["id"]


def _deletion(w):
    user = add_user(w.client, w.auth_headers, "delete.me@acme.example.com")
    assert w.client.delete(f"{USERS}/{user['id']}", headers=w.auth_headers).status_code == 204
    return user["id"]


def _tenant_mismatch(w):
    response = w.client.get(CURRENT, headers={**w.auth_headers, "X-Tenant-Id": "globex"})
    assert response.status_code == 403 and error_code(response) == "tenant_mismatch"


SECURITY_EVENTS = [
    ("auth.login", _login),
    ("auth.login_failed", _failed_login),
    ("auth.logout", _logout),
    ("user.role_changed", _role_change),
    ("tenant.settings_updated", _settings),
    ("tenant.branding_updated", _branding),
    ("tenant.updated", _plan_and_limits),
    ("tenant.suspended", _suspend_and_activate),
    ("tenant.activated", _suspend_and_activate),
    ("impersonation.started", _impersonation),
    ("impersonation.write", _impersonation),
    ("api_key.created", _api_key_created),
    ("api_key.revoked", _api_key_revoked),
    ("tenant.exported", _export),
    ("user.erased", _erasure),
    ("user.deleted", _deletion),
    ("auth.tenant_mismatch", _tenant_mismatch),
]


class TestSecurityEvents:
    @pytest.fixture
    def w(self, client, tenant, other_tenant, owner, auth_headers, superadmin_headers, make_user):
        return SimpleNamespace(
            client=client,
            tenant=tenant,
            owner=owner,
            auth_headers=auth_headers,
            superadmin_headers=superadmin_headers,
            make_user=make_user,
        )

    @pytest.mark.parametrize(("action", "act"), SECURITY_EVENTS, ids=[a for a, _ in SECURITY_EVENTS])
    def test_is_written(self, w, action, act):
        assert audit_entries(w.client, w.auth_headers, action=action) == []
        target = act(w)
        found = audit_entries(w.client, w.auth_headers, action=action)
        assert found, f"no {action} entry"
        entry = found[0]
        if target is not None:
            assert entry["targetId"] == target
        assert entry["actor"]["kind"] in ("user", "api_key", "superadmin", "anonymous", "system")
        assert entry["ip"] == "127.0.0.1" and entry["requestId"] and entry["createdAt"]

    def test_logout_names_the_revoked_token(self, w):
        token = login(w.client, w.owner.email).json["accessToken"]
        assert w.client.post(f"{API}/auth/logout", headers=bearer(token)).status_code == 204
        [entry] = audit_entries(w.client, w.auth_headers, action="auth.logout")
        assert entry["targetType"] == "token" and entry["targetId"] == tokens.decode(token)["jti"]

    def test_role_change_says_from_and_to(self, w):
        member_id = _role_change(w)
        [entry] = audit_entries(w.client, w.auth_headers, action="user.role_changed")
        assert entry["targetId"] == member_id
        assert entry["summary"]["role"] == {"from": "member", "to": "admin"}
        assert entry["actor"]["id"] == str(w.owner.id)

    def test_plan_change_says_from_and_to(self, w):
        _plan_and_limits(w)
        [entry] = audit_entries(w.client, w.auth_headers, action="tenant.updated")
        assert entry["actor"]["kind"] == "superadmin"
        changed = entry["summary"]["changed"]
        assert changed["plan"] == {"from": "professional", "to": "enterprise"}
        assert changed["limits"]["to"] == {"users": 50}


# -- the platform trail -------------------------------------------------------------------------------


class TestPlatformTrail:
    def test_superadmin_only(self, client, tenant, make_user, headers_for, superadmin_headers):
        for role in ("owner", "admin", "member"):
            response = client.get(PLATFORM_AUDIT, headers=headers_for(make_user(tenant, role)))
            assert response.status_code == 403 and error_code(response) == "forbidden"
        assert client.get(PLATFORM_AUDIT).status_code == 401
        assert client.get(PLATFORM_AUDIT, headers=superadmin_headers).status_code == 200

    def test_lists_superadmin_actions(self, client, tenant, owner, superadmin, superadmin_headers):
        suspended = client.post(
            f"{API}/tenants/{tenant.id}/suspend", headers=superadmin_headers, json={"reason": "unpaid"}
        )
        assert suspended.status_code == 200
        client.post(f"{API}/tenants/{tenant.id}/activate", headers=superadmin_headers)
        impersonation_headers(client, superadmin_headers, tenant)
        actions = [e["action"] for e in platform_entries(client, superadmin_headers)]
        assert actions[:3] == ["impersonation.started", "tenant.activated", "tenant.suspended"]
        [entry] = platform_entries(client, superadmin_headers, action="tenant.suspended")
        assert entry["actor"] == {
            **entry["actor"],
            "kind": "superadmin",
            "id": str(superadmin.id),
            "label": superadmin.email,
        }
        assert entry["tenantId"] == str(tenant.id) and entry["tenantSlug"] == "acme"
        assert entry["summary"] == {"reason": "unpaid"}
        assert entry["ip"] == "127.0.0.1" and entry["requestId"]
        assert suspended.headers["X-Request-Id"] == entry["requestId"]

    def delete_acme(self, client, tenant, superadmin_headers):
        suspended = client.post(
            f"{API}/tenants/{tenant.id}/suspend", headers=superadmin_headers, json={"reason": "closing"}
        )
        assert suspended.status_code == 200
        assert client.delete(f"{API}/tenants/{tenant.id}", headers=superadmin_headers).status_code == 204
        assert Tenant.objects(id=tenant.id).first() is None

    def test_filter_by_tenant(self, client, tenant, other_tenant, superadmin_headers):
        for target in (tenant, other_tenant):
            response = client.post(
                f"{API}/tenants/{target.id}/suspend", headers=superadmin_headers, json={"reason": "unpaid"}
            )
            assert response.status_code == 200
        for query in ({"tenantSlug": "acme"}, {"tenantId": str(tenant.id)}):
            [entry] = platform_entries(client, superadmin_headers, **query)
            assert entry["tenantSlug"] == "acme" and entry["action"] == "tenant.suspended"
        [entry] = platform_entries(client, superadmin_headers, tenantSlug="globex")
        assert entry["tenantId"] == str(other_tenant.id)

    def test_a_deleted_tenant_stays_on_record(self, client, tenant, owner, superadmin_headers):
        self.delete_acme(client, tenant, superadmin_headers)
        with tenant_scope(tenant):
            assert AuditLog.objects.count() == 0  # the tenant's own log went with it
        [deleted] = platform_entries(client, superadmin_headers, action="tenant.deleted")
        assert deleted["tenantId"] == str(tenant.id) and deleted["tenantSlug"] == "acme"
        assert deleted["targetId"] == str(tenant.id) and deleted["actor"]["kind"] == "superadmin"
        actions = [e["action"] for e in platform_entries(client, superadmin_headers)]
        assert actions == ["tenant.deleted", "tenant.suspended"]

    @pytest.mark.parametrize("by", ["slug", "id"])
    def test_a_deleted_tenants_trail_is_filterable(
        self, client, tenant, other_tenant, superadmin_headers, by
    ):
        self.delete_acme(client, tenant, superadmin_headers)
        suspended = client.post(
            f"{API}/tenants/{other_tenant.id}/suspend", headers=superadmin_headers, json={"reason": "unpaid"}
        )
        assert suspended.status_code == 200
        query = {"tenantSlug": "acme"} if by == "slug" else {"tenantId": str(tenant.id)}
        actions = [e["action"] for e in platform_entries(client, superadmin_headers, **query)]
        assert actions == ["tenant.deleted", "tenant.suspended"]
        assert [e["action"] for e in platform_entries(client, superadmin_headers, tenantSlug="globex")] == [
            "tenant.suspended"
        ]

    def test_since_after_until_is_422(self, client, superadmin_headers):
        response = client.get(
            PLATFORM_AUDIT,
            headers=superadmin_headers,
            query_string={"since": "2026-02-01T00:00:00+00:00", "until": "2026-01-01T00:00:00+00:00"},
        )
        assert response.status_code == 422


# -- IP whitelist -------------------------------------------------------------------------------------


class TestIpWhitelist:
    @pytest.fixture
    def whitelisted(self, client, tenant, auth_headers):
        response = patch_settings(client, auth_headers, {"security": {"ipWhitelist": WHITELIST}})
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.json["settings"]["security"]["ipWhitelist"] == WHITELIST
        return auth_headers

    def test_outside_is_refused(self, client, whitelisted):
        assert client.get(CURRENT, headers=whitelisted).status_code == 200
        for path in (CURRENT, AUDIT, USERS):
            response = client.get(path, headers=whitelisted, environ_base=OUTSIDE)
            assert response.status_code == 403 and error_code(response) == "ip_not_allowed"
        write = patch_settings(client, whitelisted, {"security": {"ipWhitelist": []}}, environ=OUTSIDE)
        assert write.status_code == 403 and error_code(write) == "ip_not_allowed"
        assert Tenant.objects.get(slug="acme").settings.security.ip_whitelist == WHITELIST

    @pytest.mark.parametrize(
        ("address", "status"),
        [("2001:db8::1", 200), ("2001:db8:0:ffff::9", 200), ("2001:db8:1::1", 403), ("2001:db9::1", 403)],
    )
    def test_ipv6(self, client, whitelisted, address, status):
        response = client.get(CURRENT, headers=whitelisted, environ_base={"REMOTE_ADDR": address})
        assert response.status_code == status

    def test_api_keys_are_refused_outside_too(self, client, whitelisted):
        key = create_api_key(client, whitelisted)
        response = client.get(CURRENT, headers={"X-API-Key": key["key"]}, environ_base=OUTSIDE)
        assert response.status_code == 403 and error_code(response) == "ip_not_allowed"

    def test_superadmins_are_exempt(self, client, tenant, whitelisted, superadmin_headers):
        headers = {**superadmin_headers, "X-Tenant-Id": "acme"}
        response = client.get(CURRENT, headers=headers, environ_base=OUTSIDE)
        assert response.status_code == 200 and response.json["slug"] == "acme"
        assert (
            client.get(
                f"{API}/tenants/{tenant.id}", headers=superadmin_headers, environ_base=OUTSIDE
            ).status_code
            == 200
        )

    @pytest.mark.parametrize("tenant_hint", ["acme", None])
    def test_login_from_outside_is_refused(self, client, owner, whitelisted, tenant_hint):
        response = login(client, owner.email, tenant=tenant_hint, environ=OUTSIDE)
        assert response.status_code == 403 and error_code(response) == "ip_not_allowed"
        assert "accessToken" not in response.get_json()
        assert login(client, owner.email, tenant=tenant_hint).status_code == 200

    def test_a_forged_forwarded_for_is_ignored_without_trusted_proxies(self, client, whitelisted):
        assert client.application.config["TRUSTED_PROXIES"] == 0
        response = client.get(
            CURRENT, headers={**whitelisted, "X-Forwarded-For": "127.0.0.1"}, environ_base=OUTSIDE
        )
        assert response.status_code == 403 and error_code(response) == "ip_not_allowed"
        forged_login = client.post(
            LOGIN,
            json={"email": "owner1@acme.example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": "127.0.0.1"},
            environ_base=OUTSIDE,
        )
        assert forged_login.status_code == 403 and error_code(forged_login) == "ip_not_allowed"

    @pytest.mark.parametrize(
        ("role", "environ", "whitelist"),
        [
            ("admin", {}, ["10.0.0.0/8"]),
            ("admin", OUTSIDE, ["127.0.0.1/32"]),
            ("owner", {"REMOTE_ADDR": "2001:db8:5::1"}, WHITELIST),
        ],
    )
    def test_a_whitelist_excluding_the_caller_is_refused(
        self, client, tenant, make_user, headers_for, role, environ, whitelist
    ):
        response = patch_settings(
            client, headers_for(make_user(tenant, role)), {"security": {"ipWhitelist": whitelist}}, environ
        )
        assert response.status_code == 422 and error_code(response) == "validation_error"
        assert "ipWhitelist" in response.json["error"]["details"]["security"]
        assert Tenant.objects.get(slug="acme").settings.security.ip_whitelist == []
        assert (
            audit_entries(client, headers_for(make_user(tenant, "owner")), action="tenant.settings_updated")
            == []
        )


class TestBehindAProxy:
    """TRUSTED_PROXIES=1: werkzeug's ProxyFix takes the last X-Forwarded-For hop (the address the one
    trusted proxy saw) as the client; anything a client put before it is not trusted."""

    @pytest.fixture
    def proxied(self, app_factory):
        app = app_factory(TRUSTED_PROXIES=1)
        with app.app_context():
            tenant = create_tenant("Acme Corp", "acme", plan="professional")
            with tenant_scope(tenant):
                owner = create_user("owner@acme.example.com", "Owner", PASSWORD, "owner")
            headers = bearer(tokens.issue(owner, [tokens.PASSWORD])["access_token"])
            yield SimpleNamespace(app=app, client=app.test_client(), tenant=tenant, headers=headers)

    @staticmethod
    def via_proxy(forwarded_for: str) -> dict:
        return {"environ_base": {"REMOTE_ADDR": "127.0.0.1"}, "headers": {"X-Forwarded-For": forwarded_for}}

    def get(self, p, forwarded_for):
        via = self.via_proxy(forwarded_for)
        return p.client.get(
            CURRENT, headers={**p.headers, **via["headers"]}, environ_base=via["environ_base"]
        )

    def test_the_client_address_decides_not_the_proxy(self, proxied):
        p = proxied
        response = p.client.patch(SETTINGS, headers=p.headers, json={"security": {"ipWhitelist": WHITELIST}})
        assert response.status_code == 200, response.get_data(as_text=True)
        refused = self.get(p, "198.51.100.7")
        assert refused.status_code == 403 and error_code(refused) == "ip_not_allowed"
        # One trusted proxy: only the last hop counts, a client-supplied first hop does not.
        assert self.get(p, "203.0.113.9, 127.0.0.1").status_code == 200
        forged = self.get(p, "127.0.0.1, 198.51.100.7")
        assert forged.status_code == 403 and error_code(forged) == "ip_not_allowed"
        assert self.get(p, "2001:db8::7").status_code == 200

    def test_the_audit_log_records_the_client_address(self, proxied):
        p = proxied
        response = p.client.patch(
            SETTINGS,
            headers={**p.headers, "X-Forwarded-For": "10.9.8.7, 192.0.2.44"},
            json={"general": {"language": "de"}},
        )
        assert response.status_code == 200
        [entry] = audit_entries(p.client, p.headers)
        assert entry["ip"] == "192.0.2.44"

    def test_the_lockout_check_uses_the_client_address(self, proxied):
        p = proxied
        response = p.client.patch(
            SETTINGS,
            headers={**p.headers, "X-Forwarded-For": "198.51.100.7"},
            json={"security": {"ipWhitelist": ["127.0.0.1/32"]}},
        )
        assert response.status_code == 422
        assert Tenant.objects.get(id=p.tenant.id).settings.security.ip_whitelist == []


# -- GDPR export --------------------------------------------------------------------------------------


class TestExport:
    def test_owner_only(self, client, tenant, make_user, headers_for):
        for role in ("admin", "member"):
            response = client.get(EXPORT, headers=headers_for(make_user(tenant, role)))
            assert response.status_code == 403 and error_code(response) == "forbidden"
        assert client.get(EXPORT).status_code == 401

    def test_every_document_of_the_tenant_and_no_secret(
        self, client, tenant, other_tenant, owner, auth_headers, other_owner, headers_for
    ):
        acme = populate(client, auth_headers, tenant, bot_id=111111111)
        globex = populate(client, headers_for(other_owner), other_tenant, bot_id=222222222)
        totp_secret, recovery_codes = enrol(client, auth_headers)
        auth_headers = headers_for(owner)  # enrolling ended the owner's sessions

        response = client.get(EXPORT, headers=auth_headers, buffered=False)
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment") and ".json" in disposition and "acme" in disposition
        # Streamed: the body comes in many pieces and its length is not known up front.
        assert response.is_streamed
        assert "Content-Length" not in response.headers
        chunks = list(response.response)
        response.close()
        assert len(chunks) > 1
        text = b"".join(chunks).decode()
        body = json.loads(text)

        assert {"exportedAt", "tenant", "collections"} <= set(body)
        datetime.fromisoformat(body["exportedAt"])
        assert body["tenant"]["id"] == str(tenant.id) and body["tenant"]["slug"] == "acme"
        names = {cls._get_collection_name() for cls in tenant_document_classes()}
        assert set(body["collections"]) == names

        stored = all_tenant_documents(tenant)
        others = all_tenant_documents(other_tenant)
        for name in names:
            exported = body["collections"][name]
            exported_ids = [doc["_id"]["$oid"] for doc in exported]
            assert sorted(exported_ids) == sorted(str(d["_id"]) for d in stored[name]), name
            assert {doc["tenantId"]["$oid"] for doc in exported} <= {str(tenant.id)}, name
            assert not set(exported_ids) & {str(d["_id"]) for d in others[name]}, name
        for name in ("users", "audit_logs", "api_keys", "telegram_accounts", "webhooks", "campaigns",
                     "messages", "media_files", "media_chunks", "usage_counters", "usage_alerts",
                     "usage_snapshots", "webhook_deliveries"):  # fmt: skip
            assert body["collections"][name], f"{name} should not be empty in this test"
        assert str(other_tenant.id) not in text and "globex" not in text

        with tenant_scope(tenant):
            users = list(User.objects)
            owner_stored = User.objects.get(id=owner.id)
        secrets = [u.password_hash for u in users] + list(owner_stored.recovery_code_hashes)
        secrets += [totp_secret, owner_stored.totp_secret_encrypted, *recovery_codes]
        secrets += [acme["webhookSecret"], acme["botToken"], acme["apiKey"], acme["apiKey"].rsplit("_", 1)[1]]
        secrets += [globex["webhookSecret"], globex["botToken"], globex["apiKey"]]
        with tenant_scope(tenant):
            from app.auth.models import ApiKey
            from app.telegram_accounts.models import TelegramAccount
            from app.webhooks.models import Webhook

            secrets += [k.key_hash for k in ApiKey.objects]
            secrets += [a.token_encrypted for a in TelegramAccount.objects]
            secrets += [h.secret_encrypted for h in Webhook.objects]
            assert crypto.decrypt(Webhook.objects.first().secret_encrypted) == acme["webhookSecret"]
        for secret in secrets:
            assert secret and secret not in text
        for field in ("passwordHash", "keyHash", "tokenEncrypted", "secretEncrypted", "totpSecretEncrypted",
                      "recoveryCodeHashes"):  # fmt: skip
            assert field not in text

    def test_reads_in_batches_each_a_query_of_its_own(
        self, client, tenant, auth_headers, monkeypatch, count_operations
    ):
        monkeypatch.setattr("app.tenants.export.BATCH", 2)
        with tenant_scope(tenant):
            for n in range(5):
                Campaign(name=f"c{n}", message=CampaignMessage(text="hi"), targets=["1"]).save()
        with count_operations() as counts:
            body = client.get(EXPORT, headers=auth_headers).json
        with tenant_scope(tenant):
            stored = [str(c.id) for c in Campaign.objects.order_by("id")]
        assert [c["_id"]["$oid"] for c in body["collections"]["campaigns"]] == stored
        # Five campaigns two at a time: three queries, the last one short.
        assert counts["campaigns.find"] == 3

    def test_is_audited(self, client, owner, auth_headers):
        response = client.get(EXPORT, headers=auth_headers)
        assert response.status_code == 200
        [entry] = audit_entries(client, auth_headers, action="tenant.exported")
        assert entry["actor"]["id"] == str(owner.id) and entry["actor"]["kind"] == "user"
        assert entry["targetType"] == "tenant" and entry["targetId"] == str(owner.tenant_id)
        assert entry["requestId"] == response.headers["X-Request-Id"]

    def test_another_tenants_owner_exports_only_their_own(
        self, client, tenant, auth_headers, other_tenant, other_owner, headers_for
    ):
        patch_settings(client, auth_headers, {"general": {"language": "de"}})
        body = client.get(EXPORT, headers=headers_for(other_owner)).json
        assert body["tenant"]["slug"] == "globex"
        assert [u["email"] for u in body["collections"]["users"]] == [other_owner.email]
        assert str(tenant.id) not in json.dumps(body)
        hinted = client.get(EXPORT, headers={**headers_for(other_owner), "X-Tenant-Id": "acme"})
        assert hinted.status_code == 403 and error_code(hinted) == "tenant_mismatch"


# -- GDPR erasure -------------------------------------------------------------------------------------


JANE = "jane.doe@example.com"


class TestErasure:
    @pytest.fixture
    def jane(self, client, tenant, auth_headers, superadmin_headers):
        """A member who logged in, was renamed, promoted, acted as admin and was impersonated."""
        user = add_user(client, auth_headers, JANE, name="Jane Doe")
        assert login(client, JANE).status_code == 200
        renamed = client.patch(f"{USERS}/{user['id']}", headers=auth_headers, json={"name": "Jane Q. Doe"})
        assert renamed.status_code == 200
        promoted = client.patch(f"{USERS}/{user['id']}", headers=auth_headers, json={"role": "admin"})
        assert promoted.status_code == 200
        own_token = login(client, JANE).json["accessToken"]
        assert patch_settings(client, bearer(own_token), {"general": {"language": "de"}}).status_code == 200
        impersonation_headers(client, superadmin_headers, tenant, user_id=user["id"])
        return SimpleNamespace(id=user["id"], token=own_token)

    @pytest.fixture
    def other_jane(self, client, other_tenant, other_owner, headers_for, superadmin_headers):
        """Someone with the same email and name in another tenant, with a trail of their own."""
        headers = headers_for(other_owner)
        user = add_user(client, headers, JANE, name="Jane Doe")
        assert login(client, JANE, tenant="globex").status_code == 200
        client.patch(f"{USERS}/{user['id']}", headers=headers, json={"role": "admin"})
        impersonation_headers(client, superadmin_headers, other_tenant, user_id=user["id"])
        populate(client, headers, other_tenant, bot_id=333333333)
        return user

    def erase(self, client, headers, user_id):
        return client.delete(f"{USERS}/{user_id}", headers=headers, query_string={"erase": "true"})

    def test_personal_data_is_gone(self, client, tenant, auth_headers, jane):
        seats = used_users(client, auth_headers)
        with tenant_scope(tenant):
            User.objects(id=jane.id).update_one(
                set__sso_issuer="https://idp.example.com", set__sso_subject="jd"
            )
        response = self.erase(client, auth_headers, jane.id)
        assert response.status_code == 204
        with tenant_scope(tenant):
            stored = User.objects.get(id=jane.id).to_mongo().to_dict()
        dump = json.dumps(stored, default=str)
        assert JANE not in dump and "Jane" not in dump
        assert stored["email"] != JANE and stored["name"] not in ("Jane Doe", "Jane Q. Doe")
        assert "passwordHash" not in stored and "ssoIssuer" not in stored and "ssoSubject" not in stored
        assert stored.get("erasedAt") is not None
        assert EmailDirectory.objects(email=JANE, tenant_id=tenant.id).count() == 0
        assert used_users(client, auth_headers) == seats - 1

    def test_the_user_is_gone_from_the_api(self, client, auth_headers, jane):
        assert self.erase(client, auth_headers, jane.id).status_code == 204
        refused = login(client, JANE)
        assert refused.status_code == 401 and error_code(refused) == "invalid_credentials"
        assert login(client, JANE, tenant=None).status_code == 401
        assert client.get(CURRENT, headers=bearer(jane.token)).status_code == 401
        gone = client.get(f"{USERS}/{jane.id}", headers=auth_headers)
        assert gone.status_code == 404 and error_code(gone) == "not_found"
        listed = client.get(USERS, headers=auth_headers, query_string={"perPage": 100}).json
        assert jane.id not in [u["id"] for u in listed["items"]]
        assert listed["total"] == len(listed["items"]) == 1
        assert client.patch(f"{USERS}/{jane.id}", headers=auth_headers, json={"name": "X"}).status_code == 404
        # The address is free again: the person may be invited anew.
        assert add_user(client, auth_headers, JANE, name="Jane Doe")["id"] != jane.id

    def test_audit_entries_keep_a_pseudonym(self, client, tenant, auth_headers, superadmin_headers, jane):
        named = {e["id"] for e in audit_entries(client, auth_headers) if jane.id in json.dumps(e)}
        assert self.erase(client, auth_headers, jane.id).status_code == 204
        with tenant_scope(tenant):
            pseudonym = pseudonym_of(User.objects.get(id=jane.id))
        entries = audit_entries(client, auth_headers)
        platform = platform_entries(client, superadmin_headers, tenant="acme")
        for text in (json.dumps(entries), json.dumps(platform)):
            # (Her earlier name is the subject of test_an_earlier_name_is_erased_too.)
            for personal in (JANE, "jane.doe", "Jane Q. Doe"):
                assert personal not in text
        # The entries are kept (the trail stays whole), naming the pseudonym instead.
        assert named <= {e["id"] for e in entries}
        logins = [e for e in entries if e["action"] == "auth.login" and e["targetId"] == jane.id]
        assert len(logins) == 2
        [role_change] = [e for e in entries if e["action"] == "user.role_changed"]
        assert role_change["targetId"] == jane.id
        as_actor = [e for e in entries if e["actor"]["id"] == jane.id]
        assert as_actor and {e["actor"]["label"] for e in as_actor} == {pseudonym}
        [started] = [e for e in platform if e["action"] == "impersonation.started"]
        assert started["summary"]["userEmail"] != JANE and pseudonym in started["summary"]["userEmail"]
        [erased] = [e for e in entries if e["action"] == "user.erased"]
        assert erased["targetId"] == jane.id and erased["summary"]["pseudonym"] == pseudonym

    def test_an_earlier_name_is_erased_too(self, client, auth_headers, jane):
        # She was "Jane Doe" before she was renamed "Jane Q. Doe": the rename's entry names both.
        assert self.erase(client, auth_headers, jane.id).status_code == 204
        [renamed] = [
            e for e in audit_entries(client, auth_headers, action="user.updated") if e["targetId"] == jane.id
        ]
        assert "Jane" not in json.dumps(renamed)
        assert "Jane Doe" not in json.dumps(audit_entries(client, auth_headers))

    def test_the_tenant_shows_the_refunded_seat(self, client, auth_headers, jane):
        before = client.get(CURRENT, headers=auth_headers).json["usage"]["users"]
        assert before == used_users(client, auth_headers) == 2
        assert self.erase(client, auth_headers, jane.id).status_code == 204
        assert used_users(client, auth_headers) == 1
        assert client.get(CURRENT, headers=auth_headers).json["usage"]["users"] == 1

    def test_erasing_again_changes_nothing(self, client, tenant, auth_headers, jane):
        assert self.erase(client, auth_headers, jane.id).status_code == 204
        with tenant_scope(tenant):
            user = User.objects.get(id=jane.id).to_mongo().to_dict()
        entries = audit_entries(client, auth_headers)
        seats = used_users(client, auth_headers)
        assert self.erase(client, auth_headers, jane.id).status_code == 204
        with tenant_scope(tenant):
            assert User.objects.get(id=jane.id).to_mongo().to_dict() == user
        assert audit_entries(client, auth_headers) == entries
        assert used_users(client, auth_headers) == seats

    def test_the_only_owner_cannot_be_erased(self, client, tenant, owner, auth_headers):
        response = self.erase(client, auth_headers, owner.id)
        assert response.status_code == 409 and error_code(response) == "conflict"
        assert client.get(f"{USERS}/{owner.id}", headers=auth_headers).json["email"] == owner.email
        assert login(client, owner.email).status_code == 200

    def test_a_member_cannot_erase(self, client, tenant, make_user, headers_for, jane):
        response = self.erase(client, headers_for(make_user(tenant, "member")), jane.id)
        assert response.status_code == 403
        with tenant_scope(tenant):
            assert User.objects.get(id=jane.id).email == JANE

    def test_another_tenants_user_is_a_404(self, client, other_tenant, auth_headers, other_jane):
        before = all_tenant_documents(other_tenant)
        response = self.erase(client, auth_headers, other_jane["id"])
        assert response.status_code == 404
        assert all_tenant_documents(other_tenant) == before

    def test_other_tenants_are_untouched(self, client, tenant, other_tenant, auth_headers, jane, other_jane):
        before = all_tenant_documents(other_tenant)
        global_before = global_documents_of(other_tenant)
        assert sum(len(docs) for docs in before.values()) > 20
        assert self.erase(client, auth_headers, jane.id).status_code == 204
        assert all_tenant_documents(other_tenant) == before
        assert global_documents_of(other_tenant) == global_before
        # The namesake in the other tenant still signs in, with the same email.
        assert login(client, JANE, tenant="globex").status_code == 200
        assert login(client, JANE, tenant=None).json["tenant"]["slug"] == "globex"


# -- two-factor authentication ------------------------------------------------------------------------


class TestTwoFactor:
    @pytest.fixture
    def required(self, client, owner, auth_headers, headers_for):
        """The tenant requires 2FA, turned on by its owner, who enrolled first."""
        enrol(client, auth_headers)
        owner_headers = headers_for(owner, methods=(tokens.PASSWORD, tokens.ONE_TIME_CODE))
        response = patch_settings(client, owner_headers, {"security": {"require2fa": True}})
        assert response.status_code == 200 and response.json["settings"]["security"]["require2fa"] is True
        return owner_headers

    def test_enrollment_then_login_with_codes(self, client, tenant, make_user, required):
        user = make_user(tenant, "member")
        refused = login(client, user.email)
        assert refused.status_code == 403 and error_code(refused) == "two_factor_enrollment_required"
        assert "accessToken" not in refused.json
        enrolment = bearer(refused.json["error"]["details"]["enrollmentToken"])

        for method, path in (
            ("get", CURRENT),
            ("get", f"{API}/auth/me"),
            ("get", AUDIT),
            ("post", f"{TWO_FA}/disable"),
        ):
            response = getattr(client, method)(
                path, headers=enrolment, **({"json": {"code": "123456"}} if method == "post" else {})
            )
            assert response.status_code == 401, path

        setup = client.post(f"{TWO_FA}/setup", headers=enrolment)
        assert setup.status_code == 200
        secret = setup.json["secret"]
        uri = setup.json["otpauthUri"]
        assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
        assert pyotp.parse_uri(uri).secret == secret
        bad = client.post(f"{TWO_FA}/enable", headers=enrolment, json={"code": wrong_code(secret)})
        assert bad.status_code == 422
        enabled = client.post(f"{TWO_FA}/enable", headers=enrolment, json={"code": pyotp.TOTP(secret).now()})
        assert enabled.status_code == 200
        codes = enabled.json["recoveryCodes"]
        assert len(codes) == 10 and len(set(codes)) == 10
        assert client.get(CURRENT, headers=enrolment).status_code == 401

        without = login(client, user.email)
        assert without.status_code == 401 and error_code(without) == "two_factor_required"
        wrong = login(client, user.email, code=wrong_code(secret))
        assert wrong.status_code == 401 and error_code(wrong) == "invalid_credentials"
        code = next_code(secret)
        accepted = login(client, user.email, code=code)
        assert accepted.status_code == 200, accepted.get_data(as_text=True)
        assert client.get(CURRENT, headers=bearer(accepted.json["accessToken"])).status_code == 200
        replay = login(client, user.email, code=code)
        assert replay.status_code == 401 and error_code(replay) == "invalid_credentials"
        wrong_password = login(client, user.email, password="not the password", code=next_code(secret))
        assert wrong_password.status_code == 401

    def test_a_recovery_code_works_once(self, client, tenant, make_user, headers_for, auth_headers):
        user = make_user(tenant, "member")
        _secret, codes = enrol(client, headers_for(user))
        assert login(client, user.email, code=codes[3]).status_code == 200
        again = login(client, user.email, code=codes[3])
        assert again.status_code == 401 and error_code(again) == "invalid_credentials"
        assert login(client, user.email, code=codes[4]).status_code == 200
        used = audit_entries(client, auth_headers, action="auth.recovery_code_used")
        assert [e["targetId"] for e in used] == [str(user.id), str(user.id)]
        assert codes[3] not in json.dumps(audit_entries(client, auth_headers))

    def test_a_user_without_2fa_logs_in_with_a_password_when_not_required(self, client, owner):
        assert login(client, owner.email).status_code == 200

    def test_disable_is_refused_while_required_and_works_otherwise(
        self, client, tenant, make_user, headers_for, request
    ):
        user = make_user(tenant, "member")
        secret, _codes = enrol(client, headers_for(user))
        headers = headers_for(user, methods=(tokens.PASSWORD, tokens.ONE_TIME_CODE))
        auth_headers = request.getfixturevalue("required")
        refused = client.post(f"{TWO_FA}/disable", headers=headers, json={"code": next_code(secret)})
        assert refused.status_code == 409
        assert login(client, user.email).status_code == 401  # still on

        assert patch_settings(client, auth_headers, {"security": {"require2fa": False}}).status_code == 200
        bad = client.post(f"{TWO_FA}/disable", headers=headers, json={"code": wrong_code(secret)})
        assert bad.status_code == 422
        assert error_code(login(client, user.email)) == "two_factor_required"
        disabled = client.post(f"{TWO_FA}/disable", headers=headers, json={"code": next_code(secret)})
        assert disabled.status_code == 204, disabled.get_data(as_text=True)
        assert login(client, user.email).status_code == 200

        actions = [e["action"] for e in audit_entries(client, auth_headers, actor=str(user.id))]
        assert {"auth.two_factor_enabled", "auth.two_factor_disabled"} <= set(actions)
        [on] = audit_entries(client, auth_headers, action="auth.two_factor_enabled", actor=str(user.id))
        [off] = audit_entries(client, auth_headers, action="auth.two_factor_disabled")
        assert on["targetId"] == off["targetId"] == str(user.id)
        assert secret not in json.dumps(audit_entries(client, auth_headers))

    def test_an_impersonation_token_cannot_touch_2fa(
        self, client, tenant, owner, superadmin_headers, headers_for
    ):
        secret, _codes = enrol(client, headers_for(owner))
        headers = impersonation_headers(client, superadmin_headers, tenant)
        for path, body in (
            ("setup", None),
            ("enable", {"code": "123456"}),
            ("disable", {"code": next_code(secret)}),
        ):
            response = client.post(f"{TWO_FA}/{path}", headers=headers, json=body)
            assert response.status_code == 403 and error_code(response) == "forbidden", path
        with tenant_scope(tenant):
            assert User.objects.get(id=owner.id).two_factor_enabled is True
