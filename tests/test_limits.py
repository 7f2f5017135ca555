"""Every limit of the plan table, enforced through the API at its boundary; downgrades below current
usage; usage alerts (recorded, audited and emitted once per threshold and period); the usage report.

apiCallsPerHour is a rate limit, covered in tests/test_rate_limits.py.
"""

from __future__ import annotations

import itertools

import pytest

from app.audit.models import AuditLog
from app.campaigns.models import Campaign
from app.media.models import MediaChunk, MediaFile
from app.messages.models import Message
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.context import tenant_scope
from app.tenants.plans import LIMIT_NAMES, PLANS
from app.usage.models import UsageAlert
from app.users.models import User
from app.webhooks.models import Webhook, WebhookDelivery

from .support import assert_limit_exceeded, bot_token, file_part, multipart, set_limits

USAGE = "/api/v1/tenants/current/usage"
_unique = itertools.count(1)


# -- helpers: one way to consume each limit through the API ---------------------------------------


def usage_of(client, headers, resource: str) -> dict:
    response = client.get(USAGE, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["resources"][resource]


def add_user(client, headers):
    n = next(_unique)
    return client.post(
        "/api/v1/users",
        headers=headers,
        json={
            "email": f"user{n}@acme.example.com",
            "name": f"User {n}",
            "role": "member",
            "password": "long enough 1",
        },
    )


def add_campaign(client, headers, targets=("@channel_one",), account_id=None):
    body = {"name": f"Campaign {next(_unique)}", "message": {"text": "Hello"}, "targets": list(targets)}
    if account_id:
        body["telegramAccountId"] = account_id
    return client.post("/api/v1/campaigns", headers=headers, json=body)


def add_telegram_account(client, headers):
    bot_id = 100_000 + next(_unique)
    return client.post(
        "/api/v1/telegram-accounts",
        headers=headers,
        json={"name": f"Bot {bot_id}", "token": bot_token(bot_id)},
    )


def add_webhook(client, headers, events=("campaign.completed",)):
    return client.post(
        "/api/v1/webhooks",
        headers=headers,
        json={"url": f"https://hooks.example.com/{next(_unique)}", "events": list(events)},
    )


def upload(client, headers, size: int):
    part = file_part(b"x" * size, "blob.bin", "application/octet-stream")
    return client.post("/api/v1/media", headers=headers, **multipart({"file": part}))


CREATORS = {
    "users": add_user,
    "campaigns": add_campaign,
    "telegramAccounts": add_telegram_account,
    "webhooks": add_webhook,
}
DOCUMENTS = {"users": User, "campaigns": Campaign, "telegramAccounts": TelegramAccount, "webhooks": Webhook}
ROUTES = {
    "users": "/api/v1/users",
    "campaigns": "/api/v1/campaigns",
    "telegramAccounts": "/api/v1/telegram-accounts",
    "webhooks": "/api/v1/webhooks",
}


def count(tenant, document_class, **filters) -> int:
    with tenant_scope(tenant):
        return document_class.objects(**filters).count()


def ok(response, status=201) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def refused(response, resource: str, limit: int, used: int, requested: int = 1) -> None:
    assert_limit_exceeded(response, resource, limit, used, requested)
    assert response.json["error"]["message"]


@pytest.fixture
def account_id(client, auth_headers):
    """A bot of the tenant, for campaigns that are sent."""
    return ok(add_telegram_account(client, auth_headers))["id"]


# -- the boundary of every limit -------------------------------------------------------------------


class TestBoundaries:
    @pytest.mark.parametrize("resource", ["users", "campaigns", "telegramAccounts", "webhooks"])
    def test_limit_minus_one_and_limit_succeed_limit_plus_one_fails(
        self, client, auth_headers, tenant, resource
    ):
        create, document = CREATORS[resource], DOCUMENTS[resource]
        start = usage_of(client, auth_headers, resource)["used"]  # the owner is a user already
        limit = start + 3
        set_limits(tenant, **{resource: limit})
        ok(create(client, auth_headers))
        ok(create(client, auth_headers))
        assert usage_of(client, auth_headers, resource)["used"] == limit - 1
        ok(create(client, auth_headers))  # reaches the limit
        assert usage_of(client, auth_headers, resource)["used"] == limit
        refused(create(client, auth_headers), resource, limit=limit, used=limit)
        assert count(tenant, document) == limit
        assert usage_of(client, auth_headers, resource) == {"used": limit, "limit": limit, "percent": 100.0}
        listed = client.get(ROUTES[resource], headers=auth_headers).json
        assert listed["total"] == limit

    @pytest.mark.parametrize("resource", ["users", "campaigns", "telegramAccounts", "webhooks"])
    def test_a_refusal_is_repeatable_and_consumes_nothing(self, client, auth_headers, tenant, resource):
        start = usage_of(client, auth_headers, resource)["used"]
        set_limits(tenant, **{resource: start + 1})
        ok(CREATORS[resource](client, auth_headers))
        for _ in range(3):
            refused(CREATORS[resource](client, auth_headers), resource, limit=start + 1, used=start + 1)
        assert usage_of(client, auth_headers, resource)["used"] == start + 1

    @pytest.mark.parametrize("resource", ["users", "campaigns", "telegramAccounts", "webhooks"])
    def test_a_limit_equal_to_usage_refuses_the_next(self, client, auth_headers, tenant, resource):
        start = usage_of(client, auth_headers, resource)["used"]
        set_limits(tenant, **{resource: start})
        refused(CREATORS[resource](client, auth_headers), resource, limit=start, used=start)

    @pytest.mark.parametrize("resource", ["users", "campaigns", "telegramAccounts", "webhooks"])
    def test_unlimited_is_not_refused(self, client, auth_headers, tenant, resource):
        set_limits(tenant, **{resource: None})
        for _ in range(3):
            ok(CREATORS[resource](client, auth_headers))
        assert usage_of(client, auth_headers, resource)["limit"] is None
        assert usage_of(client, auth_headers, resource)["percent"] is None

    def test_storage_bytes(self, client, auth_headers, tenant):
        set_limits(tenant, storage=100)
        ok(upload(client, auth_headers, 99))
        assert usage_of(client, auth_headers, "storage")["used"] == 99
        refused(upload(client, auth_headers, 2), "storage", limit=100, used=99, requested=2)
        ok(upload(client, auth_headers, 1))  # exactly the limit
        assert usage_of(client, auth_headers, "storage") == {"used": 100, "limit": 100, "percent": 100.0}
        refused(upload(client, auth_headers, 1), "storage", limit=100, used=100, requested=1)
        assert count(tenant, MediaFile) == 2 and count(tenant, MediaChunk) == 2
        assert usage_of(client, auth_headers, "storage")["used"] == 100

    def test_messages_per_month_through_campaign_send(self, client, auth_headers, tenant, account_id):
        set_limits(tenant, messagesPerMonth=5)
        four = ok(add_campaign(client, auth_headers, ["@chat_aaaa", "@chat_bbbb", "-1001", "42"], account_id))
        one = ok(add_campaign(client, auth_headers, ["@chat_cccc"], account_id))
        extra = ok(add_campaign(client, auth_headers, ["@chat_dddd"], account_id))

        sent = ok(client.post(f"/api/v1/campaigns/{four['id']}/send", headers=auth_headers), 202)
        assert sent["status"] in ("sending", "scheduled")
        assert usage_of(client, auth_headers, "messagesPerMonth")["used"] == 4  # limit - 1
        ok(client.post(f"/api/v1/campaigns/{one['id']}/send", headers=auth_headers), 202)
        assert usage_of(client, auth_headers, "messagesPerMonth") == {"used": 5, "limit": 5, "percent": 100.0}

        response = client.post(f"/api/v1/campaigns/{extra['id']}/send", headers=auth_headers)
        refused(response, "messagesPerMonth", limit=5, used=5, requested=1)
        assert client.get(f"/api/v1/campaigns/{extra['id']}", headers=auth_headers).json["status"] == "draft"
        assert count(tenant, Message, campaign_id=extra["id"]) == 0
        assert count(tenant, Message) == 5
        assert usage_of(client, auth_headers, "messagesPerMonth")["used"] == 5

    def test_a_send_is_all_or_nothing(self, client, auth_headers, tenant, account_id):
        set_limits(tenant, messagesPerMonth=5)
        first = ok(add_campaign(client, auth_headers, ["@chat_aaaa", "@chat_bbbb", "@chat_cccc"], account_id))
        ok(client.post(f"/api/v1/campaigns/{first['id']}/send", headers=auth_headers), 202)
        three = ok(add_campaign(client, auth_headers, ["@chat_dddd", "@chat_eeee", "@chat_ffff"], account_id))
        response = client.post(f"/api/v1/campaigns/{three['id']}/send", headers=auth_headers)
        refused(response, "messagesPerMonth", limit=5, used=3, requested=3)
        assert count(tenant, Message, campaign_id=three["id"]) == 0
        assert usage_of(client, auth_headers, "messagesPerMonth")["used"] == 3
        two = ok(add_campaign(client, auth_headers, ["@chat_gggg", "@chat_hhhh"], account_id))
        ok(client.post(f"/api/v1/campaigns/{two['id']}/send", headers=auth_headers), 202)
        assert usage_of(client, auth_headers, "messagesPerMonth")["used"] == 5

    def test_a_campaign_with_more_targets_than_the_whole_limit(
        self, client, auth_headers, tenant, account_id
    ):
        set_limits(tenant, messagesPerMonth=2)
        big = ok(add_campaign(client, auth_headers, ["@chat_aaaa", "@chat_bbbb", "@chat_cccc"], account_id))
        response = client.post(f"/api/v1/campaigns/{big['id']}/send", headers=auth_headers)
        refused(response, "messagesPerMonth", limit=2, used=0, requested=3)
        assert count(tenant, Message) == 0

    def test_plan_values_apply_without_overrides(self, client, auth_headers, other_owner, headers_for):
        for headers, plan in ((auth_headers, "professional"), (headers_for(other_owner), "starter")):
            resources = client.get(USAGE, headers=headers).json["resources"]
            assert {name: resources[name]["limit"] for name in LIMIT_NAMES} == PLANS[plan]["limits"]


# -- downgrades ----------------------------------------------------------------------------------


class TestDowngrade:
    def patch_tenant(self, client, superadmin_headers, tenant, body):
        response = client.patch(f"/api/v1/tenants/{tenant.id}", headers=superadmin_headers, json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json

    def test_a_plan_below_usage_keeps_data_and_refuses_new_until_under(
        self, client, auth_headers, tenant, superadmin_headers
    ):
        ids = [ok(add_telegram_account(client, auth_headers))["id"] for _ in range(5)]
        self.patch_tenant(client, superadmin_headers, tenant, {"plan": "starter"})  # 3 bots
        assert usage_of(client, auth_headers, "telegramAccounts") == {"used": 5, "limit": 3, "percent": 166.7}
        listed = client.get("/api/v1/telegram-accounts", headers=auth_headers).json
        assert sorted(item["id"] for item in listed["items"]) == sorted(ids) and listed["total"] == 5
        for account_id in ids:
            assert (
                client.get(f"/api/v1/telegram-accounts/{account_id}", headers=auth_headers).status_code == 200
            )
        renamed = client.patch(
            f"/api/v1/telegram-accounts/{ids[0]}", headers=auth_headers, json={"name": "Kept"}
        )
        assert renamed.status_code == 200

        refused(add_telegram_account(client, auth_headers), "telegramAccounts", limit=3, used=5)
        for account_id, used_after in ((ids[0], 4), (ids[1], 3)):
            assert (
                client.delete(f"/api/v1/telegram-accounts/{account_id}", headers=auth_headers).status_code
                == 204
            )
            refused(add_telegram_account(client, auth_headers), "telegramAccounts", limit=3, used=used_after)
        assert client.delete(f"/api/v1/telegram-accounts/{ids[2]}", headers=auth_headers).status_code == 204
        ok(add_telegram_account(client, auth_headers))  # 2 -> 3
        refused(add_telegram_account(client, auth_headers), "telegramAccounts", limit=3, used=3)
        assert count(tenant, TelegramAccount) == 3

    def test_a_plan_without_webhooks_keeps_the_existing_ones(
        self, client, auth_headers, tenant, superadmin_headers
    ):
        ids = [ok(add_webhook(client, auth_headers))["id"] for _ in range(2)]
        self.patch_tenant(client, superadmin_headers, tenant, {"plan": "free"})
        assert count(tenant, Webhook) == 2
        assert client.get(f"/api/v1/webhooks/{ids[0]}", headers=auth_headers).status_code == 200
        refused(add_webhook(client, auth_headers), "webhooks", limit=0, used=2)
        for webhook_id in ids:
            assert client.delete(f"/api/v1/webhooks/{webhook_id}", headers=auth_headers).status_code == 204
        refused(add_webhook(client, auth_headers), "webhooks", limit=0, used=0)

    def test_lower_overrides_for_users_and_campaigns(
        self, client, auth_headers, tenant, superadmin_headers, make_user, headers_for
    ):
        members = [make_user(tenant, "member") for _ in range(3)]  # 4 users with the owner
        campaigns = [ok(add_campaign(client, auth_headers))["id"] for _ in range(3)]
        self.patch_tenant(client, superadmin_headers, tenant, {"limits": {"users": 2, "campaigns": 1}})

        assert count(tenant, User) == 4 and count(tenant, Campaign) == 3
        me = client.get("/api/v1/auth/me", headers=headers_for(members[2]))
        assert me.status_code == 200  # existing members keep working
        edited = client.patch(
            f"/api/v1/campaigns/{campaigns[0]}", headers=auth_headers, json={"name": "Still mine"}
        )
        assert edited.status_code == 200 and edited.json["name"] == "Still mine"

        refused(add_user(client, auth_headers), "users", limit=2, used=4)
        refused(add_campaign(client, auth_headers), "campaigns", limit=1, used=3)
        for member in members[:2]:
            assert client.delete(f"/api/v1/users/{member.id}", headers=auth_headers).status_code == 204
        refused(add_user(client, auth_headers), "users", limit=2, used=2)
        assert client.delete(f"/api/v1/users/{members[2].id}", headers=auth_headers).status_code == 204
        ok(add_user(client, auth_headers))
        for campaign_id in campaigns:
            assert client.delete(f"/api/v1/campaigns/{campaign_id}", headers=auth_headers).status_code == 204
        ok(add_campaign(client, auth_headers))
        refused(add_campaign(client, auth_headers), "campaigns", limit=1, used=1)

    def test_storage_below_usage_keeps_files_readable(self, client, auth_headers, tenant, superadmin_headers):
        first = ok(upload(client, auth_headers, 300))["id"]
        ok(upload(client, auth_headers, 300))
        self.patch_tenant(client, superadmin_headers, tenant, {"limits": {"storage": 400}})
        content = client.get(f"/api/v1/media/{first}/content", headers=auth_headers)
        assert content.status_code == 200 and content.get_data() == b"x" * 300
        refused(upload(client, auth_headers, 1), "storage", limit=400, used=600, requested=1)
        assert client.delete(f"/api/v1/media/{first}", headers=auth_headers).status_code == 204
        refused(upload(client, auth_headers, 101), "storage", limit=400, used=300, requested=101)
        ok(upload(client, auth_headers, 100))
        assert usage_of(client, auth_headers, "storage") == {"used": 400, "limit": 400, "percent": 100.0}


# -- usage alerts -----------------------------------------------------------------------------------


class TestUsageAlerts:
    @pytest.fixture
    def hooks(self, client, auth_headers, tenant):
        """Thresholds [50, 100], 4 campaigns, and two webhooks: one subscribed to usage.threshold."""
        response = client.patch(
            "/api/v1/tenants/current/settings",
            headers=auth_headers,
            json={"notifications": {"usageAlertThresholds": [50, 100]}},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        set_limits(tenant, campaigns=4, messagesPerMonth=4)
        subscribed = ok(add_webhook(client, auth_headers, ["usage.threshold", "campaign.completed"]))["id"]
        other = ok(add_webhook(client, auth_headers, ["campaign.completed", "campaign.failed"]))["id"]
        return subscribed, other

    def alerts(self, tenant, resource="campaigns") -> list[tuple[int, int, int]]:
        with tenant_scope(tenant):
            found = UsageAlert.objects(resource=resource).order_by("threshold")
            return [(a.threshold, a.used, a.limit) for a in found]

    def audited(self, tenant) -> list[dict]:
        with tenant_scope(tenant):
            entries = AuditLog.objects(action="usage.threshold_crossed").order_by("created_at")
            return sorted((e.summary for e in entries), key=lambda s: (s["resource"], s["threshold"]))

    def deliveries(self, tenant, webhook_id) -> list[dict]:
        with tenant_scope(tenant):
            found = WebhookDelivery.objects(webhook_id=webhook_id)
            return sorted(
                ({"event": d.event, **d.payload["data"]} for d in found),
                key=lambda d: (d["resource"], d["threshold"]),
            )

    def test_each_threshold_is_recorded_once(self, client, auth_headers, tenant, hooks):
        subscribed, other = hooks
        ok(add_campaign(client, auth_headers))  # 25%
        assert self.alerts(tenant) == []
        second = ok(add_campaign(client, auth_headers))["id"]  # 50%
        assert self.alerts(tenant) == [(50, 2, 4)]

        # Around the threshold: down to 25% and up to 50% again records nothing new.
        for _ in range(2):
            assert client.delete(f"/api/v1/campaigns/{second}", headers=auth_headers).status_code == 204
            second = ok(add_campaign(client, auth_headers))["id"]
        assert self.alerts(tenant) == [(50, 2, 4)]

        ok(add_campaign(client, auth_headers))  # 75%
        assert self.alerts(tenant) == [(50, 2, 4)]
        fourth = ok(add_campaign(client, auth_headers))["id"]  # 100%
        assert self.alerts(tenant) == [(50, 2, 4), (100, 4, 4)]
        refused(add_campaign(client, auth_headers), "campaigns", limit=4, used=4)
        assert client.delete(f"/api/v1/campaigns/{fourth}", headers=auth_headers).status_code == 204
        ok(add_campaign(client, auth_headers))  # 100% again
        assert self.alerts(tenant) == [(50, 2, 4), (100, 4, 4)]

        crossings = [
            {"resource": "campaigns", "threshold": 50, "used": 2, "limit": 4},
            {"resource": "campaigns", "threshold": 100, "used": 4, "limit": 4},
        ]
        audited = self.audited(tenant)
        assert [
            {k: entry[k] for k in ("resource", "threshold", "used", "limit")} for entry in audited
        ] == crossings
        delivered = self.deliveries(tenant, subscribed)
        assert [
            {k: d[k] for k in ("event", "resource", "threshold", "used", "limit")} for d in delivered
        ] == [{"event": "usage.threshold", **crossing} for crossing in crossings]
        assert all(d["period"] == audited[0]["period"] for d in delivered)
        assert self.deliveries(tenant, other) == []

        listed = client.get(f"/api/v1/webhooks/{subscribed}/deliveries", headers=auth_headers).json
        assert listed["total"] == 2 and {item["event"] for item in listed["items"]} == {"usage.threshold"}
        assert client.get(f"/api/v1/webhooks/{other}/deliveries", headers=auth_headers).json["total"] == 0

    def test_one_reservation_can_cross_both_thresholds(self, client, auth_headers, tenant, hooks, account_id):
        subscribed, other = hooks
        campaign = ok(
            add_campaign(client, auth_headers, ["@chat_aaaa", "@chat_bbbb", "@chat_cccc", "7"], account_id)
        )
        ok(client.post(f"/api/v1/campaigns/{campaign['id']}/send", headers=auth_headers), 202)
        assert self.alerts(tenant, "messagesPerMonth") == [(50, 4, 4), (100, 4, 4)]
        assert [(e["resource"], e["threshold"]) for e in self.audited(tenant)] == [
            ("messagesPerMonth", 50),
            ("messagesPerMonth", 100),
        ]
        assert [(d["event"], d["threshold"]) for d in self.deliveries(tenant, subscribed)] == [
            ("usage.threshold", 50),
            ("usage.threshold", 100),
        ]
        assert self.deliveries(tenant, other) == []

    def test_another_tenant_gets_no_alerts_of_ours(
        self, client, auth_headers, tenant, hooks, other_tenant, other_owner, headers_for
    ):
        theirs = ok(add_webhook(client, headers_for(other_owner), ["usage.threshold"]))["id"]
        for _ in range(4):
            ok(add_campaign(client, auth_headers))
        assert len(self.alerts(tenant)) == 2
        assert self.alerts(other_tenant) == []
        assert self.deliveries(other_tenant, theirs) == []
        with tenant_scope(other_tenant):
            assert AuditLog.objects(action="usage.threshold_crossed").count() == 0

    def test_without_thresholds_nothing_is_recorded(self, client, auth_headers, tenant, hooks):
        response = client.patch(
            "/api/v1/tenants/current/settings",
            headers=auth_headers,
            json={"notifications": {"usageAlertThresholds": []}},
        )
        assert response.status_code == 200
        for _ in range(4):
            ok(add_campaign(client, auth_headers))
        assert self.alerts(tenant) == []
        assert self.deliveries(tenant, hooks[0]) == []


# -- the usage report ---------------------------------------------------------------------------


class TestUsageReport:
    def test_every_limit_with_used_limit_and_percent(
        self, client, auth_headers, tenant, make_user, headers_for, account_id
    ):
        set_limits(tenant, campaigns=8, storage=1000, messagesPerMonth=10)
        make_user(tenant, "member")
        campaign = ok(add_campaign(client, auth_headers, ["@chat_aaaa", "@chat_bbbb"], account_id))
        ok(client.post(f"/api/v1/campaigns/{campaign['id']}/send", headers=auth_headers), 202)
        ok(add_webhook(client, auth_headers))
        ok(upload(client, auth_headers, 250))

        body = client.get(USAGE, headers=headers_for(make_user(tenant, "member"))).json  # any role reads it
        resources = body["resources"]
        assert set(resources) == set(LIMIT_NAMES)
        assert resources["users"] == {"used": 3, "limit": 100, "percent": 3.0}
        assert resources["campaigns"] == {"used": 1, "limit": 8, "percent": 12.5}
        assert resources["messagesPerMonth"] == {"used": 2, "limit": 10, "percent": 20.0}
        assert resources["telegramAccounts"] == {"used": 1, "limit": 10, "percent": 10.0}
        assert resources["webhooks"] == {"used": 1, "limit": 20, "percent": 5.0}
        assert resources["storage"] == {"used": 250, "limit": 1000, "percent": 25.0}
        api_calls = resources["apiCallsPerHour"]
        assert api_calls["limit"] == 20_000 and isinstance(api_calls["used"], int) and api_calls["used"] >= 0
        assert api_calls["percent"] == round(100 * api_calls["used"] / 20_000, 1)
        assert body["period"]["start"] < body["period"]["end"]

    def test_each_tenant_sees_its_own_usage(self, client, auth_headers, other_owner, headers_for):
        ok(add_campaign(client, auth_headers))
        ok(upload(client, auth_headers, 10))
        theirs = client.get(USAGE, headers=headers_for(other_owner)).json["resources"]
        assert theirs["campaigns"]["used"] == 0 and theirs["storage"]["used"] == 0
        assert theirs["campaigns"]["limit"] == PLANS["starter"]["limits"]["campaigns"]
