"""The Docker smoke test's arrangement without Docker: the service with no Bot API sandbox of its own
and the tenants' egress policy on (as in production), sending to the sandbox served alone
(`python -m app.telegram.sandbox`, docker-compose.smoke.yml's `telegram` service), checked by
scripts/smoke.py."""

from __future__ import annotations

import signal

import pytest
import requests

from .servers import free_port, smoke, start_sandbox, start_service, stop


@pytest.fixture(scope="module")
def sandbox():
    port = free_port()
    process = start_sandbox(port)
    yield f"http://127.0.0.1:{port}", process
    stop(process)


@pytest.fixture(scope="module")
def service(sandbox):
    port = free_port()
    process = start_service(
        port,
        SEED_DEMO="false",
        TELEGRAM_SANDBOX="false",
        EGRESS_ALLOW_PRIVATE_TARGETS="false",
        TELEGRAM_API_BASE=sandbox[0],
    )
    yield f"http://127.0.0.1:{port}"
    stop(process)


def test_the_smoke_script_passes_against_a_separate_bot_api_sandbox(service, sandbox):
    assert requests.get(f"{service}/sandbox/bot-api/messages", timeout=10).status_code == 404

    result = smoke(service, "--bot-api", sandbox[0])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Bot API sandbox: received the 4 messages" in result.stdout


def test_the_sandbox_served_alone_answers_only_the_bot_api_and_its_list(sandbox):
    base, _ = sandbox
    assert requests.get(f"{base}/other", timeout=10).status_code == 404
    answer = requests.post(f"{base}/bot123456:{'A' * 30}/getMe", json={}, timeout=10)
    assert answer.json()["result"]["username"] == "bot123456_bot"


def test_the_sandbox_served_alone_stops_on_sigterm():
    process = start_sandbox(free_port())
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert "Bot API sandbox listening on http://127.0.0.1:" in process.stdout.read()
    process.stdout.close()
