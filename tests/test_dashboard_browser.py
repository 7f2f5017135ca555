"""The original dashboard pages (login, tenant settings, superadmin tenants) in a headless Chromium
(tests/browser.py says how)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from app.auth.signup import signup
from app.jobs import trial_end
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.users.models import User

from .browser import MARKS, expect, log_in, serving, shoot
from .conftest import PASSWORD

pytestmark = MARKS


@pytest.fixture
def live(app_factory, make_user):
    """The service on a free loopback port, with a superadmin, two tenants and their users."""
    app = app_factory(TENANT_CACHE_TTL=0)
    with app.app_context():
        from app.users.service import create_superadmin

        create_superadmin("root@platform.example.com", "Root", PASSWORD)
        acme = create_tenant("Acme Corp", "acme", plan="enterprise")
        create_tenant("Globex", "globex", plan="starter")
        create_tenant("Initech", "initech", plan="free")
        with tenant_scope(acme):
            from app.users.service import create_user

            create_user("owner@acme.example.com", "Olivia Owner", PASSWORD, "owner")
            create_user("member@acme.example.com", "Max Member", PASSWORD, "member")
        # Overrides that make the usage bars tell something: users at 100%, campaigns with room.
        Tenant.objects(id=acme.id).update(set__limits={"users": 2, "campaigns": 10, "webhooks": 5})
    with serving(app) as base:
        yield app, base


SETTINGS = "/tenant/settings"


def stored(app, slug):
    with app.app_context():
        return Tenant.objects.get(slug=slug)


def test_owner_changes_a_setting_and_the_branding_and_they_persist(live, page):
    app, base = live
    log_in(page, base, "owner@acme.example.com", then=SETTINGS)
    assert page.inner_text("#tenant-name") == "Acme Corp"
    page.fill("#tab-general [name=timezone]", "Europe/Berlin")
    page.click("#tab-general .save")
    page.wait_for_selector("#tab-general .saved:not([hidden])")

    page.click("[data-tab=branding]")
    page.fill("#tab-branding [name=primaryColor]", "#aa3300")
    page.fill("#tab-branding [name=customCss]", ".brand { letter-spacing: 2px; }")
    page.click("#tab-branding .save")
    page.wait_for_selector("#tab-branding .saved:not([hidden])")
    shoot(page, "tenant-settings-branding")

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#tab-general [name=timezone]") == "Europe/Berlin"
    assert page.input_value("#tab-branding [name=primaryColor]") == "#aa3300"
    primary = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--primary').trim()")
    assert primary == "#aa3300"
    spacing = page.evaluate("getComputedStyle(document.querySelector('.brand')).letterSpacing")
    assert spacing == "2px"  # the tenant's custom CSS applies inside its pages
    tenant = stored(app, "acme")
    assert tenant.settings.general.timezone == "Europe/Berlin"
    assert tenant.branding.primary_color == "#aa3300"
    page.click("[data-tab=usage]")
    page.wait_for_selector("[data-resource=users]")
    assert "Users: 2 of 2 (100%)" in page.inner_text("[data-resource=users]")
    assert page.locator("[data-resource=users] .bar-fill.alert").count() == 1
    assert (
        page.locator(
            "[data-resource=campaigns] .bar-fill.alert, [data-resource=campaigns] .bar-fill.warn"
        ).count()
        == 0
    )
    shoot(page, "tenant-settings-usage")


def test_validation_errors_show_next_to_their_fields(live, page):
    _app, base = live
    log_in(page, base, "owner@acme.example.com", then=SETTINGS)
    page.fill("#tab-general [name=timezone]", "Mars/Olympus")
    page.click("#tab-general .save")
    error = page.wait_for_selector("#tab-general [data-field='general.timezone'] + .field-error")
    assert "IANA" in error.inner_text()


def test_a_member_finds_the_forms_read_only(live, page):
    _app, base = live
    log_in(page, base, "member@acme.example.com", then=SETTINGS)
    assert page.is_visible("#readonly-note")
    assert page.is_disabled("#tab-general [name=timezone]")
    assert page.is_disabled("#tab-general .save")
    page.click("[data-tab=security]")
    assert page.is_disabled("#tab-security [name=ipWhitelist]")
    assert page.is_disabled("#export-button")


def test_superadmin_filters_suspends_activates_impersonates_and_deletes(live, page):
    app, base = live
    log_in(page, base, "root@platform.example.com")
    page.wait_for_url("**/dashboard/tenants")
    page.wait_for_selector("body[data-ready=true]")
    rows = page.locator("#tenants-table tbody tr")
    expect(rows).to_have_count(3)

    page.select_option("#filter-plan", "starter")
    page.click("#filters button")
    expect(rows).to_have_count(1)
    assert rows.first.inner_text().startswith("Globex")
    page.select_option("#filter-plan", "")
    page.fill("#filter-q", "init")
    page.click("#filters button")
    expect(rows.first.locator("td").first).to_have_text("Initech")
    page.fill("#filter-q", "")
    page.click("#filters button")
    expect(rows).to_have_count(3)
    shoot(page, "superadmin-tenants")

    page.click("#tenants-table tbody tr[data-slug=globex]")
    # Only what applies: an active tenant can be suspended, not activated.
    expect(page.locator("#suspend-tenant")).to_be_visible()
    expect(page.locator("#activate-tenant")).to_be_hidden()
    page.fill("#action-reason", "payment overdue")
    page.click("#suspend-tenant")
    expect(page.locator("tr[data-slug=globex] .status-suspended")).to_have_count(1)
    assert stored(app, "globex").status == "suspended"
    expect(page.locator("#suspend-tenant")).to_be_hidden()
    expect(page.locator("#activate-tenant")).to_be_visible()
    page.click("#activate-tenant")
    expect(page.locator("tr[data-slug=globex] .status-active")).to_have_count(1)
    assert stored(app, "globex").status == "active"
    expect(page.locator("#activate-tenant")).to_be_hidden()

    page.click("#tenants-table tbody tr[data-slug=acme]")
    page.fill("#action-reason", "support ticket 4711")
    page.click("#impersonate-tenant")
    page.wait_for_url("**/dashboard/tenant/settings")
    page.wait_for_selector("body[data-ready=true]")
    banner = page.inner_text("#impersonation-banner")
    assert "Acting as Acme Corp" in banner and "root@platform.example.com" in banner and "ends at" in banner
    shoot(page, "impersonation-banner")
    page.click("#end-impersonation")
    page.wait_for_url("**/dashboard/tenants")
    page.wait_for_selector("body[data-ready=true]")
    assert not page.is_visible("#impersonation-banner")

    page.click("#tenants-table tbody tr[data-slug=initech]")
    assert page.is_disabled("#delete-tenant")
    page.fill("#delete-confirm", "initech")
    page.click("#delete-tenant")
    expect(rows).to_have_count(2)
    with app.app_context():
        assert Tenant.objects(slug="initech").first() is None


def test_the_login_page_shows_the_tenants_branding(live, page):
    app, base = live
    with app.app_context():
        Tenant.objects(slug="acme").update(
            set__branding__primary_color="#123456",
            set__branding__logo_url="https://cdn.acme.example.com/logo.png",
        )
    page.goto(f"{base}/dashboard/login?tenant=acme")
    expect(page.locator("#brand-name")).to_have_text("Acme Corp")
    primary = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--primary').trim()")
    assert primary == "#123456"
    shoot(page, "login-branded")


def test_a_content_security_policy_forbids_inline_scripts(live, page):
    _app, base = live
    response = page.goto(f"{base}/dashboard/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    ran = page.evaluate(
        """() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';
        document.body.appendChild(s); return window.injected === 1; }"""
    )
    assert ran is False
    blocked = [e for e in page.console_errors if "Content Security Policy" in e]
    assert blocked, "the browser should report the blocked inline script"
    page.console_errors.clear()  # expected here; any other page must have none


def test_the_api_docs_render_under_a_policy_without_inline_code(live, page):
    _app, base = live
    response = page.goto(f"{base}/api/v1/docs")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    expect(page.locator(".opblock-tag").first).to_be_visible()
    assert page.locator(".opblock").count() > 50
    page.locator(".opblock-summary", has_text="/api/v1/plans").first.click()
    expect(page.locator(".try-out__btn").first).to_be_visible()
    # The browser's own ask for /favicon.ico is a 404; anything else (a blocked script or style) is not.
    assert [e for e in page.console_errors if not e.startswith("Failed to load resource")] == []


def test_the_usage_tab_shows_the_trial_and_its_end(live, page):
    app, base = live
    owner = {"email": "owner@hooli.example.com", "name": "Gavin", "password": PASSWORD}
    with app.app_context():
        signup({"name": "Hooli", "slug": "hooli"}, owner, "professional")
    log_in(page, base, owner["email"], then=SETTINGS)
    page.click("[data-tab=usage]")
    note = page.locator("#trial-note")
    expect(note).to_have_attribute("data-status", "trialing")
    assert page.inner_text("#plan-name") == "professional"
    assert "Trial until" in note.inner_text() and "(14 days left)" in note.inner_text()
    assert "free plan" in note.inner_text()
    shoot(page, "tenant-settings-trial")

    with app.app_context():  # the trial's time runs out; the trial-end job has not run yet
        Tenant.objects(slug="hooli").update(
            set__billing__trial_ends_at=datetime.now(UTC) - timedelta(minutes=1)
        )
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.click("[data-tab=usage]")
    expect(note).to_have_attribute("data-status", "ending")
    assert "moving to the free plan" in note.inner_text()

    with app.app_context():
        assert trial_end.run() == {"ended": 1}
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.click("[data-tab=usage]")
    expect(note).to_have_attribute("data-status", "ended")
    assert page.inner_text("#plan-name") == "free"
    assert "The trial ended on" in note.inner_text()
    assert "Users: 1 of 5" in page.inner_text("[data-resource=users]")
    # Readable names, and bytes in human units.
    assert page.inner_text("[data-resource=storage]").startswith("Storage: 0 bytes of 100 MB")
    assert page.inner_text("[data-resource=messagesPerMonth]").startswith("Messages per month: 0 of 1,000")


def test_a_tenant_without_a_trial_shows_none(live, page):
    _app, base = live
    log_in(page, base, "owner@acme.example.com", then=SETTINGS)
    page.click("[data-tab=usage]")
    assert page.inner_text("#plan-name") == "enterprise"
    assert not page.is_visible("#trial-note")


def enter_code_from_the_qr(page, code_at):
    """Read the key the page shows beside its QR code and enter the code an authenticator would show."""
    page.wait_for_selector("#enrol:not([hidden])")
    qr = page.get_attribute("#enrol-qr", "src")
    assert qr.startswith("data:image/svg+xml")
    secret = page.inner_text("#enrol-secret").strip()
    page.fill("#enrol-code", code_at(pyotp.TOTP(secret)))
    page.click("#enrol-submit")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    return secret


def test_a_user_made_to_enrol_at_login_enrols_there_and_is_signed_in(live, page):
    app, base = live
    with app.app_context():
        Tenant.objects(slug="acme").update(set__settings__security__require_2fa=True)
    log_in(page, base, "member@acme.example.com")
    page.wait_for_selector("#enrol-card:not([hidden])")
    assert not page.is_visible("#login-card")
    enter_code_from_the_qr(page, lambda totp: totp.now())
    page.click("#enrol-continue")
    page.wait_for_url("**/dashboard/campaigns")
    page.wait_for_selector("body[data-ready=true]")
    assert "member@acme.example.com" in page.inner_text("#whoami")
    with app.app_context(), tenant_scope(stored(app, "acme")):
        assert User.objects.get(email="member@acme.example.com").two_factor_enabled is True


def test_the_owner_enrols_before_requiring_2fa_and_is_never_locked_out(live, page):
    app, base = live
    log_in(page, base, "owner@acme.example.com", then=SETTINGS)
    page.click("[data-tab=security]")
    page.check("#tab-security [name=require2fa]")
    page.click("#tab-security [data-group=security] .save")
    error = page.wait_for_selector("#tab-security [data-field='security.require2fa'] + .field-error")
    assert "no second factor" in error.inner_text()
    assert stored(app, "acme").settings.security.require_2fa is False

    page.click("#own-two-factor-start")
    secret = enter_code_from_the_qr(page, lambda totp: totp.now())
    recovery = page.locator("#recovery-codes li").all_inner_texts()
    page.click("#enrol-continue")
    page.wait_for_url("**/dashboard/login")
    log_in(page, base, "owner@acme.example.com")
    page.wait_for_selector("#code-row:not([hidden])")
    page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))  # the current code was used to enrol
    page.click("#login-submit")
    page.wait_for_url("**/dashboard/campaigns")
    page.wait_for_selector("body[data-ready=true]")
    page.goto(f"{base}/dashboard{SETTINGS}")
    page.wait_for_selector("body[data-ready=true]")
    page.click("[data-tab=security]")
    assert "On" in page.inner_text("#own-two-factor-status")
    page.check("#tab-security [name=require2fa]")
    page.click("#tab-security [data-group=security] .save")
    page.wait_for_selector("#tab-security [data-group=security] .saved:not([hidden])")
    assert stored(app, "acme").settings.security.require_2fa is True

    # Turning it off: refused while the tenant requires it, then with a wrong code, then done.
    page.fill("#disable-code", recovery[0])
    page.click("#disable-submit")
    expect(page.locator("#disable-form .error")).to_contain_text("requires two-factor")
    page.uncheck("#tab-security [name=require2fa]")
    page.click("#tab-security [data-group=security] .save")
    page.wait_for_selector("#tab-security [data-group=security] .saved:not([hidden])")
    page.fill("#disable-code", "not-a-code")
    page.click("#disable-submit")
    expect(page.locator("#disable-code + .field-error")).to_contain_text("does not match")
    page.fill("#disable-code", recovery[0])
    page.click("#disable-submit")
    page.wait_for_url("**/dashboard/login")
    with app.app_context(), tenant_scope(stored(app, "acme")):
        assert User.objects.get(email="owner@acme.example.com").two_factor_enabled is False
