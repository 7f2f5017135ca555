"""Login as tenant: a superadmin acts as a tenant user, for 15 minutes at most, and on the record."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from bson import ObjectId
from flask_jwt_extended import decode_token

from app.audit.models import PlatformAuditLog
from app.auth import tokens
from app.tenancy.context import tenant_scope
from app.tenants.service import create_tenant
from app.users.models import PlatformUser, User
from app.users.service import create_superadmin, create_user

from .conftest import PASSWORD
from .support import all_tenant_documents, audit_entries, bearer, error_code, error_of, stored_document

API = "/api/v1"
TENANTS = f"{API}/tenants"
REASON = "Ticket #4711: campaign stuck in draft"
IMPERSONATION_MAX_SECONDS = 15 * 60


# -- helpers ----------------------------------------------------------------------------------------


def start(client, superadmin_headers, tenant, reason: str | None = REASON, user_id=None):
    """POST /tenants/{id}/impersonate and return the response."""
    body = {}
    if reason is not None:
        body["reason"] = reason
    if user_id is not None:
        body["userId"] = str(user_id)
    return client.post(f"{TENANTS}/{tenant.id}/impersonate", json=body, headers=superadmin_headers)


def impersonate(client, superadmin_headers, tenant, **kwargs) -> dict[str, str]:
    """Start an impersonation and return the headers that use its token."""
    response = start(client, superadmin_headers, tenant, **kwargs)
    assert response.status_code == 201, response.json
    return bearer(response.json["accessToken"])


def key_ids(client, headers) -> list[str]:
    """Return the ids of the tenant's API keys, as the owner sees them."""
    response = client.get(f"{API}/api-keys", headers=headers)
    assert response.status_code == 200, response.json
    return [key["id"] for key in response.json["items"]]


# -- starting an impersonation ---------------------------------------------------------------------


class TestStart:
    def test_default_user_is_the_owner(self, client, superadmin_headers, tenant, owner, make_user):
        make_user(tenant, "admin")
        response = start(client, superadmin_headers, tenant)
        assert response.status_code == 201, response.json
        body = response.json
        assert set(body) == {"accessToken", "expiresAt", "user"}
        assert body["user"]["id"] == str(owner.id)
        assert body["user"]["role"] == "owner"
        assert body["user"]["email"] == owner.email
        assert "passwordHash" not in body["user"]
        assert "refreshToken" not in body

    def test_a_given_user(self, app, client, superadmin_headers, tenant, owner, make_user):
        member = make_user(tenant, "member")
        response = start(client, superadmin_headers, tenant, user_id=member.id)
        assert response.status_code == 201, response.json
        assert response.json["user"]["id"] == str(member.id)
        assert response.json["user"]["role"] == "member"
        claims = decode_token(response.json["accessToken"])
        assert claims["sub"] == str(member.id)
        assert claims["role"] == "member"

    def test_a_user_of_another_tenant_is_404(self, client, superadmin_headers, tenant, owner, other_owner):
        response = start(client, superadmin_headers, tenant, user_id=other_owner.id)
        assert response.status_code == 404
        assert error_code(response) == "not_found"
        assert audit_entries(tenant, "impersonation.started") == []

    def test_an_unknown_user_is_404(self, client, superadmin_headers, tenant, owner):
        response = start(client, superadmin_headers, tenant, user_id=ObjectId())
        assert response.status_code == 404

    def test_an_unknown_tenant_is_404(self, client, superadmin_headers, tenant, owner):
        response = client.post(
            f"{TENANTS}/{ObjectId()}/impersonate", json={"reason": REASON}, headers=superadmin_headers
        )
        assert response.status_code == 404
        assert error_code(response) == "not_found"

    @pytest.mark.parametrize("reason", [None, "", "ok"])
    def test_a_reason_is_required(self, client, superadmin_headers, tenant, owner, reason):
        response = start(client, superadmin_headers, tenant, reason=reason)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"
        assert "reason" in response.json["error"]["details"]
        assert audit_entries(tenant, "impersonation.started") == []

    def test_unknown_fields_are_422(self, client, superadmin_headers, tenant, owner):
        response = client.post(
            f"{TENANTS}/{tenant.id}/impersonate",
            json={"reason": REASON, "ttl": 86400},
            headers=superadmin_headers,
        )
        assert response.status_code == 422

    def test_a_suspended_tenant_is_refused(self, client, superadmin_headers, tenant, owner):
        suspended = client.post(
            f"{TENANTS}/{tenant.id}/suspend", json={"reason": "Fraud review"}, headers=superadmin_headers
        )
        assert suspended.status_code == 200
        response = start(client, superadmin_headers, tenant)
        assert response.status_code == 403
        assert error_code(response) == "tenant_suspended"
        assert audit_entries(tenant, "impersonation.started") == []


# -- the token -------------------------------------------------------------------------------------


class TestToken:
    def test_claims(self, app, client, superadmin, superadmin_headers, tenant, owner):
        response = start(client, superadmin_headers, tenant)
        claims = decode_token(response.json["accessToken"])
        assert claims["act"]["sub"] == str(superadmin.id)
        assert claims["sub"] == str(owner.id)
        assert claims["tenantId"] == str(tenant.id)
        assert claims["type"] == "access"
        assert claims["role"] == "owner"
        assert claims["jti"]
        assert claims["exp"] - claims["iat"] <= IMPERSONATION_MAX_SECONDS
        expires_at = datetime.fromisoformat(response.json["expiresAt"].replace("Z", "+00:00"))
        assert int(expires_at.timestamp()) == claims["exp"]

    def test_lifetime_is_capped_when_access_tokens_live_longer(self, app_factory):
        app = app_factory(ACCESS_TOKEN_TTL=3600)
        with app.app_context():
            tenant = create_tenant("Long Lived", "long-lived", plan="professional")
            with tenant_scope(tenant):
                create_user("owner@long-lived.example.com", "Owner", PASSWORD, "owner")
            admin = create_superadmin("ops@platform.example.com", "Ops", PASSWORD)
            normal = tokens.issue(admin, [tokens.PASSWORD])["access_token"]
            normal_claims = decode_token(normal)
            # The override took effect: ordinary access tokens of this app live an hour.
            assert normal_claims["exp"] - normal_claims["iat"] == 3600

            response = app.test_client().post(
                f"{TENANTS}/{tenant.id}/impersonate", json={"reason": REASON}, headers=bearer(normal)
            )
            assert response.status_code == 201, response.json
            claims = decode_token(response.json["accessToken"])
            assert claims["act"]["sub"] == str(admin.id)
            assert 0 < claims["exp"] - claims["iat"] <= IMPERSONATION_MAX_SECONDS

    def test_the_token_works_as_the_user(self, client, superadmin_headers, tenant, owner):
        headers = impersonate(client, superadmin_headers, tenant)
        response = client.get(f"{TENANTS}/current", headers=headers)
        assert response.status_code == 200
        assert response.json["id"] == str(tenant.id)
        assert response.headers["X-Impersonating"] == "true"

    def test_every_response_is_flagged(self, client, superadmin_headers, tenant, owner):
        headers = impersonate(client, superadmin_headers, tenant)
        for method, path, body in [
            ("GET", "/auth/me", None),
            ("GET", "/tenants/current/usage", None),
            ("PATCH", "/tenants/current/settings", {"general": {"language": "de"}}),
            ("PATCH", "/tenants/current/settings", {"general": {"language": "not a language"}}),
            ("GET", "/tenants", None),
        ]:
            response = client.open(f"{API}{path}", method=method, json=body, headers=headers)
            assert response.headers.get("X-Impersonating") == "true", (method, path, response.status_code)

    def test_ordinary_responses_are_not_flagged(self, client, superadmin_headers, auth_headers, tenant):
        assert "X-Impersonating" not in client.get(f"{TENANTS}/current", headers=auth_headers).headers
        assert "X-Impersonating" not in client.get(f"{TENANTS}", headers=superadmin_headers).headers

    def test_me_shows_the_impersonator(self, client, superadmin, superadmin_headers, tenant, owner):
        headers = impersonate(client, superadmin_headers, tenant)
        response = client.get(f"{API}/auth/me", headers=headers)
        assert response.status_code == 200
        assert response.json["impersonator"] == {"id": str(superadmin.id), "email": superadmin.email}
        assert response.json["user"]["id"] == str(owner.id)
        assert response.json["tenant"]["id"] == str(tenant.id)

    def test_me_without_impersonation_shows_none(self, client, auth_headers):
        assert client.get(f"{API}/auth/me", headers=auth_headers).json["impersonator"] is None


# -- what the token may not do ---------------------------------------------------------------------

PLATFORM_ROUTES = [
    ("GET", "", None),
    ("GET", "/stats", None),
    ("GET", "/{id}", None),
    ("PATCH", "/{id}", {"plan": "enterprise"}),
    ("DELETE", "/{id}", None),
    ("POST", "/{id}/suspend", {"reason": "Just because"}),
    ("POST", "/{id}/activate", None),
]


class TestRestrictions:
    @pytest.mark.parametrize(("method", "path", "body"), PLATFORM_ROUTES)
    def test_superadmin_routes_are_403(self, client, superadmin_headers, tenant, owner, method, path, body):
        headers = impersonate(client, superadmin_headers, tenant)
        url = TENANTS + path.replace("{id}", str(tenant.id))
        response = client.open(url, method=method, json=body, headers=headers)
        assert response.status_code == 403
        assert error_code(response) == "forbidden"
        assert client.get(f"{TENANTS}/{tenant.id}", headers=superadmin_headers).json["plan"] == "professional"

    def test_cannot_impersonate_again(
        self, client, superadmin_headers, tenant, other_tenant, owner, other_owner
    ):
        headers = impersonate(client, superadmin_headers, tenant)
        for target in (tenant, other_tenant):
            response = client.post(
                f"{TENANTS}/{target.id}/impersonate", json={"reason": REASON}, headers=headers
            )
            assert response.status_code == 403
            assert error_code(response) == "forbidden"
        assert len(audit_entries(tenant, "impersonation.started")) == 1
        assert audit_entries(other_tenant, "impersonation.started") == []

    def test_cannot_create_api_keys(self, client, superadmin_headers, auth_headers, tenant, owner):
        headers = impersonate(client, superadmin_headers, tenant)
        response = client.post(f"{API}/api-keys", json={"name": "backdoor"}, headers=headers)
        assert response.status_code == 403
        assert error_code(response) == "forbidden"
        assert key_ids(client, auth_headers) == []

    def test_cannot_delete_api_keys(self, client, superadmin_headers, auth_headers, tenant, owner):
        created = client.post(f"{API}/api-keys", json={"name": "CI"}, headers=auth_headers)
        assert created.status_code == 201
        headers = impersonate(client, superadmin_headers, tenant)
        response = client.delete(f"{API}/api-keys/{created.json['id']}", headers=headers)
        assert response.status_code == 403
        assert error_code(response) == "forbidden"
        assert key_ids(client, auth_headers) == [created.json["id"]]

    def test_logout_revokes_the_token(self, client, superadmin_headers, tenant, owner):
        headers = impersonate(client, superadmin_headers, tenant)
        assert client.get(f"{TENANTS}/current", headers=headers).status_code == 200
        response = client.post(f"{API}/auth/logout", headers=headers)
        assert response.status_code == 204
        after = client.get(f"{TENANTS}/current", headers=headers)
        assert after.status_code == 401
        assert error_code(after) == "token_revoked"

    def test_logout_leaves_the_superadmins_own_token_alone(self, client, superadmin_headers, tenant, owner):
        headers = impersonate(client, superadmin_headers, tenant)
        client.post(f"{API}/auth/logout", headers=headers)
        assert client.get(TENANTS, headers=superadmin_headers).status_code == 200

    def test_deactivated_superadmin_makes_the_token_fail(
        self, client, superadmin, superadmin_headers, tenant, owner
    ):
        headers = impersonate(client, superadmin_headers, tenant)
        assert client.get(f"{TENANTS}/current", headers=headers).status_code == 200
        admin = PlatformUser.objects.get(id=superadmin.id)
        admin.active = False
        admin.save()
        response = client.get(f"{TENANTS}/current", headers=headers)
        assert response.status_code == 401
        assert error_code(response) == "unauthorized"

    def test_suspending_the_tenant_stops_a_running_impersonation(
        self, client, superadmin_headers, tenant, owner
    ):
        headers = impersonate(client, superadmin_headers, tenant)
        client.post(
            f"{TENANTS}/{tenant.id}/suspend", json={"reason": "Fraud review"}, headers=superadmin_headers
        )
        response = client.get(f"{TENANTS}/current", headers=headers)
        assert response.status_code == 403
        assert error_code(response) == "tenant_suspended"


# -- what it may not leave behind ----------------------------------------------------------------

USERS = f"{API}/users"
KEYS = f"{API}/api-keys"
TWO_FA = f"{API}/auth/2fa"


def user_url(user) -> str:
    return f"{USERS}/{user.id}"


def _ok(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)


NEW_USER = {"email": "support@acme.example.com", "name": "Support", "password": "chosen by support"}

# Every request that would leave a credential, or a right to act, behind an impersonation: (method,
# url, body) given the users and key the fixture below made.
REFUSED_WHILE_IMPERSONATING = {
    "create an owner": lambda a: ("POST", USERS, {**NEW_USER, "role": "owner"}),
    "create an admin": lambda a: ("POST", USERS, {**NEW_USER, "role": "admin"}),
    "create a member": lambda a: ("POST", USERS, {**NEW_USER, "role": "member"}),
    "promote to owner": lambda a: ("PATCH", user_url(a.member), {"role": "owner"}),
    "promote to admin": lambda a: ("PATCH", user_url(a.member), {"role": "admin"}),
    "demote an admin": lambda a: ("PATCH", user_url(a.admin), {"role": "member"}),
    "reactivate": lambda a: ("PATCH", user_url(a.inactive), {"active": True}),
    "deactivate": lambda a: ("PATCH", user_url(a.member), {"active": False}),
    "set a password": lambda a: ("PATCH", user_url(a.member), {"password": "chosen by support"}),
    "rename and set a password": lambda a: ("PATCH", user_url(a.admin), {"name": "A", "password": "x" * 12}),
    "create an api key": lambda a: ("POST", KEYS, {"name": "backdoor", "role": "admin"}),
    "delete an api key": lambda a: ("DELETE", f"{KEYS}/{a.key_id}", None),
    "start 2fa": lambda a: ("POST", f"{TWO_FA}/setup", None),
    "enable 2fa": lambda a: ("POST", f"{TWO_FA}/enable", {"code": "123456"}),
    "disable 2fa": lambda a: ("POST", f"{TWO_FA}/disable", {"code": "123456"}),
}


@pytest.fixture
def acting(client, tenant, owner, auth_headers, make_user, superadmin_headers):
    """An impersonation of the owner, and the users and key its requests aim at."""
    inactive = make_user(tenant, "member")
    _ok(client.patch(user_url(inactive), headers=auth_headers, json={"active": False}))
    key = client.post(KEYS, headers=auth_headers, json={"name": "ci"})
    _ok(key, 201)
    return SimpleNamespace(
        headers=impersonate(client, superadmin_headers, tenant),
        member=make_user(tenant, "member"),
        admin=make_user(tenant, "admin"),
        inactive=inactive,
        key_id=key.json["id"],
    )


def _accounts_and_keys(tenant) -> dict:
    documents = all_tenant_documents(tenant)
    return {name: documents[name] for name in ("users", "api_keys")}


class TestImpersonationLeavesNoCredentials:
    @pytest.mark.parametrize(
        "request_of", REFUSED_WHILE_IMPERSONATING.values(), ids=REFUSED_WHILE_IMPERSONATING.keys()
    )
    def test_refused_and_nothing_changes(self, client, tenant, acting, request_of):
        method, url, body = request_of(acting)
        before = _accounts_and_keys(tenant)
        response = client.open(url, method=method, json=body, headers=acting.headers)
        error = error_of(response, 403)
        assert error["code"] == "forbidden" and "impersonating" in error["message"]
        assert _accounts_and_keys(tenant) == before

    def test_the_owner_it_tried_to_make_cannot_sign_in_afterwards(self, client, acting):
        client.post(USERS, headers=acting.headers, json={**NEW_USER, "role": "owner"})
        _ok(client.post(f"{API}/auth/logout", headers=acting.headers), 204)
        body = {"email": NEW_USER["email"], "password": NEW_USER["password"]}
        refused = client.post(f"{API}/auth/login", json=body, headers={"X-Tenant-Id": "acme"})
        assert error_of(refused, 401)["code"] == "invalid_credentials"

    def test_the_superadmin_as_themselves_still_may(self, client, tenant, acting, superadmin_headers):
        """The rule is about acting as someone else: a superadmin's own requests are theirs, on record."""
        hinted = {**superadmin_headers, "X-Tenant-Id": "acme"}
        _ok(client.patch(user_url(acting.member), headers=hinted, json={"role": "admin"}))

    def test_other_changes_to_users_are_allowed(self, client, tenant, acting):
        _ok(client.patch(user_url(acting.member), headers=acting.headers, json={"name": "Renamed"}))
        assert stored_document(User, tenant, acting.member.id).name == "Renamed"


# -- the record ------------------------------------------------------------------------------------


class TestAudit:
    def test_start_is_recorded_with_reason_and_superadmin(
        self, client, superadmin, superadmin_headers, tenant, owner
    ):
        impersonate(client, superadmin_headers, tenant)
        [entry] = audit_entries(tenant, "impersonation.started")
        assert entry.summary["reason"] == REASON
        assert entry.actor.kind == "superadmin"
        assert entry.actor.id == str(superadmin.id)
        assert entry.target_id == str(owner.id)
        [platform_entry] = PlatformAuditLog.objects(action="impersonation.started", tenant_id=tenant.id)
        assert platform_entry.summary["reason"] == REASON
        assert platform_entry.actor.id == str(superadmin.id)

    def test_every_write_is_recorded(self, client, superadmin, superadmin_headers, tenant, owner):
        headers = impersonate(client, superadmin_headers, tenant)
        for timezone in ("Europe/Berlin", "Asia/Tokyo"):
            response = client.patch(
                f"{TENANTS}/current/settings", json={"general": {"timezone": timezone}}, headers=headers
            )
            assert response.status_code == 200, response.json
        writes = audit_entries(tenant, "impersonation.write")
        assert len(writes) == 2
        for entry in writes:
            assert entry.actor.impersonator_id == str(superadmin.id)
            assert entry.actor.id == str(owner.id)
            assert entry.summary["method"] == "PATCH"
            assert entry.target_id == "/api/v1/tenants/current/settings"
        [change] = audit_entries(tenant, "tenant.settings_updated")[:1]
        assert change.actor.impersonator_id == str(superadmin.id)

    def test_reads_are_not_recorded_as_writes(self, client, superadmin_headers, tenant, owner):
        headers = impersonate(client, superadmin_headers, tenant)
        for path in ("/tenants/current", "/tenants/current/usage", "/auth/me", "/api-keys"):
            assert client.get(f"{API}{path}", headers=headers).status_code == 200, path
        assert audit_entries(tenant, "impersonation.write") == []

    def test_the_users_own_writes_are_not_impersonation_writes(self, client, auth_headers, tenant):
        response = client.patch(
            f"{TENANTS}/current/settings",
            json={"general": {"timezone": "Europe/Paris"}},
            headers=auth_headers,
        )
        assert response.status_code == 200
        assert audit_entries(tenant, "impersonation.write") == []
        [change] = audit_entries(tenant, "tenant.settings_updated")
        assert change.actor.impersonator_id is None
