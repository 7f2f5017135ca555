"""Billing: invoices at the close of each period, Stripe payments, overdue suspensions."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.audit.models import AuditLog
from app.billing.models import Invoice, ProcessedEvent
from app.billing.service import close_unpaid, issue_invoice, mark_paid
from app.jobs import billing_overdue, monthly_close
from app.tenancy.cache import tenant_cache
from app.tenancy.context import tenant_scope
from app.tenants.admin import suspend_tenant
from app.tenants.models import Tenant
from app.tenants.plans import bounds_of, period_bounds, period_of
from app.tenants.service import create_tenant
from app.webhooks.models import WebhookDelivery

from .support import run_together

SECRET = "whsec_test_secret"
NOVEMBER_CLOSE = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def app(app_factory):
    """The suite's app, with Stripe configured (every fixture built on `app` uses this one)."""
    app = app_factory(STRIPE_WEBHOOK_SECRET=SECRET, BILLING_GRACE_DAYS=14)
    with app.app_context():
        yield app


@pytest.fixture
def billing_app(app):
    return app


def tenant_on(plan, slug, **billing):
    tenant = create_tenant(slug.title(), slug, plan=plan)
    changes = {"set__created_at": LONG_AGO, **{f"set__billing__{k}": v for k, v in billing.items()}}
    Tenant.objects(id=tenant.id).update(**changes)
    tenant_cache().clear()
    return Tenant.objects.get(id=tenant.id)


def invoices(tenant):
    with tenant_scope(tenant):
        return list(Invoice.objects.order_by("number"))


def signed(payload: str, secret: str = SECRET, at: int | None = None) -> str:
    timestamp = at or int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event(kind, invoice, event_id="evt_1"):
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "data": {
                "object": {
                    "id": "in_stripe_1",
                    "object": "invoice",
                    "metadata": {"tenantId": str(invoice.tenant_id), "invoiceId": str(invoice.id)},
                }
            },
        }
    )


def post_event(client, payload, signature=None):
    return client.post(
        "/api/v1/billing/webhooks/stripe",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature or signed(payload)},
    )


class TestInvoices:
    def test_every_tenant_gets_an_invoice_at_the_close(self, billing_app):
        free = tenant_on("free", "freeco")
        starter = tenant_on("starter", "startco")
        pro = tenant_on("professional", "proco")
        custom = tenant_on("enterprise", "bigco", price_cents=250_000)
        result = monthly_close.run(now=NOVEMBER_CLOSE)
        assert result["invoiced"] == 4
        amounts = {t.slug: invoices(t)[0] for t in (free, starter, pro, custom)}
        assert {slug: i.amount_cents for slug, i in amounts.items()} == {
            "freeco": 0,
            "startco": 2900,
            "proco": 9900,
            "bigco": 250_000,
        }
        for invoice in amounts.values():
            assert invoice.period == "2026-11" and invoice.number == 1 and invoice.currency == "USD"
            assert invoice.usage["users"]["limit"] is not None or invoice.plan == "enterprise"
        assert amounts["freeco"].status == "paid"  # nothing to pay
        assert amounts["proco"].status == "open"
        assert Tenant.objects.get(id=pro.id).billing.balance_cents == 9900

    def test_closing_a_period_twice_creates_nothing_new(self, billing_app):
        pro = tenant_on("professional", "proco")
        monthly_close.run(now=NOVEMBER_CLOSE)
        again = monthly_close.run(now=NOVEMBER_CLOSE + timedelta(days=3))
        assert again["invoiced"] == 0
        assert [i.number for i in invoices(pro)] == [1]
        assert Tenant.objects.get(id=pro.id).billing.balance_cents == 9900

    def test_numbers_follow_each_other_without_gaps(self, billing_app):
        pro = tenant_on("professional", "proco")
        for month in (10, 11, 12):
            monthly_close.run(now=datetime(2026, month, 1, 0, 5, tzinfo=UTC) + timedelta(days=31))
        assert [(i.number, i.period) for i in invoices(pro)] == [
            (1, "2026-10"),
            (2, "2026-11"),
            (3, "2026-12"),
        ]

    def test_concurrent_closes_bill_once(self, billing_app, frequent_thread_switches):
        pro = tenant_on("professional", "proco")
        errors = []

        def close():
            try:
                with billing_app.app_context():
                    monthly_close.run(now=NOVEMBER_CLOSE)
            except Exception as exc:  # collected for the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=close) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert [i.number for i in invoices(pro)] == [1]
        assert Tenant.objects.get(id=pro.id).billing.balance_cents == 9900

    def test_a_close_that_stopped_after_taking_a_number_is_repaired(self, billing_app):
        pro = tenant_on("professional", "proco", last_invoice_number=1, last_invoiced_period="2026-11")
        invoice = issue_invoice(Tenant.objects.get(id=pro.id), "2026-11", {})
        assert invoice is not None and invoice.number == 1
        assert issue_invoice(Tenant.objects.get(id=pro.id), "2026-10", {}) is None  # older than the last

    def test_invoices_are_audited_and_emitted(self, billing_app, client):
        pro = tenant_on("professional", "proco")
        with tenant_scope(pro):
            from app.webhooks.models import Webhook

            Webhook(
                url="https://hooks.example.com/b", events=["invoice.created"], secret_encrypted="x"
            ).save()
        monthly_close.run(now=NOVEMBER_CLOSE)
        with tenant_scope(pro):
            assert AuditLog.objects(action="invoice.created").count() == 1
            assert WebhookDelivery.objects(event="invoice.created").count() == 1


class TestRoutes:
    def test_the_owner_lists_the_tenants_invoices(self, billing_app, client, make_user, headers_for):
        pro = tenant_on("professional", "proco")
        monthly_close.run(now=NOVEMBER_CLOSE)
        owner, member = make_user(pro, "owner"), make_user(pro, "member")
        body = client.get("/api/v1/billing/invoices", headers=headers_for(owner)).json
        assert body["total"] == 1
        item = body["items"][0]
        assert item["amountCents"] == 9900 and item["status"] == "open" and item["period"] == "2026-11"
        assert client.get("/api/v1/billing/invoices", headers=headers_for(member)).status_code == 403

    def test_the_superadmin_lists_any_tenants_invoices(
        self, billing_app, client, superadmin_headers, make_user, headers_for
    ):
        pro = tenant_on("professional", "proco")
        other = tenant_on("starter", "startco")
        monthly_close.run(now=NOVEMBER_CLOSE)
        body = client.get(f"/api/v1/tenants/{pro.id}/invoices", headers=superadmin_headers).json
        assert [i["amountCents"] for i in body["items"]] == [9900]
        owner = make_user(other, "owner")
        assert client.get(f"/api/v1/tenants/{pro.id}/invoices", headers=headers_for(owner)).status_code == 403

    def test_the_billing_group_shows_price_balance_and_next_period(
        self, billing_app, client, make_user, headers_for
    ):
        pro = tenant_on("professional", "proco")
        monthly_close.run(now=NOVEMBER_CLOSE)
        billing = client.get("/api/v1/tenants/current", headers=headers_for(make_user(pro, "owner"))).json[
            "billing"
        ]
        assert billing["priceCents"] == 9900 and billing["currency"] == "USD"
        assert billing["balanceCents"] == 9900 and billing["lastInvoiceNumber"] == 1
        assert billing["nextPeriodStart"].endswith("-01T00:00:00+00:00")

    def test_the_superadmin_sets_a_custom_price(self, billing_app, client, superadmin_headers):
        big = tenant_on("enterprise", "bigco")
        response = client.patch(
            f"/api/v1/tenants/{big.id}", headers=superadmin_headers, json={"billing": {"priceCents": 500_00}}
        )
        assert response.status_code == 200 and response.json["billing"]["priceCents"] == 50_000
        bad = client.patch(
            f"/api/v1/tenants/{big.id}", headers=superadmin_headers, json={"billing": {"priceCents": -1}}
        )
        assert bad.status_code == 422


class TestStripe:
    @pytest.fixture
    def open_invoice(self, billing_app):
        pro = tenant_on("professional", "proco")
        monthly_close.run(now=NOVEMBER_CLOSE)
        return invoices(pro)[0]

    def test_a_paid_event_marks_the_invoice_paid_once(self, client, open_invoice):
        payload = stripe_event("invoice.paid", open_invoice)
        first = post_event(client, payload)
        assert first.status_code == 200 and first.json == {"received": True, "applied": True}
        again = post_event(client, payload)
        assert again.json == {"received": True, "duplicate": True}
        stored = invoices(Tenant.objects.get(id=open_invoice.tenant_id))[0]
        assert stored.status == "paid" and stored.paid_at is not None and stored.provider_ref == "in_stripe_1"
        assert Tenant.objects.get(id=open_invoice.tenant_id).billing.balance_cents == 0
        assert ProcessedEvent.objects(event_id="evt_1").count() == 1

    def test_a_second_event_for_a_paid_invoice_changes_nothing(self, client, open_invoice):
        post_event(client, stripe_event("invoice.paid", open_invoice, "evt_1"))
        response = post_event(client, stripe_event("invoice.payment_succeeded", open_invoice, "evt_2"))
        assert response.json == {"received": True, "applied": False}
        assert Tenant.objects.get(id=open_invoice.tenant_id).billing.balance_cents == 0

    @pytest.mark.parametrize(
        "signature",
        [
            "t=1,v1=deadbeef",
            None,
            "garbage",
        ],
    )
    def test_a_bad_signature_is_refused_and_changes_nothing(self, client, open_invoice, signature):
        payload = stripe_event("invoice.paid", open_invoice)
        bad = signature if signature is not None else signed(payload, secret="whsec_someone_else")
        response = post_event(client, payload, signature=bad)
        assert response.status_code == 400
        assert response.json["error"]["code"] == "invalid_signature"
        assert invoices(Tenant.objects.get(id=open_invoice.tenant_id))[0].status == "open"

    def test_an_old_signature_is_refused(self, client, open_invoice):
        payload = stripe_event("invoice.paid", open_invoice)
        response = post_event(client, payload, signature=signed(payload, at=int(time.time()) - 3600))
        assert response.status_code == 400

    def test_void_and_uncollectible(self, client, open_invoice):
        response = post_event(client, stripe_event("invoice.marked_uncollectible", open_invoice, "evt_u"))
        assert response.json["applied"] is True
        tenant = Tenant.objects.get(id=open_invoice.tenant_id)
        assert invoices(tenant)[0].status == "uncollectible" and tenant.billing.balance_cents == 0
        late = post_event(client, stripe_event("invoice.paid", open_invoice, "evt_p"))
        assert late.json["applied"] is True  # paid after all
        assert invoices(tenant)[0].status == "paid"

    def test_unknown_providers_and_unconfigured_stripe(self, client, open_invoice, app_factory):
        assert client.post("/api/v1/billing/webhooks/paypal", json={}).status_code == 404
        unconfigured = app_factory(STRIPE_WEBHOOK_SECRET=None).test_client()
        payload = stripe_event("invoice.paid", open_invoice)
        assert post_event(unconfigured, payload).status_code == 404

    def test_an_event_naming_no_invoice_of_ours_is_acknowledged(self, client, billing_app):
        payload = json.dumps(
            {
                "id": "evt_x",
                "object": "event",
                "type": "invoice.paid",
                "data": {"object": {"id": "in_x", "metadata": {}}},
            }
        )
        response = post_event(client, payload)
        assert response.status_code == 200 and response.json["applied"] is False


class TestConcurrentChanges:
    """A payment, a write-off and the suspensions decide on the state they move from."""

    def test_a_payment_racing_a_write_off_takes_the_invoice_off_the_balance_once(
        self, billing_app, frequent_thread_switches
    ):
        pro = tenant_on("professional", "proco")
        for month in range(1, 11):
            invoice = issue_invoice(pro, f"2026-{month:02d}", {}, NOVEMBER_CLOSE)
            assert Tenant.objects.get(id=pro.id).billing.balance_cents == 9900

            def settle(index, invoice=invoice):
                with billing_app.app_context(), tenant_scope(pro):
                    if index == 0:
                        return mark_paid(invoice, provider_ref="in_1")
                    return close_unpaid(invoice, "uncollectible")

            assert all(isinstance(result, bool) for result in run_together(2, settle))
            assert Tenant.objects.get(id=pro.id).billing.balance_cents == 0, month
            assert invoices(pro)[-1].status in ("paid", "uncollectible")

    @pytest.mark.parametrize("payment", ["payment", "overdue job"])
    def test_a_superadmins_suspension_made_meanwhile_is_never_lifted_or_replaced(
        self, billing_app, frequent_thread_switches, payment
    ):
        for repetition in range(10):
            tenant = tenant_on("professional", f"late-{repetition}")
            monthly_close.run(now=NOVEMBER_CLOSE)
            if payment == "payment":
                billing_overdue.run(now=NOVEMBER_CLOSE + timedelta(days=15))
            invoice = invoices(tenant)[0]

            def act(index, tenant=tenant, invoice=invoice):
                with billing_app.app_context():
                    if index == 1:
                        return suspend_tenant(tenant.id, "abuse report")
                    if payment == "payment":
                        with tenant_scope(tenant):
                            return mark_paid(invoice)
                    return billing_overdue.run(now=NOVEMBER_CLOSE + timedelta(days=15))

            results = run_together(2, act)
            assert not [r for r in results if isinstance(r, BaseException)], results
            stored = Tenant.objects.get(id=tenant.id)
            assert (stored.status, stored.suspended_reason) == ("suspended", "abuse report"), repetition


class TestOverdue:
    def test_an_unpaid_invoice_past_the_grace_period_suspends_and_payment_reactivates(
        self, billing_app, client
    ):
        pro = tenant_on("professional", "proco")
        monthly_close.run(now=NOVEMBER_CLOSE)
        assert billing_overdue.run(now=NOVEMBER_CLOSE + timedelta(days=13))["suspended"] == 0
        assert billing_overdue.run(now=NOVEMBER_CLOSE + timedelta(days=15))["suspended"] == 1
        tenant = Tenant.objects.get(id=pro.id)
        assert tenant.status == "suspended" and tenant.suspended_reason == "payment_overdue"
        with tenant_scope(tenant):
            actions = {e.action for e in AuditLog.objects}
            events = {d.event for d in WebhookDelivery.objects}
        assert {"tenant.suspended", "invoice.created"} <= actions
        assert events == set()  # no webhook subscribed: nothing queued
        response = post_event(client, stripe_event("invoice.paid", invoices(tenant)[0]))
        assert response.json["applied"] is True
        tenant = Tenant.objects.get(id=pro.id)
        assert tenant.status == "active"
        with tenant_scope(tenant):
            assert {"invoice.paid", "tenant.activated"} <= {e.action for e in AuditLog.objects}

    def test_a_tenant_suspended_for_another_reason_stays_suspended_after_payment(
        self, billing_app, client, superadmin_headers
    ):
        pro = tenant_on("professional", "proco")
        monthly_close.run(now=NOVEMBER_CLOSE)
        client.post(
            f"/api/v1/tenants/{pro.id}/suspend", headers=superadmin_headers, json={"reason": "abuse report"}
        )
        post_event(client, stripe_event("invoice.paid", invoices(pro)[0]))
        assert Tenant.objects.get(id=pro.id).status == "suspended"

    def test_free_tenants_are_never_overdue(self, billing_app):
        tenant_on("free", "freeco")
        monthly_close.run(now=NOVEMBER_CLOSE)
        assert billing_overdue.run(now=datetime.now(UTC) + timedelta(days=100))["suspended"] == 0


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))),  # February in UTC
        datetime(2026, 2, 28, 23, 30, tzinfo=timezone(timedelta(hours=-5))),  # March in UTC
    ],
)
def test_the_bounds_of_a_moment_are_those_of_its_period(moment):
    assert bounds_of(moment) == period_bounds(period_of(moment))
