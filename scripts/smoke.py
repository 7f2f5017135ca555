"""Smoke-test a running deployment: health, a tenant's signup, a bot, and a campaign delivered.

    python3 scripts/smoke.py http://127.0.0.1:5000                    # make run (its Bot API sandbox)
    python3 scripts/smoke.py http://127.0.0.1:8000 --bot-api http://127.0.0.1:8081   # docker compose

The service must send to a Bot API sandbox (app/telegram/sandbox.py), never to Telegram: `--bot-api`
is where this script reads what the sandbox received (GET /messages), by default make run's
`BASE_URL/sandbox/bot-api`. Each run signs a new tenant up, with a bot of its own, so it can be run
again against the same service. Only the standard library is used: it runs with any python3.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from typing import Any

CHATS = ["2001", "2002", "-1002000000001", "@smoke_channel"]
TEXT = "Smoke test: a campaign delivered"

# Straight to the service: a proxy from the environment has no business between them.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SmokeFailure(Exception):
    """A check failed; the message says which and what was seen."""


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Send one request; return the status and the decoded JSON body (None when there is none)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with OPENER.open(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def expect(status: int, body: Any, wanted: int, what: str) -> Any:
    if status != wanted:
        raise SmokeFailure(f"{what}: expected HTTP {wanted}, got {status}: {body}")
    return body


def wait_until(check, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Call `check()` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # not listening yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise SmokeFailure(f"{what} within {timeout:g} s; last seen: {last}")


def run(base_url: str, bot_api: str, timeout: float, log=print) -> None:
    """Every check, in order; raise SmokeFailure at the first that fails."""
    base_url, bot_api = base_url.rstrip("/"), bot_api.rstrip("/")
    api = f"{base_url}/api/v1"

    def healthy() -> bool:
        return call("GET", f"{base_url}/healthz") == (200, {"status": "ok"})

    wait_until(healthy, timeout, "GET /healthz did not answer 200 {status: ok}")
    log("healthz: ok")
    wait_until(
        lambda: call("GET", f"{base_url}/readyz") == (200, {"status": "ready"}),
        timeout,
        "GET /readyz did not answer 200 {status: ready}",
    )
    log("readyz: ready")

    suffix = secrets.token_hex(4)
    signup = expect(
        *call(
            "POST",
            f"{api}/tenants/signup",
            {
                "tenant": {"name": f"Smoke {suffix}"},
                "user": {
                    "email": f"smoke-{suffix}@example.com",
                    "password": f"smoke passphrase {suffix}",
                    "name": "Smoke Test",
                },
                "plan": "starter",
            },
        ),
        201,
        "signup",
    )
    auth = {"Authorization": f"Bearer {signup['accessToken']}"}
    log(f"signup: tenant {signup['tenant']['slug']}")

    bot_id = str(7_000_000_000 + secrets.randbelow(1_000_000_000))
    token = f"{bot_id}:AAS{secrets.token_hex(16)}"
    bot = expect(
        *call("POST", f"{api}/telegram-accounts", {"name": "Smoke bot", "token": token}, auth),
        201,
        "connecting a bot",
    )
    log(f"bot: {bot['id']} (bot id {bot_id})")

    campaign = expect(
        *call(
            "POST",
            f"{api}/campaigns",
            {
                "name": f"Smoke {suffix}",
                "message": {"text": TEXT},
                "targets": CHATS,
                "telegramAccountId": bot["id"],
            },
            auth,
        ),
        201,
        "creating a campaign",
    )
    expect(*call("POST", f"{api}/campaigns/{campaign['id']}/send", None, auth), 202, "sending the campaign")
    log(f"campaign: {campaign['id']} sent to {len(CHATS)} chats")

    def completed() -> bool:
        now = expect(*call("GET", f"{api}/campaigns/{campaign['id']}", None, auth), 200, "campaign")
        if now["status"] not in ("sending", "completed"):
            raise SmokeFailure(f"the campaign is {now['status']!r}")
        return now["status"] == "completed"

    wait_until(completed, timeout, "the campaign was not completed")
    messages = expect(
        *call("GET", f"{api}/messages?campaignId={campaign['id']}", None, auth), 200, "messages"
    )["items"]
    outcomes = sorted((m["chat"], m["status"]) for m in messages)
    if outcomes != sorted((chat, "sent") for chat in CHATS):
        raise SmokeFailure(f"the campaign's messages are {outcomes}")
    log("campaign: completed, every message sent")

    received = expect(*call("GET", f"{bot_api}/messages"), 200, "the Bot API sandbox's messages")
    seen = sorted((m["chat"], m["text"]) for m in received if m["bot"] == bot_id)
    if seen != sorted((chat, TEXT) for chat in CHATS):
        raise SmokeFailure(f"the Bot API sandbox received {seen} from bot {bot_id}")
    log(f"Bot API sandbox: received the {len(CHATS)} messages")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", help="the service, such as http://127.0.0.1:5000")
    parser.add_argument(
        "--bot-api",
        help="the Bot API sandbox the service sends to, as this script reaches it "
        "[default: BASE_URL/sandbox/bot-api, make run's]",
    )
    parser.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for each step [%(default)s]"
    )
    args = parser.parse_args(argv)
    try:
        run(args.base_url, args.bot_api or f"{args.base_url.rstrip('/')}/sandbox/bot-api", args.timeout)
    except (SmokeFailure, OSError) as exc:
        print(f"smoke test FAILED: {exc}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
