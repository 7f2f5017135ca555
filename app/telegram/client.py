"""A small client of the Telegram Bot API (https://core.telegram.org/bots/api).

Telegram answers `{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description",
"parameters"?}`. The client sorts failures the way the dispatcher must treat them:
- 429 Too Many Requests carries `parameters.retry_after`: RetryAfter (wait that long, then retry);
- 400, 401, 403, 404 (chat not found, bot blocked or kicked, bad token) and redirects:
  PermanentError, no retry;
- a connection that could not be made, and 5xx answers: retried (urllib3's Retry: the first retry at
  once, then with a doubling, jittered backoff) a bounded number of times, then TransientError;
- a request that was sent but got no answer (the connection broke, the read timed out):
  OutcomeUnknown, never retried, because Telegram may have delivered it and has no way to send a
  message only once.

Connections are kept alive in a pool per client (urllib3), so a client kept for a bot reuses them.
"""

from __future__ import annotations

from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError, SSLError
from urllib3.util import Retry, Timeout

DEFAULT_BASE_URL = "https://api.telegram.org"
SERVER_ERRORS = frozenset(range(500, 600))


class TelegramError(Exception):
    def __init__(self, description: str, error_code: int | None = None):
        super().__init__(description)
        self.description = description
        self.error_code = error_code


class PermanentError(TelegramError):
    """The request can never succeed as it is (bad chat, blocked bot, bad token, bad request)."""


class TransientError(TelegramError):
    """Telegram or the network failed before the request was handled; the same request may succeed
    later."""


class OutcomeUnknown(TelegramError):
    """The request left, but no answer came back: Telegram may or may not have carried it out."""


class RetryAfter(TelegramError):
    """Telegram's flood control: wait `retry_after` seconds before the next request of this bot."""

    def __init__(self, description: str, retry_after: float):
        super().__init__(description, 429)
        self.retry_after = retry_after


def _network_failure(exc: HTTPError) -> TelegramError:
    """Tell a request that never left (safe to send again) from one whose outcome is unknown."""
    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    if isinstance(reason, ConnectTimeoutError | SSLError):  # NewConnectionError is a ConnectTimeoutError
        return TransientError(f"network error: could not connect ({type(reason).__name__})")
    return OutcomeUnknown(f"network error: no answer ({type(reason).__name__})")


class TelegramClient:
    def __init__(
        self,
        token: str,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        connections: int = 1,
    ):
        self._url = f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/bot{token}/"
        self.retry = Retry(
            total=max_retries,
            connect=max_retries,
            read=0,
            status=max_retries,
            other=max_retries,
            redirect=0,
            allowed_methods=frozenset({"POST"}),
            status_forcelist=SERVER_ERRORS,
            backoff_factor=backoff / 2,
            backoff_jitter=backoff / 2,
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=False,
        )
        self._http = urllib3.PoolManager(
            num_pools=2, maxsize=connections, timeout=Timeout(connect=timeout, read=timeout)
        )

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._http.clear()

    def call(
        self, method: str, data: dict[str, Any] | None = None, files: dict[str, Any] | None = None
    ) -> Any:
        """Call a Bot API method and return its `result`; raise a TelegramError subclass otherwise."""
        try:
            if files:
                response = self._http.request(
                    "POST",
                    self._url + method,
                    fields={**(data or {}), **files},
                    retries=self.retry,
                    redirect=False,
                )
            else:
                response = self._http.request(
                    "POST", self._url + method, json=data or {}, retries=self.retry, redirect=False
                )
        except HTTPError as exc:
            raise _network_failure(exc) from exc
        return self._result(response)

    @staticmethod
    def _result(response: urllib3.BaseHTTPResponse) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "ok" not in body:
            described = f"HTTP {response.status} without a Bot API answer"
            if response.status in SERVER_ERRORS or response.status == 429:
                raise TransientError(described, response.status)
            raise PermanentError(described, response.status)
        if body["ok"]:
            return body.get("result")
        code = body.get("error_code") or response.status
        description = str(body.get("description") or f"error {code}")
        if code == 429:
            retry_after = (body.get("parameters") or {}).get("retry_after") or 1
            raise RetryAfter(description, float(retry_after))
        if code in SERVER_ERRORS:
            raise TransientError(description, code)
        raise PermanentError(description, code)

    def get_me(self) -> dict[str, Any]:
        return self.call("getMe")

    def send_message(
        self, chat_id: str, text: str, parse_mode: str | None = None, *, paid_broadcast: bool = False
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if parse_mode:
            data["parse_mode"] = parse_mode
        if paid_broadcast:
            data["allow_paid_broadcast"] = True
        return self.call("sendMessage", data)

    def send_photo(
        self,
        chat_id: str,
        photo: bytes | str,
        filename: str,
        caption: str | None = None,
        parse_mode: str | None = None,
        *,
        paid_broadcast: bool = False,
    ) -> dict[str, Any]:
        """Send a picture: its bytes, or the file id Telegram gave it when this bot sent it before."""
        return self._send_file(
            "sendPhoto", "photo", chat_id, photo, filename, caption, parse_mode, paid_broadcast
        )

    def send_document(
        self,
        chat_id: str,
        document: bytes | str,
        filename: str,
        caption: str | None = None,
        parse_mode: str | None = None,
        *,
        paid_broadcast: bool = False,
    ) -> dict[str, Any]:
        """Send a file: its bytes, or the file id Telegram gave it when this bot sent it before."""
        return self._send_file(
            "sendDocument", "document", chat_id, document, filename, caption, parse_mode, paid_broadcast
        )

    def _send_file(
        self,
        method: str,
        field: str,
        chat_id: str,
        content: bytes | str,
        filename: str,
        caption: str | None,
        parse_mode: str | None,
        paid_broadcast: bool,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"chat_id": chat_id}
        if caption:
            data["caption"] = caption
            if parse_mode:
                data["parse_mode"] = parse_mode
        if paid_broadcast:
            data["allow_paid_broadcast"] = True
        if isinstance(content, str):
            return self.call(method, {**data, field: content})
        fields = {
            key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in data.items()
        }
        return self.call(method, fields, files={field: (filename, content)})
