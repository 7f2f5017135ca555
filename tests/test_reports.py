"""Delivery reports: figures against hand-computed expectations, filters, CSV, gating, the platform view."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from app.audit.models import PlatformAuditLog
from app.campaigns.models import Campaign, CampaignMessage
from app.messages.models import Message
from app.reports.figures import FAILURE_REASONS, OTHER_REASON
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.context import tenant_scope

from .support import error_code, update_tenant

REPORT = "/api/v1/reports/delivery"
CSV = "/api/v1/reports/delivery/csv"
PLATFORM = "/api/v1/platform/reports/delivery"

D1 = datetime(2026, 11, 10, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)
PERIOD = {"from": "2026-11-10T00:00:00Z", "until": "2026-11-13T00:00:00Z"}

BLOCKED = "Forbidden: bot was blocked by the user"
NOT_FOUND = "Bad Request: chat not found"


def at(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day + timedelta(hours=hour, minutes=minute)


def bot(name: str, bot_id: int) -> TelegramAccount:
    return TelegramAccount(name=name, bot_id=bot_id, token_encrypted="x", token_last4="abcd").save()


def campaign(name: str, account: TelegramAccount) -> Campaign:
    return Campaign(
        name=name, message=CampaignMessage(text="hi"), targets=["1"], telegram_account=account
    ).save()


def message(camp: Campaign, queued_at: datetime, status: str, latency: float = 0, error: str = "") -> Message:
    fields: dict = {"status": status, "queued_at": queued_at}
    if status == "sent":
        fields["sent_at"] = queued_at + timedelta(seconds=latency)
    if status == "failed":
        fields["error"] = error
        fields["failed_at"] = queued_at + timedelta(seconds=1)
    return Message(
        campaign_id=camp.id, telegram_account_id=camp.telegram_account.id, chat="1001", text="hi", **fields
    ).save()


@pytest.fixture
def seeded(tenant, other_tenant):
    """Messages over three days, two bots, three campaigns; another tenant's and earlier ones too."""
    with tenant_scope(tenant):
        news, promo = bot("News bot", 1), bot("Promo bot", 2)
        a, b, c = campaign("Launch", news), campaign("Sale", promo), campaign("Follow-up", news)
        message(a, at(D1, 9), "sent", 2)
        message(a, at(D1, 9, 10), "sent", 4)
        message(a, at(D1, 9, 20), "failed", error=BLOCKED)
        message(a, at(D1, 15, 30), "sent", 10)
        message(a, at(D2, 9), "failed", error=NOT_FOUND)
        message(a, at(D2, 9, 5), "failed", error="gave up after 3 attempts: Internal Server Error")
        message(a, at(D2, 10), "cancelled")
        message(b, at(D2, 10, 30), "sent", 30)
        message(b, at(D2, 10, 40), "failed", error="delivery outcome unknown: the dispatcher stopped")
        message(b, at(D3, 8), "queued")
        message(b, at(D3, 8), "failed", error=BLOCKED)
        message(b, at(D3, 8, 30), "failed", error="Bad Request: message is too long")
        message(b, at(D3, 8, 40), "failed", error="something new")
        message(c, at(D3, 9), "sent", 6)
        # Before the period: not counted.
        message(a, D1 - timedelta(seconds=1), "sent", 1)
    with tenant_scope(other_tenant):
        theirs = campaign("Theirs", bot("Their bot", 3))
        for minute in range(3):
            message(theirs, at(D1, 9, minute), "sent", 100)
        message(theirs, at(D2, 9), "failed", error=NOT_FOUND)
    return {"a": a, "b": b, "c": c, "news": news, "promo": promo, "theirs": theirs}


def get(client, headers, url=REPORT, **args):
    return client.get(url, query_string={**PERIOD, **args}, headers=headers)


class TestFigures:
    def test_totals(self, client, auth_headers, seeded):
        response = get(client, auth_headers)
        assert response.status_code == 200, response.json
        assert response.json["totals"] == {
            "messages": 14,
            "sent": 5,
            "failed": 7,
            "cancelled": 1,
            "pending": 1,
            "deliveryRate": round(5 / 12, 4),
            "latency": {"count": 5, "averageSeconds": 10.4, "maxSeconds": 30.0},  # (2+4+10+30+6)/5
            "failures": {
                "outcome_unknown": 1,
                "gave_up": 1,
                "bot_blocked": 2,
                "chat_not_found": 1,
                "bad_request": 1,
                "other": 1,
            },
        }
        assert response.json["timezone"] == "UTC"
        assert response.json["from"].startswith("2026-11-10T00:00:00")

    def test_per_day(self, client, auth_headers, seeded):
        series = get(client, auth_headers).json["series"]
        assert [row["start"] for row in series] == [
            "2026-11-10T00:00:00+00:00",
            "2026-11-11T00:00:00+00:00",
            "2026-11-12T00:00:00+00:00",
        ]
        day1, day2, day3 = series
        assert (day1["messages"], day1["sent"], day1["failed"]) == (4, 3, 1)
        assert day1["latency"] == {"count": 3, "averageSeconds": round(16 / 3, 3), "maxSeconds": 10.0}
        assert day1["failures"] == {"bot_blocked": 1}
        assert (day2["messages"], day2["sent"], day2["failed"], day2["cancelled"]) == (5, 1, 3, 1)
        assert day2["failures"] == {"outcome_unknown": 1, "gave_up": 1, "chat_not_found": 1}
        assert (day3["messages"], day3["sent"], day3["failed"], day3["pending"]) == (5, 1, 3, 1)
        assert day3["deliveryRate"] == 0.25

    def test_per_hour_lists_every_hour(self, client, auth_headers, seeded):
        period = {"from": "2026-11-10T00:00:00Z", "until": "2026-11-11T00:00:00Z", "interval": "hour"}
        series = client.get(REPORT, query_string=period, headers=auth_headers).json["series"]
        assert len(series) == 24
        busy = {datetime.fromisoformat(row["start"]).hour: row for row in series if row["messages"]}
        assert sorted(busy) == [9, 15]
        assert (busy[9]["sent"], busy[9]["failed"], busy[9]["latency"]["maxSeconds"]) == (2, 1, 4.0)
        assert busy[15]["latency"] == {"count": 1, "averageSeconds": 10.0, "maxSeconds": 10.0}

    def test_days_follow_the_tenants_timezone(self, client, auth_headers, tenant, seeded):
        update_tenant(tenant, set__settings__general__timezone="Asia/Tokyo")
        period = {"from": "2026-11-10T00:00:00Z", "until": "2026-11-11T00:00:00Z"}
        report = client.get(REPORT, query_string=period, headers=auth_headers).json
        assert report["timezone"] == "Asia/Tokyo"
        # 15:30 UTC is 00:30 the next day in Tokyo.
        assert [(row["start"], row["messages"]) for row in report["series"]] == [
            ("2026-11-10T00:00:00+09:00", 3),
            ("2026-11-11T00:00:00+09:00", 1),
        ]

    def test_per_campaign_and_bot(self, client, auth_headers, seeded):
        report = get(client, auth_headers).json
        campaigns = {row["name"]: row for row in report["campaigns"]}
        assert list(campaigns) == ["Launch", "Sale", "Follow-up"]  # most messages first
        assert campaigns["Launch"]["campaignId"] == str(seeded["a"].id)
        assert (campaigns["Launch"]["messages"], campaigns["Launch"]["sent"]) == (7, 3)
        assert campaigns["Sale"]["failures"] == {
            "outcome_unknown": 1,
            "bot_blocked": 1,
            "bad_request": 1,
            "other": 1,
        }
        bots = {row["name"]: row for row in report["bots"]}
        assert bots["News bot"]["telegramAccountId"] == str(seeded["news"].id)
        assert (bots["News bot"]["messages"], bots["News bot"]["sent"]) == (8, 4)  # Launch and Follow-up
        assert bots["News bot"]["latency"]["averageSeconds"] == 5.5  # (2+4+10+6)/4
        assert (bots["Promo bot"]["messages"], bots["Promo bot"]["pending"]) == (6, 1)

    def test_an_empty_period(self, client, auth_headers, seeded):
        period = {"from": "2026-10-01T00:00:00Z", "until": "2026-10-03T00:00:00Z"}
        report = client.get(REPORT, query_string=period, headers=auth_headers).json
        assert report["totals"]["messages"] == 0
        assert report["totals"]["deliveryRate"] is None
        assert report["totals"]["latency"] == {"count": 0, "averageSeconds": None, "maxSeconds": None}
        assert [row["messages"] for row in report["series"]] == [0, 0]
        assert report["campaigns"] == [] and report["bots"] == []

    def test_held_messages_are_pending(self, client, auth_headers, tenant):
        with tenant_scope(tenant):
            message(campaign("Test", bot("Bot", 9)), at(D1, 12), "held")  # waits for its A/B test's winner
        totals = get(client, auth_headers).json["totals"]
        assert (totals["messages"], totals["pending"]) == (1, 1)

    def test_a_member_reads_reports(self, client, member_headers, seeded):
        assert get(client, member_headers).status_code == 200


class TestFailureReasons:
    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (BLOCKED, "bot_blocked"),
            (NOT_FOUND, "chat_not_found"),
            ("Forbidden: user is deactivated", "user_deactivated"),
            ("Forbidden: bot was kicked from the group chat", "no_rights"),
            ("Bad Request: not enough rights to send text messages to the chat", "no_rights"),
            ("Forbidden: bot can't initiate conversation with a user", "no_rights"),
            ("Bad Request: can't parse entities", "bad_request"),
            ("Forbidden: something else", "forbidden"),
            ("gave up after 5 attempts: Bad Request: chat not found", "gave_up"),
            ("delivery outcome unknown: read timed out", "outcome_unknown"),
            ("the campaign's bot was removed or deactivated", "bot_unavailable"),
            ("the campaign's media file was deleted", "media_deleted"),
            ("the bot's Bot API server is refused: a private address", "server_refused"),
            ("", OTHER_REASON),
        ],
    )
    def test_each_error_has_its_reason(self, client, auth_headers, tenant, error, reason):
        with tenant_scope(tenant):
            message(campaign("One", bot("Bot", 9)), at(D1, 12), "failed", error=error)
        assert get(client, auth_headers).json["totals"]["failures"] == {reason: 1}

    def test_the_reasons_are_a_bounded_set(self):
        names = [name for name, _ in FAILURE_REASONS]
        assert len(names) == len(set(names)) and OTHER_REASON not in names


class TestFilters:
    def test_by_campaign(self, client, auth_headers, seeded):
        report = get(client, auth_headers, campaignId=str(seeded["b"].id)).json
        assert report["campaignId"] == str(seeded["b"].id)
        assert (report["totals"]["messages"], report["totals"]["sent"]) == (6, 1)
        assert [row["name"] for row in report["campaigns"]] == ["Sale"]

    def test_by_bot(self, client, auth_headers, seeded):
        report = get(client, auth_headers, telegramAccountId=str(seeded["news"].id)).json
        assert (report["totals"]["messages"], report["totals"]["sent"]) == (8, 4)
        assert [row["name"] for row in report["campaigns"]] == ["Launch", "Follow-up"]

    def test_the_period_bounds(self, client, auth_headers, seeded):
        # from is included, until excluded: the second day alone.
        period = {"from": "2026-11-11T00:00:00Z", "until": "2026-11-12T00:00:00Z"}
        assert client.get(REPORT, query_string=period, headers=auth_headers).json["totals"]["messages"] == 5

    def test_another_tenants_ids_count_nothing(self, client, auth_headers, other_headers, seeded):
        theirs = get(client, auth_headers, campaignId=str(seeded["theirs"].id))
        assert theirs.status_code == 200
        assert theirs.json["totals"]["messages"] == 0
        assert get(client, other_headers, campaignId=str(seeded["a"].id)).status_code == 403  # starter

    @pytest.mark.parametrize(
        "args",
        [
            {"from": "2026-11-13T00:00:00Z", "until": "2026-11-10T00:00:00Z"},
            {"from": "2026-11-10T00:00:00Z", "until": "2026-11-10T00:00:00Z"},
            {"from": "2025-01-01T00:00:00Z", "until": "2026-11-10T00:00:00Z"},
            {"from": "2026-10-01T00:00:00Z", "until": "2026-11-10T00:00:00Z", "interval": "hour"},
            {"from": "2020-01-01T00:00:00Z"},  # until now: too long
            {"until": "2020-01-01T00:00:00Z", "interval": "hour", "from": "2019-11-01T00:00:00Z"},
            {"until": "0001-01-01T12:00:00Z"},
            {"from": "0001-01-01T00:00:00+00:00", "until": "0001-01-05T00:00:00Z"},
            {"from": "9999-12-01T00:00:00Z", "until": "9999-12-31T00:00:00Z"},
            {"from": "yesterday"},
            {"until": "9999-12-31T23:59:59-12:00"},
            {"interval": "week"},
            {"campaignId": "not-an-id"},
        ],
    )
    def test_bad_periods_and_filters_are_422(self, client, auth_headers, args):
        response = client.get(REPORT, query_string=args, headers=auth_headers)
        assert response.status_code == 422, response.json
        assert error_code(response) == "validation_error"

    def test_campaign_and_bot_together_are_422(self, client, auth_headers, seeded):
        response = get(
            client, auth_headers, campaignId=str(seeded["a"].id), telegramAccountId=str(seeded["news"].id)
        )
        assert response.status_code == 422
        assert "telegramAccountId" in response.json["error"]["details"]

    @pytest.mark.parametrize("interval", ["day", "hour"])
    def test_the_calendars_ends(self, client, auth_headers, tenant, interval):
        update_tenant(tenant, set__settings__general__timezone="Pacific/Kiritimati")  # UTC+14
        for args in (
            {"from": "0001-01-02T00:00:00Z", "until": "0001-01-03T00:00:00Z"},
            {"until": "0001-01-03T00:00:00Z"},
            {"from": "9999-12-29T00:00:00Z", "until": "9999-12-30T00:00:00Z"},
        ):
            response = client.get(REPORT, query_string={**args, "interval": interval}, headers=auth_headers)
            assert response.status_code == 200, (args, response.json)
            assert response.json["totals"]["messages"] == 0

    def test_an_open_period_ends_now(self, client, auth_headers, tenant):
        with tenant_scope(tenant):
            message(campaign("Now", bot("Bot", 9)), datetime.now(UTC) - timedelta(days=29), "sent", 1)
            message(campaign("Old", bot("Old bot", 8)), datetime.now(UTC) - timedelta(days=31), "sent", 1)
        report = client.get(REPORT, headers=auth_headers).json
        assert report["totals"]["messages"] == 1
        assert len(report["series"]) in (30, 31)  # the days the last 30 days touch


class TestCsv:
    def test_the_same_figures_as_csv(self, client, auth_headers, seeded):
        response = get(client, auth_headers, CSV)
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="delivery-report-20261110T0000-20261113T0000.csv"'
        )
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert [row["scope"] for row in rows] == [
            "total",
            "day",
            "day",
            "day",
            "campaign",
            "campaign",
            "campaign",
            "bot",
            "bot",
        ]
        total = rows[0]
        assert (total["messages"], total["sent"], total["failed"], total["deliveryRate"]) == (
            "14",
            "5",
            "7",
            "0.4167",
        )
        assert (total["latencyAverageSeconds"], total["latencyMaxSeconds"]) == ("10.4", "30.0")
        assert (total["failed:bot_blocked"], total["failed:no_rights"], total["failed:other"]) == (
            "2",
            "0",
            "1",
        )
        assert rows[1]["key"] == "2026-11-10T00:00:00+00:00"
        assert (rows[4]["key"], rows[4]["name"]) == (str(seeded["a"].id), "Launch")
        assert rows[7]["name"] == "News bot"

    def test_an_empty_period_keeps_its_blanks(self, client, auth_headers):
        period = {"from": "2026-10-01T00:00:00Z", "until": "2026-10-02T00:00:00Z"}
        rows = list(
            csv.DictReader(
                io.StringIO(client.get(CSV, query_string=period, headers=auth_headers).get_data(as_text=True))
            )
        )
        assert [(row["scope"], row["messages"], row["deliveryRate"]) for row in rows] == [
            ("total", "0", ""),
            ("day", "0", ""),
        ]

    def test_bad_input_is_422_in_the_envelope(self, client, auth_headers):
        response = client.get(CSV, query_string={"interval": "minute"}, headers=auth_headers)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"


class TestGating:
    def test_refused_without_custom_reports(self, client, other_headers):
        for url in (REPORT, CSV):
            response = client.get(url, headers=other_headers)  # starter
            assert response.status_code == 403
            assert error_code(response) == "feature_not_available"
            assert response.json["error"]["details"] == {"feature": "customReports"}

    def test_an_override_turns_it_on_and_off(self, client, auth_headers, other_headers, tenant, other_tenant):
        update_tenant(other_tenant, set__features={"customReports": True})
        assert client.get(REPORT, headers=other_headers).status_code == 200
        update_tenant(tenant, set__features={"customReports": False})
        assert client.get(REPORT, headers=auth_headers).status_code == 403


class TestPlatformView:
    def test_figures_across_tenants(self, client, superadmin_headers, tenant, other_tenant, seeded):
        response = get(client, superadmin_headers, PLATFORM)
        assert response.status_code == 200, response.json
        report = response.json
        assert report["timezone"] == "UTC"
        assert (report["totals"]["messages"], report["totals"]["sent"], report["totals"]["failed"]) == (
            18,
            8,
            8,
        )
        assert report["totals"]["latency"]["maxSeconds"] == 100.0
        assert report["totals"]["failures"]["chat_not_found"] == 2
        assert [row["messages"] for row in report["series"]] == [7, 6, 5]
        assert report["tenantCount"] == 2
        rows = {row["slug"]: row for row in report["tenants"]}
        assert list(rows) == ["acme", "globex"]
        assert rows["acme"]["tenantId"] == str(tenant.id)
        assert (rows["acme"]["messages"], rows["acme"]["plan"]) == (14, "professional")
        assert (rows["globex"]["messages"], rows["globex"]["sent"], rows["globex"]["name"]) == (
            4,
            3,
            "Globex",
        )

    def test_limit_lists_the_busiest(self, client, superadmin_headers, seeded):
        report = get(client, superadmin_headers, PLATFORM, limit=1).json
        assert [row["slug"] for row in report["tenants"]] == ["acme"]
        assert report["tenantCount"] == 2 and report["totals"]["messages"] == 18

    def test_each_view_is_in_the_platform_trail(self, client, superadmin_headers, superadmin, seeded):
        get(client, superadmin_headers, PLATFORM, interval="hour", until="2026-11-11T00:00:00Z")
        entries = list(PlatformAuditLog.objects(action="reports.viewed"))
        assert len(entries) == 1
        assert entries[0].actor.id == str(superadmin.id)
        assert entries[0].summary == {
            "since": "2026-11-10T00:00:00+00:00",
            "until": "2026-11-11T00:00:00+00:00",
            "interval": "hour",
        }

    def test_tenant_users_are_refused(self, client, auth_headers):
        assert client.get(PLATFORM, headers=auth_headers).status_code == 403

    def test_bad_input_is_422(self, client, superadmin_headers):
        for args in (
            {"limit": 0},
            {"limit": 501},
            {"from": "2026-11-13T00:00:00Z", "until": "2026-11-10T00:00:00Z"},
        ):
            response = client.get(PLATFORM, query_string=args, headers=superadmin_headers)
            assert response.status_code == 422, args
