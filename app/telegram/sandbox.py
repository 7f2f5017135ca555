"""A local Bot API: development's sandbox, and the fake Telegram of the tests and benchmarks.

It answers `getMe` and the send methods as Telegram documents them, for any well-formed token, and
keeps Telegram's flood limits as Telegram counts them (when a request arrives): 30 messages a second
per bot (1,000 with `allow_paid_broadcast`), one a second per private chat, 20 a minute per group or
channel. Past a limit it answers 429 with `retry_after`, as Telegram does, and notes the violation.
It keeps the last messages it received, newest first.

`blueprint()` serves it inside the app at /sandbox/bot-api (development only: create_app never
registers it in production), so that `make run` delivers campaigns without a real bot or the
internet. `SandboxServer` runs it on a port of its own, with an optional delay per answer, for the tests
and `bench/delivery.py`. `python -m app.telegram.sandbox` serves it alone, as a Bot API server of its
own (the Docker smoke test's: docker-compose.smoke.yml).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Response, jsonify, request

from app import clock
from app.tenancy.access import infra

SEND_METHODS = ("sendMessage", "sendPhoto", "sendDocument")
Answer = tuple[int, dict[str, Any] | None]  # status and body; no body: close without answering


def chat_kind(chat: str) -> str:
    """'private' for a user's chat (a positive id), 'group' for groups, supergroups and channels."""
    return "private" if chat.isdigit() else "group"


@dataclass
class Limits:
    """Telegram's limits as (requests, seconds)."""

    per_bot: tuple[int, float] = (30, 1.0)
    per_paid_bot: tuple[int, float] = (1000, 1.0)
    per_chat: tuple[int, float] = (1, 1.0)
    per_group: tuple[int, float] = (20, 60.0)


@dataclass
class _Windows:
    """When each bot's and chat's recent requests arrived (pruned as they age)."""

    bots: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    chats: dict[tuple[str, str], deque[float]] = field(default_factory=lambda: defaultdict(deque))


class Sandbox:
    def __init__(self, limits: Limits | None = None, keep: int = 1000):
        """Keep at least the last `keep` messages."""
        self.limits = limits or Limits()
        self.keep = keep
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[dict[str, Any]] = []
            self.sent: list[dict[str, Any]] = []
            self.violations: list[str] = []
            self._windows = _Windows()
            self._next_id = 1

    def _over(self, times: deque[float], limit: tuple[int, float], now: float) -> bool:
        amount, seconds = limit
        while times and now - times[0] >= seconds:
            times.popleft()
        if len(times) >= amount:
            return True
        times.append(now)
        return False

    def refuse(self, bot: str, method: str, params: dict[str, Any]) -> Answer | None:
        """An answer that replaces the normal one (the tests' failures); None for the normal one."""
        return None

    def answer(self, token: str, method: str, params: dict[str, Any]) -> Answer:
        """Answer one Bot API call as Telegram would."""
        bot = token.split(":", 1)[0]
        with self.lock:
            self.requests.append({"bot": bot, "method": method, "params": params, "at": clock.monotonic()})
            refused = self.refuse(bot, method, params)
            if refused is not None:
                return refused
            if method == "getMe":
                username = f"bot{bot}_bot"
                return 200, {"ok": True, "result": {"id": int(bot), "is_bot": True, "username": username}}
            if method not in SEND_METHODS:
                return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
            chat = str(params.get("chat_id"))
            now = clock.monotonic()
            paid = str(params.get("allow_paid_broadcast")).lower() == "true"
            checks = (
                (self._windows.bots[bot], self.limits.per_paid_bot if paid else self.limits.per_bot, "bot"),
                (
                    self._windows.chats[(bot, chat)],
                    self.limits.per_chat if chat_kind(chat) == "private" else self.limits.per_group,
                    f"chat {chat}",
                ),
            )
            for times, limit, what in checks:
                if self._over(times, limit, now):
                    self.violations.append(f"{what} of bot {bot} over {limit[0]} per {limit[1]:g} s")
                    retry_after = max(1, round(limit[1] - (now - times[0])))
                    return 429, {
                        "ok": False,
                        "error_code": 429,
                        "description": f"Too Many Requests: retry after {retry_after}",
                        "parameters": {"retry_after": retry_after},
                    }
            message_id = self._next_id
            self._next_id += 1
            if len(self.sent) >= 2 * self.keep:
                del self.sent[: -self.keep]
            self.sent.append(
                {
                    "bot": bot,
                    "method": method,
                    "chat": chat,
                    "text": params.get("text") or params.get("caption"),
                    "params": params,
                    "message_id": message_id,
                }
            )
            result: dict[str, Any] = {"message_id": message_id, "chat": {"id": chat}}
            if method != "sendMessage":
                field = "photo" if method == "sendPhoto" else "document"
                named = params.get(field)
                file = {"file_id": named if isinstance(named, str) else f"sandbox-file-{message_id}"}
                result[field] = [file] if field == "photo" else file
            return 200, {"ok": True, "result": result}

    def messages(self) -> Iterator[dict[str, Any]]:
        """What was sent, newest first."""
        with self.lock:
            sent = self.sent[-self.keep :]
        for message in reversed(sent):
            yield {key: message[key] for key in ("bot", "method", "chat", "text", "message_id")}


def blueprint(sandbox: Sandbox) -> Blueprint:
    """The sandbox inside the app, at /sandbox/bot-api (a Bot API base URL)."""
    blp = Blueprint("sandbox", __name__, url_prefix="/sandbox/bot-api")

    @blp.post("/bot<token>/<method>")
    @infra
    def call(token: str, method: str) -> tuple[Response, int]:
        """Answer a Bot API call."""
        params = request.get_json(silent=True) if request.is_json else request.form.to_dict()
        status, body = sandbox.answer(token, method, params or {})
        return jsonify(body), status

    @blp.get("/messages")
    @infra
    def messages():
        """List what the sandbox received, newest first."""
        return jsonify(list(sandbox.messages()))

    return blp


def _multipart_field(raw: bytes, content_type: str, name: str) -> str | None:
    boundary = content_type.split("boundary=", 1)[1].encode()
    for part in raw.split(b"--" + boundary):
        if f'name="{name}"'.encode() in part:
            return part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n-").decode()
    return None


def _params(raw: bytes, content_type: str) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        return json.loads(raw or b"{}")
    if content_type.startswith("multipart/form-data"):
        return {
            "multipart": True,
            "size": len(raw),
            **{
                name: value
                for name in ("chat_id", "caption", "allow_paid_broadcast")
                if (value := _multipart_field(raw, content_type, name)) is not None
            },
        }
    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many bots open their connections at once: a short accept queue would drop some of them after
    # the request was sent, which a client must take for a send whose outcome is unknown.
    request_queue_size = 1024


class SandboxServer:
    """The sandbox on a port of its own (HTTP/1.1, kept-alive connections), on 127.0.0.1 unless told
    another address, answering after `delay(bot)` seconds; it counts connections and each bot's
    requests in flight. GET /messages lists what it received, newest first."""

    def __init__(
        self,
        sandbox: Sandbox,
        delay: Callable[[str], float] = lambda bot: 0.0,
        port: int = 0,
        host: str = "127.0.0.1",
    ):
        self.sandbox = sandbox
        self.delay = delay
        self.connections = 0
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self._server = _Server((host, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> SandboxServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with server.sandbox.lock:
                    server.connections += 1

            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                if self.path == "/messages":
                    self._write(200, list(server.sandbox.messages()))
                else:
                    self._write(404, {"ok": False, "error_code": 404, "description": "Not Found"})

            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                _, bot, method = self.path.split("/", 2)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params = _params(raw, self.headers.get("Content-Type", ""))
                token = bot.removeprefix("bot")
                bot_id = token.split(":", 1)[0]
                with server.sandbox.lock:
                    server.in_flight[bot_id] += 1
                    server.most_in_flight[bot_id] = max(
                        server.most_in_flight[bot_id], server.in_flight[bot_id]
                    )
                try:
                    pause = server.delay(bot_id)
                    if pause:
                        time.sleep(pause)
                    status, body = server.sandbox.answer(token, method, params)
                finally:
                    with server.sandbox.lock:
                        server.in_flight[bot_id] -= 1
                if body is None:
                    self.close_connection = True
                    self.connection.close()
                    return
                self._write(status, body)

            def _write(self, status: int, body: Any) -> None:
                payload = json.dumps(body).encode()
                head = (
                    f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                )
                # One write: headers and body in separate segments meet delayed ACKs (40 ms each).
                self.wfile.write(head.encode() + payload)

        return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve the sandbox alone until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m app.telegram.sandbox",
        description="A local Bot API for development and smoke tests (never Telegram's).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on [%(default)s]")
    parser.add_argument("--port", type=int, default=8081, help="port to listen on [%(default)s]")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server = SandboxServer(Sandbox(), host=args.host, port=args.port).start()
    print(f"Bot API sandbox listening on {server.url}", flush=True)
    stopping.wait()
    server.stop()


if __name__ == "__main__":
    main()
