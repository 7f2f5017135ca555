"""Every kind of answer carries the one policy of security headers (app/security_headers.py)."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from app import security_headers
from app.dashboard.views import PRODUCT_PAGES

from .support import file_part, multipart, register_probe

EVERY_ANSWER = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
NOTHING = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture
def probe(app_factory):
    app = app_factory(PROPAGATE_EXCEPTIONS=False)
    register_probe(app)
    return app.test_client()


def assert_policy(response, csp=NOTHING):
    for name, value in EVERY_ANSWER.items():
        assert response.headers.get(name) == value, name
    assert response.headers["Content-Security-Policy"] == csp
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP, and not production


def assert_page_policy(response):
    assert response.mimetype == "text/html"
    assert_policy(response, csp=security_headers.PAGE_CSP)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_an_authenticated_api_answer_is_not_stored(client, auth_headers):
    response = client.get("/api/v1/tenants/current", headers=auth_headers)
    assert response.status_code == 200
    assert_policy(response)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_public_api_answer(client):
    response = client.get("/api/v1/plans")
    assert response.status_code == 200
    assert_policy(response)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_401(client):
    response = client.get("/api/v1/tenants/current")
    assert response.status_code == 401
    assert_policy(response)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_404_error_envelope(probe):
    response = probe.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    assert_policy(response)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_500_error_envelope(probe):
    response = probe.get("/api/v1/probe/crash")
    assert response.status_code == 500 and response.json["error"]["code"] == "internal_error"
    assert_policy(response)
    assert response.headers["Cache-Control"] == "no-store"


def test_health_checks(client):
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200
        assert_policy(response)


def test_the_api_docs_page_has_no_inline_code(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert_page_policy(response)
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL)
    assert len(scripts) == 3
    assert all(' src="' in attributes and not body.strip() for attributes, body in scripts)
    assert " style=" not in page and "<style" not in page
    initializer = re.findall(r'<script src="([^"]+)"', page)[-1]
    with client.get(initializer) as script:
        assert script.status_code == 200 and "SwaggerUIBundle(config)" in script.get_data(as_text=True)
        assert_policy(script)


def test_the_api_docs_assets_keep_their_cache_policy(client):
    with client.get("/api/v1/docs/assets/swagger-ui.css") as response:
        assert response.status_code == 200
        assert_policy(response)
        assert "max-age=86400" in response.headers["Cache-Control"]


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/login",
        "/dashboard/sso",
        "/dashboard/tenant/settings",
        "/dashboard/tenants",
        *(f"/dashboard{path}" for _page, path in PRODUCT_PAGES),
    ],
)
def test_dashboard_pages(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert_page_policy(response)


def test_static_files(client):
    with client.get("/dashboard/static/dashboard/login.js") as response:
        assert response.status_code == 200
        assert_policy(response)
        assert "no-store" not in response.headers.get("Cache-Control", "")


def test_an_uploaded_html_file_is_no_page(client, auth_headers, tenant):
    upload = client.post(
        "/api/v1/media",
        headers=auth_headers,
        **multipart({"file": file_part(b"<script>alert(1)</script>", "page.html", "text/html")}),
    )
    assert upload.status_code == 201
    response = client.get(f"/api/v1/media/{upload.json['id']}/content", headers=auth_headers)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert_policy(response)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_preflight_is_no_page(client):
    response = client.options(
        "/api/v1/plans", headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    )
    assert response.status_code == 200
    assert_policy(response)


def test_a_header_a_view_sets_is_kept(client, tenant):
    response = client.get("/dashboard/tenant.css", headers={"X-Tenant-Id": "acme"})
    assert response.status_code == 200
    assert set(response.cache_control.keys()) == {"public", "no-cache"}


def bare_app(environment: str) -> Flask:
    app = Flask(__name__)
    app.config["APP_ENV"] = environment
    app.add_url_rule("/ping", "ping", lambda: {"status": "ok"})
    security_headers.init_app(app)
    return app


@pytest.mark.parametrize(
    ("environment", "scheme", "hsts"),
    [
        ("production", "https", security_headers.HSTS),
        ("production", "http", None),
        ("development", "https", None),
    ],
)
def test_hsts_only_over_https_in_production(environment, scheme, hsts):
    response = bare_app(environment).test_client().get("/ping", base_url=f"{scheme}://api.example.com")
    assert response.headers.get("Strict-Transport-Security") == hsts
