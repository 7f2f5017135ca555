"""Prometheus metrics (prometheus-client): what the service counts, and `/metrics`, where it is read.

- The web service counts its requests per route template (the URL rule, never the raw path). Under
  gunicorn with several workers, PROMETHEUS_MULTIPROC_DIR (an empty directory, set in the web
  service's environment before it starts) makes every worker write its metrics there, and a scrape of
  any worker adds them all up; gunicorn.conf.py empties the directory at start and marks dead workers.
- The scheduler and the dispatchers are processes of their own: each serves its own metrics on
  METRICS_PORT (`serve_separately`). On the embedded store they run inside the web worker, whose
  `/metrics` shows theirs too.
- The queue depth is counted in the database at scrape time (`QueueDepth`), so it stays true when no
  dispatcher runs, which is when it matters most.

No metric is labelled with a tenant: their number has no bound.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from bson import ObjectId
from flask import Blueprint, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from pymongo.errors import PyMongoError

from app.errors import NotFound, Unauthorized
from app.leases import Lease
from app.messages.models import LANE, Message
from app.tenancy.access import infra
from app.tenancy.context import unscoped

log = logging.getLogger("app.metrics")

UNMATCHED = "unmatched"  # the route of a request that matched no URL rule (a 404 of routing)

REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time to answer a request, per route template and method.",
    ["method", "route"],
)
REQUEST_ERRORS = Counter(
    "http_request_errors_total",
    "Requests answered with a 4xx or 5xx, per route template, method and status class.",
    ["method", "route", "status"],
)
MESSAGES_SENT = Counter("messages_sent_total", "Campaign messages the Bot API accepted.")
MESSAGES_FAILED = Counter(
    "messages_failed_total",
    "Campaign messages failed for good, by reason: refused (Telegram's 400 or 403), egress_refused (the "
    "bot's own Bot API server is not allowed), gave_up (attempts exhausted), unknown (outcome unknown), "
    "bot_unavailable (bot deleted or deactivated), media_deleted.",
    ["reason"],
)
TELEGRAM_RETRY_AFTER = Counter(
    "telegram_retry_after_total", "429 answers of the Bot API (the bot pauses for retry_after)."
)
WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries_total",
    "Webhook delivery attempts, by outcome: delivered, retried (failed, tried again later), failed "
    "(attempts exhausted), disabled (dropped: the webhook is disabled or gone).",
    ["outcome"],
)
JOB_RUNS = Counter(
    "job_runs_total", "Runs of scheduled jobs, by job and outcome (ok, failed).", ["job", "outcome"]
)
JOB_SECONDS = Histogram(
    "job_duration_seconds",
    "Time a scheduled job ran, by job.",
    ["job"],
    buckets=(0.1, 1, 5, 30, 60, 300, 900, 3600, 4 * 3600),
)
RATE_LIMIT_REFUSALS = Counter(
    "rate_limit_refusals_total",
    "Requests refused 429, by limit: api (a tenant's apiCallsPerHour), anonymous, login, sso, signup.",
    ["limit"],
)
LANES_HELD = Gauge(
    "dispatcher_lanes_held",
    "Lanes (bots, webhooks) this process's dispatcher holds now, by kind.",
    ["kind"],
    multiprocess_mode="livesum",
)
SCHEDULER_LEADING = Gauge(
    "scheduler_leading",
    "1 while this process holds the scheduler's lease and runs the jobs.",
    multiprocess_mode="livemax",
)
HEARTBEAT = Gauge(
    "process_heartbeat_timestamp_seconds",
    "When the main loop of this process's scheduler or dispatcher last went round (Unix time), leading "
    "or waiting: what their containers' healthcheck reads (python -m app.probe).",
    ["process"],
    multiprocess_mode="livemax",
)

QUEUE_STATUSES = ("queued", "sending")
# Bots counted by one aggregation (its $match has one branch per bot).
_BOTS_PER_COUNT = 500


def observe_request(method: str, route: str | None, status: int, seconds: float | None) -> None:
    """Count one answered request (the access log's hook)."""
    route = route or UNMATCHED
    if seconds is not None:
        REQUEST_SECONDS.labels(method, route).observe(seconds)
    if status >= 400:
        REQUEST_ERRORS.labels(method, route, f"{status // 100}xx").inc()


def beat(process: str) -> None:
    """Say that the main loop of `process` ("scheduler", "dispatcher") went round just now."""
    HEARTBEAT.labels(process).set_to_current_time()


def queue_depth() -> dict[str, int]:
    """Count the messages queued and being sent, across every tenant.

    A bot with messages to send always has a lane (app.leases), so the count reads the bots' lanes
    and then counts their messages on the tenant-first index (tenantId, telegramAccountId, status):
    one aggregation per batch of bots, its cost bound by the bots with work, not by the messages
    ever sent."""
    counts = dict.fromkeys(QUEUE_STATUSES, 0)
    with unscoped(reason="metrics: the queue depth across tenants"):
        lanes = Lease.objects(name__startswith=f"{LANE}:").only("name", "tenant_id")
        bots = [(lane.tenant_id, ObjectId(lane.name.split(":", 1)[1])) for lane in lanes]
        for start in range(0, len(bots), _BOTS_PER_COUNT):
            batch = bots[start : start + _BOTS_PER_COUNT]
            of_bots = [{"tenantId": tenant_id, "telegramAccountId": bot} for tenant_id, bot in batch]
            pipeline: list[Mapping[str, Any]] = [
                {"$match": {"$or": of_bots, "status": {"$in": list(QUEUE_STATUSES)}}},
                {"$group": {"_id": "$status", "count": {"$sum": 1}}},
            ]
            for row in Message._get_collection().aggregate(pipeline):
                counts[row["_id"]] += row["count"]
    return counts


class QueueDepth:
    """messages_queue_depth, read from the database at scrape time: one indexed count per status."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "messages_queue_depth", "Campaign messages queued or being sent, by status.", labels=["status"]
        )
        try:
            counts = queue_depth()
        except PyMongoError as exc:
            log.warning("queue depth not counted", extra={"error": type(exc).__name__})
            return
        for status, count in counts.items():
            family.add_metric([status], count)
        yield family


def exposition(config: Mapping[str, Any]) -> bytes:
    """The metrics of this process (or of every worker, in multiprocess mode) and the queue depth."""
    if config["PROMETHEUS_MULTIPROC_DIR"]:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=config["PROMETHEUS_MULTIPROC_DIR"])
        own = generate_latest(registry)
    else:
        own = generate_latest(REGISTRY)
    database = CollectorRegistry()
    database.register(QueueDepth())
    return own + generate_latest(database)


def serve_separately(config: Mapping[str, Any]) -> None:
    """Serve this process's metrics on METRICS_HOST:METRICS_PORT (the scheduler's and dispatchers'
    processes); nothing when METRICS_PORT is unset."""
    if config["METRICS_PORT"]:
        start_http_server(config["METRICS_PORT"], addr=config["METRICS_HOST"])
        log.info("metrics served", extra={"host": config["METRICS_HOST"], "port": config["METRICS_PORT"]})


blp = Blueprint("metrics", __name__)


def _check_access(config: Mapping[str, Any]) -> None:
    """With METRICS_TOKEN, only its bearer may read; without it, development and tests read freely and
    production has no /metrics."""
    token = config["METRICS_TOKEN"]
    if token is None:
        if config["APP_ENV"] == "production":
            raise NotFound()
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("Send the metrics token as a bearer token")


@blp.get("/metrics")
@infra
def scrape():
    """Answer the Prometheus text exposition of the service's metrics."""
    config = current_app.config
    _check_access(config)
    return Response(exposition(config), content_type=CONTENT_TYPE_LATEST)
