"""The product's dashboard pages (campaigns, bots, users, API keys, webhooks, audit log, invoices,
single sign-on) in a headless Chromium (tests/browser.py says how): each page's flow as its users do it,
and what the API refuses them shown as it says it."""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from app.audit.models import Actor
from app.audit.service import record
from app.auth import tokens
from app.billing.service import issue_invoice
from app.campaigns.models import Campaign
from app.dispatcher.runner import Dispatcher
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.users.models import User
from app.users.service import create_user
from app.webhooks.models import Webhook, WebhookDelivery
from app.workers import SENDERS

from .browser import MARKS, expect, log_in, serving, shoot
from .conftest import PASSWORD
from .support import API, bot_token, connect_bot, sso_body

pytestmark = MARKS

OWNER = "owner@acme.example.com"
ADMIN = "admin@acme.example.com"
MEMBER = "member@acme.example.com"


@pytest.fixture
def live(app_factory):
    """The service on a free loopback port with acme (enterprise), its owner, an admin and a member."""
    app = app_factory(TENANT_CACHE_TTL=0)
    with app.app_context():
        acme = create_tenant("Acme Corp", "acme", plan="enterprise")
        with tenant_scope(acme):
            create_user(OWNER, "Olivia Owner", PASSWORD, "owner")
            create_user(ADMIN, "Adam Admin", PASSWORD, "admin")
            create_user(MEMBER, "Max Member", PASSWORD, "member")
    with serving(app) as base:
        yield app, base


def acme(app) -> Tenant:
    with app.app_context():
        return Tenant.objects.get(slug="acme")


def headers_of(app, email: str) -> dict[str, str]:
    """A bearer token of an acme user, for setting up through the API what a test starts from."""
    with app.app_context(), tenant_scope(acme(app)):
        user = User.objects.get(email=email)
        return {"Authorization": f"Bearer {tokens.issue(user, [tokens.PASSWORD])['access_token']}"}


def a_bot(app) -> str:
    """Connect a bot to acme through the API; return its account id."""
    with app.app_context():
        return connect_bot(app.test_client(), headers_of(app, OWNER))[0]


def a_draft(app, bot: str, targets: list[str], name: str = "Spring launch") -> str:
    with app.app_context():
        response = app.test_client().post(
            f"{API}/campaigns",
            headers=headers_of(app, OWNER),
            json={"name": name, "message": {"text": "Hello"}, "targets": targets, "telegramAccountId": bot},
        )
        assert response.status_code == 201, response.json
        return response.json["id"]


def stored_campaign(app, campaign_id: str) -> Campaign:
    with app.app_context(), tenant_scope(acme(app)):
        return Campaign.objects.get(id=campaign_id)


@pytest.fixture
def deliver(live):
    """deliver(): start a dispatcher of the live app in the background (stopped after the test)."""
    app, _base = live
    started = []

    def start() -> None:
        dispatcher = Dispatcher(app, SENDERS, holder="browser-test")
        dispatcher.interval = 0.02
        threading.Thread(target=dispatcher.run, daemon=True).start()
        started.append(dispatcher)

    yield start
    for dispatcher in started:
        dispatcher.stop()


def accept_dialogs(page) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


def test_an_owner_creates_a_campaign_sends_it_and_watches_it_complete(live, page, deliver, fake_telegram):
    app, base = live
    a_bot(app)
    log_in(page, base, OWNER)
    page.wait_for_url("**/dashboard/campaigns")  # where a tenant's user lands
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#no-campaigns")).to_be_visible()
    expect(page.locator("nav a[data-nav=campaigns]")).to_have_attribute("aria-current", "page")

    page.click("#new-campaign")
    page.fill("#campaign-form [name=name]", "Spring launch")
    page.select_option("#campaign-form [name=telegramAccountId]", index=1)
    page.fill("#campaign-form [name=targets]", "1001, 1002\n1003\n")
    expect(page.locator("#target-count")).to_have_text("3 targets")
    page.fill("#campaign-form [name=text]", "<b>Cover sheets</b> are here")
    page.select_option("#campaign-form [name=parseMode]", "HTML")
    shoot(page, "campaign-new")
    page.click("#save-campaign")
    expect(page.locator("#detail-status")).to_have_text("draft")
    expect(page.locator("#campaigns-table tbody tr")).to_have_count(1)
    [campaign] = page.locator("#campaigns-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert stored_campaign(app, campaign).targets == ["1001", "1002", "1003"]

    # Sent with no dispatcher running yet: the page shows the queue and keeps polling.
    page.click("#send-campaign")
    expect(page.locator("#detail-status")).to_have_text("sending")
    expect(page.locator("#stats-counts [data-status=queued] strong")).to_have_text("3")
    expect(page.locator("body")).to_have_attribute("data-polling", "true")
    deliver()
    expect(page.locator("#stats-counts [data-status=sent] strong")).to_have_text("3")
    expect(page.locator("#detail-status")).to_have_text("completed")
    expect(page.locator("body")).to_have_attribute("data-polling", "false")  # it stopped when done
    expect(page.locator("#campaigns-table tbody tr .badge")).to_have_text("completed")
    assert page.locator("#stats-chart polyline[data-series=sent]").count() == 1
    points = page.get_attribute("#stats-chart polyline[data-series=sent]", "points").split()
    assert len(points) >= 2 and points[0] != points[-1]  # the line rose from its first poll
    expect(page.locator("#stats-chart .legend.series-sent")).to_have_text("sent: 3")
    expect(page.locator("#send-campaign")).to_be_hidden()
    expect(page.locator("#detail-facts")).not_to_contain_text("not yet")  # when it completed
    shoot(page, "campaign-stats")
    sent = sorted(fake_telegram.sent, key=lambda s: s["chat"])
    assert [s["chat"] for s in sent] == ["1001", "1002", "1003"]
    assert {s["params"].get("parse_mode") for s in sent} == {"HTML"}


def test_a_refused_send_says_why_and_a_draft_is_edited_then_cancelled(live, page):
    app, base = live
    bot = a_bot(app)
    campaign = a_draft(app, bot, ["1001", "1002", "1003"])
    with app.app_context():
        Tenant.objects(slug="acme").update(set__limits={"messagesPerMonth": 2})
    log_in(page, base, OWNER)
    page.wait_for_selector("body[data-ready=true]")
    page.click(f"#campaigns-table tbody tr[data-id='{campaign}']")
    expect(page.locator("#detail-status")).to_have_text("draft")

    page.click("#send-campaign")
    error = page.locator("#detail-error")
    expect(error).to_have_attribute("data-code", "limit_exceeded")
    assert "needs 3" in error.inner_text() and "2 of 2 are left" in error.inner_text()
    assert "Nothing was queued" in error.inner_text()
    expect(page.locator("#detail-status")).to_have_text("draft")
    assert stored_campaign(app, campaign).status == "draft"

    page.click("#edit-campaign")
    assert page.input_value("#campaign-form [name=targets]") == "1001\n1002\n1003"
    page.fill("#campaign-form [name=targets]", "1001, not a chat")
    page.click("#save-campaign")
    targets_error = page.locator("#campaign-form [data-field=targets] + .field-error")
    expect(targets_error).to_contain_text("Entry 2: Use an @username")
    page.fill("#campaign-form [name=targets]", "1001,1002")
    page.fill("#campaign-form [name=name]", "Spring launch, shorter")
    page.set_input_files(
        "#media-upload", files=[{"name": "cover.png", "mimeType": "image/png", "buffer": b"\x89PNG cover"}]
    )
    expect(page.locator("#campaign-form [name=mediaId] option:checked")).to_have_text("cover.png (10 bytes)")
    page.click("#save-campaign")
    expect(page.locator("#detail-title")).to_have_text("Spring launch, shorter")
    edited = stored_campaign(app, campaign)
    assert edited.targets == ["1001", "1002"] and edited.message.media_id is not None

    page.click("#cancel-campaign")
    expect(page.locator("#detail-status")).to_have_text("cancelled")
    expect(page.locator("#cancel-campaign")).to_be_hidden()
    expect(page.locator("#edit-campaign")).to_be_hidden()
    assert stored_campaign(app, campaign).status == "cancelled"
    page.select_option("#filter-status", "draft")
    page.click("#filters button")
    expect(page.locator("#no-campaigns")).to_be_visible()


def test_cancelling_a_campaign_while_it_sends_stops_its_queue_and_the_polling(live, page):
    app, base = live
    campaign = a_draft(app, a_bot(app), ["1001", "1002"])
    with app.app_context():
        sent = app.test_client().post(f"{API}/campaigns/{campaign}/send", headers=headers_of(app, OWNER))
        assert sent.status_code == 202, sent.json
    log_in(page, base, OWNER)
    page.wait_for_selector("body[data-ready=true]")
    page.click(f"#campaigns-table tbody tr[data-id='{campaign}']")
    expect(page.locator("#detail-status")).to_have_text("sending")
    expect(page.locator("body")).to_have_attribute("data-polling", "true")  # nobody delivers it here
    expect(page.locator("#delete-campaign")).to_be_hidden()
    page.click("#cancel-campaign")
    expect(page.locator("#detail-status")).to_have_text("cancelled")
    expect(page.locator("#stats-counts [data-status=cancelled] strong")).to_have_text("2")
    expect(page.locator("body")).to_have_attribute("data-polling", "false")
    assert stored_campaign(app, campaign).status == "cancelled"


def test_an_owner_connects_a_bot_deactivates_it_and_removes_it(live, page):
    app, base = live
    accept_dialogs(page)
    log_in(page, base, OWNER, then="/bots")
    page.fill("#connect-form [name=name]", "News bot")
    page.fill("#connect-form [name=token]", "not-a-token")
    page.click("#connect-submit")
    expect(page.locator("#connect-form [data-field=token] + .field-error")).to_be_visible()

    page.fill("#connect-form [name=token]", bot_token(424242))
    page.click("#connect-submit")
    expect(page.locator("#connected")).to_have_text("Connected @bot424242_bot")  # from Telegram's getMe
    row = page.locator("#bots-table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text("@bot424242_bot")
    assert bot_token(424242) not in page.content()  # the token is never shown back
    shoot(page, "bots")

    page.click(".toggle-bot")
    expect(row.locator(".badge")).to_have_text("inactive")
    page.click(".toggle-bot")
    expect(row.locator(".badge")).to_have_text("active")
    page.click(".delete-bot")
    expect(page.locator("#no-bots")).to_be_visible()


def test_an_owner_adds_a_user_changes_roles_and_keeps_the_last_owner(live, page):
    app, base = live
    log_in(page, base, OWNER, then="/users")
    rows = page.locator("#users-table tbody tr")
    expect(rows).to_have_count(3)
    page.fill("#invite-form [name=name]", "Nina New")
    page.fill("#invite-form [name=email]", "not an email")
    page.fill("#invite-form [name=password]", "short")
    page.click("#invite-submit")
    expect(page.locator("#invite-form [data-field=email] + .field-error")).to_be_visible()
    expect(page.locator("#invite-form [data-field=password] + .field-error")).to_be_visible()
    page.fill("#invite-form [name=email]", "nina@acme.example.com")
    page.fill("#invite-form [name=password]", "first-password-1")
    page.select_option("#invite-form [name=role]", "admin")
    page.click("#invite-submit")
    expect(rows).to_have_count(4)
    nina = rows.filter(has_text="nina@acme.example.com")
    expect(nina.locator(".role-select")).to_have_value("admin")
    shoot(page, "users")

    nina.locator(".role-select").select_option("member")
    expect(nina.locator(".role-select")).to_have_value("member")
    nina.locator(".deactivate-user").click()
    expect(nina.locator(".badge")).to_have_text("deactivated")
    with app.app_context(), tenant_scope(acme(app)):
        stored = User.objects.get(email="nina@acme.example.com")
        assert (stored.role, stored.active) == ("member", False)

    # The only owner cannot stop being one: the API refuses, and the page says so.
    me = rows.filter(has_text=OWNER)
    me.locator(".role-select").select_option("admin")
    expect(page.locator("#list-error")).to_contain_text("owner")
    expect(me.locator(".role-select")).to_have_value("owner")
    assert me.locator(".deactivate-user").count() == 0  # nobody deactivates themselves here


def test_an_admin_cannot_make_or_change_owners(live, page):
    _app, base = live
    log_in(page, base, ADMIN, then="/users")
    assert page.locator("#invite-form [name=role] option").all_inner_texts() == ["member", "admin"]
    owner = page.locator("#users-table tbody tr").filter(has_text=OWNER)
    assert owner.locator(".role-select, .deactivate-user").count() == 0
    member = page.locator("#users-table tbody tr").filter(has_text=MEMBER)
    assert member.locator(".role-select option").all_inner_texts() == ["admin", "member"]


def test_an_api_key_is_shown_once_copied_and_revoked(live, page):
    _app, base = live
    accept_dialogs(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    log_in(page, base, OWNER, then="/api-keys")
    page.fill("#key-form [name=name]", "CI pipeline")
    page.click("#key-submit")
    expect(page.locator("#new-key")).to_be_visible()
    key = page.input_value("#new-key-value")
    start, end = page.locator("#keys-table tbody tr td").nth(1).inner_text().split("…")
    assert key.startswith(start) and key.endswith(end) and len(key) > len(start + end)
    page.click("#copy-key")
    expect(page.locator("#copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    shoot(page, "api-keys")
    assert requests.get(f"{base}{API}/campaigns", headers={"X-API-Key": key}, timeout=5).status_code == 200

    page.click("#hide-key")
    assert key not in page.content()
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    assert key not in page.content()  # shown once, never again
    page.click(".revoke-key")
    expect(page.locator("#keys-table tbody tr")).to_have_count(0)
    assert requests.get(f"{base}{API}/campaigns", headers={"X-API-Key": key}, timeout=5).status_code == 401


def test_an_owner_subscribes_a_webhook_and_sees_its_deliveries(live, page):
    app, base = live
    log_in(page, base, OWNER, then="/webhooks")
    page.fill("#webhook-form [name=url]", "https://hooks.acme.example.com/telegram")
    page.click("#webhook-submit")  # no event chosen
    expect(page.locator("#webhook-form [data-field=events] + .field-error")).to_be_visible()
    page.check("#event-choices input[value='campaign.completed']")
    page.check("#event-choices input[value='message.failed']")
    page.click("#webhook-submit")
    expect(page.locator("#new-secret")).to_be_visible()
    assert page.inner_text("#new-secret-value").strip()
    row = page.locator("#webhooks-table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text("campaign.completed, message.failed")

    with app.app_context(), tenant_scope(acme(app)):
        hook = Webhook.objects.get()
        now = datetime.now(UTC)
        WebhookDelivery(
            webhook_id=hook.id,
            event="campaign.completed",
            payload={"n": 1},
            status="delivered",
            attempts=1,
            attempt_log=[{"at": now, "status": 200, "error": None, "ms": 41.6}],
            delivered_at=now,
        ).save()
        WebhookDelivery(
            webhook_id=hook.id,
            event="message.failed",
            payload={"n": 2},
            status="failed",
            attempts=3,
            last_error="HTTP 500",
            attempt_log=[{"at": now, "status": 500, "error": None, "ms": 12.2}] * 3,
        ).save()
    page.click(".see-deliveries")
    deliveries = page.locator("#deliveries-table tbody tr")
    expect(deliveries).to_have_count(2)
    failed = deliveries.filter(has_text="message.failed")
    expect(failed.locator(".badge")).to_have_text("failed")
    expect(failed.locator("td").nth(2)).to_have_text("3")
    expect(failed.locator("td").nth(3)).to_have_text("HTTP 500 in 12 ms")
    shoot(page, "webhooks")

    accept_dialogs(page)
    page.click(".delete-webhook")
    expect(page.locator("#no-webhooks")).to_be_visible()
    expect(page.locator("#deliveries")).to_be_hidden()


def test_the_audit_log_filters_by_action_and_pages(live, page):
    app, base = live
    with app.app_context():
        tenant = acme(app)
        with tenant_scope(tenant):
            for n in range(27):
                record("campaign.created", tenant=tenant, target_type="campaign", summary={"name": f"C{n}"})
            record("user.created", tenant=tenant, target_type="user", summary={"role": "member"})
            owner = User.objects.get(email=OWNER)
            record("campaign.sent", tenant=tenant, actor=Actor(kind="user", id=str(owner.id), label=OWNER))
    log_in(page, base, OWNER, then="/audit-log")
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(25)
    info = page.inner_text(".page-info")  # the 29 entries above and the owner's login
    assert info == "Page 1 of 2 (30 entries)", info
    page.click(".next-page")
    expect(rows).to_have_count(5)
    expect(page.locator(".page-info")).to_have_text("Page 2 of 2 (30 entries)")
    expect(page.locator(".next-page")).to_be_disabled()
    shoot(page, "audit-log")
    page.fill("#filter-action", "user.created")
    page.click("#filters button")
    expect(rows).to_have_count(1)
    expect(rows.locator("td").nth(4)).to_have_text("Role: member")
    assert page.inner_text(".page-info").startswith("Page 1 of 1")
    page.fill("#filter-until", "2020-01-01T00:00")
    page.click("#filters button")
    expect(rows).to_have_count(0)
    page.fill("#filter-until", "")
    page.fill("#filter-action", "")
    page.select_option("#filter-actor", label="Olivia Owner <owner@acme.example.com>")
    page.click("#filters button")
    expect(rows).to_have_count(1)
    expect(rows.locator("td").nth(1)).to_have_text("campaign.sent")
    expect(rows.locator("td").nth(2)).to_have_text(OWNER)


def test_invoices_show_amounts_status_and_usage_in_human_units(live, page):
    app, base = live
    usage = {
        "storage": {"used": 5 * 1024 * 1024, "limit": 100 * 1024**3},
        "messagesPerMonth": {"used": 1200, "limit": None},
    }
    with app.app_context():
        Tenant.objects(slug="acme").update(set__billing__price_cents=49_900)  # enterprise: a custom price
        invoice = issue_invoice(acme(app), "2026-10", usage)
        assert invoice is not None and invoice.amount_cents == 49_900
    log_in(page, base, OWNER, then="/invoices")
    row = page.locator("#invoices-table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("open")
    assert row.locator("td").nth(3).inner_text() == "$499.00"
    row.click()
    usage_rows = page.locator("#invoice-usage tbody tr")
    expect(usage_rows.filter(has_text="Storage")).to_have_text("Storage5 MB100 GB")
    expect(usage_rows.filter(has_text="Messages per month")).to_have_text("Messages per month1,200unlimited")
    shoot(page, "invoices")


def test_an_owner_sets_up_single_sign_on_and_the_login_page_offers_it(live, page, provider):
    app, base = live
    page.goto(f"{base}/dashboard/login?tenant=acme")
    expect(page.locator("#brand-name")).to_have_text("Acme Corp")
    expect(page.locator("#sso-row")).to_be_hidden()  # not set up yet

    log_in(page, base, OWNER, then="/tenant/settings")
    page.click("[data-tab=security]")
    sso = sso_body(provider)
    page.fill("#sso-form [name=issuer]", "not a url")
    page.fill("#sso-form [name=clientId]", sso["clientId"])
    page.fill("#sso-form [name=clientSecret]", sso["clientSecret"])
    page.fill("#sso-form [name=allowedDomains]", "acme.example.com")
    page.click("#sso-save")
    expect(page.locator("#sso-form [data-field='security.sso.issuer'] + .field-error")).to_be_visible()
    page.fill("#sso-form [name=issuer]", sso["issuer"])
    page.click("#sso-save")
    expect(page.locator("#sso-form .saved")).to_be_visible()
    page.check("#tab-security [name=ssoEnabled]")
    page.click("#tab-security [data-group=security] .save")
    expect(page.locator("#sso-status")).to_contain_text("Set up and on")
    shoot(page, "settings-single-sign-on")
    page.click("#logout")
    page.wait_for_url("**/dashboard/login")

    page.goto(f"{base}/dashboard/login?tenant=acme")
    expect(page.locator("#sso-login")).to_have_text("Sign in with Acme Corp single sign-on")
    shoot(page, "login-single-sign-on")
    page.click("#sso-login")  # to the provider, which signs dana in and sends her back
    page.wait_for_url("**/dashboard/campaigns")
    page.wait_for_selector("body[data-ready=true]")
    assert "dana@acme.example.com (member)" in page.inner_text("#whoami")
    assert "code=" not in page.url


def test_a_member_sees_read_only_pages(live, page):
    app, base = live
    bot = a_bot(app)
    a_draft(app, bot, ["1001"])
    log_in(page, base, MEMBER)
    page.wait_for_url("**/dashboard/campaigns")
    page.wait_for_selector("body[data-ready=true]")
    visible = [a.inner_text() for a in page.locator(".topbar nav a").all() if a.is_visible()]
    assert visible == ["Campaigns", "Bots", "Reports", "Webhooks", "Settings"]
    expect(page.locator("#readonly-note")).to_be_visible()
    expect(page.locator("#new-campaign")).to_be_hidden()
    page.click("#campaigns-table tbody tr")
    expect(page.locator("#detail-status")).to_have_text("draft")
    expect(page.locator("#detail .actions")).to_be_hidden()
    expect(page.locator("#stats-counts [data-status=queued] strong")).to_have_text("0")

    page.goto(f"{base}/dashboard/bots")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#bots-table tbody tr")).to_have_count(1)
    expect(page.locator("#connect")).to_be_hidden()
    assert page.locator(".toggle-bot, .delete-bot").count() == 0

    page.goto(f"{base}/dashboard/webhooks")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#subscribe")).to_be_hidden()

    page.goto(f"{base}/dashboard/users")  # not in the navigation, and the API refuses the list
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#list-error")).to_have_text("Only owners and admins see and manage the users.")
    expect(page.locator("#invite")).to_be_hidden()


def test_a_plan_without_a_feature_shows_none_of_its_parts(live, page):
    app, base = live
    with app.app_context():
        Tenant.objects(slug="acme").update(set__features={"apiAccess": False, "sso": False})
    log_in(page, base, OWNER, then="/api-keys")
    expect(page.locator("#no-feature")).to_be_visible()
    expect(page.locator("#create")).to_be_hidden()
    assert page.inner_text("#list-error") == ""  # the keys made before still show, to be revoked
    page.goto(f"{base}/dashboard/tenant/settings")
    page.wait_for_selector("body[data-ready=true]")
    page.click("[data-tab=security]")
    expect(page.locator("#sso-form")).to_be_hidden()
    expect(page.locator("#own-two-factor")).to_be_visible()


def test_a_page_replaces_a_dead_access_token_with_the_sessions_refresh_token(live, page):
    _app, base = live
    log_in(page, base, OWNER, then="/bots")
    first = page.evaluate("sessionStorage.getItem('dash.token')")
    revoked = requests.post(
        f"{base}{API}/auth/logout", headers={"Authorization": f"Bearer {first}"}, timeout=5
    )
    assert revoked.status_code == 204
    page.reload()  # its first call is refused, refreshed, and made again
    page.wait_for_selector("body[data-ready=true]")
    assert "owner@acme.example.com" in page.inner_text("#whoami")
    second = page.evaluate("sessionStorage.getItem('dash.token')")
    assert second != first
    assert requests.get(f"{base}{API}/auth/me", headers={"Authorization": f"Bearer {second}"}, timeout=5).ok

    refresh = page.evaluate("sessionStorage.getItem('dash.refresh')")
    requests.post(
        f"{base}{API}/auth/logout",
        headers={"Authorization": f"Bearer {second}"},
        json={"refreshToken": refresh},
        timeout=5,
    )
    page.reload()  # nothing left to refresh with: back to the login page
    page.wait_for_url("**/dashboard/login")


def test_an_owner_runs_an_ab_test_from_the_form_and_chooses_its_winner(live, page, deliver, fake_telegram):
    app, base = live
    a_bot(app)
    log_in(page, base, OWNER)
    page.wait_for_selector("body[data-ready=true]")
    page.click("#new-campaign")
    page.fill("#campaign-form [name=name]", "Cover sheets")
    page.select_option("#campaign-form [name=telegramAccountId]", index=1)
    page.fill("#campaign-form [name=targets]", "1001\n1002\n1003\n1004")
    expect(page.locator("#ab-fields")).to_be_hidden()
    page.check("#campaign-form [name=abEnabled]")
    variants = page.locator("#variants .variant")
    expect(variants).to_have_count(2)
    expect(variants.locator(".remove-row").first).to_be_hidden()  # never fewer than 2
    page.click("#add-variant")
    expect(variants).to_have_count(3)
    expect(variants.nth(2).locator("[name=variantName]")).to_have_value("C")
    variants.nth(2).locator(".remove-row").click()
    expect(variants).to_have_count(2)
    variants.nth(0).locator("[name=variantText]").fill("TPS reports now come with a cover sheet")
    variants.nth(1).locator("[name=variantText]").fill("<b>Cover sheets</b> for every TPS report")
    variants.nth(1).locator("[name=variantParseMode]").select_option("HTML")
    page.fill("#campaign-form [name=testPercent]", "50")
    page.select_option("#campaign-form [name=winnerRule]", "deliveryRate")
    expect(page.locator("#after-minutes-label")).to_be_visible()
    page.fill("#campaign-form [name=afterMinutes]", "120")
    shoot(page, "campaign-ab-test")
    page.select_option("#campaign-form [name=winnerRule]", "")
    expect(page.locator("#after-minutes-label")).to_be_hidden()
    page.click("#save-campaign")
    expect(page.locator("#detail-status")).to_have_text("draft")
    [campaign] = page.locator("#campaigns-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    test = stored_campaign(app, campaign).ab_test
    assert (
        [v.name for v in test.variants] == ["A", "B"] and test.test_percent == 50 and test.winner_rule is None
    )

    page.click("#send-campaign")
    deliver()
    rows = page.locator("#variants-table tbody tr")
    expect(rows).to_have_count(2)
    for name in ("A", "B"):  # 50% of 4 targets, one each; Sent is the fourth column
        expect(page.locator(f"#variants-table tr[data-id={name}] td:nth-child(4)")).to_have_text("1")
    expect(page.locator("#stats-counts [data-status=held] strong")).to_have_text("2")
    expect(page.locator("#holdout-note")).to_contain_text("2 waiting for the winner")
    expect(page.locator("#winner-note")).to_have_text("No winner chosen yet.")
    shoot(page, "campaign-variants")

    page.click("#variants-table tr[data-id=B] .choose-winner")
    expect(page.locator("#winner-note")).to_contain_text("Winner: B")
    expect(page.locator("#stats-counts [data-status=sent] strong")).to_have_text("4")
    expect(page.locator("#detail-status")).to_have_text("completed")
    expect(page.locator(".choose-winner")).to_have_count(0)
    expect(page.locator("#variants-table tr[data-id=B] td").first).to_have_text("B (winner)")
    assert stored_campaign(app, campaign).ab_test.winner == "B"
    texts = [s["params"]["text"] for s in fake_telegram.sent]
    assert sorted(texts).count("<b>Cover sheets</b> for every TPS report") == 3


def test_a_campaign_in_two_languages_sends_each_target_its_own(live, page, deliver, fake_telegram):
    app, base = live
    a_bot(app)
    log_in(page, base, OWNER)
    page.wait_for_selector("body[data-ready=true]")
    page.click("#new-campaign")
    page.fill("#campaign-form [name=name]", "Cover sheets, everywhere")
    page.select_option("#campaign-form [name=telegramAccountId]", index=1)
    page.fill("#campaign-form [name=targets]", "1001, 1002")
    page.fill("#campaign-form [name=text]", "Cover sheets are here")
    page.click("#add-translation")
    page.fill("#translations .translation [name=translationLanguage]", "not a tag")
    page.fill("#translations .translation [name=translationText]", "Deckblätter sind da")
    page.fill("#campaign-form [name=targetLanguages]", "1002 de_DE!")
    page.click("#save-campaign")
    expect(page.locator("#campaign-form [data-field='message.translations'] + .field-error")).to_contain_text(
        "not a tag"
    )
    expect(page.locator("#campaign-form [data-field=targetLanguages] + .field-error")).to_have_text(
        "1002: Use a language tag, such as en, de or pt-BR."
    )
    shoot(page, "campaign-languages")
    page.fill("#translations .translation [name=translationLanguage]", "de")
    page.fill("#campaign-form [name=targetLanguages]", "1002 de")
    page.click("#save-campaign")
    expect(page.locator("#detail-status")).to_have_text("draft")
    expect(page.locator("#detail-facts")).to_contain_text("Deckblätter sind da")
    [campaign] = page.locator("#campaigns-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    stored = stored_campaign(app, campaign)
    assert (
        stored.target_languages == {"1002": "de"}
        and stored.message.translations["de"].text == "Deckblätter sind da"
    )

    page.click("#send-campaign")
    deliver()
    expect(page.locator("#detail-status")).to_have_text("completed")
    expect(page.locator("#languages-table tr[data-id=de] td:nth-child(4)")).to_have_text("1")
    expect(page.locator("#variant-stats")).to_be_hidden()
    assert {s["chat"]: s["params"]["text"] for s in fake_telegram.sent} == {
        "1001": "Cover sheets are here",
        "1002": "Deckblätter sind da",
    }


def a_sent_campaign(app, bot: str, targets: list[str], name: str) -> str:
    """A campaign of acme sent through the API and delivered by the running dispatcher."""
    campaign = a_draft(app, bot, targets, name=name)
    with app.app_context():
        response = app.test_client().post(f"{API}/campaigns/{campaign}/send", headers=headers_of(app, OWNER))
        assert response.status_code == 202, response.json
    deadline = time.monotonic() + 10
    while stored_campaign(app, campaign).status == "sending":
        assert time.monotonic() < deadline, "the campaign was not delivered"
        time.sleep(0.05)
    return campaign


def test_the_reports_page_shows_the_figures_a_csv_and_suggestions(live, page, deliver, fake_telegram):
    app, base = live
    bot = a_bot(app)
    fake_telegram.blocked_chats.add("1004")
    deliver()
    a_sent_campaign(app, bot, ["1004"], "Teaser")
    campaign = a_sent_campaign(app, bot, ["1001", "1002", "1003", "1004"], "Spring launch")
    log_in(page, base, MEMBER, then="/reports")  # any role reads reports
    expect(page.locator("nav a[data-nav=reports]")).to_have_attribute("aria-current", "page")
    expect(page.locator("#no-reports")).to_be_hidden()
    expect(page.locator("#report-totals [data-figure=messages] strong")).to_have_text("5")
    expect(page.locator("#report-totals [data-figure=sent] strong")).to_have_text("3")
    expect(page.locator("#report-totals [data-figure=failed] strong")).to_have_text("2")
    expect(page.locator("#report-totals")).to_contain_text("Bot blocked: 2")
    row = page.locator(f"#campaign-figures tr[data-id='{campaign}']")
    expect(row.locator("td").first).to_have_text("Spring launch")
    expect(row.locator("td").nth(5)).to_have_text("75%")
    expect(row.locator("td").nth(7)).to_have_text("Bot blocked: 1")
    expect(page.locator("#bot-figures tbody tr")).to_have_count(1)
    expect(page.locator("#report-chart .legend.series-sent")).to_have_text("sent: 3")
    assert page.locator("#report-chart polyline[data-series=failed]").count() == 1
    expect(page.locator("#campaign-figures tbody tr")).to_have_count(2)
    prune = page.locator(
        "#suggestions .suggestion[data-kind=prune_failing_targets]"
    )  # enterprise: aiSuggestions
    expect(prune).to_contain_text("1 chat failed 2 times or more")
    expect(prune.locator("table tbody tr")).to_have_count(1)
    expect(prune.locator("table tbody tr td").first).to_have_text("1004")
    expect(page.locator("#no-suggestions")).to_be_hidden()

    page.select_option("#report-filters [name=interval]", "hour")
    page.select_option("#report-filters [name=campaignId]", campaign)
    page.click("#report-filters button[type=submit]")
    expect(page.locator("#report-period")).to_contain_text("by the hour")
    shoot(page, "reports")
    with page.expect_download() as download:
        page.click("#export-csv")
    assert download.value.suggested_filename.startswith("delivery-report-")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    by_scope = {row["scope"]: row for row in rows}
    assert by_scope["total"]["messages"] == "4" and by_scope["total"]["failed:bot_blocked"] == "1"
    assert by_scope["campaign"]["key"] == campaign and by_scope["campaign"]["name"] == "Spring launch"
    assert by_scope["campaign"]["sent"] == "3" and "hour" in by_scope

    page.fill("#report-filters [name=from]", "2026-12-05")
    page.fill("#report-filters [name=until]", "2026-11-01")
    page.click("#report-filters button[type=submit]")
    expect(page.locator("#report-filters [data-field=from] + .field-error")).to_contain_text("before")


def test_a_plan_without_reports_variants_or_languages_hides_them(live, page):
    app, base = live
    with app.app_context():
        Tenant.objects(slug="acme").update(
            set__features={
                "abTesting": False,
                "multiLanguage": False,
                "customReports": False,
                "aiSuggestions": False,
            }
        )
    log_in(page, base, OWNER)
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("nav a[data-nav=reports]")).to_be_hidden()
    expect(page.locator("nav a[data-nav=bots]")).to_be_visible()
    page.click("#new-campaign")
    expect(page.locator("[data-section=abTest]")).to_be_hidden()
    expect(page.locator("[data-section=languages]")).to_be_hidden()
    expect(page.locator("[data-section=message]")).to_be_visible()
    page.goto(f"{base}/dashboard/reports")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#no-reports")).to_be_visible()
    expect(page.locator("#report")).to_be_hidden()
    expect(page.locator("#suggestions")).to_be_hidden()
