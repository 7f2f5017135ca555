"""Every feature flag of the plan catalog gates a request: refused without the flag, served with it.

One table maps each flag to a request that needs it. A flag that FEATURE_NAMES lists and the table does
not name fails the suite: a flag sold in GET /api/v1/plans must switch something on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.tenants.plans import FEATURE_NAMES, PLANS

from .support import bot_token, create_bot, error_code, sso_body, update_tenant

API = "/api/v1"
TARGETS = ["1001", "@acme_news"]


def _campaign(client, headers, **extra):
    body = {"name": "Launch", "message": {"text": "Hello"}, "targets": TARGETS, **extra}
    return client.post(f"{API}/campaigns", json=body, headers=headers)


def campaign_stats(client, headers, env):
    return client.get(f"{API}/campaigns/{env['campaign']}/stats", headers=headers)


def scheduled_campaign(client, headers, env):
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return _campaign(client, headers, scheduledAt=later)


def api_key(client, headers, env):
    return client.post(f"{API}/api-keys", json={"name": "ci pipeline"}, headers=headers)


def delivery_report(client, headers, env):
    return client.get(f"{API}/reports/delivery", headers=headers)


def own_bot_api_server(client, headers, env):
    body = {"name": "Own server", "token": bot_token(222222222), "apiBaseUrl": env["telegram"].url}
    return client.post(f"{API}/telegram-accounts", json=body, headers=headers)


def single_sign_on(client, headers, env):
    security = {"sso": sso_body(env["provider"]), "ssoEnabled": True}
    return client.patch(f"{API}/tenants/current/settings", json={"security": security}, headers=headers)


def custom_css(client, headers, env):
    branding = {"customCss": "body { color: #333333; }"}
    return client.patch(f"{API}/tenants/current/branding", json=branding, headers=headers)


def suggestions(client, headers, env):
    return client.get(f"{API}/suggestions", headers=headers)


def ab_test(client, headers, env):
    variants = [{"name": "A", "message": {"text": "Hello"}}, {"name": "B", "message": {"text": "Hi"}}]
    return _campaign(client, headers, abTest={"testPercent": 50, "winnerRule": None, "variants": variants})


def translations(client, headers, env):
    message = {"text": "Hello", "translations": {"de": {"text": "Hallo"}}}
    return _campaign(client, headers, message=message)


def paid_broadcasts(client, headers, env):
    body = {"name": "Broadcaster", "token": bot_token(333333333), "paidBroadcast": True}
    return client.post(f"{API}/telegram-accounts", json=body, headers=headers)


Request = Callable[..., object]
# flag -> (a request the flag gates, the status it answers with the flag)
GATES: dict[str, tuple[Request, int]] = {
    "basicAnalytics": (campaign_stats, 200),
    "automation": (scheduled_campaign, 201),
    "apiAccess": (api_key, 201),
    "customReports": (delivery_report, 200),
    "customIntegrations": (own_bot_api_server, 201),
    "sso": (single_sign_on, 200),
    "whiteLabel": (custom_css, 200),
    "aiSuggestions": (suggestions, 200),
    "paidBroadcasts": (paid_broadcasts, 201),
    "abTesting": (ab_test, 201),
    "multiLanguage": (translations, 201),
}


def test_every_flag_gates_a_tested_request():
    missing = set(FEATURE_NAMES) - set(GATES)
    assert not missing, f"flags that gate no tested request: {sorted(missing)}"
    assert set(GATES) <= set(FEATURE_NAMES), "the table names flags the catalog lacks"


def test_the_catalog_lists_exactly_the_flags():
    for plan in PLANS.values():
        assert set(plan["features"]) == set(FEATURE_NAMES)


def test_service_levels_are_text_not_flags(client):
    plans = {plan["id"]: plan for plan in client.get(f"{API}/plans").json["items"]}
    assert "sla" not in plans["enterprise"]["features"]
    assert plans["enterprise"]["sla"] and plans["enterprise"]["support"] == "dedicated"
    assert plans["free"]["sla"] is None


@pytest.fixture
def env(client, tenant, auth_headers, fake_telegram, provider):
    """The owner of an enterprise tenant (every flag of its plan on), with a campaign to look at."""
    update_tenant(tenant, set__plan="enterprise")
    create_bot(client, auth_headers)
    response = _campaign(client, auth_headers)
    assert response.status_code == 201, response.json
    return {"campaign": response.json["id"], "telegram": fake_telegram, "provider": provider}


@pytest.mark.parametrize("flag", sorted(GATES))
def test_the_flag_gates_its_request(client, tenant, auth_headers, env, flag):
    request, status = GATES[flag]
    update_tenant(tenant, set__features={flag: False})
    refused = request(client, auth_headers, env)
    assert refused.status_code == 403, refused.json
    assert error_code(refused) == "feature_not_available"
    assert refused.json["error"]["details"] == {"feature": flag}

    update_tenant(tenant, set__features={})
    served = request(client, auth_headers, env)
    assert served.status_code == status, served.json
