"""The tenant's own routes: signup, current, settings, branding, usage."""

from __future__ import annotations

import pytest
from flask_jwt_extended import decode_token

from app.auth import tokens
from app.tenancy.context import tenant_scope, unscoped
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.users.models import EmailDirectory, User

from .support import enrol

SIGNUP = {
    "tenant": {"name": "Initech Industries"},
    "user": {"email": "Bill@Initech.example.com", "password": "tps reports 123", "name": "Bill"},
}


def signup(client, **changes):
    body = {**SIGNUP, **changes}
    return client.post("/api/v1/tenants/signup", json=body)


def stored_tenant(slug="acme"):
    return Tenant.objects.get(slug=slug)


class TestSignup:
    def test_first_signup_creates_the_first_tenant(self, client):
        assert Tenant.objects.count() == 0
        response = signup(client)
        assert response.status_code == 201
        body = response.json
        assert body["tenant"]["slug"] == "initech-industries"
        assert body["tenant"]["plan"] == "free"
        assert body["tenant"]["billing"]["status"] == "active"
        assert body["user"]["role"] == "owner" and body["user"]["email"] == "bill@initech.example.com"
        claims = decode_token(body["accessToken"])
        assert claims["tenantId"] == body["tenant"]["id"] and claims["role"] == "owner"
        assert (
            client.get(
                "/api/v1/tenants/current", headers={"Authorization": f"Bearer {body['accessToken']}"}
            ).json["usage"]["users"]
            == 1
        )
        assert EmailDirectory.objects(email="bill@initech.example.com").count() == 1

    def test_paid_plan_starts_a_14_day_trial(self, client):
        body = signup(client, plan="starter").json
        billing = body["tenant"]["billing"]
        assert billing["status"] == "trialing"
        tenant = stored_tenant("initech-industries")
        assert (tenant.billing.trial_ends_at - tenant.created_at).days in (13, 14)

    def test_taken_slug_is_409(self, client, tenant):
        response = signup(client, tenant={"name": "Acme Again", "slug": "acme"})
        assert response.status_code == 409 and response.json["error"]["code"] == "slug_taken"

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"tenant": {"name": "X Co", "slug": "www"}}, "slug"),
            ({"tenant": {"name": "X Co", "slug": "Bad_Slug"}}, "slug"),
            ({"user": {"email": "nope", "password": "long enough 1", "name": "A"}}, "user"),
            ({"user": {"email": "a@b.co", "password": "short", "name": "A"}}, "user"),
            ({"plan": "platinum"}, "plan"),
            ({"tenantId": "x"}, "tenantId"),
            ({"status": "active"}, "status"),
        ],
    )
    def test_bad_input_is_422_and_creates_nothing(self, client, changes, field):
        response = signup(client, **changes)
        assert response.status_code == 422
        assert field in response.json["error"]["details"]
        assert Tenant.objects.count() == 0

    def test_a_failure_after_the_tenant_was_created_leaves_nothing(self, client, monkeypatch):
        def fail(*args, **kwargs):
            raise RuntimeError("the database went away")

        monkeypatch.setattr("app.auth.signup.create_user", fail)
        client.application.config["PROPAGATE_EXCEPTIONS"] = False
        response = signup(client)
        assert response.status_code == 500
        assert Tenant.objects.count() == 0
        with unscoped("test: nothing of the failed signup remains"):
            assert User.objects.count() == 0


class TestCurrent:
    def test_every_role_reads_its_tenant(self, client, tenant, make_user, headers_for):
        for role in ("owner", "admin", "member"):
            body = client.get("/api/v1/tenants/current", headers=headers_for(make_user(tenant, role))).json
            assert body["slug"] == "acme"
            for group in ("id", "name", "domain", "status", "plan", "limits", "usage", "features"):
                assert group in body
            for group in ("settings", "branding", "compliance", "billing", "createdAt"):
                assert group in body
            assert body["limits"]["users"] == 100

    def test_effective_limits_apply_overrides(self, client, tenant, auth_headers):
        Tenant.objects(id=tenant.id).update(set__limits={"users": 7, "webhooks": None})
        from app.tenancy.cache import tenant_cache

        tenant_cache().clear()
        body = client.get("/api/v1/tenants/current", headers=auth_headers).json
        assert body["limits"]["users"] == 7 and body["limits"]["webhooks"] is None
        assert body["limitOverrides"] == {"users": 7, "webhooks": None}

    def test_it_shows_the_stored_tenant_whoever_changed_it(self, client, tenant, auth_headers):
        """Another worker's change (a raw write here) shows at once: the tenant is read every time, and
        the document built last time is reused only while the stored one is the same."""
        first = client.get("/api/v1/tenants/current", headers=auth_headers).json
        assert client.get("/api/v1/tenants/current", headers=auth_headers).json == first
        Tenant._get_collection().update_one(
            {"_id": tenant.id}, {"$set": {"usage.campaigns": 3, "name": "Acme Renamed"}}
        )
        body = client.get("/api/v1/tenants/current", headers=auth_headers).json
        assert body["usage"]["campaigns"] == 3 and body["name"] == "Acme Renamed"
        assert {k: v for k, v in body.items() if k not in ("usage", "name")} == {
            k: v for k, v in first.items() if k not in ("usage", "name")
        }


class TestSettings:
    def patch(self, client, headers, body):
        return client.patch("/api/v1/tenants/current/settings", headers=headers, json=body)

    def test_owner_and_admin_change_settings(self, client, tenant, make_user, headers_for):
        for role, language in (("owner", "de"), ("admin", "pt-BR")):
            response = self.patch(
                client, headers_for(make_user(tenant, role)), {"general": {"language": language}}
            )
            assert response.status_code == 200
            assert stored_tenant().settings.general.language == language

    def test_member_cannot(self, client, tenant, make_user, headers_for):
        response = self.patch(
            client, headers_for(make_user(tenant, "member")), {"general": {"language": "de"}}
        )
        assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"

    def test_groups_merge(self, client, auth_headers):
        self.patch(client, auth_headers, {"general": {"timezone": "Europe/Berlin"}})
        self.patch(
            client, auth_headers, {"general": {"currency": "EUR"}, "compliance": {"gdprEnabled": True}}
        )
        settings = stored_tenant().settings
        assert settings.general.timezone == "Europe/Berlin" and settings.general.currency == "EUR"
        assert settings.compliance.gdpr_enabled is True

    def test_all_groups(self, client, owner, auth_headers, headers_for):
        enrol(client, auth_headers)  # requiring 2FA takes an owner who has it
        auth_headers = headers_for(owner, methods=(tokens.PASSWORD, tokens.ONE_TIME_CODE))
        body = {
            "general": {"timezone": "America/New_York", "language": "en", "currency": "USD"},
            "security": {"require2fa": True, "ssoEnabled": False, "ipWhitelist": ["127.0.0.1", "10.0.0.0/8"]},
            "compliance": {"gdprEnabled": True, "dataRetentionDays": 90},
            "notifications": {"usageAlertThresholds": [100, 50, 80, 80]},
        }
        response = self.patch(client, auth_headers, body)
        assert response.status_code == 200
        settings = response.json["settings"]
        assert settings["security"]["ipWhitelist"] == ["127.0.0.1/32", "10.0.0.0/8"]
        assert settings["notifications"]["usageAlertThresholds"] == [50, 80, 100]
        assert response.json["compliance"] == {"gdprEnabled": True, "dataRetentionDays": 90}

    @pytest.mark.parametrize(
        ("body", "path"),
        [
            ({"general": {"timezone": "Mars/Olympus"}}, ("general", "timezone")),
            ({"general": {"currency": "XYZ"}}, ("general", "currency")),
            ({"general": {"currency": "usd"}}, ("general", "currency")),
            ({"general": {"language": "english"}}, ("general", "language")),
            ({"security": {"ipWhitelist": ["300.1.1.1"]}}, ("security", "ipWhitelist")),
            ({"security": {"ipWhitelist": "10.0.0.0/8"}}, ("security", "ipWhitelist")),
            ({"compliance": {"dataRetentionDays": 0}}, ("compliance", "dataRetentionDays")),
            ({"compliance": {"dataRetentionDays": 100000}}, ("compliance", "dataRetentionDays")),
            ({"notifications": {"usageAlertThresholds": [0]}}, ("notifications", "usageAlertThresholds")),
            ({"general": {"timezone": "UTC", "plan": "enterprise"}}, ("general", "plan")),
        ],
    )
    def test_bad_values_are_422_and_nothing_changes(self, client, auth_headers, body, path):
        before = stored_tenant().to_mongo().to_dict()
        response = self.patch(client, auth_headers, body)
        assert response.status_code == 422
        assert path[1] in response.json["error"]["details"][path[0]]
        assert stored_tenant().to_mongo().to_dict() == before

    @pytest.mark.parametrize(
        "field", ["tenantId", "plan", "limits", "usage", "status", "role", "features", "slug"]
    )
    def test_mass_assignment_is_refused(self, client, auth_headers, field):
        before = stored_tenant().to_mongo().to_dict()
        response = self.patch(
            client, auth_headers, {field: {"users": 1000} if field == "limits" else "enterprise"}
        )
        assert response.status_code == 422
        assert field in response.json["error"]["details"]
        assert stored_tenant().to_mongo().to_dict() == before

    def test_a_whitelist_that_locks_out_the_caller_is_refused(self, client, auth_headers):
        response = self.patch(client, auth_headers, {"security": {"ipWhitelist": ["203.0.113.0/24"]}})
        assert response.status_code == 422
        assert "ipWhitelist" in response.json["error"]["details"]["security"]
        assert stored_tenant().settings.security.ip_whitelist == []

    def test_the_whitelist_is_enforced(self, client, auth_headers):
        self.patch(client, auth_headers, {"security": {"ipWhitelist": ["127.0.0.1/32", "2001:db8::/32"]}})
        assert client.get("/api/v1/tenants/current", headers=auth_headers).status_code == 200
        outside = client.get(
            "/api/v1/tenants/current", headers=auth_headers, environ_base={"REMOTE_ADDR": "198.51.100.9"}
        )
        assert outside.status_code == 403 and outside.json["error"]["code"] == "ip_not_allowed"
        inside_v6 = client.get(
            "/api/v1/tenants/current", headers=auth_headers, environ_base={"REMOTE_ADDR": "2001:db8::1"}
        )
        assert inside_v6.status_code == 200

    def test_changes_are_audited(self, client, auth_headers, tenant):
        from app.audit.models import AuditLog

        self.patch(client, auth_headers, {"general": {"language": "fr"}})
        with tenant_scope(tenant):
            entry = AuditLog.objects.get(action="tenant.settings_updated")
        assert entry.summary == {"general": {"language": "fr"}}
        assert entry.actor.kind == "user" and entry.request_id


class TestBranding:
    def patch(self, client, headers, body):
        return client.patch("/api/v1/tenants/current/branding", headers=headers, json=body)

    def test_logo_and_colours(self, client, auth_headers):
        body = {
            "logoUrl": "https://cdn.acme.example.com/logo.png",
            "primaryColor": "#1A2B3C",
            "secondaryColor": "#fff",
        }
        response = self.patch(client, auth_headers, body)
        assert response.status_code == 200
        assert response.json["branding"]["primaryColor"] == "#1A2B3C"
        assert stored_tenant().branding.logo_url == body["logoUrl"]

    @pytest.mark.parametrize(
        "body",
        [
            {"logoUrl": "javascript:alert(1)"},
            {"logoUrl": "http://insecure.example.com/logo.png"},
            {"primaryColor": "red"},
            {"primaryColor": "#12345"},
            {"secondaryColor": "#ggg"},
        ],
    )
    def test_bad_values_are_422(self, client, auth_headers, body):
        assert self.patch(client, auth_headers, body).status_code == 422

    def test_custom_css_needs_white_label(self, client, auth_headers):
        for body in ({"customCss": "body { color: red; }"}, {"hidePoweredBy": True}):
            response = self.patch(client, auth_headers, body)
            assert response.status_code == 403 and response.json["error"]["code"] == "feature_not_available"
        assert stored_tenant().branding.custom_css is None

    @pytest.fixture
    def enterprise_headers(self, app, make_user, headers_for):
        enterprise = create_tenant("Big Corp", "bigcorp", plan="enterprise")
        return headers_for(make_user(enterprise, "owner"))

    def test_white_label_tenants_set_css(self, client, enterprise_headers):
        css = ".header { background: url('https://cdn.example.com/bg.png') #fff; } /* brand */"
        response = self.patch(client, enterprise_headers, {"customCss": css, "hidePoweredBy": True})
        assert response.status_code == 200
        assert stored_tenant("bigcorp").branding.custom_css == css

    @pytest.mark.parametrize(
        "css",
        [
            "</style><script>alert(1)</script>",
            "@import url('https://evil.example.com/x.css');",
            "@im/**/port 'x.css';",
            "body { background: url(javascript:alert(1)); }",
            "body { background: url('http://evil.example.com/track.png'); }",
            "body { width: expression(alert(1)); }",
            "body { behavior: url(x.htc); }",
            "body { -moz-binding: url(x.xml#xss); }",
            "body { background: url(\\6a avascript:alert(1)); }",
        ],
    )
    def test_dangerous_css_is_refused(self, client, enterprise_headers, css):
        response = self.patch(client, enterprise_headers, {"customCss": css})
        assert response.status_code == 422
        assert "customCss" in response.json["error"]["details"]
        assert stored_tenant("bigcorp").branding.custom_css is None


class TestUsage:
    def test_every_limit_with_used_limit_percent_and_the_period(
        self, client, auth_headers, tenant, make_user
    ):
        make_user(tenant, "member")
        body = client.get("/api/v1/tenants/current/usage", headers=auth_headers).json
        assert set(body["resources"]) == {
            "users",
            "campaigns",
            "messagesPerMonth",
            "telegramAccounts",
            "storage",
            "apiCallsPerHour",
            "webhooks",
        }
        assert body["resources"]["users"] == {"used": 2, "limit": 100, "percent": 2.0}
        start, end = body["period"]["start"], body["period"]["end"]
        assert start.endswith("-01T00:00:00+00:00") and end.endswith("-01T00:00:00+00:00") and start < end

    def test_unlimited_has_no_percent(self, client, app, make_user, headers_for):
        enterprise = create_tenant("Big Corp", "bigcorp", plan="enterprise")
        body = client.get(
            "/api/v1/tenants/current/usage", headers=headers_for(make_user(enterprise, "owner"))
        ).json
        assert body["resources"]["users"] == {"used": 1, "limit": None, "percent": None}
