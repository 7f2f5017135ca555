"""Rate limits (docs/design.md "Quotas and metering" and "Errors"): apiCallsPerHour per tenant, read from
its plan and overrides, and a stricter limit on login attempts per client address and per email."""

from __future__ import annotations

import threading
import time

import pytest

from app import rate_windows
from app.tenancy.context import tenant_scope
from app.tenants.service import create_tenant
from app.users.service import create_user

from .conftest import PASSWORD
from .support import run_together, set_limits

CURRENT = "/api/v1/tenants/current"
USAGE = "/api/v1/tenants/current/usage"
LOGIN = "/api/v1/auth/login"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
OTHER_IP = {"REMOTE_ADDR": "10.0.0.7"}


# -- helpers -------------------------------------------------------------------------------------------


def assert_rate_limited(response, limit=None):
    """A 429 in the error envelope with Retry-After and every X-RateLimit header."""
    assert response.status_code == 429, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert isinstance(error["message"], str) and error["message"]
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1
    for name in RATE_HEADERS:
        assert response.headers.get(name, "").isdigit(), (name, dict(response.headers))
    assert response.headers["X-RateLimit-Remaining"] == "0"
    if limit is not None:
        assert response.headers["X-RateLimit-Limit"] == str(limit)


def assert_not_metered(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    for name in (*RATE_HEADERS, "Retry-After"):
        assert name not in response.headers, name


def remaining(response):
    return int(response.headers["X-RateLimit-Remaining"])


# -- apiCallsPerHour -----------------------------------------------------------------------------------


class TestApiCallsPerHour:
    def test_limit_is_enforced_with_headers(self, client, tenant, auth_headers):
        set_limits(tenant, apiCallsPerHour=3)
        responses = [client.get(CURRENT, headers=auth_headers) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert [r.headers["X-RateLimit-Limit"] for r in responses] == ["3", "3", "3"]
        assert [remaining(r) for r in responses] == [2, 1, 0]
        assert_rate_limited(client.get(CURRENT, headers=auth_headers), limit=3)

    def test_stays_limited_and_applies_to_every_route(self, client, tenant, auth_headers):
        set_limits(tenant, apiCallsPerHour=2)
        for _ in range(2):
            assert client.get(CURRENT, headers=auth_headers).status_code == 200
        assert_rate_limited(client.get(CURRENT, headers=auth_headers), limit=2)
        assert_rate_limited(client.get("/api/v1/auth/me", headers=auth_headers), limit=2)
        assert_rate_limited(client.get(USAGE, headers=auth_headers), limit=2)

    def test_the_tenant_is_counted_not_the_user(self, client, tenant, auth_headers, make_user, headers_for):
        set_limits(tenant, apiCallsPerHour=3)
        member_headers = headers_for(make_user(tenant, "member"))
        assert client.get(CURRENT, headers=auth_headers).status_code == 200
        assert client.get(CURRENT, headers=member_headers).status_code == 200
        assert client.get(CURRENT, headers=auth_headers).status_code == 200
        assert_rate_limited(client.get(CURRENT, headers=member_headers), limit=3)

    def test_api_key_calls_count_for_the_tenant(self, client, tenant, auth_headers):
        created = client.post("/api/v1/api-keys", json={"name": "ci"}, headers=auth_headers)
        assert created.status_code == 201
        set_limits(tenant, apiCallsPerHour=2)
        key_headers = {"X-API-Key": created.get_json()["key"]}
        assert client.get(CURRENT, headers=key_headers).status_code == 200
        assert client.get(CURRENT, headers=auth_headers).status_code == 200
        assert_rate_limited(client.get(CURRENT, headers=key_headers), limit=2)

    def test_another_tenant_is_counted_separately(
        self, client, tenant, other_tenant, auth_headers, other_owner, headers_for
    ):
        set_limits(tenant, apiCallsPerHour=3)
        set_limits(other_tenant, apiCallsPerHour=3)
        for _ in range(3):
            assert client.get(CURRENT, headers=auth_headers).status_code == 200
        assert_rate_limited(client.get(CURRENT, headers=auth_headers), limit=3)
        other_headers = headers_for(other_owner)
        response = client.get(CURRENT, headers=other_headers)
        assert response.status_code == 200
        assert response.get_json()["slug"] == other_tenant.slug
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert remaining(response) == 2

    def test_the_plan_value_applies_without_an_override(self, client, other_tenant, other_owner, headers_for):
        response = client.get(CURRENT, headers=headers_for(other_owner))
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "5000"  # the starter plan
        assert remaining(response) == 4999

    def test_usage_reports_the_calls_made(self, client, tenant, auth_headers):
        set_limits(tenant, apiCallsPerHour=50)
        for _ in range(4):
            assert client.get(CURRENT, headers=auth_headers).status_code == 200
        response = client.get(USAGE, headers=auth_headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        calls = response.get_json()["resources"]["apiCallsPerHour"]
        assert calls["limit"] == 50
        # The four calls and the usage request itself, which the response's headers count as well.
        assert calls["used"] == 5
        assert calls["used"] == 50 - remaining(response)
        assert calls["percent"] == pytest.approx(10.0)

    def test_usage_of_a_fresh_tenant_is_one_call(self, client, tenant, auth_headers):
        set_limits(tenant, apiCallsPerHour=10)
        calls = client.get(USAGE, headers=auth_headers).get_json()["resources"]["apiCallsPerHour"]
        assert calls["used"] == 1
        assert calls["limit"] == 10


class TestNotMetered:
    def test_unlimited_override_is_not_counted(self, client, tenant, auth_headers):
        set_limits(tenant, apiCallsPerHour=None)
        for _ in range(25):
            assert_not_metered(client.get(CURRENT, headers=auth_headers))
        calls = client.get(USAGE, headers=auth_headers).get_json()["resources"]["apiCallsPerHour"]
        assert calls["limit"] is None
        assert calls["percent"] is None

    def test_unlimited_plan_is_not_counted(self, client, make_user, headers_for):
        big = create_tenant("Big Co", "bigco", plan="enterprise")
        headers = headers_for(make_user(big, "owner"))
        for _ in range(25):
            assert_not_metered(client.get(CURRENT, headers=headers))

    def test_lifting_the_limit_lets_a_limited_tenant_through(self, client, tenant, auth_headers):
        set_limits(tenant, apiCallsPerHour=1)
        assert client.get(CURRENT, headers=auth_headers).status_code == 200
        assert_rate_limited(client.get(CURRENT, headers=auth_headers), limit=1)
        set_limits(tenant, apiCallsPerHour=None)
        assert_not_metered(client.get(CURRENT, headers=auth_headers))

    @pytest.mark.parametrize("path", ["/api/v1/plans", "/healthz"])
    def test_public_routes_without_tenant_are_not_counted(self, client, tenant, auth_headers, path):
        set_limits(tenant, apiCallsPerHour=3)
        for _ in range(25):
            assert_not_metered(client.get(path))
        first = client.get(CURRENT, headers=auth_headers)
        assert first.status_code == 200
        assert remaining(first) == 2


# -- login attempts ------------------------------------------------------------------------------------


@pytest.fixture
def login_app(app_factory):
    """An app with 3 login attempts per email and 5 per address a minute, and one tenant user."""
    app = app_factory(LOGIN_RATE_LIMIT_PER_EMAIL="3/minute", LOGIN_RATE_LIMIT_PER_IP="5/minute")
    with app.app_context():
        tenant = create_tenant("Acme Corp", "acme", plan="professional")
        with tenant_scope(tenant):
            create_user("owner@acme.example.com", "Owner", PASSWORD, "owner")
        yield app


@pytest.fixture
def login_client(login_app):
    return login_app.test_client()


EMAIL = "owner@acme.example.com"


def login(client, email=EMAIL, password="wrong password", environ=None):
    return client.post(LOGIN, json={"email": email, "password": password}, environ_base=environ or {})


def fail_logins(client, times, email=EMAIL, environ=None):
    """Make `times` failed logins, each refused as invalid credentials (not yet rate limited)."""
    for _ in range(times):
        response = login(client, email, environ=environ)
        assert response.status_code == 401, response.get_data(as_text=True)
        assert response.get_json()["error"]["code"] == "invalid_credentials"


class TestLoginAttempts:
    def test_correct_login_works(self, login_client):
        response = login(login_client, password=PASSWORD)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["accessToken"]

    def test_fourth_failure_for_one_email_is_429(self, login_client):
        fail_logins(login_client, 3)
        assert_rate_limited(login(login_client), limit=3)

    def test_the_email_is_counted_whatever_its_case(self, login_client):
        for email in (EMAIL, EMAIL.upper(), "Owner@Acme.Example.com"):
            fail_logins(login_client, 1, email=email)
        assert_rate_limited(login(login_client, email="owner@ACME.example.com"), limit=3)

    def test_the_email_is_counted_across_addresses(self, login_client):
        fail_logins(login_client, 3)
        assert_rate_limited(login(login_client, environ=OTHER_IP), limit=3)

    def test_a_correct_password_does_not_bypass_the_limit(self, login_client):
        fail_logins(login_client, 3)
        response = login(login_client, password=PASSWORD)
        assert_rate_limited(response, limit=3)
        assert "accessToken" not in response.get_json()

    def test_other_emails_from_one_address_are_limited_after_five(self, login_client):
        for number in range(5):
            fail_logins(login_client, 1, email=f"guess{number}@acme.example.com")
        assert_rate_limited(login(login_client, email="guess5@acme.example.com"), limit=5)
        # The user's own email has no failure of its own, but the address is spent.
        assert_rate_limited(login(login_client, password=PASSWORD), limit=5)

    def test_another_address_is_not_limited_by_the_first_ones_attempts(self, login_client):
        for number in range(5):
            fail_logins(login_client, 1, email=f"guess{number}@acme.example.com")
        assert_rate_limited(login(login_client, email="guess5@acme.example.com"), limit=5)
        fail_logins(login_client, 1, email="guess6@acme.example.com", environ=OTHER_IP)
        response = login(login_client, password=PASSWORD, environ=OTHER_IP)
        assert response.status_code == 200, response.get_data(as_text=True)

    def test_another_email_is_not_limited_by_one_emails_failures(self, login_client):
        fail_logins(login_client, 3, email="victim@acme.example.com", environ=OTHER_IP)
        assert_rate_limited(login(login_client, email="victim@acme.example.com", environ=OTHER_IP))
        response = login(login_client, password=PASSWORD)
        assert response.status_code == 200, response.get_data(as_text=True)

    def test_invalid_bodies_are_refused_before_counting(self, login_client):
        for _ in range(6):
            response = login_client.post(LOGIN, json={"email": "not an email", "password": "x"})
            assert response.status_code == 422
        assert login(login_client, password=PASSWORD).status_code == 200


def test_the_in_process_storage_survives_requests_at_the_same_moment(app, frequent_thread_switches):
    """limits' memory storage restarts its expiry timer on the first count after it stopped; two
    counts at once could both restart it ('threads can only be started once', a 500)."""
    from limits import storage as limits_storage

    memory = limits_storage.storage_from_string("memory://")
    assert isinstance(memory, rate_windows.MemoryStorage)
    barrier = threading.Barrier(8)
    failures = []

    def burst(index):
        for _ in range(150):
            barrier.wait()
            try:
                memory.incr(f"burst-{index % 2}", 60)
            except RuntimeError as exc:
                failures.append(exc)
            barrier.wait()
            if index == 0:
                time.sleep(0.015)  # the timer ends: the next burst restarts it

    run_together(8, burst)
    assert failures == []
    assert memory.get("burst-0") + memory.get("burst-1") == 8 * 150
