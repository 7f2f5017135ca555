"""The egress policy (app.egress) and every request the service makes for a tenant: a bot's own Bot API
server (when it is set, when it is changed, and at every send), webhooks, and the single sign-on
provider (its issuer when it is saved and at every start, and the endpoints its discovery document
names). Refused: loopback, private, link-local and other reserved addresses in every spelling, after
DNS resolution, at the very address connected to; no redirect followed; and what an endpoint answered
is never shown beyond its HTTP status.

The fakes listen on 127.0.0.1, so the tests here that need them allow private targets; the others run
as production does."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
import urllib3

from app import egress
from app.audit.models import AuditLog
from app.egress import CREDENTIALS, NOT_PUBLIC, SPELLING, Policy, Refused, Target, Unresolved
from app.messages.models import Message
from app.telegram.client import PermanentError, ServerRefused, TelegramClient, TransientError
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.cache import tenant_cache
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.webhooks.events import emit
from app.webhooks.models import Webhook

from .loopback import LoopbackServer
from .support import (
    API,
    bot_token,
    configure_sso,
    connect_bot,
    sent_campaign,
    sso_body,
    sso_callback_url,
    sso_start,
    stored_accounts,
)

ACCOUNTS = f"{API}/telegram-accounts"
WEBHOOKS = f"{API}/webhooks"
PUBLIC = "93.184.216.34"
SECRET = "internal-secret-4711"  # what an internal endpoint answers: never to be shown to a tenant

# Loopback in every spelling a parser might read: {port} is where a fake listens.
LOOPBACK = [
    "http://127.0.0.1:{port}",
    "http://127.255.255.254:{port}",
    "http://localhost:{port}",
    "http://LocalHost:{port}",
    "http://127.0.0.1.:{port}",
    "http://127.1:{port}",
    "http://127.0.1:{port}",
    "http://2130706433:{port}",
    "http://0x7f000001:{port}",
    "http://0x7F.0.0.1:{port}",
    "http://0177.0.0.1:{port}",
    "http://017700000001:{port}",
    "http://0:{port}",
    "http://0.0.0.0:{port}",
    "http://[::1]:{port}",
    "http://[0:0:0:0:0:0:0:1]:{port}",
    "http://[::]:{port}",
    "http://[::ffff:127.0.0.1]:{port}",
    "http://[::ffff:7f00:1]:{port}",
    "http://[::127.0.0.1]:{port}",
    "http://[64:ff9b::127.0.0.1]:{port}",
    "http://[2002:7f00:1::]:{port}",
    "http://[::1%25lo]:{port}",
    "https://127.0.0.1:{port}",
]
# The other networks that are not public, as addresses and in IPv6 forms.
PRIVATE = [
    "http://10.0.0.1",
    "http://172.16.0.1",
    "http://172.31.255.255",
    "http://192.168.1.1",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1",
    "http://198.18.0.1",
    "http://192.0.0.1",
    "http://192.0.2.1",
    "http://224.0.0.1",
    "http://239.255.255.250",
    "http://255.255.255.255",
    "http://240.0.0.1",
    "http://[fd00::1]",
    "http://[fc00::1]",
    "http://[fe80::1]",
    "http://[fec0::1]",
    "http://[ff02::1]",
    "http://[2001:db8::1]",
    "http://[2001::1]",
    "http://[100::1]",
    "http://[::ffff:169.254.169.254]",
    "http://[::ffff:10.0.0.1]",
    "http://[::ffff:a00:1]",
    "http://[64:ff9b::10.0.0.1]",
    "http://[64:ff9b:1::1]",
    "http://[2002:a00:1::]",
    "http://[2002:c0a8:101::]",
]
MALFORMED = [
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http://user:pw@example.com/",
    "http://user@127.0.0.1/",
    "http:///path",
    "http://example.com:0/",
    "http://example.com:99999/",
    "http://exa mple.com/",
    "http://example.com/\r\nX-Injected: 1",
    "http://[::1/",
]
# Addresses a name may resolve to that the service never connects to (one bad answer is enough).
BAD_ANSWERS = [
    ["127.0.0.1"],
    ["::1"],
    ["0.0.0.0"],
    ["10.0.0.7"],
    ["169.254.169.254"],
    ["100.64.0.1"],
    ["fd00::1"],
    ["fe80::1%eth0"],
    ["::ffff:127.0.0.1"],
    ["64:ff9b::7f00:1"],
    [PUBLIC, "10.0.0.7"],
    ["10.0.0.7", PUBLIC],
    [PUBLIC, "2606:4700:4700::1111", "::1"],
]


def at(templates: list[str], port: int) -> list[str]:
    return [template.format(port=port) for template in templates]


# -- the network, the name resolution and an endpoint ------------------------------------------------


class Dns:
    """Name resolution for the test's names: each answers its rounds of addresses in turn (the last
    round again and again); every other name resolves as usual."""

    def __init__(self, real: Any):
        self.real = real
        self.rounds: dict[str, list[list[str]]] = {}
        self.asked: list[str] = []

    def set(self, name: str, *rounds: list[str]) -> None:
        self.rounds[name] = list(rounds)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
        rounds = self.rounds.get(host)
        if rounds is None:
            return self.real(host, port, *args, **kwargs)
        self.asked.append(host)
        addresses = rounds.pop(0) if len(rounds) > 1 else rounds[0]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))
            for address in addresses
        ]


@pytest.fixture
def dns(monkeypatch) -> Dns:
    resolver = Dns(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


@pytest.fixture
def connects(monkeypatch) -> list:
    """Every TCP connection made from here on; none leaves this machine (others are refused)."""
    made = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        made.append(tuple(address[:2]))
        if address[0] in ("127.0.0.1", "::1"):
            return real_connect(sock, address)
        raise ConnectionRefusedError(111, "test: no network")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return made


class Endpoint(LoopbackServer):
    """A tenant's endpoint on 127.0.0.1: records each request and answers as told per path ending
    (status, a JSON body or raw bytes, headers); anything else gets a Bot API "ok"."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[str, tuple[int, Any, dict[str, str]]] = {}
        super().__init__(self._handler())

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def answer(self, ending: str, status: int, body: Any, **headers: str) -> None:
        with self.lock:
            self.answers[ending] = (status, body, headers)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with endpoint.lock:
                    endpoint.requests.append({"path": self.path, "host": self.headers.get("Host")})
                    status, body, headers = next(
                        (answer for ending, answer in endpoint.answers.items() if self.path.endswith(ending)),
                        (200, {"ok": True, "result": {}}, {}),
                    )
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self._answer()

        return Handler


@pytest.fixture
def endpoint():
    server = Endpoint().start()
    server.answer("getMe", 200, {"ok": True, "result": {"id": 1, "is_bot": True, "username": "partner_bot"}})
    yield server
    server.stop()


@pytest.fixture
def settings() -> dict:
    return {"EGRESS_ALLOW_PRIVATE_TARGETS": False}  # as in production


@pytest.fixture
def fake_port(fake_telegram) -> int:
    return int(fake_telegram.url.rsplit(":", 1)[1])


def allowing_private(app):
    """Private targets allowed for a moment (a URL set before the setting changed)."""

    class Allowing:
        def __enter__(self):
            app.config["EGRESS_ALLOW_PRIVATE_TARGETS"] = True

        def __exit__(self, *exc):
            app.config["EGRESS_ALLOW_PRIVATE_TARGETS"] = False

    return Allowing()


# -- the policy itself --------------------------------------------------------------------------------


class TestPolicy:
    @pytest.mark.parametrize("url", at(LOOPBACK, 8080) + PRIVATE + MALFORMED)
    def test_a_url_outside_the_policy_is_refused_without_a_connection(self, url, connects):
        with pytest.raises(Refused):
            Policy(allow_private=False).check(url)
        with pytest.raises(Refused):
            Policy(allow_private=False).resolve(url)
        assert connects == []

    @pytest.mark.parametrize(
        "url",
        [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "http://1.1.1.1./",
        ],
    )
    def test_other_spellings_of_addresses_are_refused_even_where_private_targets_are_allowed(self, url):
        with pytest.raises(Refused) as raised:
            Policy(allow_private=True).check(url)
        assert str(raised.value) == SPELLING

    @pytest.mark.parametrize("answers", BAD_ANSWERS, ids=[",".join(a) for a in BAD_ANSWERS])
    def test_a_name_with_any_non_public_answer_is_refused(self, dns, connects, answers):
        dns.set("api.partner.example", answers)
        with pytest.raises(Refused) as raised:
            Policy(allow_private=False).resolve("https://api.partner.example/bot1/getMe")
        assert str(raised.value) == NOT_PUBLIC
        assert connects == []

    def test_a_name_that_does_not_resolve_is_refused(self, dns):
        dns.set("nowhere.partner.example", [])
        with pytest.raises(Unresolved):
            Policy(allow_private=False).check("https://nowhere.partner.example/in")

    def test_a_public_name_resolves_once_to_the_address_connected_to(self, dns):
        dns.set("api.partner.example", ["2606:4700:4700::1111", PUBLIC])
        target = Policy(allow_private=False).resolve("https://API.partner.example:8443/bot1/getMe")
        assert target == Target(
            "https", "api.partner.example", 8443, "2606:4700:4700::1111", "API.partner.example:8443"
        )
        assert dns.asked == ["api.partner.example"]

    @pytest.mark.parametrize(
        "address",
        [
            PUBLIC,
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ],
    )
    def test_public_addresses_and_their_ipv6_forms_are_allowed(self, address):
        assert egress.is_public(ipaddress.ip_address(address))

    def test_development_allows_private_targets(self):
        target = Policy(allow_private=True).resolve("http://127.0.0.1:5000/sandbox/bot-api")
        assert (target.address, target.port) == ("127.0.0.1", 5000)

    def test_credentials_in_the_url_are_refused(self):
        with pytest.raises(Refused) as raised:
            Policy(allow_private=True).check("https://user:secret@api.partner.example/")
        assert str(raised.value) == CREDENTIALS

    def test_tls_checks_the_name_while_connecting_to_the_checked_address(self):
        target = Target("https", "api.partner.example", 443, PUBLIC, "api.partner.example")
        pool = target.pool(urllib3.PoolManager())
        assert (pool.host, pool.port) == (PUBLIC, 443)
        assert pool.conn_kw["server_hostname"] == "api.partner.example"
        assert pool.assert_hostname == "api.partner.example"

    def test_a_guarded_session_connects_to_the_checked_address_with_the_names_host_header(
        self, dns, endpoint, monkeypatch
    ):
        monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")  # a proxy would connect elsewhere
        dns.set("hooks.partner.example", ["127.0.0.1"])
        with egress.guard(requests.Session(), Policy(allow_private=True)) as session:
            answer = session.get(f"http://hooks.partner.example:{endpoint.port}/in", timeout=5)
        assert answer.status_code == 200
        assert endpoint.requests == [{"path": "/in", "host": f"hooks.partner.example:{endpoint.port}"}]

    def test_a_guarded_session_checks_every_request(self, dns, endpoint, connects):
        dns.set("hooks.partner.example", ["127.0.0.1"])
        session = egress.guard(requests.Session(), Policy(allow_private=False))
        with session, pytest.raises(Refused):
            session.get(f"http://hooks.partner.example:{endpoint.port}/in", timeout=5)
        assert endpoint.requests == [] and connects == []

    def test_the_origin_of_a_url_fills_in_the_default_port(self):
        assert egress.origin("https://Login.Example/realm") == egress.origin("https://login.example:443/x")
        assert egress.origin("https://login.example/") != egress.origin("http://login.example/")
        assert egress.origin("https://login.example/") != egress.origin("https://login.example:8443/")


# -- a bot's own Bot API server -----------------------------------------------------------------------


def connect_with_server(client, headers, url: str, bot_id: int = 4242001):
    return client.post(
        ACCOUNTS,
        json={"name": "Partner", "token": bot_token(bot_id), "apiBaseUrl": url},
        headers=headers,
    )


def messages_shown(client, headers) -> tuple[list[dict], str]:
    response = client.get(f"{API}/messages", headers=headers, query_string={"perPage": 100})
    assert response.status_code == 200, response.json
    return response.json["items"], response.get_data(as_text=True)


class TestBotApiServer:
    def test_it_is_refused_when_a_bot_is_connected(
        self, client, auth_headers, tenant, fake_telegram, fake_port, connects
    ):
        for url in at(LOOPBACK, fake_port) + PRIVATE + MALFORMED:
            response = connect_with_server(client, auth_headers, url)
            assert response.status_code == 422, (url, response.json)
            assert "apiBaseUrl" in response.json["error"]["details"], url
        assert stored_accounts(tenant) == []
        assert fake_telegram.requests == []
        assert connects == []

    def test_it_is_refused_when_a_bot_is_changed(
        self, client, auth_headers, tenant, fake_telegram, fake_port, connects
    ):
        account, _ = connect_bot(client, auth_headers)
        connects.clear()
        for url in at(LOOPBACK, fake_port) + PRIVATE + MALFORMED:
            response = client.patch(f"{ACCOUNTS}/{account}", json={"apiBaseUrl": url}, headers=auth_headers)
            assert response.status_code == 422, (url, response.json)
            assert "apiBaseUrl" in response.json["error"]["details"], url
        assert stored_accounts(tenant)[0].api_base_url is None
        assert connects == []

    def test_a_name_resolving_to_a_private_address_is_refused(
        self, client, auth_headers, tenant, dns, fake_port, connects
    ):
        dns.set("bots.partner.example", [PUBLIC, "192.168.7.7"])
        response = connect_with_server(client, auth_headers, f"https://bots.partner.example:{fake_port}")
        assert response.status_code == 422
        assert response.json["error"]["details"] == {"apiBaseUrl": [NOT_PUBLIC]}
        assert "192.168" not in response.get_data(as_text=True)
        assert stored_accounts(tenant) == [] and connects == []

    @pytest.mark.parametrize(
        "template",
        [t for t in LOOPBACK if "%25" not in t and "localhost." not in t] + ["http://{name}:{port}"],
    )
    def test_it_is_refused_at_every_send(
        self, app, client, auth_headers, tenant, fake_telegram, fake_port, dispatcher, dns, connects, template
    ):
        """A URL that passed when it was set (DNS has changed since, or the setting): nothing is sent,
        and the message fails with a fixed reason."""
        dns.set("bots.partner.example", [PUBLIC], ["127.0.0.1"])
        account, bot_id = connect_bot(client, auth_headers)
        url = template.format(port=fake_port, name="bots.partner.example")
        if "{name}" in template:
            changed = client.patch(f"{ACCOUNTS}/{account}", json={"apiBaseUrl": url}, headers=auth_headers)
            assert changed.status_code == 200, changed.json
        else:
            with tenant_scope(tenant):
                TelegramAccount.objects(id=account).update_one(set__api_base_url=url)
        fake_telegram.reset()
        connects.clear()
        sent_campaign(client, auth_headers, account, ["1001"])

        dispatcher.run_until_idle()

        assert fake_telegram.requests == []
        assert connects == []
        [message], text = messages_shown(client, auth_headers)
        assert message["status"] == "failed"
        assert message["error"].startswith("the bot's Bot API server is refused: ")
        assert "127.0.0.1" not in message["error"]

    def test_the_connection_goes_to_the_address_that_was_checked(
        self, dns, connects, fake_telegram, fake_port
    ):
        """DNS rebinding: the check sees a public address, a second lookup would see loopback."""
        dns.set("bots.partner.example", [PUBLIC], ["127.0.0.1"])
        client = TelegramClient(
            bot_token(4242002),
            f"http://bots.partner.example:{fake_port}",
            policy=Policy(allow_private=False),
            max_retries=0,
        )
        with pytest.raises(TransientError) as raised:
            client.get_me()
        assert "could not connect" in raised.value.description
        assert connects == [(PUBLIC, fake_port)]
        assert dns.asked == ["bots.partner.example"]
        assert fake_telegram.requests == []

    def test_a_refusal_at_send_time_is_permanent(self, dns):
        dns.set("bots.partner.example", ["10.0.0.9"])
        client = TelegramClient(
            bot_token(4242003), "https://bots.partner.example", policy=Policy(allow_private=False)
        )
        with pytest.raises(ServerRefused) as raised:
            client.send_message("1", "hi")
        assert raised.value.reason == NOT_PUBLIC
        assert isinstance(raised.value, PermanentError)

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    def test_a_redirect_is_not_followed(self, endpoint, fake_telegram, status):
        token = bot_token(4242004)
        endpoint.answer("sendMessage", status, b"", Location=f"{fake_telegram.url}/bot{token}/sendMessage")
        client = TelegramClient(token, endpoint.url, policy=Policy(allow_private=True))
        with pytest.raises(PermanentError) as raised:
            client.send_message("1", "the message body")
        assert raised.value.description == f"HTTP {status} without a Bot API answer"
        assert len(endpoint.requests) == 1
        assert fake_telegram.requests == []


class TestBotApiAnswersAreNotShown:
    @pytest.fixture
    def settings(self) -> dict:
        return {"EGRESS_ALLOW_PRIVATE_TARGETS": True}  # the endpoint listens on 127.0.0.1

    @pytest.mark.parametrize(
        "status, body",
        [
            (401, {"ok": False, "error_code": 401, "description": SECRET}),
            (400, {"ok": False, "error_code": SECRET, "description": SECRET}),
            (404, SECRET.encode()),
            (200, {"ok": True, "result": {"is_bot": True, "username": SECRET}}),
            (200, {"ok": True, "result": {"is_bot": False, "username": "partner_bot"}}),
            (200, {"ok": True, "result": SECRET}),
            (500, {"ok": False, "error_code": 500, "description": SECRET}),
        ],
    )
    def test_get_me(self, client, auth_headers, tenant, endpoint, status, body):
        endpoint.answer("getMe", status, body)
        response = connect_with_server(client, auth_headers, endpoint.url)
        assert response.status_code in (422, 503), response.json
        assert SECRET not in response.get_data(as_text=True)
        assert stored_accounts(tenant) == []

    @pytest.mark.parametrize(
        "status, body, error",
        [
            (
                400,
                {"ok": False, "error_code": 400, "description": SECRET},
                "the bot's Bot API server answered error 400",
            ),
            (403, SECRET.encode(), "HTTP 403 without a Bot API answer"),
            (
                502,
                {"ok": False, "error_code": 502, "description": SECRET},
                "the bot's Bot API server answered error 502",
            ),
            (
                200,
                {"ok": True, "result": {"message_id": SECRET}},
                "delivery outcome unknown: the answer names no message",
            ),
            (
                200,
                {"ok": True, "result": {"message_id": 2**70}},
                "delivery outcome unknown: the answer names no message",
            ),
            (
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": SECRET,
                    "parameters": {"retry_after": SECRET},
                },
                None,
            ),
            (
                429,
                {"ok": False, "error_code": 429, "description": SECRET, "parameters": {"retry_after": 1e300}},
                None,
            ),
        ],
    )
    def test_sends(self, client, auth_headers, tenant, endpoint, dispatcher, status, body, error):
        created = connect_with_server(client, auth_headers, endpoint.url)
        assert created.status_code == 201, created.json
        assert created.json["botUsername"] == "partner_bot"
        endpoint.answer("sendMessage", status, body)
        sent_campaign(client, auth_headers, created.json["id"], ["1001"])

        dispatcher.run_until_idle()

        [message], text = messages_shown(client, auth_headers)
        assert SECRET not in text
        assert message.get("error") == error
        with tenant_scope(tenant):
            stored = Message.objects.get()
        assert stored.telegram_message_id is None

    def test_a_send_whose_answer_is_a_message_is_sent(self, client, auth_headers, endpoint, dispatcher):
        created = connect_with_server(client, auth_headers, endpoint.url)
        endpoint.answer("sendMessage", 200, {"ok": True, "result": {"message_id": 77, "chat": {"id": 1001}}})
        sent_campaign(client, auth_headers, created.json["id"], ["1001"])
        dispatcher.run_until_idle()
        [message], _ = messages_shown(client, auth_headers)
        assert (message["status"], message["telegramMessageId"]) == ("sent", 77)
        assert endpoint.requests[-1]["host"] == f"127.0.0.1:{endpoint.port}"


class TestTelegramsOwnDescriptions:
    def test_are_kept_bounded_in_length_and_characters(self, fake_telegram):
        fake_telegram.script(
            {"status": 400, "description": "Bad Request: chat\x00 not\u202e found " + "x" * 1000}
        )
        client = TelegramClient(bot_token(4242005), fake_telegram.url, policy=egress.OPERATOR)
        with pytest.raises(PermanentError) as raised:
            client.send_message("1", "hi")
        description = raised.value.description
        assert description.startswith("Bad Request: chat not found x")
        assert len(description) <= 200
        assert description.isprintable()


# -- webhooks -----------------------------------------------------------------------------------------


class TestWebhooks:
    def test_a_url_outside_the_policy_is_refused_when_set(self, client, auth_headers, tenant, connects):
        for url in at(LOOPBACK, 8080) + PRIVATE + MALFORMED:
            response = client.post(
                WEBHOOKS, json={"url": url, "events": ["campaign.completed"]}, headers=auth_headers
            )
            assert response.status_code == 422, (url, response.json)
            assert "url" in response.json["error"]["details"], url
        with tenant_scope(tenant):
            assert Webhook.objects.count() == 0
        assert Tenant.objects.get(id=tenant.id).usage.webhooks == 0
        assert connects == []

    def test_a_url_outside_the_policy_is_refused_when_changed(
        self, client, auth_headers, tenant, dns, connects
    ):
        dns.set("hooks.partner.example", [PUBLIC])
        created = client.post(
            WEBHOOKS,
            json={"url": "https://hooks.partner.example/in", "events": ["campaign.completed"]},
            headers=auth_headers,
        )
        assert created.status_code == 201, created.json
        for url in at(LOOPBACK, 8080) + PRIVATE + MALFORMED:
            response = client.patch(
                f"{WEBHOOKS}/{created.json['id']}", json={"url": url}, headers=auth_headers
            )
            assert response.status_code == 422, (url, response.json)
        with tenant_scope(tenant):
            assert Webhook.objects.get().url == "https://hooks.partner.example/in"
        assert connects == []

    def test_a_name_resolving_to_loopback_is_refused_when_set(self, client, auth_headers, dns):
        dns.set("hooks.partner.example", ["127.0.0.1"])
        response = client.post(
            WEBHOOKS,
            json={"url": "https://hooks.partner.example/in", "events": ["campaign.completed"]},
            headers=auth_headers,
        )
        assert response.status_code == 422
        assert response.json["error"]["details"] == {"url": [NOT_PUBLIC]}


class TestWebhookAnswersAreNotShown:
    @pytest.fixture
    def settings(self) -> dict:
        return {"EGRESS_ALLOW_PRIVATE_TARGETS": True}  # the endpoint listens on 127.0.0.1

    @pytest.mark.parametrize(
        "status, body, headers",
        [
            (500, SECRET.encode(), {}),
            (400, {"error": SECRET}, {}),
            (302, SECRET.encode(), {"Location": "http://127.0.0.1:9/internal"}),
            (200, SECRET.encode(), {}),
        ],
    )
    def test_the_attempt_log_holds_the_status_only(
        self, client, auth_headers, tenant, endpoint, dispatcher, status, body, headers
    ):
        endpoint.answer("/hook", status, body, **headers)
        created = client.post(
            WEBHOOKS,
            json={"url": f"{endpoint.url}/hook", "events": ["campaign.completed"]},
            headers=auth_headers,
        )
        assert created.status_code == 201, created.json
        with tenant_scope(tenant):
            emit("campaign.completed", {"campaignId": "x"})

        dispatcher.run_until_idle()

        response = client.get(f"{WEBHOOKS}/{created.json['id']}/deliveries", headers=auth_headers)
        assert SECRET not in response.get_data(as_text=True)
        [delivery] = response.json["items"]
        [attempt] = delivery["attemptLog"]
        assert attempt["status"] == status
        assert attempt.get("error") == (None if status == 200 else f"HTTP {status}")
        assert [r["path"] for r in endpoint.requests] == ["/hook"]


# -- single sign-on -------------------------------------------------------------------------------------


ISSUERS = [
    "https://127.0.0.1/acme",
    "https://localhost/acme",
    "https://127.1/acme",
    "https://2130706433/acme",
    "https://0x7f000001/acme",
    "https://0177.0.0.1/acme",
    "https://0.0.0.0/acme",
    "https://[::1]/acme",
    "https://[::ffff:127.0.0.1]/acme",
    "https://169.254.169.254/acme",
    "https://10.0.0.1/acme",
    "https://[fd00::1]/acme",
    "https://login.partner.example/acme",  # resolves to loopback
]


def refusals(tenant) -> list[dict]:
    with tenant_scope(tenant):
        return [entry.summary for entry in AuditLog.objects(action="auth.sso_refused").order_by("created_at")]


def set_issuer(tenant, issuer: str) -> None:
    """Point the tenant's provider elsewhere behind the service's back (set before a setting changed)."""
    Tenant.objects(id=tenant.id).update(set__settings__security__sso__issuer=issuer)
    tenant_cache().clear()


class TestSsoIssuer:
    def test_it_is_refused_when_saved(self, client, auth_headers, tenant, provider, dns, connects):
        dns.set("login.partner.example", ["127.0.0.1"])
        for issuer in [*ISSUERS, provider.issuer("acme")]:
            response = configure_sso(client, auth_headers, sso_body(provider, issuer=issuer))
            assert response.status_code == 422, (issuer, response.json)
            assert "issuer" in response.json["error"]["details"]["security"]["sso"], issuer
        assert not Tenant.objects.get(id=tenant.id).settings.security.sso.configured
        assert connects == [] and sum(provider.fetches.values()) == 0

    @pytest.mark.parametrize("issuer", [*ISSUERS, "{provider}", "http://localhost:{port}/acme"])
    def test_it_is_refused_at_every_start(
        self, app, client, auth_headers, tenant, provider, dns, connects, issuer
    ):
        dns.set("login.partner.example", ["127.0.0.1"])
        with allowing_private(app):
            configured = configure_sso(client, auth_headers, sso_body(provider))
            assert configured.status_code == 200, configured.json
        port = provider.url.rsplit(":", 1)[1]
        set_issuer(tenant, issuer.format(provider=provider.issuer("acme"), port=port))
        connects.clear()

        response = sso_start(client)

        assert response.status_code == 503, response.json
        assert response.json["error"]["code"] == "sso_provider_unavailable"
        assert response.json["error"]["details"]["reason"] == "provider_refused"
        assert "Location" not in response.headers
        assert refusals(tenant)[-1]["reason"] == "provider_refused"
        assert connects == [] and sum(provider.fetches.values()) == 0


class TestSsoDiscovery:
    @pytest.fixture
    def settings(self) -> dict:
        return {"EGRESS_ALLOW_PRIVATE_TARGETS": True}  # the provider listens on 127.0.0.1

    @pytest.mark.parametrize("field", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
    @pytest.mark.parametrize(
        "template",
        [
            "https://evil.example/authorize",
            "https://login.example.com.evil.example/acme/x",
            "http://localhost:{port}/acme/x",
            "http://[::1]:{port}/acme/x",
            "http://127.0.0.1:{other}/acme/x",
            "http://127.0.0.1/acme/x",
            "https://127.0.0.1:{port}/acme/x",
        ],
    )
    def test_an_endpoint_on_another_host_refuses_the_start(
        self, client, tenant, provider, acme_sso, field, template
    ):
        port = int(provider.url.rsplit(":", 1)[1])
        provider.discovery_changes = {field: template.format(port=port, other=port + 1)}

        response = sso_start(client)

        assert response.status_code == 502, response.json
        assert response.json["error"]["code"] == "sso_provider_error"
        assert response.json["error"]["details"] == {"reason": "discovery_foreign_endpoint", "field": field}
        assert "Location" not in response.headers
        assert refusals(tenant)[-1]["reason"] == "discovery_foreign_endpoint"

    def test_endpoints_on_the_issuers_host_are_used(self, client, provider, acme_sso):
        response = sso_start(client)
        assert response.status_code == 302
        assert response.headers["Location"].startswith(f"{provider.issuer('acme')}/authorize?")


class TestSsoAnswersAreNotShown:
    @pytest.fixture
    def settings(self) -> dict:
        return {"EGRESS_ALLOW_PRIVATE_TARGETS": True}  # the provider listens on 127.0.0.1

    @pytest.mark.parametrize("status", [200, 404, 500])
    def test_discovery(self, client, tenant, provider, acme_sso, status):
        provider.raw_answers[".well-known/openid-configuration"] = (status, SECRET.encode())
        response = sso_start(client)
        assert response.status_code == 502
        assert response.json["error"]["details"] == {
            "reason": "provider_bad_answer",
            "endpoint": "discovery",
            "status": status,
        }
        assert SECRET not in json.dumps(refusals(tenant))

    @pytest.mark.parametrize(
        "endpoint, status, body, reason",
        [
            ("token", 400, {"error": SECRET, "error_description": SECRET}, "code_refused"),
            ("token", 400, {"error": {"nested": SECRET}}, "code_refused"),
            ("token", 200, b"<html>" + SECRET.encode(), "provider_bad_answer"),
            ("token", 502, SECRET.encode(), "provider_bad_answer"),
            ("jwks", 200, {"keys": SECRET}, "jwks_invalid"),
            ("jwks", 500, SECRET.encode(), "provider_bad_answer"),
        ],
    )
    def test_token_and_keys(self, client, tenant, provider, acme_sso, endpoint, status, body, reason):
        url = sso_callback_url(client)
        provider.raw_answers[endpoint] = (
            status,
            body if isinstance(body, bytes) else json.dumps(body).encode(),
        )
        response = client.get(url)
        assert response.status_code in (401, 502), response.json
        assert response.json["error"]["details"]["reason"] == reason
        assert SECRET not in response.get_data(as_text=True)
        assert SECRET not in json.dumps(refusals(tenant))
