"""Prometheus metrics at /metrics (app.metrics): what a scrape shows after requests, a campaign's
delivery, a job run and rate-limit refusals, and who may scrape.

Counters live in the test process and outlast a test, so every assertion on one compares two scrapes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families

from app import metrics
from app.errors import NotFound
from app.jobs import job_named, run_job
from app.messages.models import Message
from app.tenancy.context import unscoped

from .support import connect_bot, error_of, random_id, sent_campaign, set_limits

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"


def scrape(client, headers=None) -> dict[tuple[str, frozenset], float]:
    """Read /metrics: every sample by its name and labels."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def rule_of(app, path: str, method: str = "GET") -> str:
    """The URL rule (route template) a path matches."""
    rule, _arguments = app.url_map.bind("localhost").match(path, method=method, return_rule=True)
    return rule.rule


def test_a_scrape_counts_requests_deliveries_jobs_and_refusals(
    app, client, tenant, auth_headers, fake_telegram, dispatcher, unused_port
):
    account, bot_id = connect_bot(client, auth_headers)
    response = client.post(
        f"{API}/webhooks",
        json={"url": f"http://127.0.0.1:{unused_port}/hook", "events": ["message.failed"]},
        headers=auth_headers,
    )
    assert response.status_code == 201, response.json
    fake_telegram.missing_chats.add("4004")
    before = scrape(client)

    for _ in range(2):
        assert client.get("/healthz").status_code == 200
    missing = f"{API}/campaigns/{random_id()}"
    assert client.get(missing, headers=auth_headers).status_code == 404
    sent_campaign(client, auth_headers, account, ["4001", "4002", "4004"])
    queued = scrape(client)
    dispatcher.run_until_idle()
    run_job(app, job_named("usage-reconcile"))
    set_limits(tenant, apiCallsPerHour=1)
    assert client.get(f"{API}/tenants/current", headers=auth_headers).status_code == 200
    assert client.get(f"{API}/tenants/current", headers=auth_headers).status_code == 429
    email = f"{uuid.uuid4().hex}@acme.example.com"
    logins = [
        client.post(f"{API}/auth/login", json={"email": email, "password": "wrong password"}).status_code
        for _ in range(11)  # LOGIN_RATE_LIMIT_PER_EMAIL: 10/minute
    ]
    assert logins == [401] * 10 + [429]
    after = scrape(client)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    # Requests, per route template (never the raw path) and method.
    assert grew("http_request_duration_seconds_count", method="GET", route="/healthz") == 2
    template = rule_of(app, missing)
    assert template != missing and template.startswith(f"{API}/campaigns/<")
    assert grew("http_request_errors_total", method="GET", route=template, status="4xx") == 1
    assert grew("http_request_duration_seconds_count", method="GET", route=template) == 1
    assert not any(dict(labels).get("route") == missing for _name, labels in after)
    current = rule_of(app, f"{API}/tenants/current")
    assert grew("http_request_errors_total", method="GET", route=current, status="4xx") == 1
    assert grew("http_request_errors_total", method="GET", route="/healthz", status="4xx") == 0

    # The queue, counted in the database: three queued, then none.
    assert value(queued, "messages_queue_depth", status="queued") == 3
    assert value(after, "messages_queue_depth", status="queued") == 0
    assert value(after, "messages_queue_depth", status="sending") == 0

    # The delivery: two sent, one refused by Telegram, whose message.failed event found no receiver.
    assert len(fake_telegram.sent) == 2
    assert grew("messages_sent_total") == 2
    assert grew("messages_failed_total", reason="refused") == 1
    assert grew("messages_failed_total", reason="unknown") == 0
    assert grew("webhook_deliveries_total", outcome="retried") == 1
    assert grew("webhook_deliveries_total", outcome="delivered") == 0
    assert grew("dispatcher_lanes_held", kind="bot") == 0  # every lane taken was given up

    # The job, and the refusals by limit.
    assert grew("job_runs_total", job="usage-reconcile", outcome="ok") == 1
    assert grew("job_runs_total", job="usage-reconcile", outcome="failed") == 0
    assert grew("job_duration_seconds_count", job="usage-reconcile") == 1
    assert grew("rate_limit_refusals_total", limit="api") == 1
    assert grew("rate_limit_refusals_total", limit="login") == 1

    # No tenant is a label anywhere.
    assert not any(str(tenant.id) in str(labels) for _name, labels in after)


def test_the_queue_depth_counts_the_messages_of_every_bot_of_every_tenant(
    client, auth_headers, other_headers, monkeypatch
):
    first, second = connect_bot(client, auth_headers)[0], connect_bot(client, auth_headers)[0]
    idle = connect_bot(client, other_headers)[0]
    other = connect_bot(client, other_headers)[0]
    assert idle not in (first, second, other)
    sent_campaign(client, auth_headers, first, ["5001", "5002"])
    sent_campaign(client, auth_headers, second, ["5003"])
    sent_campaign(client, other_headers, other, ["5004", "5005", "5006", "5007"])
    with unscoped(reason="test: a message taken by a dispatcher"):
        Message.objects(telegram_account_id=ObjectId(other), chat="5007").update(set__status="sending")

    assert metrics.queue_depth() == {"queued": 6, "sending": 1}
    monkeypatch.setattr(metrics, "_BOTS_PER_COUNT", 2)  # three bots with work: two counts
    assert metrics.queue_depth() == {"queued": 6, "sending": 1}


def test_a_failed_job_is_counted_as_failed(app, client):
    job = job_named("trial-end")
    failing = type(job)(job.name, lambda: 1 / 0, job.trigger, job.description)
    before = scrape(client)

    with pytest.raises(ZeroDivisionError):
        run_job(app, failing)

    after = scrape(client)
    grown = value(after, "job_runs_total", job="trial-end", outcome="failed") - value(
        before, "job_runs_total", job="trial-end", outcome="failed"
    )
    assert grown == 1


def test_metrics_need_no_tenant_and_are_not_in_the_openapi_document(app, client, tenant, auth_headers):
    set_limits(tenant, apiCallsPerHour=2)
    for _ in range(3):
        assert client.get("/metrics", headers={**auth_headers, "X-Tenant-Id": "nobody"}).status_code == 200
    assert client.get(f"{API}/tenants/current", headers=auth_headers).status_code == 200  # nothing spent
    paths = client.get(f"{API}/openapi.json").json["paths"]
    assert not [path for path in paths if "metrics" in path]


class TestTheMetricsToken:
    @pytest.fixture
    def settings(self):
        return {"METRICS_TOKEN": "scrape-token-of-this-test"}

    def test_only_its_bearer_reads_the_metrics(self, client):
        for headers in ({}, {"Authorization": "Bearer another-token"}, {"Authorization": "Basic x"}):
            refused = client.get("/metrics", headers=headers)
            assert error_of(refused, 401)["code"] == "unauthorized"
        assert scrape(client, {"Authorization": "Bearer scrape-token-of-this-test"})


def test_production_without_a_token_has_no_metrics(app):
    with app.test_request_context("/metrics"):
        with pytest.raises(NotFound):
            metrics._check_access({"APP_ENV": "production", "METRICS_TOKEN": None})
        metrics._check_access({"APP_ENV": "development", "METRICS_TOKEN": None})


COUNT_IN_A_WORKER = """
from app import metrics
metrics.MESSAGES_SENT.inc(3)
metrics.LANES_HELD.labels("bot").inc()
"""

READ_ALL_WORKERS = """
import sys
from app import db, metrics
db.connect("mongomock://localhost/metrics_of_workers")
sys.stdout.write(metrics.exposition({"PROMETHEUS_MULTIPROC_DIR": sys.argv[1]}).decode())
"""


def test_a_scrape_adds_up_every_worker_in_multiprocess_mode(tmp_path):
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "APP_ENV": "testing"}

    def python(code: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    python(COUNT_IN_A_WORKER)
    python(COUNT_IN_A_WORKER)
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(python(READ_ALL_WORKERS, str(tmp_path)))
        for sample in family.samples
    }

    assert value(samples, "messages_sent_total") == 6
    assert value(samples, "messages_queue_depth", status="queued") == 0
