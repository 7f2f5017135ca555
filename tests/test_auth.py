"""Login, tokens, refresh, logout, and the recheck of every token on every request."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token, decode_token

from app.audit.models import AuditLog
from app.auth import tokens
from app.auth.models import RevokedToken
from app.tenancy.context import tenant_scope, unscoped
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.users.models import User
from app.users.service import create_user

from .conftest import PASSWORD
from .support import bearer


def login(client, email, password=PASSWORD, **kwargs):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password}, **kwargs)


class TestLogin:
    def test_login_with_a_tenant_hint(self, client, owner):
        response = login(client, owner.email, headers={"X-Tenant-Id": "acme"})
        assert response.status_code == 200
        body = response.json
        assert set(body) == {"accessToken", "refreshToken", "user", "tenant"}
        assert body["user"]["email"] == owner.email and "passwordHash" not in body["user"]
        assert body["tenant"]["slug"] == "acme"

    def test_claims_and_algorithm(self, app, client, owner):
        token = login(client, owner.email).json["accessToken"]
        assert pyjwt.get_unverified_header(token)["alg"] == "HS256"
        claims = decode_token(token)
        assert claims["sub"] == str(owner.id) and isinstance(claims["sub"], str)
        assert claims["tenantId"] == str(owner.tenant_id)
        assert claims["role"] == "owner"
        assert claims["type"] == "access"
        assert claims["jti"]
        assert claims["exp"] - claims["iat"] == 900
        refresh = decode_token(login(client, owner.email).json["refreshToken"])
        assert refresh["type"] == "refresh"
        assert refresh["exp"] - refresh["iat"] == 30 * 86400

    def test_login_without_hint_finds_the_only_tenant(self, client, owner):
        response = login(client, owner.email)
        assert response.status_code == 200
        assert response.json["tenant"]["slug"] == "acme"

    def test_email_in_several_tenants_needs_a_tenant(self, client, tenant, other_tenant, make_user):
        make_user(tenant, email="shared@example.com")
        make_user(other_tenant, email="shared@example.com")
        response = login(client, "shared@example.com")
        assert response.status_code == 409
        assert response.json["error"]["code"] == "tenant_required"
        # Neither account signed in yet: the password was checked against the older one only.
        assert response.json["error"]["details"]["tenants"] == ["acme"]
        assert login(client, "shared@example.com", "wrong password").status_code == 401
        chosen = login(client, "shared@example.com", query_string={"tenant": "globex"})
        assert chosen.status_code == 200 and chosen.json["tenant"]["slug"] == "globex"
        # The account signed in with last is the one checked from now on.
        again = login(client, "shared@example.com")
        assert again.status_code == 409 and again.json["error"]["details"]["tenants"] == ["globex"]

    def test_without_a_hint_other_tenants_of_the_email_are_never_revealed(
        self, client, tenant, other_tenant, make_user
    ):
        make_user(tenant, email="shared@example.com", password="password of acme")
        make_user(other_tenant, email="shared@example.com", password="password of globex")
        named = login(client, "shared@example.com", "password of acme")
        assert named.status_code == 409 and named.json["error"]["details"]["tenants"] == ["acme"]
        # globex's password is right there, but only the account checked counts: the same answer as a
        # wrong password, which tells nothing about globex.
        other = login(client, "shared@example.com", "password of globex")
        unknown = login(client, "nobody@example.com", "password of globex")
        assert other.status_code == unknown.status_code == 401
        assert other.json == unknown.json
        hinted = login(client, "shared@example.com", "password of globex", query_string={"tenant": "globex"})
        assert hinted.status_code == 200

    def test_inactive_accounts_are_not_the_one_checked(self, client, tenant, other_tenant, make_user):
        make_user(tenant, email="shared@example.com")
        retired = make_user(other_tenant, email="shared@example.com")
        assert login(client, "shared@example.com", query_string={"tenant": "globex"}).status_code == 200
        with tenant_scope(other_tenant):
            User.objects(id=retired.id).update(set__active=False)
        response = login(client, "shared@example.com")
        assert response.status_code == 409 and response.json["error"]["details"]["tenants"] == ["acme"]

    def test_failures_look_the_same(self, client, owner):
        unknown = login(client, "nobody@example.com")
        wrong = login(client, owner.email, "wrong password")
        assert unknown.status_code == wrong.status_code == 401
        assert unknown.json == wrong.json
        assert wrong.json["error"]["code"] == "invalid_credentials"

    def test_wrong_tenant_hint_looks_the_same(self, client, owner, other_tenant):
        response = login(client, owner.email, headers={"X-Tenant-Id": "globex"})
        assert response.status_code == 401
        assert response.json["error"]["code"] == "invalid_credentials"

    def test_inactive_user_cannot_log_in(self, client, owner):
        with tenant_scope(Tenant.objects.get(id=owner.tenant_id)):
            User.objects(id=owner.id).update(set__active=False)
        assert login(client, owner.email).json["error"]["code"] == "invalid_credentials"

    def test_email_is_case_insensitive(self, client, owner):
        assert login(client, owner.email.upper()).status_code == 200

    def test_superadmin_logs_in_through_the_same_route(self, client, superadmin):
        response = login(client, superadmin.email)
        assert response.status_code == 200
        claims = decode_token(response.json["accessToken"])
        assert claims["role"] == "superadmin" and claims["tenantId"] is None
        assert response.json["tenant"] is None

    def test_suspended_tenant_cannot_log_in(self, client, owner, tenant):
        Tenant.objects(id=tenant.id).update(set__status="suspended")
        from app.tenancy.cache import tenant_cache

        tenant_cache().clear()
        assert login(client, owner.email).json["error"]["code"] == "tenant_suspended"
        hinted = login(client, owner.email, headers={"X-Tenant-Id": "acme"})
        assert hinted.json["error"]["code"] == "tenant_suspended"

    def test_logins_and_failures_are_audited(self, client, owner, tenant):
        login(client, owner.email, "wrong password")
        login(client, owner.email)
        with tenant_scope(tenant):
            actions = [entry.action for entry in AuditLog.objects.order_by("created_at")]
            stored = User.objects.get(id=owner.id)
        assert actions == ["auth.login_failed", "auth.login"]
        assert stored.last_login_at is not None

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "not-an-email", "password": "x"},
            {"email": "a@b.co"},
            {"email": {"$ne": None}, "password": "x"},
        ],
    )
    def test_malformed_logins_are_422(self, client, body):
        response = client.post("/api/v1/auth/login", json=body)
        assert response.status_code == 422
        assert response.json["error"]["code"] == "validation_error"


class TestRefreshAndLogout:
    def test_refresh_gives_a_new_access_token(self, client, owner):
        tokens = login(client, owner.email).json
        response = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refreshToken"]))
        assert response.status_code == 200
        new_access = response.json["accessToken"]
        assert client.get("/api/v1/tenants/current", headers=bearer(new_access)).status_code == 200

    def test_token_types_are_not_interchangeable(self, client, owner):
        tokens = login(client, owner.email).json
        as_access = client.get("/api/v1/tenants/current", headers=bearer(tokens["refreshToken"]))
        assert as_access.status_code == 401
        as_refresh = client.post("/api/v1/auth/refresh", headers=bearer(tokens["accessToken"]))
        assert as_refresh.status_code == 401

    def test_refresh_needs_a_token(self, client):
        assert client.post("/api/v1/auth/refresh").status_code == 401

    def test_logout_revokes_the_access_and_refresh_tokens(self, client, owner):
        tokens = login(client, owner.email).json
        response = client.post(
            "/api/v1/auth/logout",
            headers=bearer(tokens["accessToken"]),
            json={"refreshToken": tokens["refreshToken"]},
        )
        assert response.status_code == 204
        after = client.get("/api/v1/tenants/current", headers=bearer(tokens["accessToken"]))
        assert after.status_code == 401 and after.json["error"]["code"] == "token_revoked"
        refreshed = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refreshToken"]))
        assert refreshed.json["error"]["code"] == "token_revoked"

    def test_revocations_live_in_mongodb_until_expiry(self, client, owner):
        tokens = login(client, owner.email).json
        client.post("/api/v1/auth/logout", headers=bearer(tokens["accessToken"]))
        claims = decode_token(tokens["accessToken"])
        stored = RevokedToken.objects.get(jti=claims["jti"])
        assert int(stored.expires_at.timestamp()) == claims["exp"]
        ttl = [
            i
            for i in RevokedToken._get_collection().index_information().values()
            if "expireAfterSeconds" in i
        ]
        assert ttl and ttl[0]["key"] == [("expiresAt", 1)] and ttl[0]["expireAfterSeconds"] == 0

    def test_logout_refuses_someone_elses_refresh_token(self, client, owner, make_user, tenant):
        other = make_user(tenant, "member")
        mine = login(client, owner.email).json
        theirs = login(client, other.email).json
        response = client.post(
            "/api/v1/auth/logout",
            headers=bearer(mine["accessToken"]),
            json={"refreshToken": theirs["refreshToken"]},
        )
        assert response.status_code == 422
        assert client.post("/api/v1/auth/refresh", headers=bearer(theirs["refreshToken"])).status_code == 200


class TestEveryRequestRechecks:
    """A change made through the service counts on the next request; one made by another process (a
    raw write here) within AUTH_CACHE_TTL seconds, and at once with the cache off."""

    @pytest.fixture
    def member(self, tenant, make_user):
        return make_user(tenant, "member")

    @pytest.mark.parametrize(
        "change",
        [
            lambda client, user, headers: client.patch(
                f"/api/v1/users/{user.id}", headers=headers, json={"active": False}
            ),
            lambda client, user, headers: client.delete(f"/api/v1/users/{user.id}", headers=headers),
            lambda client, user, headers: client.delete(
                f"/api/v1/users/{user.id}?erase=true", headers=headers
            ),
        ],
        ids=["deactivated", "deleted", "erased"],
    )
    def test_a_removed_user_is_refused_at_once(self, client, member, headers_for, auth_headers, change):
        member_headers = headers_for(member)
        assert client.get("/api/v1/tenants/current", headers=member_headers).status_code == 200
        assert change(client, member, auth_headers).status_code in (200, 204)
        assert client.get("/api/v1/tenants/current", headers=member_headers).status_code == 401

    def test_suspended_tenant_is_refused_at_once(self, client, auth_headers, tenant):
        fresh = Tenant.objects.get(id=tenant.id)
        fresh.status = "suspended"
        fresh.save()
        response = client.get("/api/v1/tenants/current", headers=auth_headers)
        assert response.status_code == 403 and response.json["error"]["code"] == "tenant_suspended"

    def test_current_role_is_used(self, client, owner, tenant, make_user, headers_for, auth_headers):
        admin = make_user(tenant, "admin")
        patch = {"general": {"language": "de"}}
        url = "/api/v1/tenants/current/settings"
        assert client.patch(url, headers=headers_for(admin), json=patch).status_code == 200
        demoted = client.patch(f"/api/v1/users/{admin.id}", headers=auth_headers, json={"role": "member"})
        assert demoted.status_code == 200
        response = client.patch(url, headers=headers_for(admin), json=patch)
        assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"

    def test_a_token_of_a_user_moved_to_another_tenant_fails(self, app, client, owner, other_tenant):
        forged = create_access_token(
            identity=str(owner.id), additional_claims={"tenantId": str(other_tenant.id), "role": "owner"}
        )
        assert client.get("/api/v1/tenants/current", headers=bearer(forged)).status_code == 401

    @pytest.mark.parametrize("elsewhere", ["deactivated", "deleted", "revoked"])
    def test_a_change_made_elsewhere_counts_within_the_ttl(
        self, cache_clock, app, client, owner, auth_headers, tenant, elsewhere
    ):
        now = cache_clock
        assert client.get("/api/v1/tenants/current", headers=auth_headers).status_code == 200
        _change_elsewhere(elsewhere, owner, tenant, auth_headers)
        now[0] += app.config["AUTH_CACHE_TTL"] - 1
        assert client.get("/api/v1/tenants/current", headers=auth_headers).status_code == 200
        now[0] += 2
        assert client.get("/api/v1/tenants/current", headers=auth_headers).status_code == 401


class TestWithoutTheAuthCache:
    @pytest.fixture
    def settings(self):
        return {"AUTH_CACHE_TTL": 0}

    @pytest.mark.parametrize("elsewhere", ["deactivated", "deleted", "revoked"])
    def test_a_change_made_elsewhere_counts_at_once(self, client, owner, auth_headers, tenant, elsewhere):
        assert client.get("/api/v1/tenants/current", headers=auth_headers).status_code == 200
        _change_elsewhere(elsewhere, owner, tenant, auth_headers)
        assert client.get("/api/v1/tenants/current", headers=auth_headers).status_code == 401


def _change_elsewhere(change, user, tenant, headers):
    """What another process would do: write to the database without this process's invalidation."""
    with tenant_scope(tenant):
        users = User._get_collection()
        if change == "deactivated":
            users.update_one({"tenantId": tenant.id, "_id": user.id}, {"$set": {"active": False}})
        elif change == "deleted":
            users.delete_one({"tenantId": tenant.id, "_id": user.id})
        else:
            claims = decode_token(headers["Authorization"].split()[1])
            RevokedToken._get_collection().insert_one(
                {"jti": claims["jti"], "expiresAt": datetime.fromtimestamp(claims["exp"], UTC)}
            )


def _tamper(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


class TestForgedTokens:
    def _claims(self, owner):
        return {
            "sub": str(owner.id),
            "tenantId": str(owner.tenant_id),
            "role": "owner",
            "type": "access",
            "jti": "x",
        }

    def test_alg_none(self, client, owner):
        token = pyjwt.encode(self._claims(owner), key=None, algorithm="none")
        assert client.get("/api/v1/tenants/current", headers=bearer(token)).status_code == 401

    def test_wrong_key(self, client, owner):
        token = pyjwt.encode(self._claims(owner), "some-other-secret-key-of-32-bytes!!", algorithm="HS256")
        assert client.get("/api/v1/tenants/current", headers=bearer(token)).status_code == 401

    def test_other_algorithm_with_the_right_key(self, app, client, owner):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pyjwt.warnings.InsecureKeyLengthWarning)
            token = pyjwt.encode(self._claims(owner), app.config["JWT_SECRET_KEY"], algorithm="HS512")
        assert client.get("/api/v1/tenants/current", headers=bearer(token)).status_code == 401

    def test_tampered_claims(self, client, owner, other_tenant):
        token = login(client, owner.email).json["accessToken"]
        for changes in ({"tenantId": str(other_tenant.id)}, {"role": "superadmin", "tenantId": None}):
            response = client.get("/api/v1/tenants/current", headers=bearer(_tamper(token, **changes)))
            assert response.status_code == 401

    def test_expired(self, app, client, owner):
        token = create_access_token(
            identity=str(owner.id),
            additional_claims={"tenantId": str(owner.tenant_id), "role": "owner"},
            expires_delta=timedelta(seconds=-1),
        )
        response = client.get("/api/v1/tenants/current", headers=bearer(token))
        assert response.status_code == 401 and response.json["error"]["code"] == "token_expired"

    def test_a_token_verified_before_still_expires(self, client, owner, auth_headers, monkeypatch):
        assert client.get("/api/v1/tenants/current", headers=auth_headers).status_code == 200
        expiry = decode_token(auth_headers["Authorization"].split()[1])["exp"]
        monkeypatch.setattr("app.auth.tokens.time.time", lambda: expiry + 1)
        response = client.get("/api/v1/tenants/current", headers=auth_headers)
        assert response.status_code == 401 and response.json["error"]["code"] == "token_expired"

    def test_a_token_verified_by_one_app_is_checked_again_by_another(
        self, app_factory, client, owner, auth_headers
    ):
        assert client.get("/api/v1/tenants/current", headers=auth_headers).status_code == 200
        other = app_factory(JWT_SECRET_KEY="another-secret-key-of-at-least-32-characters")
        with other.app_context():
            response = other.test_client().get("/api/v1/tenants/current", headers=auth_headers)
        assert response.status_code == 401
        assert response.json["error"]["message"] == "The token is not valid"

    def test_the_tokens_used_last_stay_verified_at_the_bound(self, app_factory, monkeypatch):
        monkeypatch.setattr(tokens, "VERIFIED_TOKENS_MAX", 2)
        app = app_factory()
        verifications = []
        checked = tokens.decode_token
        monkeypatch.setattr(
            tokens, "decode_token", lambda token: verifications.append(token) or checked(token)
        )
        with app.app_context():
            tenant = create_tenant("Acme Corp", "acme")
            with tenant_scope(tenant):
                user = create_user("owner@acme.example.com", "Owner", PASSWORD, "owner")
            first, second, third = (tokens.issue(user, [tokens.PASSWORD])["access_token"] for _ in range(3))
            for token in (first, second, first, third, first, second):
                tokens.decode(token)
        assert verifications == [first, second, third, second]

    @pytest.mark.parametrize(
        "header", ["Bearer", "Bearer ", "Basic abc", "Token abc", "Bearer a.b.c", "Bearer ###"]
    )
    def test_garbage(self, client, owner, header):
        response = client.get("/api/v1/tenants/current", headers={"Authorization": header})
        assert response.status_code == 401
        assert set(response.json) == {"error"}


class TestMeAndHints:
    def test_me(self, client, owner, auth_headers):
        body = client.get("/api/v1/auth/me", headers=auth_headers).json
        assert body["user"]["id"] == str(owner.id)
        assert body["tenant"]["slug"] == "acme"
        assert body["impersonator"] is None
        assert body["credential"]["type"] == "access_token"

    def test_a_hint_naming_another_tenant_is_tenant_mismatch_and_audited(
        self, client, auth_headers, tenant, other_tenant
    ):
        for kwargs in (
            {"headers": {"X-Tenant-Id": "globex"}},
            {"query_string": {"tenant": str(other_tenant.id)}},
        ):
            kwargs.setdefault("headers", {}).update(auth_headers)
            response = client.get("/api/v1/tenants/current", **kwargs)
            assert response.status_code == 403 and response.json["error"]["code"] == "tenant_mismatch"
        with tenant_scope(tenant):
            assert AuditLog.objects(action="auth.tenant_mismatch").count() == 2
        with tenant_scope(other_tenant):
            assert AuditLog.objects.count() == 0

    def test_a_hint_naming_the_own_tenant_is_fine(self, client, auth_headers):
        headers = {**auth_headers, "X-Tenant-Id": "acme"}
        assert client.get("/api/v1/tenants/current", headers=headers).status_code == 200

    def test_superadmin_hint_selects_the_tenant(self, client, superadmin_headers, other_tenant):
        headers = {**superadmin_headers, "X-Tenant-Id": "globex"}
        assert client.get("/api/v1/tenants/current", headers=headers).json["slug"] == "globex"


def test_create_superadmin_command(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create-superadmin", "--email", "ops@example.com", "--password", "long enough pw"]
    )
    assert result.exit_code == 0, result.output
    from app.users.models import PlatformUser

    assert PlatformUser.objects.get(email="ops@example.com").password_hash.startswith("$argon2id$")
    again = runner.invoke(
        args=["users", "create-superadmin", "--email", "ops@example.com", "--password", "long enough pw"]
    )
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(
        args=["users", "create-superadmin", "--email", "x@example.com", "--password", "short"]
    )
    assert short.exit_code != 0
    with unscoped("test: superadmins are not tenant users"):
        assert User.objects(email="ops@example.com").count() == 0
