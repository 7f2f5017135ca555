"""The development Bot API sandbox (app.telegram.sandbox): served by the app in development only,
answering as Telegram does, within Telegram's limits, without logging bot tokens."""

from __future__ import annotations

import pytest

import config
from app.telegram.sandbox import Limits, Sandbox

from .support import bot_token, log_records

BASE = "/sandbox/bot-api"


@pytest.fixture
def settings():
    return {"TELEGRAM_SANDBOX": True}


def call(client, method, token=None, **params):
    return client.post(f"{BASE}/bot{token or bot_token(4242)}/{method}", json=params)


def test_it_is_served_in_development_only(app_factory):
    assert config.load({"APP_ENV": "development"})["TELEGRAM_SANDBOX"] is True
    assert config.load({"APP_ENV": "testing"})["TELEGRAM_SANDBOX"] is False
    assert app_factory().test_client().post(f"{BASE}/bot{bot_token()}/getMe").status_code == 404


def test_it_answers_as_the_bot_api_does(client):
    me = call(client, "getMe").json
    assert me == {"ok": True, "result": {"id": 4242, "is_bot": True, "username": "bot4242_bot"}}
    sent = call(client, "sendMessage", chat_id="1001", text="Hello").json
    assert sent["ok"] is True and sent["result"]["chat"] == {"id": "1001"}
    unknown = call(client, "sendTelepathy", chat_id="1001")
    assert unknown.status_code == 404 and unknown.json["ok"] is False
    listed = client.get(f"{BASE}/messages").json
    assert listed == [
        {
            "bot": "4242",
            "chat": "1001",
            "message_id": sent["result"]["message_id"],
            "method": "sendMessage",
            "text": "Hello",
        }
    ]


def test_past_telegrams_limits_it_answers_429(client):
    assert call(client, "sendMessage", chat_id="1001", text="one").status_code == 200
    again = call(client, "sendMessage", chat_id="1001", text="two")  # one a second per private chat
    assert again.status_code == 429
    assert again.json["parameters"]["retry_after"] >= 1
    for n in range(20):
        assert call(client, "sendMessage", chat_id="-100777", text=f"{n}").status_code == 200
    assert call(client, "sendMessage", chat_id="-100777", text="21st").status_code == 429  # 20 a minute


def test_the_per_bot_limit_and_paid_broadcasts():
    sandbox = Sandbox(Limits(per_bot=(3, 1.0), per_paid_bot=(5, 1.0)))
    answers = [sandbox.answer(bot_token(1), "sendMessage", {"chat_id": str(n)})[0] for n in range(4)]
    assert answers == [200, 200, 200, 429]
    paid = [
        sandbox.answer(bot_token(2), "sendMessage", {"chat_id": str(n), "allow_paid_broadcast": True})[0]
        for n in range(6)
    ]
    assert paid == [200] * 5 + [429]
    assert len(sandbox.violations) == 2


def test_bot_tokens_stay_out_of_the_access_log(client):
    token = bot_token(4243)
    with log_records("app.access") as records:
        call(client, "getMe", token)
    [record] = records
    assert token not in record.path
    assert record.path == f"{BASE}/bot4243:[token]/getMe"
