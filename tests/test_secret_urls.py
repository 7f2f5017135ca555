"""URLs of a tenant's integrations often carry secrets (a token in the path or the query): owners, admins
and superadmins see them whole, members only where they go (scheme and host), whatever the credential."""

from __future__ import annotations

import json

import pytest

from app.fields import url_origin
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.context import tenant_scope

from .support import API, create_bot, created, impersonation_headers, update_tenant

WEBHOOK_URL = "https://hooks.example.com:8443/services/T0001/B0002/wh-secret-1?token=wh-secret-2"
BOT_API_URL = "https://botapi.example.com/relay/bot-secret-1?key=bot-secret-2"
ISSUER = "https://login.example.com/realms/acme-secret-1"
CLIENT_ID = "client-secret-3"
SECRETS = ("wh-secret", "bot-secret", "acme-secret", "client-secret")


@pytest.fixture
def integrations(client, tenant, auth_headers):
    """A webhook, a bot on its own Bot API server and single sign-on, all with secrets in their URLs;
    return the webhook's and the bot's ids."""
    webhook = created(
        client.post(
            f"{API}/webhooks",
            headers=auth_headers,
            json={"url": WEBHOOK_URL, "events": ["campaign.completed"]},
        )
    )
    bot = create_bot(client, auth_headers)
    with tenant_scope(tenant):
        TelegramAccount.objects(id=bot).update_one(set__api_base_url=BOT_API_URL)
    update_tenant(
        tenant,
        set__settings__security__sso__issuer=ISSUER,
        set__settings__security__sso__client_id=CLIENT_ID,
    )
    return webhook["id"], bot


@pytest.fixture
def caller(client, tenant, make_user, headers_for, superadmin_headers, auth_headers):
    """Headers of a caller of `tenant` in the given role and with the given credential."""

    def headers(kind):
        if kind == "superadmin":
            return {**superadmin_headers, "X-Tenant-Id": str(tenant.id)}
        if kind.startswith("api key "):
            role = kind.removeprefix("api key ")
            key = created(
                client.post(f"{API}/api-keys", headers=auth_headers, json={"name": "ci", "role": role})
            )
            return {"X-API-Key": key["key"]}
        if kind == "impersonated member":
            member = make_user(tenant, "member")
            return impersonation_headers(client, superadmin_headers, tenant, user_id=member.id)
        return headers_for(make_user(tenant, kind))

    return headers


def answers(client, headers, webhook, bot) -> dict:
    """What the caller reads of the integrations, route by route."""
    return {
        "webhooks": client.get(f"{API}/webhooks", headers=headers).json["items"][0]["url"],
        "webhook": client.get(f"{API}/webhooks/{webhook}", headers=headers).json["url"],
        "bots": client.get(f"{API}/telegram-accounts", headers=headers).json["items"][0]["apiBaseUrl"],
        "bot": client.get(f"{API}/telegram-accounts/{bot}", headers=headers).json["apiBaseUrl"],
        "sso": client.get(f"{API}/tenants/current", headers=headers).json["settings"]["security"]["sso"],
    }


@pytest.mark.parametrize("kind", ["owner", "admin", "superadmin", "api key admin"])
def test_managers_see_the_urls_whole(client, integrations, caller, kind):
    seen = answers(client, caller(kind), *integrations)
    assert seen["webhooks"] == seen["webhook"] == WEBHOOK_URL
    assert seen["bots"] == seen["bot"] == BOT_API_URL
    assert (seen["sso"]["issuer"], seen["sso"]["clientId"]) == (ISSUER, CLIENT_ID)


@pytest.mark.parametrize("kind", ["member", "api key member", "impersonated member"])
def test_members_see_only_where_they_go(client, integrations, caller, kind):
    headers = caller(kind)
    seen = answers(client, headers, *integrations)
    assert seen["webhooks"] == seen["webhook"] == "https://hooks.example.com:8443/…"
    assert seen["bots"] == seen["bot"] == "https://botapi.example.com/…"
    assert (seen["sso"]["issuer"], seen["sso"]["clientId"]) == ("https://login.example.com/…", None)
    webhook, bot = integrations
    routes = ["webhooks", f"webhooks/{webhook}", f"webhooks/{webhook}/deliveries", "telegram-accounts"]
    routes += [f"telegram-accounts/{bot}", "tenants/current", "tenants/current/usage", "auth/me"]
    for url in routes:
        response = client.get(f"{API}/{url}", headers=headers)
        assert response.status_code == 200, (url, response.json)
        text = json.dumps(response.json)
        assert not [secret for secret in SECRETS if secret in text], url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:password@example.com/path?q=1#f", "https://example.com/…"),
        ("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/…"),
        ("https://example.com", "https://example.com/…"),
        ("https://example.com:99999/x", "https://example.com/…"),
    ],
)
def test_a_url_shown_to_members_keeps_its_scheme_and_host_only(url, shown):
    assert url_origin(url) == shown
