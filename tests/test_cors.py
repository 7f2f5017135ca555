"""Cross-origin requests to the API from the origins CORS_ORIGINS lists (app/cross_origin.py)."""

from __future__ import annotations

import pytest

import config
from app.audit.models import AuditLog
from app.tenancy.context import unscoped
from app.usage import rate_limits

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.com"


def preflight(client, path, origin=ALLOWED, method="GET", headers="authorization, x-tenant-id", **extra):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
            **extra,
        },
    )


def cors_headers(response):
    return {name for name, _value in response.headers.items() if name.lower().startswith("access-control-")}


class TestWithAnAllowedOrigin:
    @pytest.fixture
    def settings(self):
        return {"CORS_ORIGINS": [ALLOWED], "ANONYMOUS_RATE_LIMIT_PER_IP": "2/minute"}

    def test_a_preflight_to_an_authenticated_route_is_answered_with_the_headers(self, client, tenant):
        response = preflight(
            client,
            "/api/v1/campaigns",
            method="POST",
            headers="authorization, content-type, x-api-key, x-request-id, x-tenant-id, traceparent",
        )
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        allowed = {name.strip() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed == {
            "authorization",
            "content-type",
            "x-api-key",
            "x-request-id",
            "x-tenant-id",
            "traceparent",
        }
        assert response.headers["Access-Control-Max-Age"] == "600"
        assert "Access-Control-Allow-Credentials" not in response.headers

    def test_a_header_the_api_does_not_take_is_not_allowed(self, client):
        response = preflight(client, "/api/v1/plans", headers="x-something-else")
        assert "Access-Control-Allow-Headers" not in response.headers

    def test_a_preflight_from_another_origin_gets_no_cors_headers(self, client):
        response = preflight(client, "/api/v1/tenants/current", origin=OTHER)
        assert response.status_code == 200
        assert cors_headers(response) == set()

    def test_answers_expose_what_clients_read(self, client, auth_headers):
        response = client.get("/api/v1/tenants/current", headers={**auth_headers, "Origin": ALLOWED})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        exposed = {name.strip() for name in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"X-Request-Id", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"} <= exposed
        assert {"X-RateLimit-Reset", "X-Impersonating"} <= exposed

    def test_errors_are_readable_from_the_allowed_origin(self, client):
        response = client.get("/api/v1/tenants/current", headers={"Origin": ALLOWED})
        assert response.status_code == 401
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED

    def test_an_answer_to_another_origin_has_no_cors_headers(self, client, auth_headers):
        response = client.get("/api/v1/tenants/current", headers={**auth_headers, "Origin": OTHER})
        assert response.status_code == 200
        assert cors_headers(response) == set()

    def test_preflights_spend_no_rate_limit(self, app, client, tenant, auth_headers):
        for _ in range(5):
            assert preflight(client, "/api/v1/tenants/current").status_code == 200
            assert preflight(client, "/api/v1/tenants/current", **auth_headers).status_code == 200
        with app.app_context():
            assert rate_limits.api_calls_this_hour(tenant) == 0
        # The anonymous limit (2 a minute) is untouched: two anonymous requests still get their 401.
        for _ in range(2):
            assert client.get("/api/v1/tenants/current").status_code == 401
        assert client.get("/api/v1/tenants/current").status_code == 429

    def test_preflights_are_not_audited(self, app, client, tenant, other_tenant, auth_headers):
        # A request with the owner's token naming another tenant is an audited 403 tenant_mismatch.
        response = preflight(client, "/api/v1/tenants/current", **auth_headers, **{"X-Tenant-Id": "globex"})
        assert response.status_code == 200
        with app.app_context(), unscoped(reason="test: every tenant's audit log"):
            assert AuditLog.objects(action="auth.tenant_mismatch").count() == 0
        assert (
            client.get(
                "/api/v1/tenants/current", headers={**auth_headers, "X-Tenant-Id": "globex"}
            ).status_code
            == 403
        )
        with app.app_context(), unscoped(reason="test: every tenant's audit log"):
            assert AuditLog.objects(action="auth.tenant_mismatch").count() == 1

    def test_a_preflight_to_no_route_is_still_404(self, client):
        assert preflight(client, "/api/v1/nothing-here").status_code == 404


class TestByDefault:
    def test_no_origin_is_allowed(self, app, client, auth_headers):
        assert app.config["CORS_ORIGINS"] == []
        response = preflight(client, "/api/v1/tenants/current")
        assert response.status_code == 200
        assert cors_headers(response) == set()
        response = client.get("/api/v1/tenants/current", headers={**auth_headers, "Origin": ALLOWED})
        assert cors_headers(response) == set()


class TestAnyOrigin:
    @pytest.fixture
    def settings(self):
        return {"CORS_ORIGINS": ["*"]}

    def test_any_origin_is_allowed_and_answers_vary_by_it(self, client):
        response = preflight(client, "/api/v1/plans", origin=OTHER)
        assert response.headers["Access-Control-Allow-Origin"] == OTHER
        assert "Origin" in response.headers["Vary"]


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("", []),
        ("https://app.example.com", ["https://app.example.com"]),
        (
            " https://app.example.com/ , http://localhost:3000",
            ["https://app.example.com", "http://localhost:3000"],
        ),
        ("*", ["*"]),
    ],
)
def test_cors_origins_setting(raw, origins):
    assert config.load({"APP_ENV": "development", "CORS_ORIGINS": raw})["CORS_ORIGINS"] == origins


@pytest.mark.parametrize(
    "raw",
    ["app.example.com", "https://app.example.com/path", "ftp://app.example.com", "https://*.example.com"],
)
def test_cors_origins_must_be_origins(raw):
    with pytest.raises(config.ConfigError, match="CORS_ORIGINS"):
        config.load({"APP_ENV": "development", "CORS_ORIGINS": raw})
