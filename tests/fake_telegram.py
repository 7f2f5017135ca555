"""The fake Telegram Bot API of the tests: the development sandbox (app.telegram.sandbox) on a port of
its own, which records what it receives and checks Telegram's rates, and can be told to fail in each
documented way or to answer a bot slowly."""

from __future__ import annotations

from collections import deque
from typing import Any, Self

from app.telegram.sandbox import SEND_METHODS, Answer, Limits, Sandbox, SandboxServer

INVALID_TOKEN_PREFIX = "999999"  # tokens of bot ids starting with this are refused (401 Unauthorized)


class FakeTelegram(Sandbox):
    def __init__(self, limits: Limits | None = None):
        super().__init__(limits, keep=1_000_000)
        self.server: SandboxServer | None = None

    def reset(self) -> None:
        super().reset()
        self.blocked_chats: set[str] = set()
        self.missing_chats: set[str] = set()
        self.scripted: deque[tuple[str | None, dict[str, Any]]] = deque()
        self.delays: dict[str, float] = {}

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def connections(self) -> int:
        """TCP connections opened to the fake so far."""
        return self.server.connections

    def most_in_flight(self, bot: str) -> int:
        """The most requests of `bot` the fake was answering at once."""
        return self.server.most_in_flight[bot]

    def start(self) -> Self:
        self.server = SandboxServer(self, lambda bot: self.delays.get(bot, 0.0)).start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def script(self, *answers: dict[str, Any], bot: str | None = None) -> None:
        """Queue answers for the next send calls (of `bot` only, when given): {"status": 429,
        "retry_after": 1}, {"status": 500}, {"drop": True} (close the connection without answering)."""
        with self.lock:
            self.scripted.extend((bot, answer) for answer in answers)

    def refuse(self, bot: str, method: str, params: dict[str, Any]) -> Answer | None:
        if bot.startswith(INVALID_TOKEN_PREFIX):
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if method not in SEND_METHODS:
            return None
        for index, (only, scripted) in enumerate(self.scripted):
            if only in (None, bot):
                del self.scripted[index]
                return scripted_answer(scripted)
        chat = str(params.get("chat_id"))
        if chat in self.blocked_chats:
            return 403, {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            }
        if chat in self.missing_chats:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        return None


def scripted_answer(scripted: dict[str, Any]) -> Answer:
    """The answer a script asks for: a status with Telegram's body, or no answer at all."""
    if scripted.get("drop"):
        return 0, None
    status = scripted["status"]
    body: dict[str, Any] = {
        "ok": False,
        "error_code": status,
        "description": scripted.get("description", f"error {status}"),
    }
    if status == 429:
        body["description"] = f"Too Many Requests: retry after {scripted['retry_after']}"
        body["parameters"] = {"retry_after": scripted["retry_after"]}
    return status, body
