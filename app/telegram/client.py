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

A bot's own Bot API server is a tenant's choice: every request to it follows the egress policy
(app.egress: checked, connected to the checked address, refused as ServerRefused), and what it answers
is never repeated beyond its HTTP status (a fixed description). Telegram's own descriptions, from the
operator's TELEGRAM_API_BASE, are kept, bounded in length and characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError, SSLError
from urllib3.util import Retry, Timeout

from app import egress

SERVER_ERRORS = frozenset(range(500, 600))
DESCRIPTION_MAX = 200  # characters of a description of Telegram's that are kept
RETRY_AFTER_MAX = 86_400  # seconds: a longer wait asked for is cut to this
MESSAGE_ID_RANGE = range(-(2**63), 2**63)  # what MongoDB stores as a 64-bit integer
USERNAME_RE = re.compile(r"[A-Za-z0-9_]{5,32}", re.ASCII)  # a bot's username, as Telegram allows them


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


class ServerRefused(PermanentError):
    """The egress policy refuses the bot's Bot API server (its address, or its URL): `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(f"the bot's Bot API server is refused: {reason}")
        self.reason = reason


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


def _bounded(description: Any) -> str:
    """Telegram's description as shown: printable characters only, at most DESCRIPTION_MAX of them."""
    text = "".join(c if c.isprintable() else " " for c in str(description))
    return " ".join(text.split())[:DESCRIPTION_MAX]


def _number(value: Any) -> float | None:
    """A JSON number as a float (None for anything else, booleans and infinities included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class TelegramClient:
    """A bot's client of one Bot API server: the operator's (policy egress.OPERATOR) or the bot's own
    (a tenant's: egress.Policy.for_tenants)."""

    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        policy: egress.Policy,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        connections: int = 1,
    ):
        self._url = f"{base_url.rstrip('/')}/bot{token}/"
        self._path = urlsplit(self._url).path
        self.policy = policy
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
        pool, headers = self._connection()
        try:
            if files:
                response = pool.request(
                    "POST",
                    self._path + method,
                    fields={**(data or {}), **files},
                    headers=headers,
                    retries=self.retry,
                    redirect=False,
                )
            else:
                response = pool.request(
                    "POST",
                    self._path + method,
                    json=data or {},
                    headers=headers,
                    retries=self.retry,
                    redirect=False,
                )
        except HTTPError as exc:
            raise _network_failure(exc) from exc
        return self._result(response)

    def _connection(self) -> tuple[urllib3.HTTPConnectionPool, dict[str, str]]:
        """The pool to send a request to, and the headers it needs: the operator's server as configured;
        a bot's own through the egress policy, checked again for every request (DNS answers change)."""
        if self.policy.operator:
            return self._http.connection_from_url(self._url), {}
        try:
            target = self.policy.resolve(self._url)
        except egress.Unresolved:
            raise TransientError("network error: could not connect (name not resolved)") from None
        except egress.Refused as exc:
            raise ServerRefused(str(exc)) from None
        return target.pool(self._http), {"Host": target.host_header}

    def _result(self, response: urllib3.BaseHTTPResponse) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "ok" not in body:
            described = f"HTTP {response.status} without a Bot API answer"
            if response.status in SERVER_ERRORS or response.status == 429:
                raise TransientError(described, response.status)
            raise PermanentError(described, response.status)
        if body["ok"] is True:
            return body.get("result")
        code = body.get("error_code")
        if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code < 600:
            code = response.status
        if self.policy.operator:
            description = _bounded(body.get("description") or f"error {code}")
        else:
            description = f"the bot's Bot API server answered error {code}"
        if code == 429:
            retry_after = _number((body.get("parameters") or {}).get("retry_after")) or 1.0
            raise RetryAfter(description, min(max(retry_after, 1.0), RETRY_AFTER_MAX))
        if code in SERVER_ERRORS:
            raise TransientError(description, code)
        raise PermanentError(description, code)

    def get_me(self) -> dict[str, Any]:
        """Return the bot the token is of; refuse an answer that is not a bot's (its username is kept)."""
        bot = self.call("getMe")
        username = bot.get("username") if isinstance(bot, dict) else None
        if not (isinstance(username, str) and USERNAME_RE.fullmatch(username) and bot.get("is_bot") is True):
            raise PermanentError("the answer to getMe is not a bot")
        return bot

    @staticmethod
    def _sent(result: Any) -> dict[str, Any]:
        """Return the message a send returned; an answer naming none may or may not have been carried out."""
        message_id = result.get("message_id") if isinstance(result, dict) else None
        if type(message_id) is not int or message_id not in MESSAGE_ID_RANGE:
            raise OutcomeUnknown("the answer names no message")
        return result

    def send_message(
        self, chat_id: str, text: str, parse_mode: str | None = None, *, paid_broadcast: bool = False
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if parse_mode:
            data["parse_mode"] = parse_mode
        if paid_broadcast:
            data["allow_paid_broadcast"] = True
        return self._sent(self.call("sendMessage", data))

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
            return self._sent(self.call(method, {**data, field: content}))
        fields = {
            key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in data.items()
        }
        return self._sent(self.call(method, fields, files={field: (filename, content)}))


def bot_client(
    token: str, api_base_url: str | None, config: Mapping[str, Any], *, max_retries: int, connections: int = 1
) -> TelegramClient:
    """The client of a bot: of its own Bot API server when it has one (a tenant's choice, under the egress
    policy), else of the operator's TELEGRAM_API_BASE."""
    if api_base_url:
        base_url, policy = api_base_url, egress.Policy.for_tenants(config)
    else:
        base_url, policy = config["TELEGRAM_API_BASE"], egress.OPERATOR
    return TelegramClient(
        token,
        base_url,
        policy=policy,
        timeout=config["TELEGRAM_TIMEOUT"],
        max_retries=max_retries,
        backoff=config["TELEGRAM_RETRY_BACKOFF_MS"] / 1000,
        connections=connections,
    )
