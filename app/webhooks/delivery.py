"""A webhook's sender: delivers its queued tenant events, signed, retried with backoff, recorded and
SSRF-checked, while its dispatcher holds the webhook's lane (app.dispatcher.runner): each webhook is
a lane of its own, so a slow endpoint holds up nothing but its own deliveries, of which up to
WEBHOOK_CONCURRENCY are under way at once.

Each delivery is a POST of the event as JSON with
    X-Webhook-Event: <event>            X-Webhook-Delivery: <delivery id>
    X-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body under the webhook's secret>
A receiver recomputes the HMAC and rejects old timestamps. Every attempt is recorded on the delivery;
a failure is retried with exponential backoff up to WEBHOOK_MAX_ATTEMPTS; a webhook whose last
WEBHOOK_DISABLE_AFTER deliveries all failed is disabled, and an audit entry says so. Every request
follows the egress policy (app.egress: checked after DNS resolution and sent to the address checked,
no redirect followed); an attempt records the answer's HTTP status, never its body.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import requests
from bson import ObjectId
from flask import Flask, current_app
from pymongo import UpdateOne

from app import clock, crypto, egress, metrics
from app.audit.models import Actor
from app.audit.service import record
from app.dispatcher.runner import Lane, Turn
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant

from .models import Webhook, WebhookDelivery

log = logging.getLogger("app.webhooks")

CLAIM_FOR = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)
LOG_KEEP = 20


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the X-Signature header value for a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=30 * 2 ** (attempts - 1)), MAX_BACKOFF)


def attempt(
    url: str, secret: str, delivery: dict[str, Any], session: requests.Session, timeout: float
) -> tuple[bool, dict[str, Any]]:
    """POST one delivery (a stored document); return whether it was accepted, and the attempt's log entry."""
    body = json.dumps(delivery["payload"], separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "telegram-marketing-webhooks/1",
        "X-Webhook-Event": delivery["event"],
        "X-Webhook-Delivery": str(delivery["_id"]),
        "X-Signature": sign(secret, timestamp, body),
    }
    started = time.perf_counter()
    entry: dict[str, Any] = {"at": clock.utcnow()}
    try:
        response = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
        entry["status"] = response.status_code
        ok = 200 <= response.status_code < 300
        if not ok:
            entry["error"] = f"HTTP {response.status_code}"
    except egress.Refused as exc:
        ok, entry["error"] = False, f"refused: {exc}"
    except requests.RequestException as exc:
        ok, entry["error"] = False, f"network error: {type(exc).__name__}"
    entry["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return ok, entry


def _disable_if_failing(webhook: Webhook, failed: int) -> bool:
    """Count `failed` more failed deliveries; disable the webhook past WEBHOOK_DISABLE_AFTER in a row.
    Return whether it is disabled now."""
    limit = current_app.config["WEBHOOK_DISABLE_AFTER"]
    updated = Webhook.objects(id=webhook.id).modify(new=True, inc__consecutive_failures=failed)
    if updated is None or not updated.active or updated.consecutive_failures < limit:
        return updated is None or not updated.active
    reason = f"the last {updated.consecutive_failures} deliveries failed"
    if Webhook.objects(id=webhook.id, active=True).update_one(set__active=False, set__disabled_reason=reason):
        record(
            "webhook.disabled",
            target_type="webhook",
            target_id=webhook.id,
            summary={"url": webhook.url, "reason": reason},
            actor=Actor(kind="system"),
        )
    return True


class WebhookSender:
    """Delivers one webhook's pending events; keeps its connections between turns."""

    def __init__(self, app: Flask, lane: Lane):
        config = app.config
        self.webhook_id = ObjectId(lane.key)
        self.tenant_id = lane.tenant_id
        self.concurrency = config["WEBHOOK_CONCURRENCY"]
        self.timeout = config["WEBHOOK_TIMEOUT"]
        self.max_attempts = config["WEBHOOK_MAX_ATTEMPTS"]
        self.session = egress.guard(requests.Session(), egress.Policy.for_tenants(config))

    def close(self) -> None:
        self.session.close()

    def run(self, turn: Turn) -> datetime | None:
        tenant = Tenant.objects(id=self.tenant_id).first()
        if tenant is None:
            return None  # deleted, and its deliveries with it
        with tenant_scope(tenant):  # suspended tenants get their events too (tenant.suspended)
            mine = WebhookDelivery.objects(webhook_id=self.webhook_id, status="pending")
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook") as pool:
                while not turn.ending():
                    webhook = Webhook.objects(id=self.webhook_id).first()
                    if webhook is None or not webhook.active:
                        dropped = mine.update(
                            set__status="failed", set__last_error="the webhook is disabled or gone"
                        )
                        metrics.WEBHOOK_DELIVERIES.labels("disabled").inc(dropped)
                        return None
                    batch = self._claim(turn.holder)
                    if not batch:
                        break
                    send = functools.partial(
                        attempt,
                        webhook.url,
                        crypto.decrypt(webhook.secret_encrypted),
                        session=self.session,
                        timeout=self.timeout,
                    )
                    answers = pool.map(send, batch)
                    self._record(webhook, batch, list(answers))
            upcoming = mine.order_by("next_attempt_at").only("next_attempt_at").as_pymongo().first()
            return upcoming["nextAttemptAt"] if upcoming else None

    def _claim(self, holder: str) -> list[dict[str, Any]]:
        """Claim the due deliveries for a minute (a process that dies mid-attempt leaves them to be tried
        again then); each claim counts as an attempt."""
        now = clock.utcnow()
        due = WebhookDelivery.objects(webhook_id=self.webhook_id, status="pending", next_attempt_at__lte=now)
        batch = list(due.order_by("next_attempt_at").limit(self.concurrency * 2).as_pymongo())
        if not batch:
            return []
        ids = [delivery["_id"] for delivery in batch]
        claimed = WebhookDelivery.objects(id__in=ids, status="pending", next_attempt_at__lte=now).update(
            set__next_attempt_at=now + CLAIM_FOR, set__claimed_by=holder, inc__attempts=1
        )
        if claimed < len(ids):
            got = set(
                WebhookDelivery.objects(
                    id__in=ids, claimed_by=holder, next_attempt_at=now + CLAIM_FOR
                ).scalar("id")
            )
            batch = [delivery for delivery in batch if delivery["_id"] in got]
        for delivery in batch:
            delivery["attempts"] = delivery.get("attempts", 0) + 1
        return batch

    def _record(
        self, webhook: Webhook, batch: list[dict[str, Any]], answers: list[tuple[bool, dict[str, Any]]]
    ) -> None:
        """Write each attempt's outcome (one bulk write); count failures toward disabling the webhook."""
        writes = []
        delivered = exhausted = retried = 0
        for delivery, (ok, entry) in zip(batch, answers, strict=True):
            where = {"_id": delivery["_id"], "tenantId": self.tenant_id, "status": "pending"}
            logged = {"attemptLog": {"$each": [entry], "$slice": -LOG_KEEP}}
            if ok:
                delivered += 1
                update = {
                    "$set": {"status": "delivered", "deliveredAt": clock.utcnow()},
                    "$unset": {"lastError": ""},
                }
            elif delivery["attempts"] >= self.max_attempts:
                exhausted += 1
                update = {"$set": {"status": "failed", "lastError": entry.get("error")}}
            else:
                retried += 1
                retry_at = clock.utcnow() + _backoff(delivery["attempts"])
                update = {"$set": {"nextAttemptAt": retry_at, "lastError": entry.get("error")}}
            writes.append(UpdateOne(where, {**update, "$push": logged}))
        WebhookDelivery._get_collection().bulk_write(writes, ordered=False)
        for outcome, count in (("delivered", delivered), ("retried", retried), ("failed", exhausted)):
            metrics.WEBHOOK_DELIVERIES.labels(outcome).inc(count)
        if delivered:
            Webhook.objects(id=webhook.id).update_one(set__consecutive_failures=0)
        if exhausted:
            _disable_if_failing(webhook, exhausted)
