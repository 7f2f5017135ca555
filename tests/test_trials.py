"""Plans a signup may choose, trials, the end of a trial, and what invoices make of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from app.errors import ValidationFailed
from app.tenancy.context import unscoped
from app.tenants.models import Tenant
from app.tenants.plans import PLANS, effective_features, effective_limits
from app.tenants.service import signup as signup_service
from app.users.models import EmailDirectory, User

SIGNED_UP_AT = datetime(2026, 11, 5, 9, 30, tzinfo=UTC)
TRIAL = timedelta(days=14)
OWNER = {"email": "bill@initech.example.com", "password": "tps reports 123", "name": "Bill"}


def sign_up(client, plan=None, slug="initech", **extra):
    body = {
        "tenant": {"name": "Initech", "slug": slug},
        "user": {**OWNER, "email": f"bill@{slug}.example.com"},
    }
    if plan is not None:
        body["plan"] = plan
    return client.post("/api/v1/tenants/signup", json={**body, **extra})


def nothing_created():
    with unscoped("test: a refused signup leaves nothing"):
        return (
            Tenant.objects.count() == 0 and User.objects.count() == 0 and EmailDirectory.objects.count() == 0
        )


class TestSignup:
    def test_free_needs_nothing_and_is_active(self, client):
        with time_machine.travel(SIGNED_UP_AT, tick=False):
            response = sign_up(client, "free")
        assert response.status_code == 201
        tenant = response.json["tenant"]
        assert tenant["plan"] == "free"
        assert tenant["billing"]["status"] == "active" and tenant["billing"]["trialEndsAt"] is None
        assert tenant["limits"] == PLANS["free"]["limits"]

    def test_no_plan_is_free(self, client):
        assert sign_up(client).json["tenant"]["plan"] == "free"

    @pytest.mark.parametrize("plan", ["starter", "professional"])
    def test_a_paid_plan_is_a_trial_with_its_limits_and_features(self, client, plan):
        with time_machine.travel(SIGNED_UP_AT, tick=False):
            response = sign_up(client, plan)
        assert response.status_code == 201
        body = response.json["tenant"]
        assert body["plan"] == plan
        assert body["limits"] == PLANS[plan]["limits"] and body["features"] == PLANS[plan]["features"]
        assert body["billing"]["status"] == "trialing"
        assert datetime.fromisoformat(body["billing"]["trialEndsAt"]) == SIGNED_UP_AT + TRIAL
        assert body["billing"]["priceCents"] == PLANS[plan]["price"]["amount"] * 100
        stored = Tenant.objects.get(slug="initech")
        assert stored.billing.status == "trialing" and stored.billing.trial_ends_at == SIGNED_UP_AT + TRIAL
        assert stored.billing.customer_ref is None
        assert effective_limits(stored.plan, stored.limits) == PLANS[plan]["limits"]

    def test_the_trial_lasts_trial_days(self, app_factory):
        client = app_factory(TRIAL_DAYS=30).test_client()
        with time_machine.travel(SIGNED_UP_AT, tick=False):
            body = sign_up(client, "starter").json
        assert datetime.fromisoformat(body["tenant"]["billing"]["trialEndsAt"]) == SIGNED_UP_AT + timedelta(
            days=30
        )

    @pytest.mark.parametrize("plan", ["enterprise", "Enterprise", "platinum", "", None])
    def test_enterprise_and_unknown_plans_are_refused_and_nothing_is_created(self, client, plan):
        response = client.post(
            "/api/v1/tenants/signup",
            json={"tenant": {"name": "Initech"}, "user": OWNER, "plan": plan},
        )
        assert response.status_code == 422
        assert response.json["error"]["code"] == "validation_error"
        assert "plan" in response.json["error"]["details"]
        assert nothing_created()

    def test_the_refusal_says_which_plans_a_signup_may_choose(self, client):
        [message] = sign_up(client, "enterprise").json["error"]["details"]["plan"]
        assert "free, starter, professional" in message and "platform" in message

    def test_the_service_refuses_enterprise_whoever_calls_it(self, app):
        with pytest.raises(ValidationFailed) as raised:
            signup_service({"name": "Initech"}, OWNER, "enterprise")
        assert "plan" in raised.value.details
        assert nothing_created()

    @pytest.mark.parametrize(
        "extra",
        [
            {"billing": {"status": "active"}},
            {"trialEndsAt": "2030-01-01T00:00:00Z"},
            {"limits": {"users": None}},
            {"features": {"whiteLabel": True}},
            {"priceCents": 0},
        ],
    )
    def test_billing_trial_limits_and_features_cannot_be_chosen(self, client, extra):
        response = sign_up(client, "starter", **extra)
        assert response.status_code == 422
        assert set(extra) <= set(response.json["error"]["details"])
        assert nothing_created()

    @pytest.mark.parametrize(
        "tenant_fields",
        [
            {"name": "Initech", "plan": "enterprise"},
            {"name": "Initech", "billing": {"status": "active"}},
            {"name": "Initech", "limits": {"users": None}},
        ],
    )
    def test_nor_through_the_tenant_group(self, client, tenant_fields):
        response = client.post(
            "/api/v1/tenants/signup", json={"tenant": tenant_fields, "user": OWNER, "plan": "starter"}
        )
        assert response.status_code == 422 and "tenant" in response.json["error"]["details"]
        assert nothing_created()

    def test_the_catalog_says_which_plans_are_self_service_and_their_trial(self, client):
        plans = {plan["id"]: plan for plan in client.get("/api/v1/plans").json["items"]}
        assert {name: plan["selfService"] for name, plan in plans.items()} == {
            "free": True,
            "starter": True,
            "professional": True,
            "enterprise": False,
        }
        assert {name: plan["trialDays"] for name, plan in plans.items()} == {
            "free": None,
            "starter": 14,
            "professional": 14,
            "enterprise": None,
        }
        assert effective_features("enterprise", {}) == plans["enterprise"]["features"]
