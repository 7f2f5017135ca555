"""Suggestions from the tenant's own delivery history: their kinds and the figures behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from bson import ObjectId

from app.campaigns.models import Campaign, CampaignMessage
from app.messages.models import Message
from app.tenancy.context import tenant_scope
from app.usage import service as usage

from .support import error_code, update_tenant

SUGGESTIONS = "/api/v1/suggestions"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 65% of November has passed
DAY = datetime(2026, 11, 18, tzinfo=UTC)
BLOCKED = "Forbidden: bot was blocked by the user"
CAMPAIGN, BOT = ObjectId(), ObjectId()


def stored(chat: str, queued_at: datetime, status: str, latency: float = 0, error: str = "") -> Message:
    """A message as the dispatcher leaves it: sent after `latency` seconds, or failed with `error`."""
    outcome = (
        {"sent_at": queued_at + timedelta(seconds=latency)}
        if status == "sent"
        else {"failed_at": queued_at + timedelta(seconds=1), "error": error}
    )
    return Message(
        campaign_id=CAMPAIGN,
        telegram_account_id=BOT,
        chat=chat,
        text="hi",
        status=status,
        queued_at=queued_at,
        **outcome,
    )


def sent(chat: str, queued_at: datetime, latency: float) -> Message:
    return stored(chat, queued_at, "sent", latency)


def failed(chat: str, queued_at: datetime, error: str) -> Message:
    return stored(chat, queued_at, "failed", error=error)


@pytest.fixture(autouse=True)
def now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def enabled(tenant):
    """The professional tenant with aiSuggestions and 100 messages a month, in Berlin (UTC+1)."""
    return update_tenant(
        tenant,
        set__features={"aiSuggestions": True},
        set__limits={"messagesPerMonth": 100},
        set__settings__general__timezone="Europe/Berlin",
    )


def seed(tenant, messages: list[Message]) -> None:
    with tenant_scope(tenant):
        Message.objects.insert(messages, load_bulk=False)


def by_kind(response) -> dict:
    assert response.status_code == 200, response.json
    return {item["kind"]: item for item in response.json["items"]}


def hour(h: int, minute: int = 0, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=h, minutes=minute)


class TestBestHours:
    @pytest.fixture
    def history(self, enabled, other_tenant):
        messages = [sent(f"a{n}", hour(9, n), 2) for n in range(25)]
        messages += [sent(f"b{n}", hour(10, n), 1) for n in range(20)]
        messages += [failed(f"c{n}", hour(10, 30 + n), "Bad Request: message is too long") for n in range(5)]
        messages += [sent(f"d{n}", hour(18, n), 8) for n in range(20)]
        messages += [sent(f"e{n}", hour(3, n), 0) for n in range(5)]  # too few to compare
        messages += [sent(f"f{n}", hour(7, n, NOW - timedelta(days=40)), 0) for n in range(30)]  # too old
        seed(enabled, messages)
        # Another tenant's failures at 09:00 must not touch this tenant's figures.
        seed(other_tenant, [failed(f"g{n}", hour(9, n), BLOCKED) for n in range(30)])
        return enabled

    def test_the_best_hours_with_their_figures(self, client, auth_headers, history):
        suggestion = by_kind(client.get(SUGGESTIONS, headers=auth_headers))["best_send_hours"]
        assert "10:00, 19:00, 11:00" in suggestion["message"]
        figures = suggestion["figures"]
        assert figures["timezone"] == "Europe/Berlin"
        assert (figures["hoursCompared"], figures["minMessagesPerHour"]) == (3, 20)
        assert figures["best"] == [
            {
                "hour": 10,
                "messages": 25,
                "sent": 25,
                "failed": 0,
                "deliveryRate": 1.0,
                "averageLatencySeconds": 2.0,
            },
            {
                "hour": 19,
                "messages": 20,
                "sent": 20,
                "failed": 0,
                "deliveryRate": 1.0,
                "averageLatencySeconds": 8.0,
            },
            {
                "hour": 11,
                "messages": 25,
                "sent": 20,
                "failed": 5,
                "deliveryRate": 0.8,
                "averageLatencySeconds": 1.0,
            },
        ]
        assert figures["overall"] == {
            "deliveryRate": round(65 / 70, 4),
            "averageLatencySeconds": round((25 * 2 + 20 * 1 + 20 * 8) / 65, 3),
        }

    def test_a_message_counts_in_the_hour_it_went_out(self, client, auth_headers, enabled):
        # Queued at 03:00 for a campaign scheduled at 14:00 (UTC): it went out at 14:00.
        scheduled = [sent(f"s{n}", hour(3, n), 11 * 3600) for n in range(25)]
        seed(enabled, [*scheduled, *(sent(f"a{n}", hour(9, n), 2) for n in range(25))])
        best = by_kind(client.get(SUGGESTIONS, headers=auth_headers))["best_send_hours"]["figures"]["best"]
        assert [row["hour"] for row in best] == [10, 15]  # Berlin; the later one waited 11 hours

    def test_one_hour_is_nothing_to_compare(self, client, auth_headers, enabled):
        seed(enabled, [sent(f"a{n}", hour(9, n), 2) for n in range(40)])
        assert "best_send_hours" not in by_kind(client.get(SUGGESTIONS, headers=auth_headers))


class TestFailingTargets:
    def test_chats_that_keep_failing(self, client, auth_headers, enabled, other_tenant):
        seed(
            enabled,
            [
                failed("@gone", hour(22, 0, DAY - timedelta(days=3)), BLOCKED),
                failed("@gone", hour(22, 0, DAY - timedelta(days=2)), BLOCKED),
                failed("@worst", hour(22, 1, DAY - timedelta(days=3)), BLOCKED),
                failed("@worst", hour(22, 1, DAY - timedelta(days=2)), BLOCKED),
                failed("@worst", hour(22, 1, DAY - timedelta(days=1)), "Forbidden: user is deactivated"),
                # Delivered again after failing: kept.
                failed("@back", hour(22, 2, DAY - timedelta(days=3)), "Bad Request: chat not found"),
                failed("@back", hour(22, 2, DAY - timedelta(days=2)), "Bad Request: chat not found"),
                sent("@back", hour(22, 2, DAY - timedelta(days=1)), 1),
                # Once is not a pattern; server errors say nothing of the chat.
                failed("@once", hour(22, 3), BLOCKED),
                *(
                    failed("@flaky", hour(22, 4 + n), "gave up after 5 attempts: Bad Gateway")
                    for n in range(3)
                ),
            ],
        )
        seed(other_tenant, [failed("@theirs", hour(22, n), BLOCKED) for n in range(3)])
        suggestion = by_kind(client.get(SUGGESTIONS, headers=auth_headers))["prune_failing_targets"]
        assert suggestion["figures"]["threshold"] == 2
        assert suggestion["figures"]["count"] == 2
        assert suggestion["figures"]["targets"] == [
            {
                "chat": "@worst",
                "failures": 3,
                "reasons": {"bot_blocked": 2, "user_deactivated": 1},
                "lastFailedAt": "2026-11-17T22:01:01+00:00",
            },
            {
                "chat": "@gone",
                "failures": 2,
                "reasons": {"bot_blocked": 2},
                "lastFailedAt": "2026-11-16T22:00:01+00:00",
            },
        ]
        assert suggestion["message"].startswith("2 chats failed 2 times or more")


class TestQuota:
    def test_a_month_near_its_quota(self, client, auth_headers, enabled):
        with tenant_scope(enabled):
            usage.reserve("messagesPerMonth", 85)
        suggestion = by_kind(client.get(SUGGESTIONS, headers=auth_headers))["monthly_quota_near"]
        assert suggestion["figures"] == {
            "period": "2026-11",
            "used": 85,
            "limit": 100,
            "percent": 85.0,
            "projected": round(85 / 0.65),
            "resetsAt": "2026-12-01T00:00:00+00:00",
        }

    def test_a_month_heading_past_its_quota(self, client, auth_headers, enabled):
        with tenant_scope(enabled):
            usage.reserve("messagesPerMonth", 70)  # 70% now, 108 at this pace
        assert (
            by_kind(client.get(SUGGESTIONS, headers=auth_headers))["monthly_quota_near"]["figures"][
                "projected"
            ]
            == 108
        )

    def test_the_first_days_project_nothing(self, client, owner, headers_for, enabled):
        with time_machine.travel(datetime(2026, 11, 2, tzinfo=UTC), tick=False):
            with tenant_scope(enabled):
                usage.reserve("messagesPerMonth", 20)  # 600 at this pace, but one day says little
            assert by_kind(client.get(SUGGESTIONS, headers=headers_for(owner))) == {}

    def test_a_quiet_month_suggests_nothing(self, client, auth_headers, enabled):
        with tenant_scope(enabled):
            usage.reserve("messagesPerMonth", 10)
        assert by_kind(client.get(SUGGESTIONS, headers=auth_headers)) == {}

    def test_drafts_bigger_than_what_is_left(self, client, auth_headers, enabled):
        with tenant_scope(enabled):
            usage.reserve("messagesPerMonth", 85)
            big = Campaign(
                name="Big", message=CampaignMessage(text="x"), targets=[str(n) for n in range(20)]
            ).save()
            Campaign(
                name="Small", message=CampaignMessage(text="x"), targets=[str(n) for n in range(10)]
            ).save()
            Campaign(
                name="Sending",
                message=CampaignMessage(text="x"),
                targets=[str(n) for n in range(50)],
                status="sending",
            ).save()
        suggestion = by_kind(client.get(SUGGESTIONS, headers=auth_headers))["drafts_over_quota"]
        assert suggestion["figures"] == {
            "period": "2026-11",
            "left": 15,
            "campaigns": [{"campaignId": str(big.id), "name": "Big", "targets": 20}],
        }

    def test_unlimited_has_no_quota_suggestions(self, client, auth_headers, enabled):
        update_tenant(enabled, set__limits={"messagesPerMonth": None})
        with tenant_scope(enabled):
            usage.reserve("messagesPerMonth", 5000)
            Campaign(
                name="Big", message=CampaignMessage(text="x"), targets=[str(n) for n in range(20)]
            ).save()
        assert by_kind(client.get(SUGGESTIONS, headers=auth_headers)) == {}


class TestGating:
    def test_refused_without_ai_suggestions(self, client, auth_headers):
        response = client.get(SUGGESTIONS, headers=auth_headers)  # professional
        assert response.status_code == 403
        assert error_code(response) == "feature_not_available"
        assert response.json["error"]["details"] == {"feature": "aiSuggestions"}

    def test_a_tenant_without_history_gets_none(self, client, auth_headers, enabled):
        response = client.get(SUGGESTIONS, headers=auth_headers)
        assert response.json["items"] == []
        assert response.json["from"] == "2026-10-21T12:00:00+00:00"
