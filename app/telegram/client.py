"""A small client of the Telegram Bot API (https://core.telegram.org/bots/api).

Telegram answers `{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description",
"parameters"?}`. The client sorts failures the way the dispatcher must treat them:
- 429 Too Many Requests carries `parameters.retry_after`: RetryAfter (wait that long, then retry);
- 400, 401, 403, 404 (chat not found, bot blocked or kicked, bad token): PermanentError, no retry;
- network errors and 5xx: retried with exponential backoff a bounded number of times, then
  TransientError.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

DEFAULT_BASE_URL = "https://api.telegram.org"


class TelegramError(Exception):
    def __init__(self, description: str, error_code: int | None = None):
        super().__init__(description)
        self.description = description
        self.error_code = error_code


class PermanentError(TelegramError):
    """The request can never succeed as it is (bad chat, blocked bot, bad token, bad request)."""


class TransientError(TelegramError):
    """Telegram or the network failed; the same request may succeed later."""


class RetryAfter(TelegramError):
    """Telegram's flood control: wait `retry_after` seconds before the next request of this bot."""

    def __init__(self, description: str, retry_after: float):
        super().__init__(description, 429)
        self.retry_after = retry_after


class TelegramClient:
    def __init__(
        self,
        token: str,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._url = f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/bot{token}/"
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._session = session or requests.Session()
        self._sleep = sleep

    def call(
        self, method: str, data: dict[str, Any] | None = None, files: dict[str, Any] | None = None
    ) -> Any:
        """Call a Bot API method and return its `result`; retry network errors and 5xx (bounded)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._call_once(method, data, files)
            except TransientError:
                if attempt > self.max_retries:
                    raise
                self._sleep(self.backoff * 2 ** (attempt - 1))

    def _call_once(self, method: str, data: dict[str, Any] | None, files: dict[str, Any] | None) -> Any:
        try:
            if files:
                response = self._session.post(
                    self._url + method, data=data, files=files, timeout=self.timeout
                )
            else:
                response = self._session.post(self._url + method, json=data or {}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransientError(f"network error: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "ok" not in body:
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientError(
                    f"HTTP {response.status_code} without a Bot API answer", response.status_code
                )
            raise PermanentError(
                f"HTTP {response.status_code} without a Bot API answer", response.status_code
            )
        if body["ok"]:
            return body.get("result")
        code = body.get("error_code") or response.status_code
        description = str(body.get("description") or f"error {code}")
        if code == 429:
            retry_after = (body.get("parameters") or {}).get("retry_after") or 1
            raise RetryAfter(description, float(retry_after))
        if code >= 500:
            raise TransientError(description, code)
        raise PermanentError(description, code)

    def get_me(self) -> dict[str, Any]:
        return self.call("getMe")

    def send_message(self, chat_id: str, text: str, parse_mode: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if parse_mode:
            data["parse_mode"] = parse_mode
        return self.call("sendMessage", data)

    def send_photo(
        self, chat_id: str, photo: bytes, filename: str, caption: str | None = None
    ) -> dict[str, Any]:
        data = {"chat_id": chat_id, **({"caption": caption} if caption else {})}
        return self.call("sendPhoto", data, files={"photo": (filename, photo)})

    def send_document(
        self, chat_id: str, document: bytes, filename: str, caption: str | None = None
    ) -> dict[str, Any]:
        data = {"chat_id": chat_id, **({"caption": caption} if caption else {})}
        return self.call("sendDocument", data, files={"document": (filename, document)})
