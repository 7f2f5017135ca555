"""The dispatcher (app.dispatcher.runner with app.campaigns.delivery's bot senders) sending campaigns
through the fake Bot API.

Campaigns are made and sent through the API; dispatchers run as `flask dispatcher run` runs them,
in threads of the test process on the same store. The fake Bot API checks Telegram's rates on its
side (violations are recorded and answered 429, as Telegram would) and records every message it got.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
import time_machine
from bson import ObjectId

from app import leases
from app.campaigns import delivery
from app.campaigns.delivery import stale_after
from app.campaigns.models import Campaign
from app.clock import utcnow
from app.dispatcher.rates import Rate, Throttle
from app.dispatcher.runner import Dispatcher
from app.leases import Lease
from app.messages.models import Message
from app.tenancy.context import tenant_scope, unscoped
from app.webhooks.models import WebhookDelivery
from app.workers import SENDERS

from .support import (
    connect_bot,
    embedded_only,
    file_part,
    messages_used,
    multipart,
    sent_campaign,
    update_tenant,
)

API = "/api/v1"
CAMPAIGNS = f"{API}/campaigns"
ACCOUNTS = f"{API}/telegram-accounts"
_chats = count(5_000_000)


# -- helpers ----------------------------------------------------------------------------------------


def chats(n: int) -> list[str]:
    """`n` private chats nobody has messaged yet."""
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


def later(**delta):
    """Travel in time (the wall clock only: rate windows keep real time)."""
    return time_machine.travel(utcnow() + timedelta(**delta), tick=True)


def running(dispatcher) -> threading.Thread:
    """Run a dispatcher in the background (stop it with dispatcher.stop())."""
    dispatcher.interval = 0.02
    thread = threading.Thread(target=dispatcher.run, daemon=True)
    thread.start()
    return thread


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


BOTS_ONLY = {"bot": SENDERS["bot"]}  # tenant events stay queued for the tests to look at


def new_dispatcher(app, holder: str | None = None) -> Dispatcher:
    return Dispatcher(app, BOTS_ONLY, holder)


@pytest.fixture
def senders():
    return BOTS_ONLY


@pytest.fixture
def settings():
    return {"TELEGRAM_RATE_PER_BOT": "100/second"}


@pytest.fixture(autouse=True)
def fast_fake(fake_telegram):
    """The fake counts 100 messages a second per bot, as the app's settings say here."""
    fake_telegram.limits.per_bot = (100, 1.0)
    return fake_telegram


@pytest.fixture
def bot(client, auth_headers) -> tuple[str, str]:
    return connect_bot(client, auth_headers)


# -- everything once, within the rates --------------------------------------------------------------


class TestFiveHundredChats:
    def test_everything_is_delivered_once_within_the_rates(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, fake_telegram, dispatcher
    ):
        acme_account, acme_bot = connect_bot(client, auth_headers)
        globex_account, globex_bot = connect_bot(client, other_headers)
        acme_chats, globex_chats = chats(300), chats(200)
        acme_campaign = sent_campaign(client, auth_headers, acme_account, acme_chats, "Acme news")
        globex_campaign = sent_campaign(client, other_headers, globex_account, globex_chats, "Globex news")

        dispatcher.run_until_idle()

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
                assert message.claimed_by == dispatcher.holder
            assert campaign_status(owner_tenant, campaign_id) == "completed"
            stats = client.get(f"{CAMPAIGNS}/{campaign_id}/stats", headers=headers)
            assert stats.status_code == 200, stats.json
            assert stats.json["messages"] == {
                "held": 0,
                "queued": 0,
                "sending": 0,
                "sent": total,
                "failed": 0,
                "cancelled": 0,
            }
            assert stats.json["deliveryRate"] == 1.0
            used = client.get(f"{API}/tenants/current/usage", headers=headers)
            assert used.json["resources"]["messagesPerMonth"]["used"] == total

        listed = client.get(
            f"{API}/messages",
            query_string={"campaignId": acme_campaign, "perPage": 100},
            headers=auth_headers,
        ).json
        assert listed["total"] == 300
        assert all(item["status"] == "sent" and item["telegramMessageId"] for item in listed["items"])
        assert Lease.objects(name__startswith="bot:").count() == 0  # lanes without work are gone

    def test_the_bot_rate_holds_where_telegram_counts_it_despite_latency(
        self, app, client, tenant, auth_headers, fake_telegram, dispatcher, monkeypatch
    ):
        """Telegram counts a bot's requests when they arrive. A request that takes longer on the way
        than the ones after it must not let more than the rate arrive within one window."""
        answer = fake_telegram.answer
        slow = {"left": 1}

        def late_first(token, method, params):
            if method != "getMe" and slow["left"]:
                slow["left"] -= 1
                time.sleep(0.1)  # the first message of the window is 100 ms on the way
            return answer(token, method, params)

        monkeypatch.setattr(fake_telegram, "answer", late_first)
        account, bot_id = connect_bot(client, auth_headers)
        sent_campaign(client, auth_headers, account, chats(110))

        dispatcher.run_until_idle()

        assert len(sent_to(fake_telegram, bot_id)) == 110
        assert fake_telegram.violations == []

    def test_a_bot_sends_several_requests_at_once_and_reuses_its_connections(
        self, app, client, tenant, auth_headers, fake_telegram, dispatcher
    ):
        account, bot_id = connect_bot(client, auth_headers)
        fake_telegram.delays[bot_id] = 0.05
        before = fake_telegram.connections
        sent_campaign(client, auth_headers, account, chats(60))
        dispatcher.run_until_idle()
        sent_campaign(client, auth_headers, account, chats(60))
        dispatcher.run_until_idle()

        assert len(sent_to(fake_telegram, bot_id)) == 120
        concurrency = app.config["TELEGRAM_CONCURRENCY"]
        assert 2 <= fake_telegram.most_in_flight(bot_id) <= concurrency
        # Connections are kept alive across sends and turns: far fewer than messages.
        assert fake_telegram.connections - before <= concurrency
        assert fake_telegram.violations == []


# -- concurrency and processes ----------------------------------------------------------------------


class TestRacingDispatchers:
    @pytest.mark.parametrize("round_", range(3))
    def test_dispatchers_racing_for_the_same_lanes_send_each_message_once(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, fake_telegram, round_
    ):
        subscribe(client, auth_headers, events=("campaign.completed",))
        campaigns = []
        for headers, owner_tenant, size in ((auth_headers, tenant, 40), (other_headers, other_tenant, 25)):
            for _ in range(3):
                account, _ = connect_bot(client, headers)
                campaigns.append((owner_tenant, sent_campaign(client, headers, account, chats(size)), size))
        racers = [new_dispatcher(app, holder=f"racer-{n}") for n in range(3)]
        barrier = threading.Barrier(len(racers))
        errors = []

        def race(racer):
            try:
                barrier.wait()
                racer.run_until_idle()
            except BaseException as exc:  # handed to the main thread
                errors.append(exc)

        threads = [threading.Thread(target=race, args=(racer,)) for racer in racers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for racer in racers:
            racer.stop()
        assert errors == []
        assert unfinished() == 0

        sends = Counter((s["bot"], s["chat"]) for s in fake_telegram.sent)
        assert max(sends.values()) == 1
        assert len(sends) == 3 * 40 + 3 * 25
        for owner_tenant, campaign_id, size in campaigns:
            assert statuses(owner_tenant, campaign_id) == {"sent": size}
            assert campaign_status(owner_tenant, campaign_id) == "completed"
        assert len(deliveries(tenant, "campaign.completed")) == 3
        assert messages_used(tenant) == 120
        assert fake_telegram.violations == []

    @pytest.mark.parametrize("settings", [{"DISPATCH_LANES": 1, "TELEGRAM_RATE_PER_BOT": "100/second"}])
    def test_dispatchers_share_the_lanes_out(self, app, client, tenant, auth_headers, fake_telegram):
        bots = [connect_bot(client, auth_headers) for _ in range(2)]
        for account, bot_id in bots:
            fake_telegram.delays[bot_id] = 0.2
            sent_campaign(client, auth_headers, account, chats(10))
        first, second = new_dispatcher(app, holder="first"), new_dispatcher(app, holder="second")
        first.step()
        second.step()
        assert (first.busy, second.busy) == (1, 1)  # each took the one lane it had room for
        wait_until(lambda: unfinished() == 0)
        first.stop()
        second.stop()
        with unscoped("test: who sent"):
            by_bot = {
                account: set(Message.objects(telegram_account_id=account).scalar("claimed_by"))
                for account, _ in bots
            }
        assert sorted(map(sorted, by_bot.values())) == [["first"], ["second"]]

    def test_a_lane_held_by_another_dispatcher_waits_for_its_lease(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        sent_campaign(client, auth_headers, account, chats(5))
        lane = leases.lane_name("bot", account)
        assert leases.acquire(lane, "someone-else", 60, create=False)

        dispatcher.step()
        time.sleep(0.2)
        assert requests_of(fake_telegram, bot_id) == []
        assert statuses(tenant) == {"queued": 5}

        with later(seconds=61):  # the other holder stopped renewing: its lease lapses
            dispatcher.run_until_idle()
        assert len(sent_to(fake_telegram, bot_id)) == 5
        assert statuses(tenant) == {"sent": 5}


class TestKilledDispatcher:
    def test_a_dispatcher_killed_mid_send_loses_nothing_and_sends_nothing_twice(
        self, app, client, tenant, auth_headers, bot, fake_telegram, monkeypatch
    ):
        """The first dispatcher freezes right after Telegram answered some of its sends (a process
        that died): its lease lapses, the second takes the bot over and sends the rest; the frozen
        sends, whose outcome the database never learnt, fail as 'outcome unknown', never resent."""
        account, bot_id = bot
        subscribe(client, auth_headers)
        targets = chats(300)  # a claim takes a second's worth (100 here): most are still queued
        campaign_id = sent_campaign(client, auth_headers, account, targets)
        frozen = threading.Event()
        answered = delivery._BotTurn._answered
        victim = new_dispatcher(app, holder="victim")
        survivor = new_dispatcher(app, holder="survivor")

        def freeze(turn, *args):
            if turn.turn.holder == "victim" and len(fake_telegram.sent) >= 10:
                frozen.wait()  # the process is gone: nothing more is written
            return answered(turn, *args)

        monkeypatch.setattr(delivery._BotTurn, "_answered", freeze)
        victim.step()
        wait_until(lambda: len(fake_telegram.sent) >= 10)
        time.sleep(0.2)
        stuck = [m for m in messages(tenant, campaign_id) if m.status == "sending"]
        assert stuck and all(m.claimed_by == "victim" for m in stuck)

        with later(seconds=app.config["DISPATCH_LEASE_TTL"] + 1):
            survivor.run_until_idle()
        assert statuses(tenant, campaign_id)["sending"] == len(stuck)  # not yet known to be stale
        with later(seconds=stale_after(app.config).total_seconds() + 60):
            survivor.run_until_idle()

        # The victim comes back to life, long after its lease lapsed (as its own clock tells it too):
        # it sends nothing more, and what it writes now changes nothing.
        sent_before = len(fake_telegram.sent)
        victim._held_until.clear()
        frozen.set()
        victim.stop()
        survivor.stop()
        assert len(fake_telegram.sent) == sent_before
        sends = Counter(s["chat"] for s in fake_telegram.sent)
        assert max(sends.values()) == 1
        final = {m.chat: m for m in messages(tenant, campaign_id)}
        assert set(final) == set(targets)
        unknown = [m for m in final.values() if m.status == "failed"]
        assert {m.id for m in unknown} == {m.id for m in stuck}
        assert all("outcome unknown" in m.error for m in unknown)
        assert all(m.status == "sent" for m in final.values() if m.id not in {s.id for s in stuck})
        assert len(sent_to(fake_telegram, bot_id)) >= 300 - 100
        assert messages_used(tenant) == 300  # an unknown outcome keeps its unit: it may have arrived
        assert campaign_status(tenant, campaign_id) == "completed"
        assert len(deliveries(tenant, "message.failed")) == len(stuck)
        assert len(deliveries(tenant, "campaign.completed")) == 1


# -- isolation and fairness -------------------------------------------------------------------------


class TestIsolation:
    def test_a_slow_bot_holds_up_nobody_else(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, fake_telegram, dispatcher
    ):
        slow_account, slow_bot = connect_bot(client, auth_headers)
        fast_account, fast_bot = connect_bot(client, other_headers)
        fake_telegram.delays[slow_bot] = 1.0
        slow = sent_campaign(client, auth_headers, slow_account, chats(16))
        fast = sent_campaign(client, other_headers, fast_account, chats(50))
        running(dispatcher)

        wait_until(lambda: campaign_status(other_tenant, fast) == "completed")
        # The fast bot finished while the slow one had barely begun (8 at a time, a second each).
        assert len(sent_to(fake_telegram, slow_bot)) <= app.config["TELEGRAM_CONCURRENCY"]
        assert statuses(tenant, slow)["sent"] < 16
        wait_until(lambda: campaign_status(tenant, slow) == "completed")
        dispatcher.stop()
        assert len(sent_to(fake_telegram, fast_bot)) == 50
        assert fake_telegram.violations == []

    @pytest.mark.parametrize("settings", [{"TELEGRAM_TIMEOUT": 1, "TELEGRAM_RATE_PER_BOT": "100/second"}])
    def test_a_hanging_bot_api_server_fails_only_its_own_messages(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, fake_telegram, dispatcher
    ):
        hanging_account, hanging_bot = connect_bot(client, auth_headers)
        account, bot_id = connect_bot(client, other_headers)
        fake_telegram.delays[hanging_bot] = 5.0
        hanging = sent_campaign(client, auth_headers, hanging_account, chats(3))
        fine = sent_campaign(client, other_headers, account, chats(20))

        dispatcher.run_until_idle()

        assert statuses(other_tenant, fine) == {"sent": 20}
        # No answer within the timeout: Telegram may have delivered them, so they are never resent.
        for message in messages(tenant, hanging):
            assert message.status == "failed"
            assert "outcome unknown" in message.error
        assert messages_used(tenant) == 3

    @pytest.mark.parametrize("settings", [{"TELEGRAM_CONCURRENCY": 1, "TELEGRAM_RATE_PER_BOT": "100/second"}])
    def test_a_429_pauses_only_that_bot(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, fake_telegram, dispatcher
    ):
        told, told_bot = connect_bot(client, auth_headers)
        other, other_bot = connect_bot(client, other_headers)
        fake_telegram.script({"status": 429, "retry_after": 2}, bot=told_bot)
        told_campaign = sent_campaign(client, auth_headers, told, chats(5))
        other_campaign = sent_campaign(client, other_headers, other, chats(30))
        running(dispatcher)

        wait_until(lambda: campaign_status(other_tenant, other_campaign) == "completed")
        wait_until(lambda: campaign_status(tenant, told_campaign) == "completed")
        dispatcher.stop()

        told_requests = requests_of(fake_telegram, told_bot)
        first, after = told_requests[0], told_requests[1:]
        assert after and all(r["at"] - first["at"] >= 1.9 for r in after)  # it waited as told
        other_requests = requests_of(fake_telegram, other_bot)
        assert other_requests[-1]["at"] - first["at"] < 1.9  # the other bot did not wait at all
        assert len(sent_to(fake_telegram, told_bot)) == 5  # the refused message went again, once
        attempts = sorted(m.attempts for m in messages(tenant, told_campaign))
        assert attempts == [1, 1, 1, 1, 2]
        assert fake_telegram.violations == []

    @pytest.mark.parametrize("settings", [{"DISPATCH_LANES": 1, "DISPATCH_TURN_SECONDS": 1}])
    def test_a_dispatcher_short_of_room_takes_turns_between_lanes(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, fake_telegram, dispatcher
    ):
        big_account, big_bot = connect_bot(client, auth_headers)
        small_account, _ = connect_bot(client, other_headers)
        fake_telegram.limits.per_bot = (30, 1.0)
        big = sent_campaign(client, auth_headers, big_account, chats(300))  # ten seconds of sending
        small = sent_campaign(client, other_headers, small_account, chats(5))
        running(dispatcher)

        wait_until(lambda: campaign_status(other_tenant, small) == "completed")
        # The small campaign did not wait for the big one: its turn came after about a second.
        assert statuses(tenant, big)["queued"] > 150
        dispatcher.stop()
        assert fake_telegram.violations == []

    @pytest.mark.parametrize("settings", [{}])  # Telegram's 30 a second per bot
    def test_campaigns_of_one_bot_take_turns(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, _ = bot
        fake_telegram.limits.per_bot = (30, 1.0)
        big = sent_campaign(client, auth_headers, account, chats(150))
        small = sent_campaign(client, auth_headers, account, chats(5))
        running(dispatcher)
        wait_until(lambda: campaign_status(tenant, small) == "completed")
        assert statuses(tenant, big)["sent"] < 100
        dispatcher.stop()


# -- rates ------------------------------------------------------------------------------------------


class TestPerChatRates:
    def test_a_group_gets_at_most_twenty_a_minute(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        group = "-1009999"
        campaigns = [sent_campaign(client, auth_headers, account, [group], f"Message {n}") for n in range(25)]
        elsewhere = sent_campaign(client, auth_headers, account, ["-1008888"], "Elsewhere")

        dispatcher.run_until_idle()

        to_group = [s for s in fake_telegram.sent if s["chat"] == group]
        assert len(to_group) == 20
        waiting = [one_message(tenant, c) for c in campaigns if one_message(tenant, c).status != "sent"]
        assert len(waiting) == 5
        for message in waiting:  # back in the queue until the group's minute is over, no attempt spent
            assert message.status == "queued" and message.attempts == 0
            assert utcnow() + timedelta(seconds=40) < message.not_before < utcnow() + timedelta(seconds=61)
        assert one_message(tenant, elsewhere).status == "sent"  # another chat is not held up
        lane = Lease.objects.get(name=leases.lane_name("bot", account))
        assert lane.due_at == min(m.not_before for m in waiting)
        assert fake_telegram.violations == []

    def test_a_private_chat_gets_at_most_one_a_second(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        person = chats(1)
        for n in range(3):
            sent_campaign(client, auth_headers, account, person, f"Message {n}")
        running(dispatcher)
        wait_until(lambda: len(sent_to(fake_telegram, bot_id)) == 3, timeout=10)
        dispatcher.stop()
        times = [r["at"] for r in requests_of(fake_telegram, bot_id)]
        assert all(b - a >= 0.99 for a, b in zip(times, times[1:], strict=False))
        assert fake_telegram.violations == []

    def test_chats_windows_are_forgotten_once_empty(self):
        throttle = Throttle(Rate(30, 1.0), Rate(1, 1.0), Rate(20, 60.0))
        for n in range(100):
            throttle.start(f"{n}")
            throttle.finish(f"{n}", now=10.0)
        throttle.start("-100")
        throttle.finish("-100", now=10.0)
        throttle.prune(10.5)
        assert len(throttle.chats) == 101
        throttle.prune(11.0)
        assert set(throttle.chats) == {"-100"}  # a group's window lasts a minute
        throttle.prune(70.0)
        assert throttle.chats == {}


class TestPaidBroadcasts:
    @pytest.fixture
    def settings(self):
        return {}  # Telegram's 30 a second per bot

    def test_an_enterprise_bot_may_use_paid_broadcasts_at_their_rate(
        self, app, client, tenant, auth_headers, fake_telegram, dispatcher
    ):
        fake_telegram.limits.per_bot = (30, 1.0)
        update_tenant(tenant, set__plan="enterprise")
        account, bot_id = connect_bot(client, auth_headers)
        response = client.patch(f"{ACCOUNTS}/{account}", json={"paidBroadcast": True}, headers=auth_headers)
        assert response.status_code == 200, response.json
        assert response.json["paidBroadcast"] is True
        sent_campaign(client, auth_headers, account, chats(90))

        started = time.monotonic()
        dispatcher.run_until_idle()

        got = sent_to(fake_telegram, bot_id)
        assert len(got) == 90
        assert all(s["params"]["allow_paid_broadcast"] is True for s in got)
        assert fake_telegram.violations == []  # counted against the paid limit
        assert time.monotonic() - started < 2.5  # 90 at 30 a second would take three seconds

    def test_other_plans_cannot_switch_them_on(self, client, auth_headers, bot):
        account, _ = bot
        response = client.patch(f"{ACCOUNTS}/{account}", json={"paidBroadcast": True}, headers=auth_headers)
        assert response.status_code == 403
        assert response.json["error"]["code"] == "feature_not_available"


# -- failures ---------------------------------------------------------------------------------------


class TestPermanentFailures:
    def test_a_failure_next_month_gives_the_unit_back_to_the_month_of_the_send(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, _bot_id = bot
        from app.tenants.plans import period_bounds, period_of
        from app.usage import service as usage

        fake_telegram.missing_chats.add("-100404")
        sent_campaign(client, auth_headers, account, ["-100404"])
        sending_month = period_of(utcnow())
        next_month = period_bounds(sending_month)[1] + timedelta(hours=1)
        with time_machine.travel(next_month, tick=True):
            dispatcher.run_until_idle()
        with tenant_scope(tenant):
            assert usage.used(tenant, "messagesPerMonth", sending_month) == 0
            assert usage.used(tenant, "messagesPerMonth", period_of(next_month)) == 0

    def test_blocked_and_missing_chats_fail_once_with_telegrams_description(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        subscribe(client, auth_headers)
        fake_telegram.blocked_chats.add("-100403")
        fake_telegram.missing_chats.add("-100404")
        all_failed = sent_campaign(client, auth_headers, account, ["-100403", "-100404"])
        partly = sent_campaign(client, auth_headers, account, ["-100403", "-100200"])
        assert messages_used(tenant) == 4

        dispatcher.run_until_idle()
        with later(hours=1):
            dispatcher.run_until_idle()

        errors = {m.chat: m.error for m in messages(tenant, all_failed)}
        assert errors == {
            "-100403": "Forbidden: bot was blocked by the user",
            "-100404": "Bad Request: chat not found",
        }
        for message in messages(tenant, status="failed"):
            assert message.attempts == 1
            assert message.failed_at is not None
        assert statuses(tenant, partly) == {"sent": 1, "failed": 1}
        chats_asked = Counter(r["params"]["chat_id"] for r in requests_of(fake_telegram, bot_id))
        assert chats_asked == {"-100403": 2, "-100404": 1, "-100200": 1}  # no retry
        assert messages_used(tenant) == 1  # three units back, the sent one kept

        assert campaign_status(tenant, all_failed) == "failed"
        assert campaign_status(tenant, partly) == "completed"
        failed_events = deliveries(tenant, "message.failed")
        assert len(failed_events) == 3
        for event in failed_events:
            data = event.payload["data"]
            assert data["error"] in errors.values()
            assert data["campaignId"] in (all_failed, partly)
            assert event.payload["event"] == "message.failed"
        [completed] = deliveries(tenant, "campaign.completed")
        assert completed.payload["data"] == {"campaignId": partly, "sent": 1, "failed": 1}
        [failed] = deliveries(tenant, "campaign.failed")
        assert failed.payload["data"] == {"campaignId": all_failed, "sent": 0, "failed": 2}
        stats = client.get(f"{CAMPAIGNS}/{partly}/stats", headers=auth_headers).json
        assert stats["deliveryRate"] == 0.5


class TestNetworkErrors:
    @pytest.fixture
    def settings(self):
        return {"TELEGRAM_RETRIES": 0, "MESSAGE_MAX_ATTEMPTS": 3, "TELEGRAM_RATE_PER_BOT": "100/second"}

    def test_a_server_error_requeues_with_growing_backoff_then_gives_up(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        subscribe(client, auth_headers)
        campaign_id = sent_campaign(client, auth_headers, account, chats(1))
        fake_telegram.script({"status": 502}, {"status": 500}, {"status": 503})

        started = utcnow()
        dispatcher.run_until_idle()
        first = one_message(tenant, campaign_id)
        assert (first.status, first.attempts) == ("queued", 1)
        assert "502" in first.error
        assert first.not_before >= started + timedelta(seconds=2)

        with later(minutes=1):
            dispatcher.run_until_idle()
            second = one_message(tenant, campaign_id)
            assert (second.status, second.attempts) == ("queued", 2)
            assert second.not_before - utcnow() > first.not_before - started - timedelta(seconds=1)
        with later(hours=1):
            dispatcher.run_until_idle()
        message = one_message(tenant, campaign_id)
        assert message.status == "failed"
        assert "3 attempts" in message.error
        assert len(requests_of(fake_telegram, bot_id)) == 3
        assert fake_telegram.sent == []
        assert messages_used(tenant) == 0
        assert campaign_status(tenant, campaign_id) == "failed"

    def test_a_later_attempt_that_succeeds_sends_once(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(1))
        fake_telegram.script({"status": 500})
        dispatcher.run_until_idle()
        with later(minutes=1):
            dispatcher.run_until_idle()
        message = one_message(tenant, campaign_id)
        assert (message.status, message.attempts, message.error) == ("sent", 2, None)
        assert len(sent_to(fake_telegram, bot_id)) == 1
        assert messages_used(tenant) == 1
        assert campaign_status(tenant, campaign_id) == "completed"

    def test_a_connection_lost_after_sending_is_never_sent_again(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(1))
        fake_telegram.script({"drop": True})
        dispatcher.run_until_idle()
        with later(hours=1):
            dispatcher.run_until_idle()
        message = one_message(tenant, campaign_id)
        assert message.status == "failed"
        assert "outcome unknown" in message.error
        assert len(requests_of(fake_telegram, bot_id)) == 1
        assert messages_used(tenant) == 1  # it may have arrived: no refund

    def test_a_server_that_refuses_connections_is_tried_again_later(
        self, app, client, tenant, auth_headers, dispatcher, unused_port
    ):
        account, _ = connect_bot(client, auth_headers)
        with tenant_scope(tenant):
            from app.telegram_accounts.models import TelegramAccount

            TelegramAccount.objects(id=account).update_one(
                set__api_base_url=f"http://127.0.0.1:{unused_port}"
            )
        campaign_id = sent_campaign(client, auth_headers, account, chats(1))
        dispatcher.run_until_idle()
        message = one_message(tenant, campaign_id)
        assert (message.status, message.attempts) == ("queued", 1)
        assert "could not connect" in message.error


class TestClientRetries:
    @pytest.fixture
    def settings(self):
        return {"TELEGRAM_RETRIES": 2, "TELEGRAM_RATE_PER_BOT": "100/second"}

    def test_a_hiccup_within_the_clients_retries_is_sent_in_the_same_turn(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(1))
        fake_telegram.script({"status": 500}, {"status": 502})
        dispatcher.run_until_idle()
        message = one_message(tenant, campaign_id)
        assert (message.status, message.attempts) == ("sent", 1)
        assert len(requests_of(fake_telegram, bot_id)) == 3
        assert len(fake_telegram.sent) == 1


class TestCancelled:
    @pytest.mark.parametrize("how", ["cancelled", "deleted"])
    def test_a_campaign_stopped_while_sending_sends_nothing_more(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher, how
    ):
        account, bot_id = bot
        fake_telegram.delays[bot_id] = 0.2
        campaign_id = sent_campaign(client, auth_headers, account, chats(200))
        running(dispatcher)
        wait_until(lambda: len(sent_to(fake_telegram, bot_id)) >= 10)
        if how == "cancelled":
            response = client.patch(
                f"{CAMPAIGNS}/{campaign_id}", json={"status": "cancelled"}, headers=auth_headers
            )
            assert response.status_code == 200, response.json
        else:
            assert client.delete(f"{CAMPAIGNS}/{campaign_id}", headers=auth_headers).status_code == 204
        wait_until(lambda: unfinished() == 0 and not dispatcher.busy)
        dispatcher.stop()

        sent = len(sent_to(fake_telegram, bot_id))
        assert sent < 60  # what was in flight, and at most one claim's worth: not the 200
        assert messages_used(tenant) == sent  # every unit not sent went back
        if how == "cancelled":
            final = statuses(tenant, campaign_id)
            assert final == {"sent": sent, "cancelled": 200 - sent}
            assert campaign_status(tenant, campaign_id) == "cancelled"


# -- tenants, bots, schedules, media ----------------------------------------------------------------


class TestTenantStatus:
    def test_a_suspended_tenants_messages_wait_until_activation(
        self, app, client, tenant, auth_headers, bot, fake_telegram, superadmin_headers, dispatcher
    ):
        account, bot_id = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(3))
        response = client.post(
            f"{API}/tenants/{tenant.id}/suspend", json={"reason": "unpaid"}, headers=superadmin_headers
        )
        assert response.status_code == 200, response.json

        dispatcher.run_until_idle()
        with later(hours=1):
            dispatcher.run_until_idle()
        assert fake_telegram.sent == []
        assert statuses(tenant, campaign_id) == {"queued": 3}

        response = client.post(f"{API}/tenants/{tenant.id}/activate", headers=superadmin_headers)
        assert response.status_code == 200, response.json
        dispatcher.run_until_idle()  # at once: activation wakes the tenant's lanes
        assert len(sent_to(fake_telegram, bot_id)) == 3
        assert campaign_status(tenant, campaign_id) == "completed"

    def test_a_deleted_tenants_messages_and_lanes_are_gone(
        self,
        app,
        client,
        tenant,
        other_tenant,
        auth_headers,
        other_headers,
        fake_telegram,
        superadmin_headers,
        dispatcher,
    ):
        account, bot_id = connect_bot(client, auth_headers)
        other_account, other_bot = connect_bot(client, other_headers)
        sent_campaign(client, auth_headers, account, chats(4))
        other_campaign = sent_campaign(client, other_headers, other_account, chats(2))

        assert client.delete(f"{API}/tenants/{tenant.id}", headers=superadmin_headers).status_code == 204
        assert Lease.objects(tenant_id=tenant.id).count() == 0
        dispatcher.run_until_idle()
        assert requests_of(fake_telegram, bot_id) == []
        assert statuses(other_tenant, other_campaign) == {"sent": 2}


class TestScheduled:
    def test_a_scheduled_campaign_goes_out_at_its_time(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        campaign_id = sent_campaign(client, auth_headers, account, chats(3), scheduledAt=at.isoformat())
        assert campaign_status(tenant, campaign_id) == "scheduled"
        assert Lease.objects.get(name=leases.lane_name("bot", account)).due_at == at

        dispatcher.run_until_idle()
        with time_machine.travel(at - timedelta(seconds=5), tick=True):
            dispatcher.run_until_idle()
        assert fake_telegram.sent == []
        assert campaign_status(tenant, campaign_id) == "scheduled"

        with time_machine.travel(at + timedelta(seconds=1), tick=True):
            dispatcher.run_until_idle()
        assert len(sent_to(fake_telegram, bot_id)) == 3
        assert campaign_status(tenant, campaign_id) == "completed"


class TestBotGone:
    @pytest.mark.parametrize("how", ["deactivated", "deleted"])
    def test_messages_of_a_bot_that_is_gone_fail_clearly(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher, how
    ):
        account, bot_id = bot
        subscribe(client, auth_headers)
        campaign_id = sent_campaign(client, auth_headers, account, chats(2))
        if how == "deactivated":
            response = client.patch(f"{ACCOUNTS}/{account}", json={"active": False}, headers=auth_headers)
            assert response.status_code == 200, response.json
        else:
            assert client.delete(f"{ACCOUNTS}/{account}", headers=auth_headers).status_code == 204

        dispatcher.run_until_idle()

        assert requests_of(fake_telegram, bot_id) == []
        for message in messages(tenant, campaign_id):
            assert message.status == "failed"
            assert "bot" in message.error and ("deactivated" in message.error or "removed" in message.error)
        assert messages_used(tenant) == 0
        assert campaign_status(tenant, campaign_id) == "failed"
        assert len(deliveries(tenant, "message.failed")) == 2
        assert len(deliveries(tenant, "campaign.failed")) == 1


class TestStaleSending:
    def test_a_message_stuck_in_sending_is_failed_never_resent(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        campaign_id = sent_campaign(client, auth_headers, account, chats(2))
        stuck, recent = messages(tenant, campaign_id)
        limit = stale_after(app.config)
        with tenant_scope(tenant):
            for message, age in ((stuck, limit + timedelta(seconds=5)), (recent, limit / 2)):
                Message.objects(id=message.id).update_one(
                    set__status="sending", set__sending_at=utcnow() - age, set__claimed_by="gone"
                )

        dispatcher.run_until_idle()
        stuck, recent = one_of(tenant, stuck.id), one_of(tenant, recent.id)
        assert stuck.status == "failed" and "unknown" in stuck.error
        assert recent.status == "sending"
        assert campaign_status(tenant, campaign_id) == "sending"
        # The lane comes back when the other one turns stale.
        lane = Lease.objects.get(name=leases.lane_name("bot", account))
        assert lane.due_at >= recent.sending_at + limit

        with later(seconds=limit.total_seconds()):
            dispatcher.run_until_idle()
        assert one_of(tenant, recent.id).status == "failed"
        assert requests_of(fake_telegram, bot_id) == []
        assert campaign_status(tenant, campaign_id) == "failed"


class TestMedia:
    def test_a_file_goes_up_once_per_bot_then_by_telegrams_file_id(
        self, app, client, tenant, auth_headers, bot, fake_telegram, dispatcher
    ):
        account, bot_id = bot
        picture = file_part(b"\x89PNG\r\n\x1a\n" + b"0" * 2048, "offer.png", "image/png")
        upload = client.post(f"{API}/media", headers=auth_headers, **multipart({"file": picture}))
        assert upload.status_code == 201, upload.json
        media_id = upload.json["id"]
        app.config["TELEGRAM_CONCURRENCY"] = 1  # one at a time: the first upload answers before the next
        campaign_id = sent_campaign(
            client, auth_headers, account, chats(5), message={"text": "See our offer", "mediaId": media_id}
        )

        dispatcher.run_until_idle()

        photos = sent_to(fake_telegram, bot_id)
        assert [s["method"] for s in photos] == ["sendPhoto"] * 5
        first, later_ones = photos[0], photos[1:]
        assert first["params"]["multipart"] is True  # the bytes, once
        file_id = f"sandbox-file-{first['message_id']}"
        assert [s["params"].get("photo") for s in later_ones] == [file_id] * 4  # then Telegram's file id
        assert all(s["text"] == "See our offer" for s in photos)
        assert statuses(tenant, campaign_id) == {"sent": 5}


# -- cost -------------------------------------------------------------------------------------------


@embedded_only
class TestCost:
    def test_database_operations_per_message_stay_small(
        self, app, client, tenant, auth_headers, bot, dispatcher, count_operations
    ):
        account, _ = bot
        sent_campaign(client, auth_headers, account, chats(300))
        with count_operations() as counted:
            dispatcher.run_until_idle()
        assert statuses(tenant) == {"sent": 300}
        # Looking for due lanes costs one query per poll, whatever the number of messages.
        per_message = (counted["total"] - counted["leases.find"]) / 300
        assert per_message < 0.2, counted


# -- the process ------------------------------------------------------------------------------------


class TestCommand:
    def test_a_dispatcher_process_refuses_the_embedded_store(self, app):
        result = app.test_cli_runner().invoke(args=["dispatcher", "run"])
        assert result.exit_code != 0
        assert "embedded store" in result.output
        assert "MONGODB_URI=mongodb://" in result.output

    def test_sigterm_finishes_the_sends_in_flight_and_gives_the_lanes_up(
        self, app, client, tenant, auth_headers, fake_telegram, monkeypatch
    ):
        account, bot_id = connect_bot(client, auth_headers)
        fake_telegram.delays[bot_id] = 0.3
        sent_campaign(client, auth_headers, account, chats(200))
        monkeypatch.setattr("app.cli._refuse_embedded", lambda process: None)  # one process: the test's
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
        wait_until_sending = threading.Thread(
            target=lambda: (
                wait_until(lambda: len(sent_to(fake_telegram, bot_id)) >= 1),
                os.kill(os.getpid(), signal.SIGTERM),
            )
        )
        wait_until_sending.start()
        try:
            result = app.test_cli_runner().invoke(args=["dispatcher", "run"])
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        wait_until_sending.join()

        assert result.exit_code == 0, result.output
        assert statuses(tenant)["sending"] == 0  # what was in flight was answered and written
        assert 0 < statuses(tenant)["sent"] < 200
        lane = Lease.objects.get(name=leases.lane_name("bot", account))
        assert lane.expires_at == leases.FREE  # free at once for another dispatcher
        assert lane.due_at <= utcnow() + timedelta(seconds=2)
