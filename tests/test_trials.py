"""Plans a signup may choose, trials, the end of a trial, and what invoices make of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from app.audit.models import PlatformAuditLog
from app.auth.signup import signup as signup_service
from app.billing.models import Invoice
from app.billing.trials import end_trial
from app.errors import ValidationFailed
from app.jobs import billing_overdue, monthly_close, trial_end
from app.tenancy.context import tenant_scope, unscoped
from app.tenants import admin
from app.tenants.models import Tenant
from app.tenants.plans import PLANS, effective_features, effective_limits
from app.tenants.service import create_tenant
from app.users.models import EmailDirectory, User
from app.webhooks.models import Webhook, WebhookDelivery

from .support import (
    assert_limit_exceeded,
    audit_entries,
    bot_token,
    create_bot,
    error_code,
    run_together,
    update_tenant,
)
from .test_billing import SECRET, post_event

SIGNED_UP_AT = datetime(2026, 11, 5, 9, 30, tzinfo=UTC)
TRIAL = timedelta(days=14)
OWNER = {"email": "bill@initech.example.com", "password": "tps reports 123", "name": "Bill"}

# A trial from 20 October to 3 November, and the closes of October, November and December.
OCTOBER_SIGNUP = datetime(2026, 10, 20, 9, 30, tzinfo=UTC)
TRIAL_ENDS = OCTOBER_SIGNUP + TRIAL
CLOSE = {
    "2026-10": datetime(2026, 11, 1, 0, 5, tzinfo=UTC),
    "2026-11": datetime(2026, 12, 1, 0, 5, tzinfo=UTC),
    "2026-12": datetime(2027, 1, 1, 0, 5, tzinfo=UTC),
}
MINUTE = timedelta(minutes=1)


@pytest.fixture
def settings():
    return {"STRIPE_WEBHOOK_SECRET": SECRET}


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


# -- helpers ---------------------------------------------------------------------------------------------


def trialing(client, plan="starter", slug="initech", at=OCTOBER_SIGNUP) -> Tenant:
    """A tenant signed up for a trial of `plan` at `at`, as stored."""
    with time_machine.travel(at, tick=False):
        assert sign_up(client, plan, slug=slug).status_code == 201
    return Tenant.objects.get(slug=slug)


def stored(tenant) -> Tenant:
    return Tenant.objects.get(id=tenant.id)


def owner_of(tenant) -> User:
    with tenant_scope(tenant):
        return User.objects.get(role="owner")


def invoice_of(tenant, period) -> Invoice:
    with tenant_scope(tenant):
        return Invoice.objects.get(period=period)


def close(month):
    monthly_close.run(now=CLOSE[month])


def checkout_completed(tenant_id, customer="cus_initech", event_id="evt_checkout"):
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": "cs_test_1",
                    "object": "checkout.session",
                    "mode": "subscription",
                    "status": "complete",
                    "customer": customer,
                    "metadata": {"tenantId": str(tenant_id)},
                }
            },
        }
    )


def subscribe(tenant, events=("trial.ended",)):
    with tenant_scope(tenant):
        Webhook(url="https://hooks.example.com/t", events=list(events), secret_encrypted="x").save()


def deliveries(tenant, event="trial.ended"):
    with tenant_scope(tenant):
        return list(WebhookDelivery.objects(event=event))


# -- invoices ----------------------------------------------------------------------------------------------

# November has 2,592,000 seconds; from the trial's end (3 November, 09:30) to its end, 2,385,000.
NOVEMBER_AFTER_TRIAL = 2_385_000 / 2_592_000


class TestInvoices:
    def test_a_trial_running_at_the_close_is_billed_nothing(self, client):
        tenant = trialing(client)
        close("2026-10")
        invoice = invoice_of(tenant, "2026-10")
        assert invoice.amount_cents == 0 and invoice.status == "paid"
        assert invoice.plan == "starter" and invoice.price_cents == 2900
        assert invoice.billed_from == datetime(2026, 11, 1, tzinfo=UTC)  # nothing of October is billed
        assert stored(tenant).billing.balance_cents == 0

    def test_a_trial_ended_unconverted_is_never_billed_even_when_the_job_is_late(self, client):
        tenant = trialing(client)
        close("2026-10")
        close("2026-11")  # the trial ended on 3 November, and the trial-end job has not run yet
        assert invoice_of(tenant, "2026-11").amount_cents == 0
        trial_end.run(now=CLOSE["2026-11"])
        close("2026-12")
        december = invoice_of(tenant, "2026-12")
        assert december.plan == "free" and december.amount_cents == 0 and december.status == "paid"
        assert billing_overdue.run(now=CLOSE["2026-12"] + timedelta(days=100))["suspended"] == 0

    def test_a_trial_that_ended_into_free_is_billed_nothing(self, client):
        tenant = trialing(client)
        trial_end.run(now=TRIAL_ENDS + MINUTE)
        close("2026-10")
        close("2026-11")
        assert [invoice_of(tenant, p).amount_cents for p in ("2026-10", "2026-11")] == [0, 0]
        assert invoice_of(tenant, "2026-11").plan == "free"

    def test_a_converted_trial_is_billed_pro_rata_from_its_end_then_in_full(self, client):
        tenant = trialing(client)
        assert post_event(client, checkout_completed(tenant.id)).json["applied"] is True
        for month in CLOSE:
            close(month)
        october, november, december = (invoice_of(tenant, month) for month in CLOSE)
        assert october.amount_cents == 0 and october.status == "paid"
        assert november.billed_from == TRIAL_ENDS
        assert november.amount_cents == int(2900 * NOVEMBER_AFTER_TRIAL) == 2668
        assert november.status == "open"
        assert december.amount_cents == 2900 and december.billed_from == datetime(2026, 12, 1, tzinfo=UTC)
        assert stored(tenant).billing.balance_cents == 2668 + 2900

    def test_a_trial_moved_to_another_plan_by_a_superadmin_is_billed_from_its_end(
        self, client, superadmin_headers
    ):
        tenant = trialing(client)
        response = client.patch(
            f"/api/v1/tenants/{tenant.id}", headers=superadmin_headers, json={"plan": "professional"}
        )
        assert response.status_code == 200 and response.json["billing"]["status"] == "active"
        close("2026-10")
        close("2026-11")
        assert invoice_of(tenant, "2026-10").amount_cents == 0
        assert invoice_of(tenant, "2026-11").amount_cents == int(9900 * NOVEMBER_AFTER_TRIAL) == 9109

    def test_a_tenant_without_a_trial_pays_the_whole_period(self, app):
        tenant = create_tenant("Globex", "globex", plan="starter")
        update_tenant(tenant, set__created_at=datetime(2026, 1, 1, tzinfo=UTC))
        close("2026-11")
        invoice = invoice_of(tenant, "2026-11")
        assert invoice.amount_cents == 2900 and invoice.billed_from == datetime(2026, 11, 1, tzinfo=UTC)

    def test_the_invoice_shows_its_price_and_billed_part(self, client, make_user, headers_for):
        tenant = trialing(client)
        post_event(client, checkout_completed(tenant.id))
        close("2026-11")
        [item] = client.get("/api/v1/billing/invoices", headers=headers_for(owner_of(tenant))).json["items"]
        assert item["priceCents"] == 2900 and item["amountCents"] == 2668
        assert datetime.fromisoformat(item["billedFrom"]) == TRIAL_ENDS


# -- the end of a trial --------------------------------------------------------------------------------


class TestTrialEnd:
    def test_an_unconverted_trial_moves_to_free_audited_and_emitted(self, client):
        tenant = trialing(client)
        subscribe(tenant)
        assert trial_end.run(now=TRIAL_ENDS + MINUTE) == {"ended": 1}
        after = stored(tenant)
        assert after.plan == "free" and after.billing.status == "active" and after.status == "active"
        assert after.billing.trial_ends_at == TRIAL_ENDS  # kept: the dashboard says when it ended
        assert effective_limits(after.plan, after.limits) == PLANS["free"]["limits"]
        summary = {"from": "starter", "to": "free", "trialEndedAt": TRIAL_ENDS.isoformat()}
        [entry] = audit_entries(tenant, "trial.ended")
        assert entry.actor.kind == "system" and entry.summary == summary
        [platform] = PlatformAuditLog.objects(tenant_id=tenant.id, action="trial.ended")
        assert platform.summary == summary and platform.tenant_slug == "initech"
        [delivery] = deliveries(tenant)
        assert delivery.payload["data"] == {
            "tenantId": str(tenant.id),
            "previousPlan": "starter",
            "plan": "free",
            "trialEndedAt": TRIAL_ENDS.isoformat(),
        }

    def test_the_api_shows_the_free_plan_at_once(self, client, headers_for):
        tenant = trialing(client, plan="professional")
        headers = headers_for(owner_of(tenant))
        assert client.get("/api/v1/tenants/current", headers=headers).json["plan"] == "professional"
        trial_end.run(now=TRIAL_ENDS)
        body = client.get("/api/v1/tenants/current", headers=headers).json
        assert body["plan"] == "free" and body["limits"] == PLANS["free"]["limits"]
        assert body["features"] == PLANS["free"]["features"]
        assert body["billing"]["status"] == "active"

    def test_nothing_ends_before_the_trial_does(self, client):
        tenant = trialing(client)
        before = stored(tenant).to_mongo().to_dict()
        assert trial_end.run(now=TRIAL_ENDS - timedelta(milliseconds=1)) == {"ended": 0}
        assert stored(tenant).to_mongo().to_dict() == before

    def test_running_twice_or_late_ends_it_once(self, client):
        tenant = trialing(client)
        subscribe(tenant)
        assert trial_end.run(now=TRIAL_ENDS + timedelta(days=3)) == {"ended": 1}
        assert trial_end.run(now=TRIAL_ENDS + timedelta(days=3, hours=1)) == {"ended": 0}
        assert len(audit_entries(tenant, "trial.ended")) == 1
        assert PlatformAuditLog.objects(action="trial.ended").count() == 1
        [delivery] = deliveries(tenant)
        assert delivery.payload["data"]["trialEndedAt"] == TRIAL_ENDS.isoformat()  # not the late run's time

    def test_concurrent_runs_end_it_once(self, client, app, frequent_thread_switches):
        tenant = trialing(client)

        def run(_index):
            with app.app_context():
                return trial_end.run(now=TRIAL_ENDS + MINUTE)["ended"]

        assert sum(run_together(8, run)) == 1
        assert len(audit_entries(tenant, "trial.ended")) == 1
        assert stored(tenant).plan == "free"

    def test_only_ended_trials_are_touched(self, client):
        ended = trialing(client, slug="ended")
        running = trialing(client, slug="running", at=OCTOBER_SIGNUP + timedelta(days=2))
        free = trialing(client, plan="free", slug="freeco")
        assert trial_end.run(now=TRIAL_ENDS + MINUTE) == {"ended": 1}
        assert [stored(t).plan for t in (ended, running, free)] == ["free", "starter", "free"]
        assert stored(running).billing.status == "trialing"
        assert audit_entries(free, "trial.ended") == audit_entries(running, "trial.ended") == []

    def test_a_converted_trial_is_left_alone(self, client):
        tenant = trialing(client)
        subscribe(tenant)
        assert post_event(client, checkout_completed(tenant.id)).json["applied"] is True
        assert trial_end.run(now=TRIAL_ENDS + MINUTE) == {"ended": 0}
        after = stored(tenant)
        assert after.plan == "starter" and after.billing.status == "active"
        assert after.billing.customer_ref == "cus_initech"
        assert deliveries(tenant) == [] and audit_entries(tenant, "trial.ended") == []

    def test_a_trialing_tenant_with_a_customer_is_left_alone(self, client):
        tenant = update_tenant(trialing(client), set__billing__customer_ref="cus_set_elsewhere")
        assert trial_end.run(now=TRIAL_ENDS + MINUTE) == {"ended": 0}
        assert stored(tenant).plan == "starter"

    @pytest.mark.parametrize(
        "change",
        [
            {"plan": "professional"},
            {"plan": "enterprise", "billing": {"priceCents": 100_000}},
            {"billing": {"status": "active"}},
            {"billing": {"trialEndsAt": (TRIAL_ENDS + timedelta(days=7)).isoformat()}},
        ],
        ids=["plan", "enterprise", "activated", "extended"],
    )
    def test_a_superadmins_change_is_left_alone(self, client, superadmin_headers, change):
        tenant = trialing(client)
        response = client.patch(f"/api/v1/tenants/{tenant.id}", headers=superadmin_headers, json=change)
        assert response.status_code == 200, response.json
        before = stored(tenant).to_mongo().to_dict()
        assert trial_end.run(now=TRIAL_ENDS + MINUTE) == {"ended": 0}
        assert stored(tenant).to_mongo().to_dict() == before

    @pytest.mark.parametrize(
        "change",
        [
            {"set__plan": "professional"},
            {"set__billing__status": "active"},
            {"set__billing__customer_ref": "cus_1"},
            {"set__billing__trial_ends_at": TRIAL_ENDS + timedelta(days=7)},
        ],
        ids=["plan", "activated", "customer", "extended"],
    )
    def test_a_change_made_after_the_job_read_the_tenant_wins(self, client, change):
        stale = trialing(client)
        changed = update_tenant(stale, **change)
        assert end_trial(stale, TRIAL_ENDS + MINUTE) is False
        assert stored(stale).to_mongo().to_dict() == changed.to_mongo().to_dict()
        assert audit_entries(stale, "trial.ended") == []

    def test_an_extended_trial_ends_at_its_new_end(self, client, superadmin_headers):
        tenant = trialing(client)
        later = TRIAL_ENDS + timedelta(days=7)
        response = client.patch(
            f"/api/v1/tenants/{tenant.id}",
            headers=superadmin_headers,
            json={"billing": {"trialEndsAt": later.isoformat()}},
        )
        assert response.json["billing"]["status"] == "trialing"
        assert datetime.fromisoformat(response.json["billing"]["trialEndsAt"]) == later
        [entry] = audit_entries(tenant, "tenant.updated")
        assert entry.summary["changed"]["billing"]["from"]["trialEndsAt"] == TRIAL_ENDS.isoformat()
        assert entry.summary["changed"]["billing"]["to"]["trialEndsAt"] == later.isoformat()
        assert trial_end.run(now=later - MINUTE) == {"ended": 0}
        assert trial_end.run(now=later) == {"ended": 1}
        assert stored(tenant).plan == "free"

    def test_a_superadmin_may_give_a_trial_of_another_plan(self, client, superadmin_headers):
        tenant = trialing(client)
        response = client.patch(
            f"/api/v1/tenants/{tenant.id}",
            headers=superadmin_headers,
            json={"plan": "professional", "billing": {"status": "trialing"}},
        )
        assert response.json["plan"] == "professional" and response.json["billing"]["status"] == "trialing"
        trial_end.run(now=TRIAL_ENDS)
        assert audit_entries(tenant, "trial.ended")[0].summary["from"] == "professional"

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"billing": {"trialEndsAt": None}}, "trialEndsAt"),
            ({"plan": "free", "billing": {"status": "trialing"}}, "status"),
        ],
    )
    def test_a_trial_needs_an_end_and_a_plan_to_try(self, client, superadmin_headers, change, field):
        tenant = trialing(client)
        before = stored(tenant).to_mongo().to_dict()
        response = client.patch(f"/api/v1/tenants/{tenant.id}", headers=superadmin_headers, json=change)
        assert response.status_code == 422, response.json
        assert field in response.json["error"]["details"]["billing"]
        assert stored(tenant).to_mongo().to_dict() == before
        assert audit_entries(tenant, "tenant.updated") == []

    def test_a_trial_can_be_given_again_after_it_ended(self, client, superadmin_headers):
        tenant = trialing(client)
        trial_end.run(now=TRIAL_ENDS)
        again = datetime.now(UTC) + timedelta(days=30)
        response = client.patch(
            f"/api/v1/tenants/{tenant.id}",
            headers=superadmin_headers,
            json={"plan": "starter", "billing": {"status": "trialing", "trialEndsAt": again.isoformat()}},
        )
        assert response.status_code == 200, response.json
        assert trial_end.run() == {"ended": 0}
        assert trial_end.run(now=again) == {"ended": 1}


# -- conversion: a payment method on file ---------------------------------------------------------------


class TestConversion:
    def test_a_completed_checkout_converts_the_trial_once(self, client):
        tenant = trialing(client)
        first = post_event(client, checkout_completed(tenant.id))
        assert first.status_code == 200 and first.json == {"received": True, "applied": True}
        after = stored(tenant)
        assert after.billing.customer_ref == "cus_initech" and after.billing.status == "active"
        assert after.plan == "starter" and after.billing.trial_ends_at == TRIAL_ENDS
        [entry] = audit_entries(tenant, "trial.converted")
        assert entry.actor.kind == "system" and entry.summary["customerRef"] == "cus_initech"
        assert post_event(client, checkout_completed(tenant.id)).json == {"received": True, "duplicate": True}
        again = post_event(client, checkout_completed(tenant.id, event_id="evt_again"))
        assert again.json == {"received": True, "applied": False}
        assert len(audit_entries(tenant, "trial.converted")) == 1

    def test_a_checkout_of_a_tenant_without_a_trial_records_its_customer_only(self, client):
        tenant = trialing(client, plan="free")
        assert post_event(client, checkout_completed(tenant.id)).json["applied"] is True
        after = stored(tenant)
        assert after.billing.customer_ref == "cus_initech"
        assert after.plan == "free" and after.billing.status == "active"
        assert len(audit_entries(tenant, "billing.customer_updated")) == 1
        assert audit_entries(tenant, "trial.converted") == []

    @pytest.mark.parametrize(
        "tenant_id_of",
        [lambda tenant: "000000000000000000000000", lambda tenant: "not-an-id", lambda tenant: None],
        ids=["unknown tenant", "malformed id", "no tenant"],
    )
    def test_a_checkout_naming_no_tenant_of_ours_changes_nothing(self, client, tenant_id_of):
        tenant = trialing(client)
        before = stored(tenant).to_mongo().to_dict()
        response = post_event(client, checkout_completed(tenant_id_of(tenant)))
        assert response.status_code == 200 and response.json["applied"] is False
        assert stored(tenant).to_mongo().to_dict() == before

    @pytest.mark.parametrize("customer", [None, "", 42, {"id": "cus_1"}, "c" * 201])
    def test_a_checkout_without_a_usable_customer_changes_nothing(self, client, customer):
        tenant = trialing(client)
        before = stored(tenant).to_mongo().to_dict()
        response = post_event(client, checkout_completed(tenant.id, customer=customer))
        assert response.json["applied"] is False
        assert stored(tenant).to_mongo().to_dict() == before

    def test_a_forged_checkout_is_refused(self, client):
        tenant = trialing(client)
        payload = checkout_completed(tenant.id)
        response = post_event(client, payload, signature="t=1,v1=deadbeef")
        assert response.status_code == 400
        assert stored(tenant).billing.status == "trialing"


# -- a downgrade to free keeps what exceeds it ------------------------------------------------------------


class TestOverFreeLimits:
    @pytest.fixture
    def downgraded(self, client, make_user, headers_for):
        """A starter trial that grew past free's limits (7 users, 2 bots, 2 webhooks, an API key), then
        ended: (tenant, the owner's headers, its API key)."""
        tenant = trialing(client)
        headers = headers_for(owner_of(tenant))
        for _ in range(6):
            make_user(tenant, "member")
        for _ in range(2):
            create_bot(client, headers)
        for path in ("a", "b"):
            hook = {"url": f"https://hooks.initech.example.com/{path}", "events": ["trial.ended"]}
            assert client.post("/api/v1/webhooks", headers=headers, json=hook).status_code == 201
        key = client.post("/api/v1/api-keys", headers=headers, json={"name": "ci"}).json["key"]
        assert client.get("/api/v1/tenants/current", headers={"X-API-Key": key}).status_code == 200
        assert trial_end.run(now=TRIAL_ENDS) == {"ended": 1}
        return tenant, headers, key

    def test_everything_is_kept_and_the_events_reach_the_webhooks_it_had(self, client, downgraded):
        tenant, headers, _key = downgraded
        assert client.get("/api/v1/users", headers=headers).json["total"] == 7
        assert client.get("/api/v1/telegram-accounts", headers=headers).json["total"] == 2
        assert client.get("/api/v1/webhooks", headers=headers).json["total"] == 2
        assert len(deliveries(tenant)) == 2
        usage = client.get("/api/v1/tenants/current/usage", headers=headers).json["resources"]
        assert usage["users"] == {"used": 7, "limit": 5, "percent": 140.0}
        assert usage["telegramAccounts"]["used"] == 2 and usage["telegramAccounts"]["limit"] == 1
        assert usage["webhooks"]["used"] == 2 and usage["webhooks"]["limit"] == 0

    def test_nothing_more_is_created_past_free_limits(self, client, downgraded):
        _tenant, headers, _key = downgraded
        user = {
            "email": "eighth@initech.example.com",
            "name": "Eighth",
            "role": "member",
            "password": "x" * 12,
        }
        assert_limit_exceeded(client.post("/api/v1/users", headers=headers, json=user), "users", 5, 7)
        bot = {"name": "Third", "token": bot_token(987654321)}
        assert_limit_exceeded(
            client.post("/api/v1/telegram-accounts", headers=headers, json=bot), "telegramAccounts", 1, 2
        )
        hook = {"url": "https://hooks.initech.example.com/c", "events": ["trial.ended"]}
        assert_limit_exceeded(client.post("/api/v1/webhooks", headers=headers, json=hook), "webhooks", 0, 2)
        assert client.get("/api/v1/users", headers=headers).json["total"] == 7

    def test_below_the_limit_again_creating_works(self, client, downgraded):
        tenant, headers, _key = downgraded
        with tenant_scope(tenant):
            members = list(User.objects(role="member").scalar("id"))
        for member in members[:3]:
            assert client.delete(f"/api/v1/users/{member}", headers=headers).status_code == 204
        user = {"email": "fifth@initech.example.com", "name": "Fifth", "role": "member", "password": "x" * 12}
        assert client.post("/api/v1/users", headers=headers, json=user).status_code == 201
        assert_limit_exceeded(
            client.post(
                "/api/v1/users", headers=headers, json={**user, "email": "sixth@initech.example.com"}
            ),
            "users",
            5,
            5,
        )

    def test_features_free_lacks_stop_working(self, client, downgraded):
        _tenant, headers, key = downgraded
        response = client.get("/api/v1/tenants/current", headers={"X-API-Key": key})
        assert response.status_code == 403 and error_code(response) == "feature_not_available"
        assert client.post("/api/v1/api-keys", headers=headers, json={"name": "ci 2"}).status_code == 403
        assert client.get("/api/v1/tenants/current", headers=headers).status_code == 200


# -- what a tenant may not change about its plan, billing or trial -------------------------------------


class TestMassAssignment:
    @pytest.mark.parametrize(
        "body",
        [
            {"plan": "enterprise"},
            {"billing": {"status": "active"}},
            {"billing": {"trialEndsAt": "2099-01-01T00:00:00Z"}},
            {"trialEndsAt": "2099-01-01T00:00:00Z"},
            {"customerRef": "cus_mine"},
            {"priceCents": 0},
            {"general": {"timezone": "UTC", "plan": "enterprise"}},
            {"general": {"billing": {"status": "active"}}},
            {"compliance": {"trialEndsAt": "2099-01-01T00:00:00Z"}},
            {"security": {"priceCents": 0}},
        ],
    )
    @pytest.mark.parametrize("route", ["settings", "branding"])
    def test_the_tenants_own_routes_refuse_plan_billing_and_trial(self, client, headers_for, body, route):
        tenant = trialing(client)
        before = stored(tenant).to_mongo().to_dict()
        response = client.patch(
            f"/api/v1/tenants/current/{route}", headers=headers_for(owner_of(tenant)), json=body
        )
        assert response.status_code == 422 and error_code(response) == "validation_error"
        assert stored(tenant).to_mongo().to_dict() == before

    @pytest.mark.parametrize(
        "body",
        [{"plan": "enterprise"}, {"billing": {"status": "active"}}, {"billing": {"trialEndsAt": None}}],
    )
    def test_an_owner_cannot_use_the_superadmins_route(self, client, headers_for, body):
        tenant = trialing(client)
        before = stored(tenant).to_mongo().to_dict()
        response = client.patch(
            f"/api/v1/tenants/{tenant.id}", headers=headers_for(owner_of(tenant)), json=body
        )
        assert response.status_code == 403
        assert stored(tenant).to_mongo().to_dict() == before


class TestSuperadminRaces:
    @pytest.mark.parametrize(
        "change",
        [
            {"billing": {"trialEndsAt": (TRIAL_ENDS + timedelta(days=7)).isoformat()}},
            {"plan": "professional"},
            {"name": "Initech Renamed"},
        ],
        ids=["extend", "plan", "rename"],
    )
    def test_a_change_racing_the_end_of_the_trial_is_a_conflict(
        self, client, superadmin_headers, monkeypatch, change
    ):
        tenant = trialing(client)
        read = admin.get_tenant

        def read_then_the_trial_ends(tenant_id):
            found = read(tenant_id)
            assert trial_end.run(now=TRIAL_ENDS) == {"ended": 1}
            return found

        monkeypatch.setattr(admin, "get_tenant", read_then_the_trial_ends)
        response = client.patch(f"/api/v1/tenants/{tenant.id}", headers=superadmin_headers, json=change)
        assert response.status_code == 409 and error_code(response) == "conflict"
        after = stored(tenant)
        assert after.plan == "free" and after.billing.status == "active" and after.name == "Initech"
        assert after.billing.trial_ends_at == TRIAL_ENDS
        assert audit_entries(tenant, "tenant.updated") == []

    def test_a_change_racing_a_conversion_is_a_conflict(self, client, superadmin_headers, monkeypatch):
        tenant = trialing(client)
        read = admin.get_tenant

        def read_then_converted(tenant_id):
            found = read(tenant_id)
            assert post_event(client, checkout_completed(tenant.id)).json["applied"] is True
            return found

        monkeypatch.setattr(admin, "get_tenant", read_then_converted)
        change = {"plan": "professional", "billing": {"status": "trialing"}}
        response = client.patch(f"/api/v1/tenants/{tenant.id}", headers=superadmin_headers, json=change)
        assert response.status_code == 409
        assert stored(tenant).plan == "starter" and stored(tenant).billing.status == "active"

    def test_a_tenant_without_a_trial_is_changed_as_before(self, client, superadmin_headers):
        tenant = trialing(client, plan="free")
        response = client.patch(
            f"/api/v1/tenants/{tenant.id}",
            headers=superadmin_headers,
            json={"plan": "enterprise", "billing": {"priceCents": 250_000}},
        )
        assert response.status_code == 200
        assert (
            response.json["billing"]["status"] == "active"
            and response.json["billing"]["priceCents"] == 250_000
        )
