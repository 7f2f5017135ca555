"""A fake Telegram Bot API server on 127.0.0.1 for the tests: records what it receives, answers as
Telegram documents, checks the rate limits, and can be told to fail in each documented way."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from .loopback import LoopbackServer

INVALID_TOKEN_PREFIX = "999999"  # tokens of bot ids starting with this are refused (401 Unauthorized)


class FakeTelegram(LoopbackServer):
    def __init__(self, per_bot: tuple[int, float] = (30, 1.0), per_chat: tuple[int, float] = (20, 60.0)):
        self.per_bot = per_bot
        self.per_chat = per_chat
        self.lock = threading.Lock()
        self.reset()
        super().__init__(self._handler())

    def reset(self) -> None:
        with self.lock:
            self.requests: list[dict[str, Any]] = []
            self.sent: list[dict[str, Any]] = []
            self.violations: list[str] = []
            self.blocked_chats: set[str] = set()
            self.missing_chats: set[str] = set()
            self.scripted: deque[dict[str, Any]] = deque()
            self._bot_times: dict[str, deque[float]] = defaultdict(deque)
            self._chat_times: dict[tuple[str, str], deque[float]] = defaultdict(deque)
            self._next_id = 1

    def script(self, *answers: dict[str, Any]) -> None:
        """Queue answers for the next send calls: {"status": 429, "retry_after": 1}, {"status": 500},
        {"drop": True} (close the connection without answering)."""
        with self.lock:
            self.scripted.extend(answers)

    def _window_ok(self, times: deque[float], limit: tuple[int, float], now: float) -> bool:
        amount, seconds = limit
        while times and now - times[0] >= seconds:
            times.popleft()
        times.append(now)
        return len(times) <= amount

    def _answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        bot_id = token.split(":", 1)[0]
        with self.lock:
            self.requests.append({"bot": bot_id, "method": method, "params": params})
            if bot_id.startswith(INVALID_TOKEN_PREFIX):
                return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            if method == "getMe":
                return 200, {
                    "ok": True,
                    "result": {"id": int(bot_id), "is_bot": True, "username": f"bot{bot_id}_bot"},
                }
            if method not in ("sendMessage", "sendPhoto", "sendDocument"):
                return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
            if self.scripted:
                scripted = self.scripted.popleft()
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
            chat = str(params.get("chat_id"))
            now = time.monotonic()
            if not self._window_ok(self._bot_times[bot_id], self.per_bot, now):
                self.violations.append(f"bot {bot_id} over {self.per_bot}")
            if not self._window_ok(self._chat_times[(bot_id, chat)], self.per_chat, now):
                self.violations.append(f"chat {chat} of bot {bot_id} over {self.per_chat}")
            if chat in self.blocked_chats:
                return 403, {
                    "ok": False,
                    "error_code": 403,
                    "description": "Forbidden: bot was blocked by the user",
                }
            if chat in self.missing_chats:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
            message_id = self._next_id
            self._next_id += 1
            self.sent.append(
                {"bot": bot_id, "method": method, "chat": chat, "params": params, "message_id": message_id}
            )
            return 200, {"ok": True, "result": {"message_id": message_id, "chat": {"id": chat}}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                _, bot, method = self.path.split("/", 2)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("application/json"):
                    params = json.loads(raw or b"{}")
                elif ctype.startswith("multipart/form-data"):
                    params = {
                        "multipart": True,
                        "chat_id": _multipart_field(raw, ctype, "chat_id"),
                        "size": len(raw),
                    }
                else:
                    params = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                status, body = fake._answer(bot.removeprefix("bot"), method, params)
                if body is None:
                    self.close_connection = True
                    self.connection.close()
                    return
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _multipart_field(raw: bytes, content_type: str, name: str) -> str | None:
    boundary = content_type.split("boundary=", 1)[1].encode()
    for part in raw.split(b"--" + boundary):
        if f'name="{name}"'.encode() in part:
            return part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n-").decode()
    return None
