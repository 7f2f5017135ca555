"""Delivering tenant events to webhooks (app.webhooks.delivery): signed POSTs to a local receiver,
retries with backoff, disabling a failing webhook, SSRF refusals and no redirects."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any

import pytest
import time_machine

from app import egress
from app.clock import utcnow
from app.tenancy.cache import tenant_cache
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.webhooks.events import emit
from app.webhooks.models import Webhook, WebhookDelivery

from .support import create_bot, sent_campaign

API = "/api/v1"
WEBHOOKS = f"{API}/webhooks"
ALL_EVENTS = [
    "campaign.completed",
    "campaign.failed",
    "message.failed",
    "usage.threshold",
    "tenant.suspended",
]
_chats = count(7_000_000)


# -- a local receiver -------------------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers as told, per path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[str, list[int]] = {}  # path -> statuses to answer, in order; then 200
        self.secrets: dict[str, str] = {}  # path -> the webhook's secret, to check X-Signature
        self.delays: dict[str, float] = {}  # path -> seconds before answering
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, *statuses: int) -> None:
        with self.lock:
            self.answers.setdefault(path, []).extend(statuses)

    def to(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def _next_status(self, path: str) -> int:
        with self.lock:
            queued = self.answers.get(path)
            return queued.pop(0) if queued else 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _record(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                secret = receiver.secrets.get(self.path)
                record = {
                    "method": method,
                    "path": self.path,
                    "headers": headers,
                    "body": body,
                    "signature_ok": bool(secret) and signature_ok(secret, headers, body),
                }
                with receiver.lock:
                    receiver.requests.append(record)
                    receiver.in_flight[self.path] += 1
                    receiver.most_in_flight[self.path] = max(
                        receiver.most_in_flight[self.path], receiver.in_flight[self.path]
                    )
                time.sleep(receiver.delays.get(self.path, 0.0))
                with receiver.lock:
                    receiver.in_flight[self.path] -= 1
                status = receiver._next_status(self.path)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.url("/elsewhere"))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                self._record("POST")

            def do_GET(self) -> None:  # noqa: N802
                self._record("GET")

        return Handler


def signature_ok(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """Check X-Signature as a receiver would: t=<ts>,v1=<hex HMAC-SHA256 of "<ts>." + body>."""
    try:
        parts = dict(item.split("=", 1) for item in headers["x-signature"].split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@pytest.fixture
def connections(monkeypatch) -> list:
    """Every TCP connection the test opens from here on (and none leaves this machine)."""
    opened = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        opened.append(address)
        if isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1"):
            return real_connect(sock, address)
        raise ConnectionRefusedError(111, "test: no network")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return opened


# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def settings() -> dict:
    return {"EGRESS_ALLOW_PRIVATE_TARGETS": True}


def subscribe(client, headers, receiver: Receiver | None, path="/hook", events=ALL_EVENTS, url=None) -> dict:
    response = client.post(
        WEBHOOKS, json={"url": url or receiver.url(path), "events": list(events)}, headers=headers
    )
    assert response.status_code == 201, response.json
    if receiver is not None and url is None:
        receiver.secrets[path] = response.json["secret"]
    return response.json


def deliveries_via_api(client, headers, webhook_id) -> list[dict]:
    response = client.get(
        f"{WEBHOOKS}/{webhook_id}/deliveries", query_string={"perPage": 100}, headers=headers
    )
    assert response.status_code == 200, response.json
    return response.json["items"]


def one_delivery(client, headers, webhook_id) -> dict:
    [only] = deliveries_via_api(client, headers, webhook_id)
    return only


def webhook_via_api(client, headers, webhook_id) -> dict:
    response = client.get(f"{WEBHOOKS}/{webhook_id}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def queue(tenant, event="campaign.completed", **data) -> int:
    with tenant_scope(tenant):
        return emit(event, data or {"campaignId": "x"})


@pytest.fixture
def deliver(dispatcher):
    """Run the dispatcher until nothing is due; later=timedelta(...) runs it that much later."""

    def run(later: timedelta | None = None) -> None:
        if later is None:
            dispatcher.run_until_idle()
            return
        with time_machine.travel(utcnow() + later, tick=True):
            dispatcher.run_until_idle()

    return run


DAY = timedelta(days=1)


def assert_signed_event(request: dict, event: str) -> dict:
    """The request is a signed JSON POST of one event; return the event."""
    assert request["method"] == "POST"
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["x-webhook-event"] == event
    assert request["headers"]["x-webhook-delivery"]
    assert request["signature_ok"], request["headers"].get("x-signature")
    payload = json.loads(request["body"])
    assert set(payload) == {"id", "event", "createdAt", "data"}
    assert payload["event"] == event
    return payload


# -- delivery of tenant events ----------------------------------------------------------------------


class TestDelivery:
    def test_tenant_events_are_posted_signed(
        self, app, client, tenant, auth_headers, receiver, fake_telegram, deliver
    ):
        hook = subscribe(client, auth_headers, receiver)
        # usage.threshold: 8 of 10 messages reserved crosses the 80% alert.
        Tenant.objects(id=tenant.id).update(set__limits={"messagesPerMonth": 10})
        tenant_cache().clear()
        fake_telegram.blocked_chats.add("-100403")
        targets = ["-100403", *(str(next(_chats)) for _ in range(7))]
        campaign_id = sent_campaign(client, auth_headers, create_bot(client, auth_headers), targets)
        deliver()  # the campaign, then its events

        got = {r["headers"]["x-webhook-event"]: r for r in receiver.to("/hook")}
        assert sorted(got) == ["campaign.completed", "message.failed", "usage.threshold"]
        threshold = assert_signed_event(got["usage.threshold"], "usage.threshold")
        assert threshold["data"]["resource"] == "messagesPerMonth"
        assert threshold["data"]["threshold"] == 80
        completed = assert_signed_event(got["campaign.completed"], "campaign.completed")
        assert completed["data"] == {"campaignId": campaign_id, "sent": 7, "failed": 1}
        failed = assert_signed_event(got["message.failed"], "message.failed")
        assert failed["data"]["chat"] == "-100403"
        assert failed["data"]["error"] == "Forbidden: bot was blocked by the user"

        listed = deliveries_via_api(client, auth_headers, hook["id"])
        assert len(listed) == 3
        by_id = {d["id"]: d for d in listed}
        for request in got.values():
            shown = by_id[request["headers"]["x-webhook-delivery"]]
            assert shown["event"] == request["headers"]["x-webhook-event"]
            assert shown["status"] == "delivered"
            assert shown["attempts"] == 1
            assert shown["deliveredAt"]
            assert len(shown["attemptLog"]) == 1
            assert shown["attemptLog"][0]["status"] == 200
            assert shown["attemptLog"][0].get("error") is None
        # Nothing is delivered twice.
        deliver(later=DAY)
        assert len(receiver.to("/hook")) == 3

    def test_the_body_is_exactly_what_was_signed(self, app, client, tenant, auth_headers, receiver, deliver):
        hook = subscribe(client, auth_headers, receiver)
        queue(tenant, "campaign.completed", campaignId="abc", sent=1, failed=0)
        deliver()
        [request] = receiver.to("/hook")
        payload = assert_signed_event(request, "campaign.completed")
        assert payload["data"] == {"campaignId": "abc", "sent": 1, "failed": 0}
        # Under another secret, or with a changed body, the signature does not hold.
        assert not signature_ok("whsec_other", request["headers"], request["body"])
        assert not signature_ok(hook["secret"], request["headers"], request["body"] + b" ")
        assert (
            request["headers"]["x-webhook-delivery"] == one_delivery(client, auth_headers, hook["id"])["id"]
        )

    def test_a_rotated_secret_signs_the_next_deliveries(
        self, app, client, tenant, auth_headers, receiver, deliver
    ):
        hook = subscribe(client, auth_headers, receiver)
        old = hook["secret"]
        rotated = client.patch(f"{WEBHOOKS}/{hook['id']}", json={"rotateSecret": True}, headers=auth_headers)
        assert rotated.status_code == 200
        receiver.secrets["/hook"] = rotated.json["secret"]
        queue(tenant)
        deliver()
        [request] = receiver.to("/hook")
        assert request["signature_ok"]
        assert not signature_ok(old, request["headers"], request["body"])

    def test_tenant_suspended_is_delivered(
        self, app, client, tenant, auth_headers, receiver, superadmin_headers, deliver
    ):
        hook = subscribe(client, auth_headers, receiver, events=["tenant.suspended"])
        response = client.post(
            f"{API}/tenants/{tenant.id}/suspend",
            json={"reason": "unpaid invoice"},
            headers=superadmin_headers,
        )
        assert response.status_code == 200, response.json

        deliver()

        [request] = receiver.to("/hook")
        payload = assert_signed_event(request, "tenant.suspended")
        assert payload["data"] == {"tenantId": str(tenant.id), "reason": "unpaid invoice"}
        as_superadmin = {**superadmin_headers, "X-Tenant-Id": str(tenant.id)}
        shown = one_delivery(client, as_superadmin, hook["id"])
        assert shown["status"] == "delivered" and shown["attemptLog"][0]["status"] == 200

    def test_only_subscribed_events_are_sent(self, app, client, tenant, auth_headers, receiver, deliver):
        subscribe(client, auth_headers, receiver, events=["campaign.failed"])
        assert queue(tenant, "campaign.completed") == 0
        assert queue(tenant, "campaign.failed") == 1
        deliver()
        assert [r["headers"]["x-webhook-event"] for r in receiver.to("/hook")] == ["campaign.failed"]


class TestConcurrency:
    def test_a_slow_endpoint_holds_up_no_other(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, receiver, dispatcher
    ):
        subscribe(client, auth_headers, receiver, path="/slow")
        subscribe(client, other_headers, receiver, path="/fast")
        receiver.delays["/slow"] = 1.0
        for _ in range(8):
            queue(tenant)
            queue(other_tenant)
        thread = threading.Thread(target=dispatcher.run, daemon=True)
        dispatcher.interval = 0.02
        thread.start()
        deadline = time.monotonic() + 20
        while len(receiver.to("/fast")) < 8:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # All eight to the fast endpoint went out while the slow one was still on its first round.
        assert len(receiver.to("/slow")) <= app.config["WEBHOOK_CONCURRENCY"]
        while len(receiver.to("/slow")) < 8:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        dispatcher.stop()
        # One endpoint gets several deliveries at once, never more than WEBHOOK_CONCURRENCY.
        assert 2 <= receiver.most_in_flight["/slow"] <= app.config["WEBHOOK_CONCURRENCY"]


# -- retries, giving up, disabling ------------------------------------------------------------------


class TestRetries:
    def test_a_failing_receiver_gets_retries_with_backoff_until_it_recovers(
        self, app, client, tenant, auth_headers, receiver, deliver
    ):
        hook = subscribe(client, auth_headers, receiver)
        receiver.answer("/hook", 500, 500)
        queue(tenant)

        deliver()
        first = one_delivery(client, auth_headers, hook["id"])
        assert first["status"] == "pending"
        assert first["attempts"] == 1
        assert first["lastError"] == "HTTP 500"
        assert [(a["status"], a["error"]) for a in first["attemptLog"]] == [(500, "HTTP 500")]
        first_delay = _delay(first)
        assert first_delay > timedelta(0)

        # Not due yet: nothing more is sent.
        deliver()
        assert len(receiver.to("/hook")) == 1

        deliver(later=DAY)
        second = one_delivery(client, auth_headers, hook["id"])
        assert (second["status"], second["attempts"]) == ("pending", 2)
        assert len(second["attemptLog"]) == 2
        assert _delay(second) > first_delay  # exponential backoff

        deliver(later=2 * DAY)
        done = one_delivery(client, auth_headers, hook["id"])
        assert done["status"] == "delivered"
        assert done["attempts"] == 3
        assert [a["status"] for a in done["attemptLog"]] == [500, 500, 200]
        assert done.get("lastError") is None
        assert done["deliveredAt"]
        requests = receiver.to("/hook")
        assert len(requests) == 3
        # Every attempt is the same delivery of the same event, signed each time.
        assert len({r["headers"]["x-webhook-delivery"] for r in requests}) == 1
        assert len({json.loads(r["body"])["id"] for r in requests}) == 1
        assert all(r["signature_ok"] for r in requests)

    def test_an_unreachable_receiver_is_recorded_as_a_network_error(
        self, app, client, tenant, auth_headers, deliver, unused_port
    ):
        hook = subscribe(client, auth_headers, None, url=f"http://127.0.0.1:{unused_port}/hook")
        queue(tenant)
        deliver()
        shown = one_delivery(client, auth_headers, hook["id"])
        assert shown["status"] == "pending"
        assert shown["attemptLog"][0]["error"].startswith("network error")
        assert shown["attemptLog"][0].get("status") is None


def _delay(shown: dict) -> timedelta:
    from datetime import datetime

    return datetime.fromisoformat(shown["nextAttemptAt"]) - datetime.fromisoformat(
        shown["attemptLog"][-1]["at"]
    )


class TestGivingUp:
    @pytest.fixture
    def settings(self):
        return {"EGRESS_ALLOW_PRIVATE_TARGETS": True, "WEBHOOK_MAX_ATTEMPTS": 3, "WEBHOOK_DISABLE_AFTER": 2}

    def fail_one(self, tenant, receiver, deliver, path="/hook") -> None:
        receiver.answer(path, 500, 500, 500)
        queue(tenant)
        for day in range(1, 6):
            deliver(later=day * DAY)

    def test_a_delivery_fails_after_the_max_attempts(
        self, app, client, tenant, auth_headers, receiver, deliver
    ):
        hook = subscribe(client, auth_headers, receiver)
        self.fail_one(tenant, receiver, deliver)
        shown = one_delivery(client, auth_headers, hook["id"])
        assert shown["status"] == "failed"
        assert shown["attempts"] == 3
        assert [a["status"] for a in shown["attemptLog"]] == [500, 500, 500]
        assert shown["lastError"] == "HTTP 500"
        assert len(receiver.to("/hook")) == 3
        webhook = webhook_via_api(client, auth_headers, hook["id"])
        assert webhook["active"] is True
        assert webhook["consecutiveFailures"] == 1

    def test_consecutive_failed_deliveries_disable_the_webhook(
        self, app, client, tenant, auth_headers, receiver, deliver
    ):
        hook = subscribe(client, auth_headers, receiver)
        self.fail_one(tenant, receiver, deliver)
        self.fail_one(tenant, receiver, deliver)

        webhook = webhook_via_api(client, auth_headers, hook["id"])
        assert webhook["active"] is False
        assert webhook["consecutiveFailures"] == 2
        assert webhook["disabledReason"]
        audit = client.get(
            f"{API}/audit-logs", query_string={"action": "webhook.disabled"}, headers=auth_headers
        ).json["items"]
        assert len(audit) == 1
        assert audit[0]["targetId"] == hook["id"]
        assert audit[0]["summary"]["reason"] == webhook["disabledReason"]
        assert audit[0]["actor"]["kind"] == "system"

        # A disabled webhook gets no more events.
        seen = len(receiver.to("/hook"))
        assert queue(tenant) == 0
        deliver(later=10 * DAY)
        assert len(receiver.to("/hook")) == seen == 6

    def test_a_pending_delivery_of_a_webhook_disabled_meanwhile_is_not_sent(
        self, app, client, tenant, auth_headers, receiver, deliver
    ):
        hook = subscribe(client, auth_headers, receiver)
        queue(tenant)
        response = client.patch(f"{WEBHOOKS}/{hook['id']}", json={"active": False}, headers=auth_headers)
        assert response.status_code == 200
        deliver()
        assert receiver.to("/hook") == []
        assert one_delivery(client, auth_headers, hook["id"])["status"] == "failed"

    def test_a_success_resets_the_failure_count(self, app, client, tenant, auth_headers, receiver, deliver):
        hook = subscribe(client, auth_headers, receiver)
        self.fail_one(tenant, receiver, deliver)
        assert webhook_via_api(client, auth_headers, hook["id"])["consecutiveFailures"] == 1
        queue(tenant)
        deliver()
        webhook = webhook_via_api(client, auth_headers, hook["id"])
        assert webhook["consecutiveFailures"] == 0
        assert webhook["active"] is True
        # The count starts over: one more failed delivery does not disable the webhook.
        self.fail_one(tenant, receiver, deliver)
        webhook = webhook_via_api(client, auth_headers, hook["id"])
        assert webhook["active"] is True and webhook["consecutiveFailures"] == 1


# -- redirects --------------------------------------------------------------------------------------


class TestRedirects:
    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_redirects_are_not_followed(self, app, client, tenant, auth_headers, receiver, status, deliver):
        hook = subscribe(client, auth_headers, receiver)
        receiver.answer("/hook", status)
        queue(tenant)
        deliver()
        assert [r["path"] for r in receiver.requests] == ["/hook"]
        assert receiver.to("/elsewhere") == []
        shown = one_delivery(client, auth_headers, hook["id"])
        assert shown["status"] != "delivered"
        assert shown["attemptLog"][0]["status"] == status
        assert shown["attemptLog"][0]["error"] == f"HTTP {status}"


# -- SSRF -------------------------------------------------------------------------------------------


class TestPrivateTargets:
    """The egress policy at delivery time (tests/test_egress.py has its tables): a URL that passed when
    it was set is checked again at every attempt."""

    @pytest.fixture
    def settings(self):
        return {"EGRESS_ALLOW_PRIVATE_TARGETS": False}

    @staticmethod
    def subscribed_while_allowed(app, client, headers, url: str) -> dict:
        """A webhook whose URL was set while private targets were allowed (as a setting changed since)."""
        app.config["EGRESS_ALLOW_PRIVATE_TARGETS"] = True
        try:
            return subscribe(client, headers, None, url=url)
        finally:
            app.config["EGRESS_ALLOW_PRIVATE_TARGETS"] = False

    @pytest.mark.parametrize(
        "make_url",
        [
            lambda r: r.url("/hook"),
            lambda r: f"http://localhost:{r.port}/hook",
            lambda r: f"http://[::1]:{r.port}/hook",
            lambda r: "http://10.1.2.3/hook",
            lambda r: "http://192.168.0.10:8080/hook",
            lambda r: "http://169.254.169.254/latest/meta-data/",
            lambda r: f"http://0.0.0.0:{r.port}/hook",
        ],
        ids=["127.0.0.1", "localhost", "ipv6-loopback", "10.x", "192.168.x", "metadata", "0.0.0.0"],
    )
    def test_a_non_public_address_is_refused_without_a_request(
        self, app, client, tenant, auth_headers, receiver, make_url, deliver, connections
    ):
        hook = self.subscribed_while_allowed(app, client, auth_headers, make_url(receiver))
        queue(tenant)

        deliver()

        assert connections == []
        assert receiver.requests == []
        shown = one_delivery(client, auth_headers, hook["id"])
        assert shown["status"] != "delivered"
        [attempt] = shown["attemptLog"]
        assert attempt["error"] == f"refused: {egress.NOT_PUBLIC}"
        assert attempt.get("status") is None
        assert shown["lastError"] == attempt["error"]

    def test_the_check_follows_dns(
        self, app, client, tenant, auth_headers, receiver, monkeypatch, deliver, connections
    ):
        """A name that resolved to a public address when it was set, and to loopback now, is refused
        (checked after resolution, at every attempt); the refusal does not say where it resolved."""
        asked = []
        answers = {"address": "93.184.216.34"}
        real_getaddrinfo = socket.getaddrinfo

        def resolve(host, port, *args, **kwargs):
            if host != "hooks.partner.example.com":
                return real_getaddrinfo(host, port, *args, **kwargs)
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answers["address"], port))]

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        hook = subscribe(
            client, auth_headers, None, url=f"http://hooks.partner.example.com:{receiver.port}/in"
        )
        answers["address"] = "127.0.0.1"
        queue(tenant)

        deliver()

        assert asked == ["hooks.partner.example.com"] * 2  # when set, and at the attempt
        assert connections == []
        assert receiver.requests == []
        attempt = one_delivery(client, auth_headers, hook["id"])["attemptLog"][0]
        assert attempt["error"] == f"refused: {egress.NOT_PUBLIC}"
        assert "127.0.0.1" not in attempt["error"]

    def test_the_connection_goes_to_the_address_that_was_checked(
        self, app, client, tenant, auth_headers, receiver, monkeypatch, deliver
    ):
        """DNS rebinding: a name that answers a public address to the check and loopback a moment
        later must not reach loopback. The address checked is the address connected to."""
        real_getaddrinfo = socket.getaddrinfo
        answers = {"public": 2}  # the check when the URL is set, and the one of the attempt

        def rebinding(host, port, *args, **kwargs):
            if host != "rebind.partner.example.com":
                return real_getaddrinfo(host, port, *args, **kwargs)
            if answers["public"]:
                answers["public"] -= 1
                address = "93.184.216.34"
            else:
                address = "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

        refused_connects = []
        real_connect = socket.socket.connect

        def only_loopback(sock, address):
            # Never leave this machine: a connection to any other address is refused here.
            if isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1"):
                return real_connect(sock, address)
            refused_connects.append(address[:2])
            raise ConnectionRefusedError(111, "test: no network")

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        monkeypatch.setattr(socket.socket, "connect", only_loopback)
        hook = subscribe(
            client, auth_headers, None, url=f"http://rebind.partner.example.com:{receiver.port}/hook"
        )
        queue(tenant)

        deliver()

        assert receiver.requests == []
        assert refused_connects == [("93.184.216.34", receiver.port)]
        shown = one_delivery(client, auth_headers, hook["id"])
        assert shown["status"] != "delivered"
        assert shown["attemptLog"][0]["error"] == "network error: ConnectionError"


# -- tenants ----------------------------------------------------------------------------------------


class TestTenants:
    def test_a_webhook_of_another_tenant_never_receives_this_tenants_events(
        self, app, client, tenant, other_tenant, auth_headers, other_headers, receiver, deliver
    ):
        subscribe(client, auth_headers, receiver, path="/acme")
        other = subscribe(client, other_headers, receiver, path="/globex")
        for event in ("campaign.completed", "message.failed", "usage.threshold"):
            queue(tenant, event)
        queue(other_tenant, "campaign.failed")

        deliver()

        assert sorted(r["headers"]["x-webhook-event"] for r in receiver.to("/acme")) == [
            "campaign.completed",
            "message.failed",
            "usage.threshold",
        ]
        assert [r["headers"]["x-webhook-event"] for r in receiver.to("/globex")] == ["campaign.failed"]
        assert all(r["signature_ok"] for r in receiver.requests)
        with tenant_scope(other_tenant):
            assert WebhookDelivery.objects.count() == 1
            assert Webhook.objects.get(id=other["id"]).consecutive_failures == 0
        # Each tenant's deliveries are its own: another tenant's webhook is a 404.
        response = client.get(f"{WEBHOOKS}/{other['id']}/deliveries", headers=auth_headers)
        assert response.status_code == 404
