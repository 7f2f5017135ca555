"""Anonymous load: what a request without a valid credential may cost, counted in work, not time.

A tenant's apiCallsPerHour is spent only by its own credentials; requests without a valid one count per
client address; signups per address; a login costs one password check whatever the email; and the audit
entries anyone can cause are bounded per tenant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from app.audit import service as audit
from app.audit.models import AuditLog
from app.auth.models import SsoLoginState
from app.clock import utcnow
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.users.models import User

from .conftest import PASSWORD
from .support import bearer, set_limits

CURRENT = "/api/v1/tenants/current"
BRANDING = "/api/v1/tenants/branding"
LOGIN = "/api/v1/auth/login"
SIGNUP = "/api/v1/tenants/signup"
SSO_START = "/api/v1/auth/sso/start"
SSO_CALLBACK = "/api/v1/auth/sso/callback"
STYLESHEET = "/dashboard/tenant.css"


def address(number: int) -> dict:
    return {"REMOTE_ADDR": f"198.51.100.{number}"}


def assert_rate_limited(response):
    """A 429 in the error envelope, with Retry-After and the X-RateLimit headers."""
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Limit"].isdigit()


def remaining(response) -> int:
    return int(response.headers["X-RateLimit-Remaining"])


# Requests that name acme in every way a request can, without a credential of acme.
NAMING_ACME = [
    pytest.param({"path": BRANDING, "query_string": {"tenant": "acme"}}, id="param"),
    pytest.param({"path": BRANDING, "headers": {"X-Tenant-Id": "acme"}}, id="header"),
    pytest.param({"path": BRANDING, "headers": {"Host": "acme.localhost"}}, id="subdomain"),
    pytest.param({"path": STYLESHEET, "query_string": {"tenant": "acme"}}, id="stylesheet"),
    pytest.param({"path": STYLESHEET, "headers": {"Host": "acme.localhost"}}, id="stylesheet-host"),
    pytest.param({"path": SSO_START, "query_string": {"tenant": "acme"}}, id="sso-start"),
    pytest.param({"path": CURRENT, "headers": {"X-Tenant-Id": "acme"}}, id="tenant-route"),
    pytest.param(
        {"path": BRANDING, "headers": {"X-Tenant-Id": "acme", **bearer("not-a-token")}}, id="bad-token"
    ),
    pytest.param(
        {"path": BRANDING, "headers": {"X-Tenant-Id": "acme", "X-API-Key": "tmk_x_y"}}, id="bad-key"
    ),
]


class TestTenantBudget:
    @pytest.mark.parametrize("request_args", NAMING_ACME)
    def test_requests_naming_a_tenant_leave_its_budget_untouched(
        self, client, tenant, auth_headers, request_args
    ):
        set_limits(tenant, apiCallsPerHour=3)
        for number in range(40):
            response = client.get(**request_args, environ_base=address(number % 4))
            assert response.status_code != 429, response.json
        first = client.get(CURRENT, headers=auth_headers)
        assert first.status_code == 200 and remaining(first) == 2

    def test_anonymous_logins_and_signups_naming_it_spend_nothing(self, client, tenant, owner, auth_headers):
        set_limits(tenant, apiCallsPerHour=3)
        for number in range(5):
            body = {"email": owner.email, "password": "wrong password"}
            assert client.post(LOGIN, json=body, query_string={"tenant": "acme"}).status_code == 401
            signup = {"tenant": {"name": f"Shop {number}"}, "user": {"email": "x@y.example.com"}}
            assert client.post(SIGNUP, json=signup, headers={"X-Tenant-Id": "acme"}).status_code == 422
        assert remaining(client.get(CURRENT, headers=auth_headers)) == 2

    def test_another_tenants_credential_spends_nothing_of_it(
        self, client, tenant, other_tenant, auth_headers, other_headers
    ):
        set_limits(tenant, apiCallsPerHour=3)
        for _ in range(5):
            response = client.get(CURRENT, headers={**other_headers, "X-Tenant-Id": "acme"})
            assert response.status_code == 403 and response.json["error"]["code"] == "tenant_mismatch"
        assert remaining(client.get(CURRENT, headers=auth_headers)) == 2

    def test_a_superadmin_naming_it_spends_nothing(self, client, tenant, auth_headers, superadmin_headers):
        set_limits(tenant, apiCallsPerHour=3)
        for _ in range(5):
            assert (
                client.get(CURRENT, headers={**superadmin_headers, "X-Tenant-Id": "acme"}).status_code == 200
            )
        assert remaining(client.get(CURRENT, headers=auth_headers)) == 2

    def test_its_own_credentials_still_spend_it(self, client, tenant, auth_headers, member_headers):
        set_limits(tenant, apiCallsPerHour=3)
        assert client.get(CURRENT, headers=member_headers).status_code == 200
        assert client.get(BRANDING, headers=auth_headers).status_code == 200  # a public route, with a token
        assert client.get(CURRENT, headers=auth_headers).status_code == 200
        assert_rate_limited(client.get(CURRENT, headers=auth_headers))

    def test_usage_counts_only_its_own_calls(self, client, tenant, auth_headers):
        set_limits(tenant, apiCallsPerHour=50)
        for _ in range(10):
            assert client.get(BRANDING, query_string={"tenant": "acme"}).status_code == 200
        usage = client.get(f"{CURRENT}/usage", headers=auth_headers).json
        assert usage["resources"]["apiCallsPerHour"]["used"] == 1


class TestAnonymousLimitPerAddress:
    @pytest.fixture
    def settings(self):
        return {"ANONYMOUS_RATE_LIMIT_PER_IP": "5/minute"}

    def test_the_sixth_anonymous_request_of_an_address_is_429(self, client, tenant):
        for _ in range(5):
            assert client.get(BRANDING, query_string={"tenant": "acme"}).status_code == 200
        refused = client.get(BRANDING, query_string={"tenant": "acme"})
        assert_rate_limited(refused)
        assert refused.headers["X-RateLimit-Limit"] == "5"
        assert_rate_limited(client.get("/api/v1/plans"))
        assert_rate_limited(client.post(LOGIN, json={"email": "a@b.example.com", "password": "x"}))

    def test_every_kind_of_request_without_a_valid_credential_counts(self, client, tenant):
        kinds = [
            {"path": "/api/v1/plans"},
            {"path": CURRENT, "query_string": {"tenant": "acme"}},  # 401: a hint is no credential
            {"path": CURRENT, "headers": bearer("not-a-token")},  # 401
            {"path": CURRENT, "headers": {"X-API-Key": "tmk_x_y"}},  # 401
            {"path": BRANDING, "query_string": {"tenant": "nobody"}},  # 404
        ]
        for request_args in kinds:
            assert client.get(**request_args).status_code in (200, 401, 404)
        assert_rate_limited(client.get(BRANDING))

    def test_past_the_limit_nothing_is_looked_up(self, client, tenant, count_operations):
        for _ in range(5):
            client.get(BRANDING, query_string={"tenant": "nobody"})
        with count_operations() as operations:
            for number in range(20):
                assert_rate_limited(client.get(BRANDING, query_string={"tenant": f"unknown-{number}"}))
        assert operations["total"] == 0

    def test_other_addresses_and_valid_credentials_are_not_limited(self, client, tenant, auth_headers):
        for _ in range(6):
            client.get(BRANDING, query_string={"tenant": "acme"})
        assert_rate_limited(client.get(BRANDING, query_string={"tenant": "acme"}))
        assert (
            client.get(BRANDING, query_string={"tenant": "acme"}, environ_base=address(9)).status_code == 200
        )
        for _ in range(10):
            assert client.get(CURRENT, headers=auth_headers).status_code == 200

    def test_health_and_documentation_are_not_counted(self, client, tenant):
        for path in ["/healthz", "/api/v1/openapi.json", "/dashboard/login"] * 4:
            assert client.get(path).status_code == 200
        assert client.get(BRANDING).status_code == 200


class TestAnonymousLimitBehindProxies:
    @pytest.fixture
    def settings(self):
        return {"ANONYMOUS_RATE_LIMIT_PER_IP": "2/minute", "TRUSTED_PROXIES": 1}

    def test_the_forwarded_address_is_the_client(self, client, tenant):
        forwarded = {"X-Forwarded-For": "203.0.113.5"}
        for _ in range(2):
            assert client.get(BRANDING, headers=forwarded).status_code == 200
        assert_rate_limited(client.get(BRANDING, headers=forwarded))
        assert client.get(BRANDING, headers={"X-Forwarded-For": "203.0.113.6"}).status_code == 200


class TestAnonymousLimitWithoutProxies:
    @pytest.fixture
    def settings(self):
        return {"ANONYMOUS_RATE_LIMIT_PER_IP": "2/minute"}

    def test_a_forwarded_address_is_not_believed(self, client, tenant):
        for number in range(2):
            headers = {"X-Forwarded-For": f"203.0.113.{number}"}
            assert client.get(BRANDING, headers=headers).status_code == 200
        assert_rate_limited(client.get(BRANDING, headers={"X-Forwarded-For": "203.0.113.99"}))


def signup_body(number: int) -> dict:
    return {
        "tenant": {"name": f"Shop {number}"},
        "user": {"email": f"owner{number}@shop{number}.example.com", "password": PASSWORD, "name": "Owner"},
    }


class TestSignupLimit:
    @pytest.fixture
    def settings(self):
        return {"SIGNUP_RATE_LIMIT_PER_IP": "3/hour"}

    def test_the_fourth_signup_of_an_address_is_429_and_creates_nothing(self, client):
        for number in range(3):
            assert client.post(SIGNUP, json=signup_body(number)).status_code == 201
        assert_rate_limited(client.post(SIGNUP, json=signup_body(3)))
        assert Tenant.objects.count() == 3
        assert client.post(SIGNUP, json=signup_body(4), environ_base=address(1)).status_code == 201

    def test_a_credential_does_not_lift_it(self, client, auth_headers):
        for number in range(3):
            assert client.post(SIGNUP, json=signup_body(number), headers=auth_headers).status_code == 201
        assert_rate_limited(client.post(SIGNUP, json=signup_body(3), headers=auth_headers))

    def test_invalid_bodies_are_refused_before_counting(self, client):
        for _ in range(5):
            assert client.post(SIGNUP, json={"tenant": {}}).status_code == 422
        assert client.post(SIGNUP, json=signup_body(0)).status_code == 201

    def test_the_default_limit_stops_a_run_of_signups(self, app_factory):
        client = app_factory().test_client()
        statuses = [client.post(SIGNUP, json=signup_body(number)).status_code for number in range(60)]
        assert statuses.count(201) == 10 and statuses[10:] == [429] * 50


# -- password checks per login ------------------------------------------------------------------------


@pytest.fixture
def verifications(monkeypatch):
    """Count argon2 verifications (every password check of the service goes through PasswordHasher)."""
    counted = []
    verify = PasswordHasher.verify

    def counting(self, hash, password):
        counted.append(hash)
        return verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return counted


@pytest.fixture
def many_tenants(app, make_user):
    """shared@example.com is a user of twelve tenants, each with its own password."""
    tenants = [create_tenant(f"Tenant {number}", f"tenant-{number}") for number in range(12)]
    for number, tenant in enumerate(tenants):
        make_user(tenant, "owner", email="shared@example.com", password=f"password {number}")
    return tenants


def login(client, email, password, **kwargs):
    return client.post(LOGIN, json={"email": email, "password": password}, **kwargs)


class TestPasswordChecksPerLogin:
    @pytest.mark.parametrize(
        ("email", "password", "hint", "status"),
        [
            ("nobody@example.com", "password 0", None, 401),
            ("nobody@example.com", "password 0", "tenant-3", 401),
            ("shared@example.com", "wrong password", None, 401),
            ("shared@example.com", "password 0", None, 409),
            ("shared@example.com", "password 7", None, 401),  # right, but for another tenant
            ("shared@example.com", "password 7", "tenant-7", 200),
            ("shared@example.com", "password 0", "tenant-7", 401),
            ("single@example.com", PASSWORD, None, 200),
            ("single@example.com", "wrong password", None, 401),
            ("root@platform.example.com", PASSWORD, None, 200),
            ("root@platform.example.com", "wrong password", None, 401),
        ],
    )
    def test_one_check_per_login(
        self, client, many_tenants, make_user, superadmin, verifications, email, password, hint, status
    ):
        make_user(many_tenants[0], "member", email="single@example.com")
        response = login(client, email, password, query_string={"tenant": hint} if hint else {})
        assert response.status_code == status, response.json
        assert len(verifications) == 1

    def test_unknown_and_existing_emails_cost_the_same(self, client, many_tenants, verifications):
        costs = []
        for email in ("shared@example.com", "nobody@example.com", "shared@example.com"):
            verifications.clear()
            assert login(client, email, "wrong password").status_code == 401
            costs.append(len(verifications))
        assert costs == [1, 1, 1]

    def test_several_tenants_name_only_the_one_checked(self, client, many_tenants):
        response = login(client, "shared@example.com", "password 0")
        assert response.status_code == 409
        assert response.json["error"]["details"]["tenants"] == ["tenant-0"]


# -- audit entries anyone can cause -------------------------------------------------------------------


def entries(tenant, action) -> list[AuditLog]:
    with tenant_scope(tenant):
        return list(AuditLog.objects(action=action))


def issued_state(tenant) -> str:
    """A single sign-on login this service started for `tenant`, as its start keeps it."""
    state = SsoLoginState(
        state=f"state-{SsoLoginState.objects.count()}",
        tenant_id=tenant.id,
        nonce="nonce",
        code_verifier="verifier" * 8,
        redirect_uri="http://localhost/api/v1/auth/sso/callback",
        expires_at=utcnow() + timedelta(minutes=10),
    )
    return state.save(force_insert=True).state


class TestAnonymousAuditEntries:
    def test_one_refused_start_per_address_and_reason(self, client, tenant):
        for number in range(3):
            for _ in range(10):
                response = client.get(
                    SSO_START, query_string={"tenant": "acme"}, environ_base=address(number)
                )
                assert response.status_code == 404
        refused = entries(tenant, "auth.sso_refused")
        assert len(refused) == 3
        assert {entry.ip for entry in refused} == {f"198.51.100.{number}" for number in range(3)}
        assert {entry.summary["reason"] for entry in refused} == {"not_configured"}

    def test_callbacks_with_made_up_states_write_nothing(self, client, tenant):
        for number in range(20):
            query = {"state": f"made-up-{number}", "code": "x", "tenant": "acme"}
            response = client.get(SSO_CALLBACK, query_string=query, environ_base=address(number))
            assert response.status_code == 401
        assert entries(tenant, "auth.sso_refused") == []

    def test_callbacks_with_issued_states_are_bounded_too(self, client, tenant):
        for _ in range(10):
            query = {"state": issued_state(tenant), "error": "access_denied"}
            assert client.get(SSO_CALLBACK, query_string=query).status_code == 401
        refused = entries(tenant, "auth.sso_refused")
        assert [entry.summary["reason"] for entry in refused] == ["provider_error"]

    def test_a_tenant_takes_at_most_so_many_in_all(self, client, tenant, monkeypatch):
        monkeypatch.setattr(audit, "ANONYMOUS_ENTRIES", 5)
        for number in range(20):
            client.get(SSO_START, query_string={"tenant": "acme"}, environ_base=address(number))
        assert len(entries(tenant, "auth.sso_refused")) == 5

    def test_the_bound_is_per_tenant(self, client, tenant, other_tenant):
        for slug in ("acme", "globex", "acme", "globex"):
            client.get(SSO_START, query_string={"tenant": slug})
        assert len(entries(tenant, "auth.sso_refused")) == 1
        assert len(entries(other_tenant, "auth.sso_refused")) == 1

    def test_failed_logins_are_bounded_per_user_and_address(self, client, tenant, make_user):
        users = [make_user(tenant, "member") for _ in range(3)]
        for user in users:
            for number in range(2):
                for _ in range(4):
                    body = {"email": user.email, "password": "wrong password"}
                    response = client.post(
                        LOGIN, json=body, query_string={"tenant": "acme"}, environ_base=address(number)
                    )
                    assert response.status_code == 401
        failed = entries(tenant, "auth.login_failed")
        assert len(failed) == 6
        assert {(entry.target_id, entry.ip) for entry in failed} == {
            (str(user.id), f"198.51.100.{number}") for user in users for number in range(2)
        }
        with tenant_scope(tenant):
            assert User.objects.count() == 3
