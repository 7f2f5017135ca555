"""The tenant registry: the Tenant document, slugs, uniqueness, and the plan catalog."""

from __future__ import annotations

import mongoengine as me
import pytest

from app.errors import Conflict, ValidationFailed
from app.tenants.models import Tenant
from app.tenants.plans import LIMIT_NAMES, PLANS, effective_features, effective_limits
from app.tenants.service import create_tenant
from app.tenants.slugs import slug_problem, slugify


@pytest.mark.parametrize("slug", ["acme", "acme-corp", "a1b", "x" * 63, "123"])
def test_valid_slugs(slug):
    assert slug_problem(slug) is None


@pytest.mark.parametrize(
    "slug",
    [
        "ab",
        "x" * 64,
        "Acme",
        "-acme",
        "acme-",
        "ac_me",
        "acme.corp",
        "acme\n",
        "xn--acme",
        "www",
        "api",
        "app",
        "admin",
        "dashboard",
        "static",
        "mail",
        "\u0430cme",  # Cyrillic a
        "\u212acme",  # Kelvin sign, which lower() turns into "k"
        "acm\u00e9",
        "",
    ],
)
def test_invalid_slugs(slug):
    assert slug_problem(slug) is not None


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme Corp", "acme-corp"),
        ("  Café Müller & Söhne ", "cafe-muller-sohne"),
        ("X", "x-org"),
        ("日本", "org"),
        ("ab--cd", "ab-cd"),
    ],
)
def test_slugify(name, slug):
    assert slugify(name) == slug
    assert slug_problem(slug) is None


class TestCreate:
    def test_slug_is_derived_from_the_name(self, app):
        assert create_tenant("Initech Industries").slug == "initech-industries"

    def test_duplicate_slug_is_409(self, app, tenant):
        with pytest.raises(Conflict) as raised:
            create_tenant("Another Acme", "acme")
        assert raised.value.code == "slug_taken"

    def test_reserved_slug_is_422(self, app):
        with pytest.raises(ValidationFailed) as raised:
            create_tenant("WWW", "www")
        assert "slug" in raised.value.details

    def test_the_configured_default_slug_is_allowed(self, app):
        assert create_tenant("Default", app.config["DEFAULT_TENANT_SLUG"]).slug == "default"

    def test_unknown_plan_is_422(self, app):
        with pytest.raises(ValidationFailed):
            create_tenant("Planless", plan="platinum")

    def test_unique_slug_index_holds_under_a_race(self, app, tenant):
        with pytest.raises(me.NotUniqueError):
            Tenant(name="Race", slug="acme").save()

    def test_custom_domain_is_unique_when_set(self, app, tenant, other_tenant):
        Tenant.objects(id=tenant.id).update(set__domain="acme.io")
        with pytest.raises(me.NotUniqueError):
            Tenant.objects(id=other_tenant.id).update(set__domain="acme.io")
        create_tenant("No Domain One", "no-domain-one")
        create_tenant("No Domain Two", "no-domain-two")

    def test_tenant_has_every_group_of_the_design(self, app, tenant):
        stored = Tenant.objects.get(id=tenant.id)
        for group in (
            "name",
            "slug",
            "domain",
            "status",
            "plan",
            "limits",
            "usage",
            "billing",
            "settings",
            "branding",
            "features",
            "created_at",
            "updated_at",
        ):
            assert group in stored._fields
        assert stored.settings.general.timezone == "UTC"
        assert stored.settings.notifications.usage_alert_thresholds == [80, 100]
        assert stored.settings.compliance.gdpr_enabled is False
        assert stored.created_at.tzinfo is not None


class TestPlans:
    def test_catalog_matches_the_contract(self):
        assert list(PLANS) == ["free", "starter", "professional", "enterprise"]
        assert PLANS["free"]["limits"]["users"] == 5
        assert PLANS["starter"]["limits"]["campaigns"] == 50
        assert PLANS["professional"]["limits"]["messagesPerMonth"] == 50_000
        assert PLANS["free"]["limits"]["webhooks"] == 0
        assert all(v is None for v in PLANS["enterprise"]["limits"].values())
        assert PLANS["starter"]["price"]["amount"] == 29
        assert PLANS["professional"]["features"]["customIntegrations"] is True
        assert PLANS["professional"]["features"]["whiteLabel"] is False
        assert PLANS["enterprise"]["features"]["whiteLabel"] is True
        for plan in PLANS.values():
            assert set(plan["limits"]) == set(LIMIT_NAMES)

    def test_overrides_win_and_null_is_unlimited(self):
        limits = effective_limits("free", {"users": 50, "campaigns": None, "bogus": 1})
        assert limits["users"] == 50
        assert limits["campaigns"] is None
        assert limits["messagesPerMonth"] == 1_000
        assert "bogus" not in limits

    def test_feature_overrides(self):
        features = effective_features("free", {"apiAccess": True, "basicAnalytics": False})
        assert features["apiAccess"] is True
        assert features["basicAnalytics"] is False
        assert features["whiteLabel"] is False

    def test_plans_route_is_public(self, client):
        response = client.get("/api/v1/plans")
        assert response.status_code == 200
        plans = {p["id"]: p for p in response.json["items"]}
        assert plans["enterprise"]["price"] is None
        assert plans["enterprise"]["limits"]["users"] is None
        assert plans["free"]["limits"]["storage"] == 100 * 1024 * 1024


def test_a_tenant_written_by_an_older_version_still_loads(app, tenant):
    Tenant._get_collection().update_one({"_id": tenant.id}, {"$set": {"pending": ["messages"]}})
    assert Tenant.objects.get(id=tenant.id).slug == tenant.slug
