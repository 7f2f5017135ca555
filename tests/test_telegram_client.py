"""The Telegram Bot API client against the fake Bot API, and the getMe check of POST /telegram-accounts.

The client sorts Telegram's answers the way the dispatcher treats them: 429 -> RetryAfter, 4xx ->
PermanentError at once, 5xx and connections that could not be made -> retried with a jittered
exponential backoff a bounded number of times, then TransientError; a request sent that got no
answer -> OutcomeUnknown at once (Telegram may have delivered it).
"""

from __future__ import annotations

import time
from itertools import count
from types import SimpleNamespace
from typing import Any

import pytest

from app.audit.models import AuditLog
from app.egress import OPERATOR
from app.telegram.client import (
    OutcomeUnknown,
    PermanentError,
    RetryAfter,
    TelegramClient,
    TelegramError,
    TransientError,
)
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant

from .fake_telegram import FakeTelegram, scripted_answer
from .support import stored_accounts

API = "/api/v1"
ACCOUNTS = f"{API}/telegram-accounts"
SECRET = "A" * 35
_bot_ids = count(200001)


# -- helpers ----------------------------------------------------------------------------------------


def new_token(bot_id: int | None = None) -> str:
    return f"{bot_id or next(_bot_ids)}:{SECRET}"


class Sleeps(list):
    """Stands in for the sleep of urllib3's retries: records how long it was asked to sleep."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def sends(fake: FakeTelegram) -> list[dict]:
    return [r for r in fake.requests if r["method"] != "getMe"]


def without_times(requests: list[dict]) -> list[dict]:
    return [{key: value for key, value in request.items() if key != "at"} for request in requests]


@pytest.fixture
def sleeps(monkeypatch) -> Sleeps:
    recorded = Sleeps()
    monkeypatch.setattr("urllib3.util.retry.time", SimpleNamespace(sleep=recorded, time=time.time))
    return recorded


@pytest.fixture
def bot_token() -> str:
    return new_token()


@pytest.fixture
def tg(fake_telegram, bot_token, sleeps) -> TelegramClient:
    """A client of the fake Bot API with the default retry policy (3 retries, 0.5 s backoff)."""
    return TelegramClient(bot_token, fake_telegram.url, policy=OPERATOR, timeout=5)


def backoffs(base: float, retries: int) -> list[tuple[float, float]]:
    """The sleeps between `retries` retries: none before the first, then base, 2 x base... each
    with up to half of base of jitter."""
    return [(base * 2 ** (n - 1), base * 2 ** (n - 1) + base / 2) for n in range(1, retries)]


def within(slept: list[float], bounds: list[tuple[float, float]]) -> bool:
    return len(slept) == len(bounds) and all(
        low <= value <= high for value, (low, high) in zip(slept, bounds, strict=True)
    )


# -- answers ----------------------------------------------------------------------------------------


class TestAnswers:
    def test_get_me_returns_the_bot(self, tg, fake_telegram, bot_token, sleeps):
        bot_id = int(bot_token.split(":")[0])
        me = tg.get_me()
        assert me["id"] == bot_id
        assert me["is_bot"] is True
        assert me["username"] == f"bot{bot_id}_bot"
        assert without_times(fake_telegram.requests) == [
            {"bot": str(bot_id), "method": "getMe", "params": {}}
        ]
        assert sleeps == []

    def test_send_message_returns_the_message(self, tg, fake_telegram, bot_token):
        result = tg.send_message("12345", "Hello there", parse_mode="HTML")
        assert isinstance(result["message_id"], int)
        assert result["chat"] == {"id": "12345"}
        [sent] = fake_telegram.sent
        assert sent["bot"] == bot_token.split(":")[0]
        assert sent["method"] == "sendMessage"
        assert sent["chat"] == "12345"
        assert sent["params"] == {"chat_id": "12345", "text": "Hello there", "parse_mode": "HTML"}
        assert sent["message_id"] == result["message_id"]

    def test_send_message_without_parse_mode_sends_none(self, tg, fake_telegram):
        tg.send_message("@news_channel", "Plain")
        assert fake_telegram.sent[0]["params"] == {"chat_id": "@news_channel", "text": "Plain"}

    def test_each_message_gets_its_own_id(self, tg):
        first = tg.send_message("1", "a")["message_id"]
        second = tg.send_message("2", "b")["message_id"]
        assert first != second

    def test_an_unknown_method_is_a_permanent_error(self, tg, fake_telegram, sleeps):
        with pytest.raises(PermanentError) as raised:
            tg.call("sendTelepathy", {"chat_id": "1"})
        assert raised.value.error_code == 404
        assert raised.value.description == "Not Found: method not found"
        assert len(fake_telegram.requests) == 1
        assert sleeps == []


class TestFailures:
    def test_ok_false_carries_error_code_and_description(self, fake_telegram, sleeps):
        refused = TelegramClient(new_token(999999123), fake_telegram.url, policy=OPERATOR)
        with pytest.raises(PermanentError) as raised:
            refused.get_me()
        assert raised.value.error_code == 401
        assert raised.value.description == "Unauthorized"
        assert str(raised.value) == "Unauthorized"
        assert len(fake_telegram.requests) == 1
        assert sleeps == []

    def test_429_raises_retry_after_with_telegrams_delay(self, tg, fake_telegram, sleeps):
        fake_telegram.script({"status": 429, "retry_after": 17})
        with pytest.raises(RetryAfter) as raised:
            tg.send_message("1", "hi")
        assert raised.value.retry_after == 17
        assert raised.value.error_code == 429
        assert "retry after 17" in raised.value.description
        # The client does not wait or retry by itself: the dispatcher pauses the bot.
        assert len(sends(fake_telegram)) == 1
        assert sleeps == []
        assert fake_telegram.sent == []

    @pytest.mark.parametrize(
        "chat, kind, code, description",
        [
            ("-100404", "missing_chats", 400, "Bad Request: chat not found"),
            ("-100403", "blocked_chats", 403, "Forbidden: bot was blocked by the user"),
        ],
    )
    def test_chat_not_found_and_bot_blocked_are_permanent_without_retry(
        self, tg, fake_telegram, sleeps, chat, kind, code, description
    ):
        getattr(fake_telegram, kind).add(chat)
        with pytest.raises(PermanentError) as raised:
            tg.send_message(chat, "hi")
        assert raised.value.error_code == code
        assert raised.value.description == description
        assert len(sends(fake_telegram)) == 1
        assert sleeps == []
        assert fake_telegram.sent == []

    @pytest.mark.parametrize("answer", [{"status": 500}, {"status": 502}, {"status": 503}])
    def test_5xx_are_retried_with_backoff_then_transient(self, tg, fake_telegram, sleeps, answer):
        fake_telegram.script(*[answer] * 10)
        with pytest.raises(TransientError) as raised:
            tg.send_message("1", "hi")
        # One try and three retries: the first at once, then after 0.5 and 1 s (plus jitter).
        assert len(sends(fake_telegram)) == 4
        assert within(sleeps, backoffs(0.5, 3))
        assert len(fake_telegram.scripted) == 6
        assert fake_telegram.sent == []
        assert raised.value.error_code == answer["status"]

    def test_a_request_without_an_answer_is_never_sent_again(self, tg, fake_telegram, sleeps):
        fake_telegram.script({"drop": True}, {"drop": True})
        with pytest.raises(OutcomeUnknown) as raised:
            tg.send_message("1", "hi")
        assert raised.value.description.startswith("network error: no answer")
        assert len(sends(fake_telegram)) == 1  # Telegram may have delivered it
        assert sleeps == []

    def test_the_jitter_spreads_the_retries(self, fake_telegram, sleeps):
        client = TelegramClient(new_token(), fake_telegram.url, policy=OPERATOR, max_retries=2, backoff=0.2)
        for _ in range(8):
            fake_telegram.script({"status": 500}, {"status": 500}, {"status": 500})
            with pytest.raises(TransientError):
                client.send_message("1", "hi")
        assert len(sleeps) == 8
        assert all(0.2 <= slept <= 0.3 for slept in sleeps)
        assert len(set(sleeps)) > 1

    def test_the_number_of_retries_and_the_backoff_are_settings(self, fake_telegram, sleeps):
        client = TelegramClient(new_token(), fake_telegram.url, policy=OPERATOR, max_retries=2, backoff=0.25)
        fake_telegram.script(*[{"status": 503}] * 5)
        with pytest.raises(TransientError):
            client.send_message("1", "hi")
        assert len(sends(fake_telegram)) == 3
        assert within(sleeps, backoffs(0.25, 2))

    def test_no_retries_at_all(self, fake_telegram, sleeps):
        client = TelegramClient(new_token(), fake_telegram.url, policy=OPERATOR, max_retries=0)
        fake_telegram.script({"status": 500})
        with pytest.raises(TransientError):
            client.send_message("1", "hi")
        assert len(sends(fake_telegram)) == 1
        assert sleeps == []

    @pytest.mark.parametrize("failures", [[{"status": 500}], [{"status": 502}, {"status": 500}]])
    def test_a_retry_that_succeeds_returns_the_message_once(self, tg, fake_telegram, sleeps, failures):
        fake_telegram.script(*failures)
        result = tg.send_message("42", "hi")
        assert len(sends(fake_telegram)) == len(failures) + 1
        assert within(sleeps, backoffs(0.5, len(failures)))
        assert [s["chat"] for s in fake_telegram.sent] == ["42"]
        assert fake_telegram.sent[0]["message_id"] == result["message_id"]

    def test_a_closed_port_is_a_transient_error_tried_again(self, sleeps, unused_port):
        client = TelegramClient(
            new_token(), f"http://127.0.0.1:{unused_port}", policy=OPERATOR, max_retries=2
        )
        with pytest.raises(TransientError) as raised:
            client.get_me()
        assert "could not connect" in raised.value.description
        assert within(sleeps, backoffs(0.5, 2))

    def test_a_redirect_is_not_followed(self, fake_telegram, sleeps):
        client = TelegramClient(new_token(), f"{fake_telegram.url}/redirect", policy=OPERATOR)
        with pytest.raises(PermanentError):
            client.get_me()

    def test_connections_are_kept_alive(self, tg, fake_telegram):
        before = fake_telegram.connections
        for n in range(20):
            tg.send_message(str(n), "hi")
        assert fake_telegram.connections - before == 1

    def test_every_failure_is_a_telegram_error(self):
        for kind in (PermanentError, TransientError, OutcomeUnknown):
            assert issubclass(kind, TelegramError)
        assert issubclass(RetryAfter, TelegramError)


class TestFiles:
    @pytest.mark.parametrize(
        "method, field, call",
        [
            ("sendPhoto", "photo", "send_photo"),
            ("sendDocument", "document", "send_document"),
        ],
    )
    def test_files_are_sent_as_multipart(self, fake_telegram, bot_token, method, field, call):
        client = TelegramClient(bot_token, fake_telegram.url, policy=OPERATOR)
        content = b"\x89PNG\r\n" + bytes(range(256)) * 4
        result = getattr(client, call)(
            "-100777", content, "picture.png", caption="Look at <b>this</b>", parse_mode="HTML"
        )
        assert isinstance(result["message_id"], int)
        [sent] = fake_telegram.sent
        assert sent["method"] == method
        assert sent["chat"] == "-100777"
        assert sent["params"]["multipart"] is True
        assert sent["params"]["caption"] == "Look at <b>this</b>"
        assert sent["params"]["size"] > len(content)
        file = result[field][-1] if field == "photo" else result[field]
        assert file["file_id"]

    @pytest.mark.parametrize("field, call", [("photo", "send_photo"), ("document", "send_document")])
    def test_a_file_sent_before_is_named_by_its_file_id(self, fake_telegram, bot_token, field, call):
        client = TelegramClient(bot_token, fake_telegram.url, policy=OPERATOR)
        getattr(client, call)("1", "AgACAgIAAx0", "picture.png", caption="Again")
        [sent] = fake_telegram.sent
        assert sent["params"] == {"chat_id": "1", "caption": "Again", field: "AgACAgIAAx0"}

    def test_a_file_without_caption_sends_no_caption(self, fake_telegram, bot_token):
        client = TelegramClient(bot_token, fake_telegram.url, policy=OPERATOR)
        client.send_document("1", b"%PDF-1.4", "terms.pdf")
        [sent] = fake_telegram.sent
        assert sent["method"] == "sendDocument"
        assert "caption" not in sent["params"]


# -- POST /telegram-accounts checks the token with getMe ----------------------------------------------


class FlakyTelegram(FakeTelegram):
    """The fake Bot API whose scripted failures apply to getMe as well."""

    def refuse(self, bot: str, method: str, params: dict[str, Any]):
        if method == "getMe" and self.scripted:
            return scripted_answer(self.scripted.popleft()[1])
        return super().refuse(bot, method, params)


@pytest.fixture(scope="module")
def flaky_server():
    server = FlakyTelegram().start()
    yield server
    server.stop()


@pytest.fixture
def flaky_telegram(flaky_server):
    flaky_server.reset()
    return flaky_server


def connect(client, headers, token: str, **extra):
    return client.post(ACCOUNTS, json={"name": "Sender", "token": token, **extra}, headers=headers)


def nothing_stored(tenant) -> None:
    assert stored_accounts(tenant) == []
    assert Tenant.objects.get(id=tenant.id).usage.telegram_accounts == 0
    with tenant_scope(tenant):
        assert AuditLog.objects(action="telegram_account.created").count() == 0


class TestConnectChecksTheToken:
    def test_the_bot_username_comes_from_get_me(self, client, auth_headers, tenant, fake_telegram):
        token = new_token(5550001)
        response = connect(client, auth_headers, token)
        assert response.status_code == 201, response.json
        assert response.json["botUsername"] == "bot5550001_bot"
        assert response.json["botId"] == 5550001
        assert [r["method"] for r in fake_telegram.requests] == ["getMe"]
        assert fake_telegram.requests[0]["bot"] == "5550001"
        [stored] = stored_accounts(tenant)
        assert stored.bot_username == "bot5550001_bot"
        read = client.get(f"{ACCOUNTS}/{response.json['id']}", headers=auth_headers)
        assert read.json["botUsername"] == "bot5550001_bot"

    def test_a_token_telegram_refuses_is_422_and_stores_nothing(
        self, client, auth_headers, tenant, fake_telegram
    ):
        response = connect(client, auth_headers, new_token(999999001))
        assert response.status_code == 422, response.json
        error = response.json["error"]
        assert error["code"] == "validation_error"
        assert any("Unauthorized" in message for message in error["details"]["token"])
        assert [r["method"] for r in fake_telegram.requests] == ["getMe"]
        nothing_stored(tenant)

    def test_a_refused_new_token_leaves_the_old_one(self, client, auth_headers, tenant):
        created = connect(client, auth_headers, new_token(5550002))
        assert created.status_code == 201
        response = client.patch(
            f"{ACCOUNTS}/{created.json['id']}", json={"token": new_token(999999002)}, headers=auth_headers
        )
        assert response.status_code == 422, response.json
        assert "token" in response.json["error"]["details"]
        [stored] = stored_accounts(tenant)
        assert stored.bot_id == 5550002
        assert stored.bot_username == "bot5550002_bot"


class TestTelegramDown:
    @pytest.fixture
    def settings(self, flaky_telegram):
        return {"TELEGRAM_API_BASE": flaky_telegram.url}

    @pytest.mark.parametrize("answer", [{"status": 500}, {"status": 502}, {"drop": True}])
    def test_no_answer_from_telegram_is_503_and_stores_nothing(
        self, client, auth_headers, tenant, flaky_telegram, answer
    ):
        flaky_telegram.script(*[answer] * 10)
        response = connect(client, auth_headers, new_token())
        assert response.status_code == 503, response.get_data(as_text=True)
        assert set(response.json) == {"error"}
        assert response.json["error"]["code"] == "unavailable"
        assert response.json["error"]["message"]
        # A few tries at most, never an endless loop.
        assert 1 <= len(flaky_telegram.requests) <= 4
        nothing_stored(tenant)

    def test_a_passing_hiccup_is_retried(self, client, auth_headers, tenant, flaky_telegram):
        flaky_telegram.script({"status": 500})
        response = connect(client, auth_headers, new_token(5550003))
        assert response.status_code == 201, response.json
        assert response.json["botUsername"] == "bot5550003_bot"
        assert len(stored_accounts(tenant)) == 1


class TestTelegramUnreachable:
    @pytest.fixture
    def settings(self, unused_port):
        return {"TELEGRAM_API_BASE": f"http://127.0.0.1:{unused_port}"}

    def test_a_closed_port_is_503_and_stores_nothing(self, client, auth_headers, tenant):
        response = connect(client, auth_headers, new_token())
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.json["error"]["code"] == "unavailable"
        nothing_stored(tenant)
