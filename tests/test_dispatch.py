"""The dispatcher (app.messages.delivery.dispatch) sending campaigns through the fake Bot API.

Campaigns are made and sent through the API; the dispatcher runs as the scheduler runs it (one pass
per call). The fake Bot API checks Telegram's rates on its side and records every message it got.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import count
from types import SimpleNamespace

import pytest
from bson import ObjectId

from app.campaigns.models import Campaign
from app.clock import utcnow
from app.jobs import job_named, run_job
from app.messages import delivery
from app.messages.delivery import dispatch
from app.messages.models import Message
from app.tenancy.context import tenant_scope, unscoped
from app.tenants.models import Tenant
from app.usage import service as usage
from app.webhooks.models import WebhookDelivery

from .support import connect_bot, messages_used, sent_campaign

API = "/api/v1"
CAMPAIGNS = f"{API}/campaigns"
ACCOUNTS = f"{API}/telegram-accounts"
_chats = count(5_000_000)


# -- helpers ----------------------------------------------------------------------------------------


def chats(n: int) -> list[str]:
    return [str(next(_chats)) for _ in range(n)]


def messages(tenant, campaign_id=None, **filters) -> list[Message]:
    with tenant_scope(tenant):
        query = Message.objects(**filters)
        if campaign_id is not None:
            query = query.filter(campaign_id=ObjectId(campaign_id))
        return list(query)


def one_message(tenant, campaign_id) -> Message:
    [message] = messages(tenant, campaign_id)
    return message


def one_of(tenant, message_id) -> Message:
    with tenant_scope(tenant):
        return Message.objects.get(id=message_id)


def statuses(tenant, campaign_id=None) -> Counter:
    return Counter(m.status for m in messages(tenant, campaign_id))


def campaign_status(tenant, campaign_id) -> str:
    with tenant_scope(tenant):
        return Campaign.objects.get(id=campaign_id).status


def unfinished() -> int:
    """Messages still waiting or in flight, over every tenant."""
    with unscoped("test: count unfinished messages"):
        return Message.objects(status__in=("queued", "sending")).count()


def drain(passes: int = 200, pause: float = 0.05, **kwargs) -> list[dict]:
    """Run dispatcher passes until nothing is queued (bounded); tiny pauses let rate windows pass."""
    results = []
    for _ in range(passes):
        results.append(dispatch(**kwargs))
        if not unfinished():
            return results
        time.sleep(pause)
    raise AssertionError(f"still {unfinished()} messages unfinished after {passes} passes")


def deliveries(tenant, event: str | None = None) -> list[WebhookDelivery]:
    with tenant_scope(tenant):
        query = WebhookDelivery.objects
        if event:
            query = query.filter(event=event)
        return list(query)


def subscribe(client, headers, events=("message.failed", "campaign.completed", "campaign.failed")) -> str:
    response = client.post(
        f"{API}/webhooks",
        json={"url": "https://hooks.example.com/telegram", "events": list(events)},
        headers=headers,
    )
    assert response.status_code == 201, response.json
    return response.json["id"]


def sent_to(fake, bot_id: str) -> list[dict]:
    return [s for s in fake.sent if s["bot"] == bot_id]


def requests_of(fake, bot_id: str) -> list[dict]:
    return [r for r in fake.requests if r["bot"] == bot_id and r["method"] != "getMe"]


def race(app, runs: int = 2) -> None:
    """Start `runs` dispatcher passes at the same moment, each in its own thread and app context."""
    barrier = threading.Barrier(runs)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with app.app_context():
                barrier.wait()
                dispatch()
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


def fast_clock(offset: float):
    """A stand-in for the dispatcher's `time` module whose monotonic clock runs `offset` seconds ahead."""
    return SimpleNamespace(monotonic=lambda: time.monotonic() + offset)


@pytest.fixture
def bot(client, auth_headers) -> tuple[str, str]:
    return connect_bot(client, auth_headers)


# -- the done-when: 500 chats, two tenants, Telegram's rates --------------------------------


class TestFiveHundredChats:
    @pytest.fixture
    def settings(self):
        return {"TELEGRAM_RATE_PER_BOT": "100/second"}

    def test_everything_is_delivered_once_within_the_rates(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, fake_telegram, monkeypatch
    ):
        monkeypatch.setattr(fake_telegram, "per_bot", (100, 1.0))
        acme_account, acme_bot = connect_bot(client, auth_headers)
        globex_account, globex_bot = connect_bot(client, other_headers)
        acme_chats, globex_chats = chats(300), chats(200)
        acme_campaign = sent_campaign(client, auth_headers, acme_account, acme_chats, "Acme news")
        globex_campaign = sent_campaign(client, other_headers, globex_account, globex_chats, "Globex news")

        drain()

        assert fake_telegram.violations == []
        for bot_id, expected, text in (
            (acme_bot, acme_chats, "Acme news"),
            (globex_bot, globex_chats, "Globex news"),
        ):
            got = sent_to(fake_telegram, bot_id)
            assert sorted(s["chat"] for s in got) == sorted(expected)  # each chat once, none twice
            assert {s["params"]["text"] for s in got} == {text}
        assert len(fake_telegram.sent) == 500

        for owner_tenant, campaign_id, bot_id, headers, total in (
            (tenant, acme_campaign, acme_bot, auth_headers, 300),
            (other_tenant, globex_campaign, globex_bot, other_headers, 200),
        ):
            telegram_ids = {s["chat"]: s["message_id"] for s in sent_to(fake_telegram, bot_id)}
            stored = messages(owner_tenant, campaign_id)
            assert len(stored) == total
            for message in stored:
                assert message.status == "sent"
                assert message.telegram_message_id == telegram_ids[message.chat]
                assert message.attempts == 1
                assert message.sent_at is not None
            assert campaign_status(owner_tenant, campaign_id) == "completed"
            stats = client.get(f"{CAMPAIGNS}/{campaign_id}/stats", headers=headers)
            assert stats.status_code == 200, stats.json
            assert stats.json["status"] == "completed"
            assert stats.json["targets"] == total
            assert stats.json["messages"] == {
                "queued": 0,
                "sending": 0,
                "sent": total,
                "failed": 0,
                "cancelled": 0,
            }
            assert stats.json["deliveryRate"] == 1.0
            used = client.get(f"{API}/tenants/current/usage", headers=headers)
            assert used.json["resources"]["messagesPerMonth"]["used"] == total

        # The API shows the Telegram message ids too.
        listed = client.get(
            f"{API}/messages",
            query_string={"campaignId": acme_campaign, "perPage": 100},
            headers=auth_headers,
        ).json
        assert listed["total"] == 300
        assert all(item["status"] == "sent" and item["telegramMessageId"] for item in listed["items"])
        assert Tenant.objects(pending="messages").count() == 0

    def test_the_bot_rate_holds_where_telegram_counts_it_despite_latency(
        self, app, client, tenant, auth_headers, fake_telegram, monkeypatch
    ):
        """Telegram counts a bot's requests when they arrive. A request that takes longer on the way
        than the ones after it must not let more than the rate arrive within one window."""
        monkeypatch.setattr(fake_telegram, "per_bot", (100, 1.0))
        answer = fake_telegram._answer
        slow = {"left": 1}

        def late_first(token, method, params):
            if method != "getMe" and slow["left"]:
                slow["left"] -= 1
                time.sleep(0.1)  # the first message of the window is 100 ms on the way
            return answer(token, method, params)

        monkeypatch.setattr(fake_telegram, "_answer", late_first)
        account, bot_id = connect_bot(client, auth_headers)
        sent_campaign(client, auth_headers, account, chats(110))

        drain()

        assert len(sent_to(fake_telegram, bot_id)) == 110
        assert fake_telegram.violations == []

    def test_the_scheduled_job_runs_the_same_dispatcher(
        self, app, client, tenant, auth_headers, fake_telegram, monkeypatch
    ):
        monkeypatch.setattr(fake_telegram, "per_bot", (100, 1.0))
        account, bot_id = connect_bot(client, auth_headers)
        campaign_id = sent_campaign(client, auth_headers, account, chats(5))
        result = run_job(app, job_named("message-dispatch"))
        assert result["sent"] == 5
        assert len(sent_to(fake_telegram, bot_id)) == 5
        assert campaign_status(tenant, campaign_id) == "completed"


# -- concurrency ------------------------------------------------------------------------------------


class TestRacingDispatchers:
    @pytest.fixture
    def settings(self):
        return {"TELEGRAM_RATE_PER_BOT": "1000/second"}

    @pytest.mark.parametrize("round_", range(3))
    def test_two_runs_at_once_send_each_message_once(
        self,
        app,
        client,
        tenant,
        other_tenant,
        auth_headers,
        other_headers,
        fake_telegram,
        frequent_thread_switches,
        monkeypatch,
        round_,
    ):
        monkeypatch.setattr(fake_telegram, "per_bot", (1000, 1.0))
        subscribe(client, auth_headers, events=("campaign.completed",))
        acme_account, acme_bot = connect_bot(client, auth_headers)
        globex_account, globex_bot = connect_bot(client, other_headers)
        acme_campaign = sent_campaign(client, auth_headers, acme_account, chats(40))
        globex_campaign = sent_campaign(client, other_headers, globex_account, chats(25))

        for _ in range(10):
            race(app)
            if not unfinished():
                break
        assert unfinished() == 0

        sends = Counter((s["bot"], s["chat"]) for s in fake_telegram.sent)
        assert max(sends.values()) == 1
        assert len(sends) == 65
        assert statuses(tenant, acme_campaign) == {"sent": 40}
        assert statuses(other_tenant, globex_campaign) == {"sent": 25}
        for message in messages(tenant, acme_campaign):
            assert message.attempts == 1
        assert campaign_status(tenant, acme_campaign) == "completed"
        assert campaign_status(other_tenant, globex_campaign) == "completed"
        assert len(deliveries(tenant, "campaign.completed")) == 1
        assert messages_used(tenant) == 40
        assert fake_telegram.violations == []


# -- fairness and rates -----------------------------------------------------------------------------


class TestFairness:
    @pytest.fixture
    def settings(self):
        return {"DISPATCH_BATCH": 20}

    def test_a_small_campaign_is_not_held_up_by_a_large_one(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, fake_telegram
    ):
        big_account, big_bot = connect_bot(client, auth_headers)
        small_account, small_bot = connect_bot(client, other_headers)
        big = sent_campaign(client, auth_headers, big_account, chats(300))
        small = sent_campaign(client, other_headers, small_account, chats(5))

        first = dispatch()

        assert first["sent"] == 20  # the batch
        assert statuses(other_tenant, small) == {"sent": 5}
        assert statuses(tenant, big) == {"sent": 15, "queued": 285}
        # Tenants took turns: the small tenant's messages went out among the first ten.
        order = [s["bot"] for s in fake_telegram.sent]
        assert order[:10].count(small_bot) == 5
        assert campaign_status(other_tenant, small) == "completed"
        assert campaign_status(tenant, big) == "sending"
        assert fake_telegram.violations == []


class TestPerChatRate:
    def test_one_chat_gets_at_most_twenty_a_minute(
        self, app, client, tenant, auth_headers, bot, fake_telegram
    ):
        account, bot_id = bot
        same_chat = "-1009999"
        campaigns = [
            sent_campaign(client, auth_headers, account, [same_chat], f"Message {n}") for n in range(25)
        ]
        elsewhere = sent_campaign(client, auth_headers, account, ["-1008888"], "Elsewhere")

        first = dispatch()
        second = dispatch()

        to_chat = [s for s in fake_telegram.sent if s["chat"] == same_chat]
        assert len(to_chat) == 20
        assert first["sent"] == 21 and second["sent"] == 0
        assert len({s["params"]["text"] for s in to_chat}) == 20
        waiting = [one_message(tenant, c) for c in campaigns if one_message(tenant, c).status != "sent"]
        assert len(waiting) == 5
        assert all(m.status == "queued" and m.attempts == 0 for m in waiting)
        # Another chat of the same bot is not held up by the busy one.
        assert one_message(tenant, elsewhere).status == "sent"
        assert fake_telegram.violations == []
        assert Tenant.objects.get(id=tenant.id).pending == ["messages"]


class TestRetryAfter:
    def test_a_429_requeues_pauses_the_bot_and_sends_once_later(
        self, app, client, tenant, auth_headers, bot, fake_telegram, monkeypatch
    ):
        account, bot_id = bot
        first_chat, second_chat = chats(2)
        campaign_id = sent_campaign(client, auth_headers, account, [first_chat, second_chat])
        fake_telegram.script({"status": 429, "retry_after": 30})

        before = utcnow()
        result = dispatch()
        after = utcnow()

        assert result["sent"] == 0
        # One request reached Telegram: after the 429 the bot waits, its next message too.
        assert len(requests_of(fake_telegram, bot_id)) == 1
        # Another bot is not told to wait.
        other_account, other_bot = connect_bot(client, auth_headers)
        other_campaign = sent_campaign(client, auth_headers, other_account, chats(1))
        assert dispatch()["sent"] == 1
        assert len(sent_to(fake_telegram, other_bot)) == 1
        assert campaign_status(tenant, other_campaign) == "completed"
        told_to_wait = [m for m in messages(tenant, campaign_id) if m.attempts == 1]
        assert len(told_to_wait) == 1
        message = told_to_wait[0]
        assert message.status == "queued"
        assert before + timedelta(seconds=29) <= message.not_before <= after + timedelta(seconds=31)
        assert statuses(tenant, campaign_id) == {"queued": 2}

        # Time has not come: nothing is sent.
        assert dispatch(now=utcnow() + timedelta(seconds=5))["sent"] == 0
        assert len(requests_of(fake_telegram, bot_id)) == 1
        # The message is due, but the bot is still paused.
        assert dispatch(now=utcnow() + timedelta(seconds=31))["sent"] == 0
        assert len(requests_of(fake_telegram, bot_id)) == 1

        monkeypatch.setattr(delivery, "time", fast_clock(31))
        result = dispatch(now=utcnow() + timedelta(seconds=31))

        assert result["sent"] == 2
        assert sorted(s["chat"] for s in sent_to(fake_telegram, bot_id)) == sorted([first_chat, second_chat])
        message = one_of(tenant, message.id)
        assert message.status == "sent" and message.attempts == 2
        assert message.telegram_message_id is not None
        assert campaign_status(tenant, campaign_id) == "completed"
        assert dispatch(now=utcnow() + timedelta(hours=1))["sent"] == 0
        assert len(sent_to(fake_telegram, bot_id)) == 2


# -- permanent failures -----------------------------------------------------------------------------


class TestPermanentFailures:
    def test_a_failure_next_month_gives_the_unit_back_to_the_month_of_the_send(
        self, app, client, tenant, auth_headers, bot, fake_telegram, monkeypatch
    ):
        account, _bot_id = bot
        fake_telegram.missing_chats.add("-100404")
        sent_campaign(client, auth_headers, account, ["-100404"])
        sending_month = usage.period_of(utcnow())
        next_month = usage.period_bounds(sending_month)[1] + timedelta(hours=1)
        monkeypatch.setattr("app.usage.service.utcnow", lambda: next_month)
        drain()
        with tenant_scope(tenant):
            assert usage.used(tenant, "messagesPerMonth", sending_month) == 0
            assert usage.used(tenant, "messagesPerMonth") == 0

    def test_blocked_and_missing_chats_fail_once_with_telegrams_description(
        self, app, client, tenant, auth_headers, bot, fake_telegram
    ):
        account, bot_id = bot
        subscribe(client, auth_headers)
        fake_telegram.blocked_chats.add("-100403")
        fake_telegram.missing_chats.add("-100404")
        all_failed = sent_campaign(client, auth_headers, account, ["-100403", "-100404"])
        partly = sent_campaign(client, auth_headers, account, ["-100403", "-100200"])
        assert messages_used(tenant) == 4

        drain()

        errors = {m.chat: m.error for m in messages(tenant, all_failed)}
        assert errors == {
            "-100403": "Forbidden: bot was blocked by the user",
            "-100404": "Bad Request: chat not found",
        }
        for message in messages(tenant, status="failed"):
            assert message.attempts == 1
            assert message.failed_at is not None
        assert statuses(tenant, partly) == {"sent": 1, "failed": 1}
        # No retry: one request per failed message, even on later passes.
        dispatch(now=utcnow() + timedelta(hours=1))
        chats_asked = Counter(r["params"]["chat_id"] for r in requests_of(fake_telegram, bot_id))
        assert chats_asked == {"-100403": 2, "-100404": 1, "-100200": 1}
        # Three failed messages give their units back; the sent one keeps its unit.
        assert messages_used(tenant) == 1

        assert campaign_status(tenant, all_failed) == "failed"
        assert campaign_status(tenant, partly) == "completed"
        failed_events = deliveries(tenant, "message.failed")
        assert len(failed_events) == 3
        assert {e.payload["data"]["chat"] for e in failed_events} == {"-100403", "-100404"}
        for event in failed_events:
            data = event.payload["data"]
            assert data["error"] in errors.values()
            assert data["campaignId"] in (all_failed, partly)
            assert event.payload["event"] == "message.failed"
        [completed] = deliveries(tenant, "campaign.completed")
        assert completed.payload["data"] == {"campaignId": partly, "sent": 1, "failed": 1}
        [failed] = deliveries(tenant, "campaign.failed")
        assert failed.payload["data"] == {"campaignId": all_failed, "sent": 0, "failed": 2}
        assert Tenant.objects.get(id=tenant.id).pending == ["webhooks"]

        stats = client.get(f"{CAMPAIGNS}/{partly}/stats", headers=auth_headers).json
        assert stats["messages"]["sent"] == 1 and stats["messages"]["failed"] == 1
        assert stats["deliveryRate"] == 0.5

    def test_no_event_without_a_subscribed_webhook(
        self, app, client, tenant, auth_headers, bot, fake_telegram
    ):
        account, _ = bot
        subscribe(client, auth_headers, events=("usage.threshold",))
        fake_telegram.blocked_chats.add("-100403")
        sent_campaign(client, auth_headers, account, ["-100403"])
        drain()
        assert statuses(tenant) == {"failed": 1}
        assert deliveries(tenant) == []


# -- network errors ---------------------------------------------------------------------------------


class TestNetworkErrors:
    @pytest.fixture
    def settings(self):
        return {"TELEGRAM_RETRIES": 0, "MESSAGE_MAX_ATTEMPTS": 3}

    def test_a_network_error_requeues_with_a_later_not_before_then_gives_up(
        self, app, client, tenant, auth_headers, bot, fake_telegram
    ):
        account, bot_id = bot
        subscribe(client, auth_headers)
        campaign_id = sent_campaign(client, auth_headers, account, chats(1))
        fake_telegram.script({"drop": True}, {"drop": True}, {"drop": True}, {"drop": True})

        before = utcnow()
        dispatch()
        message = one_message(tenant, campaign_id)
        assert message.status == "queued"
        assert message.attempts == 1
        assert message.not_before > before
        assert "network error" in message.error
        assert len(requests_of(fake_telegram, bot_id)) == 1

        # Not due yet: nothing is tried.
        dispatch()
        assert len(requests_of(fake_telegram, bot_id)) == 1

        later = utcnow() + timedelta(hours=1)
        dispatch(now=later)
        message = one_message(tenant, campaign_id)
        assert (message.status, message.attempts) == ("queued", 2)
        assert message.not_before > later - timedelta(hours=1)

        dispatch(now=later + timedelta(hours=1))
        message = one_message(tenant, campaign_id)
        assert message.status == "failed"
        assert message.attempts == 3
        assert "3 attempts" in message.error and "network error" in message.error

        dispatch(now=later + timedelta(hours=2))
        assert len(requests_of(fake_telegram, bot_id)) == 3
        assert fake_telegram.sent == []
        assert messages_used(tenant) == 0
        assert len(deliveries(tenant, "message.failed")) == 1
        assert campaign_status(tenant, campaign_id) == "failed"

    def test_the_backoff_grows_with_each_attempt(self, app, client, tenant, auth_headers, bot, fake_telegram):
        account, _ = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(1))
        fake_telegram.script({"status": 502}, {"status": 502})
        delays = []
        for n in range(2):
            start = utcnow()
            dispatch(now=start + timedelta(hours=n))
            delays.append(one_message(tenant, campaign_id).not_before - start)
        assert delays[1] > delays[0] > timedelta(0)

    def test_a_later_attempt_that_succeeds_sends_once(
        self, app, client, tenant, auth_headers, bot, fake_telegram
    ):
        account, bot_id = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(1))
        fake_telegram.script({"drop": True})
        dispatch()
        dispatch(now=utcnow() + timedelta(hours=1))
        message = one_message(tenant, campaign_id)
        assert message.status == "sent"
        assert message.attempts == 2
        assert message.error is None
        assert len(sent_to(fake_telegram, bot_id)) == 1
        assert messages_used(tenant) == 1
        assert campaign_status(tenant, campaign_id) == "completed"


class TestClientRetries:
    @pytest.fixture
    def settings(self):
        return {"TELEGRAM_RETRIES": 2}

    def test_a_hiccup_within_the_clients_retries_is_sent_in_the_same_pass(
        self, app, client, tenant, auth_headers, bot, fake_telegram
    ):
        account, bot_id = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(1))
        fake_telegram.script({"status": 500}, {"drop": True})
        assert dispatch()["sent"] == 1
        message = one_message(tenant, campaign_id)
        assert (message.status, message.attempts) == ("sent", 1)
        assert len(requests_of(fake_telegram, bot_id)) == 3
        assert len(fake_telegram.sent) == 1


# -- tenants' status --------------------------------------------------------------------------------


class TestTenantStatus:
    def test_a_suspended_tenants_messages_wait_until_activation(
        self, app, client, tenant, auth_headers, bot, fake_telegram, superadmin_headers
    ):
        account, bot_id = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(3))
        response = client.post(
            f"{API}/tenants/{tenant.id}/suspend", json={"reason": "unpaid"}, headers=superadmin_headers
        )
        assert response.status_code == 200, response.json

        dispatch()
        dispatch(now=utcnow() + timedelta(hours=1))
        assert fake_telegram.sent == []
        assert statuses(tenant, campaign_id) == {"queued": 3}

        response = client.post(f"{API}/tenants/{tenant.id}/activate", headers=superadmin_headers)
        assert response.status_code == 200, response.json
        drain()
        assert len(sent_to(fake_telegram, bot_id)) == 3
        assert statuses(tenant, campaign_id) == {"sent": 3}
        assert campaign_status(tenant, campaign_id) == "completed"

    def test_a_deleted_tenants_messages_are_gone(
        self,
        app,
        client,
        tenant,
        other_tenant,
        auth_headers,
        other_headers,
        fake_telegram,
        superadmin_headers,
    ):
        account, bot_id = connect_bot(client, auth_headers)
        other_account, other_bot = connect_bot(client, other_headers)
        sent_campaign(client, auth_headers, account, chats(4))
        other_campaign = sent_campaign(client, other_headers, other_account, chats(2))

        response = client.delete(f"{API}/tenants/{tenant.id}", headers=superadmin_headers)
        assert response.status_code == 204

        with unscoped("test: look for the deleted tenant's messages"):
            assert Message.objects(tenant_id=tenant.id).count() == 0
        drain()
        assert sent_to(fake_telegram, bot_id) == []
        assert requests_of(fake_telegram, bot_id) == []
        assert len(sent_to(fake_telegram, other_bot)) == 2
        assert statuses(other_tenant, other_campaign) == {"sent": 2}


# -- scheduled campaigns ----------------------------------------------------------------------------


class TestScheduled:
    def test_a_scheduled_campaign_goes_out_at_its_time(
        self, app, client, tenant, auth_headers, bot, fake_telegram
    ):
        account, bot_id = bot
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        campaign_id = sent_campaign(client, auth_headers, account, chats(3), scheduledAt=at.isoformat())
        assert campaign_status(tenant, campaign_id) == "scheduled"

        run_job(app, job_named("message-dispatch"))
        dispatch(now=at - timedelta(seconds=1))
        assert fake_telegram.sent == []
        assert statuses(tenant, campaign_id) == {"queued": 3}
        assert campaign_status(tenant, campaign_id) == "scheduled"

        result = dispatch(now=at + timedelta(seconds=1))
        assert result["sent"] == 3
        assert len(sent_to(fake_telegram, bot_id)) == 3
        assert statuses(tenant, campaign_id) == {"sent": 3}
        assert campaign_status(tenant, campaign_id) == "completed"


# -- the campaign's bot -----------------------------------------------------------------------------


class TestBotGone:
    @pytest.mark.parametrize("how", ["deactivated", "deleted"])
    def test_messages_of_a_bot_that_is_gone_fail_clearly(
        self, app, client, tenant, auth_headers, bot, fake_telegram, how
    ):
        account, bot_id = bot
        subscribe(client, auth_headers)
        campaign_id = sent_campaign(client, auth_headers, account, chats(2))
        if how == "deactivated":
            response = client.patch(f"{ACCOUNTS}/{account}", json={"active": False}, headers=auth_headers)
            assert response.status_code == 200, response.json
        else:
            response = client.delete(f"{ACCOUNTS}/{account}", headers=auth_headers)
            assert response.status_code == 204

        drain()

        assert requests_of(fake_telegram, bot_id) == []
        for message in messages(tenant, campaign_id):
            assert message.status == "failed"
            assert "bot" in message.error and ("deactivated" in message.error or "removed" in message.error)
        assert messages_used(tenant) == 0
        assert campaign_status(tenant, campaign_id) == "failed"
        assert len(deliveries(tenant, "message.failed")) == 2
        assert len(deliveries(tenant, "campaign.failed")) == 1


# -- a dispatcher that died while sending -----------------------------------------------------------


class TestStaleSending:
    def test_a_message_stuck_in_sending_is_failed_never_resent(
        self, app, client, tenant, auth_headers, bot, fake_telegram
    ):
        account, bot_id = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(2))
        stuck, recent = messages(tenant, campaign_id)
        with tenant_scope(tenant):
            Message.objects(id=stuck.id).update_one(
                set__status="sending", set__sending_at=utcnow() - timedelta(minutes=11), set__attempts=1
            )
            Message.objects(id=recent.id).update_one(
                set__status="sending", set__sending_at=utcnow() - timedelta(minutes=5), set__attempts=1
            )

        dispatch()

        stuck, recent = one_of(tenant, stuck.id), one_of(tenant, recent.id)
        assert stuck.status == "failed"
        assert "unknown" in stuck.error
        assert recent.status == "sending"
        assert campaign_status(tenant, campaign_id) == "sending"

        dispatch(now=utcnow() + timedelta(minutes=20))
        assert one_of(tenant, recent.id).status == "failed"
        dispatch(now=utcnow() + timedelta(hours=1))
        assert requests_of(fake_telegram, bot_id) == []
        assert fake_telegram.sent == []
        assert statuses(tenant, campaign_id) == {"failed": 2}
        assert campaign_status(tenant, campaign_id) == "failed"
