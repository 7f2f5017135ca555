"""Deliver queued tenant events to webhooks: signed, retried with backoff, recorded, SSRF-checked.

Each delivery is a POST of the event as JSON with
    X-Webhook-Event: <event>            X-Webhook-Delivery: <delivery id>
    X-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body under the webhook's secret>
A receiver recomputes the HMAC and rejects old timestamps. Every attempt is recorded on the delivery;
a failure is retried with exponential backoff up to WEBHOOK_MAX_ATTEMPTS; a webhook whose last
WEBHOOK_DISABLE_AFTER deliveries all failed is disabled, and an audit entry says so. Outside
development, addresses that resolve to loopback, private, link-local or other reserved networks are
refused, checked after DNS resolution, and the request goes to the address that was checked (no
second lookup for a rebinding name to change); redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from flask import current_app
from requests.adapters import HTTPAdapter

from app import crypto
from app.audit.models import Actor
from app.audit.service import record
from app.clock import utcnow
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant

from .models import Webhook, WebhookDelivery

log = logging.getLogger("app.webhooks")

CLAIM_FOR = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)
LOG_KEEP = 20


class TargetRefused(Exception):
    """The webhook URL resolves to an address the service must not call."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the X-Signature header value for a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def check_target(url: str) -> str:
    """Resolve the URL's host once and return the address to connect to; refuse non-public addresses
    (unless WEBHOOK_ALLOW_PRIVATE_TARGETS). The caller connects to this very address, so a name that
    resolves differently a moment later (DNS rebinding) cannot redirect the request."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"cannot resolve {parts.hostname}") from exc
    addresses = [info[4][0].split("%", 1)[0] for info in infos]
    if not current_app.config["WEBHOOK_ALLOW_PRIVATE_TARGETS"]:
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            if not ip.is_global or ip.is_multicast:
                raise TargetRefused(f"{parts.hostname} resolves to a non-public address ({ip})")
    return addresses[0]


class PinnedAdapter(HTTPAdapter):
    """Connects to an address given in the URL while TLS still checks the certificate of the name."""

    def __init__(self, hostname: str):
        super().__init__(max_retries=0)
        self.hostname = hostname

    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.hostname
            pool_kwargs["assert_hostname"] = self.hostname
        return host_params, pool_kwargs


def pinned(url: str, address: str) -> tuple[str, str]:
    """Return the URL with its host replaced by `address`, and the Host header of the original."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)), parts.netloc.rsplit("@", 1)[-1]


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=30 * 2 ** (attempts - 1)), MAX_BACKOFF)


def _attempt(
    webhook: Webhook, delivery: WebhookDelivery, session: requests.Session
) -> tuple[bool, dict[str, Any]]:
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "telegram-marketing-webhooks/1",
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Delivery": str(delivery.id),
        "X-Signature": sign(crypto.decrypt(webhook.secret_encrypted), timestamp, body),
    }
    started = time.perf_counter()
    entry: dict[str, Any] = {"at": utcnow()}
    try:
        url, headers["Host"] = pinned(webhook.url, check_target(webhook.url))
        if isinstance(session, requests.Session) and url.startswith("https://"):
            session.mount(url, PinnedAdapter(urlsplit(webhook.url).hostname))
        response = session.post(
            url,
            data=body,
            headers=headers,
            timeout=current_app.config["WEBHOOK_TIMEOUT"],
            allow_redirects=False,
        )
        entry["status"] = response.status_code
        ok = 200 <= response.status_code < 300
        if not ok:
            entry["error"] = f"HTTP {response.status_code}"
    except TargetRefused as exc:
        ok, entry["error"] = False, f"refused: {exc}"
    except requests.RequestException as exc:
        ok, entry["error"] = False, f"network error: {type(exc).__name__}"
    entry["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return ok, entry


def _disable_if_failing(webhook: Webhook) -> None:
    limit = current_app.config["WEBHOOK_DISABLE_AFTER"]
    updated = Webhook.objects(id=webhook.id).modify(new=True, inc__consecutive_failures=1)
    if updated and updated.active and updated.consecutive_failures >= limit:
        reason = f"the last {updated.consecutive_failures} deliveries failed"
        if Webhook.objects(id=webhook.id, active=True).update_one(
            set__active=False, set__disabled_reason=reason
        ):
            record(
                "webhook.disabled",
                target_type="webhook",
                target_id=webhook.id,
                summary={"url": webhook.url, "reason": reason},
                actor=Actor(kind="system"),
            )


def _deliver(delivery: WebhookDelivery, now: datetime, session: requests.Session) -> str:
    claimed = WebhookDelivery.objects(id=delivery.id, status="pending", next_attempt_at__lte=now).modify(
        new=True, inc__attempts=1, set__next_attempt_at=utcnow() + CLAIM_FOR
    )
    if claimed is None:
        return "skipped"
    webhook = Webhook.objects(id=claimed.webhook_id).first()
    if webhook is None or not webhook.active:
        WebhookDelivery.objects(id=claimed.id).update_one(
            set__status="failed", set__last_error="the webhook is disabled or gone"
        )
        return "failed"
    ok, entry = _attempt(webhook, claimed, session)
    logged = {"attemptLog": {"$each": [entry], "$slice": -LOG_KEEP}}
    if ok:
        WebhookDelivery.objects(id=claimed.id).update_one(
            __raw__={
                "$set": {"status": "delivered", "deliveredAt": utcnow()},
                "$unset": {"lastError": ""},
                "$push": logged,
            }
        )
        Webhook.objects(id=webhook.id).update_one(set__consecutive_failures=0)
        return "delivered"
    exhausted = claimed.attempts >= current_app.config["WEBHOOK_MAX_ATTEMPTS"]
    changes: dict[str, Any] = {"lastError": entry.get("error")}
    if exhausted:
        changes["status"] = "failed"
    else:
        changes["nextAttemptAt"] = utcnow() + _backoff(claimed.attempts)
    WebhookDelivery.objects(id=claimed.id).update_one(__raw__={"$set": changes, "$push": logged})
    if exhausted:
        _disable_if_failing(webhook)
        return "failed"
    return "retrying"


def deliver_pending(now: datetime | None = None, session: requests.Session | None = None) -> dict[str, int]:
    """Attempt every delivery that is due, tenant by tenant (suspended tenants too: they get events)."""
    now = now or utcnow()
    session = session or requests.Session()
    counts = {"delivered": 0, "retrying": 0, "failed": 0, "skipped": 0}
    batch = current_app.config["DISPATCH_BATCH"]
    for tenant in Tenant.objects(pending="webhooks"):
        with tenant_scope(tenant):
            Tenant.clear_pending(tenant.id, "webhooks")
            due = WebhookDelivery.objects(status="pending", next_attempt_at__lte=now).order_by(
                "next_attempt_at", "id"
            )
            for delivery in list(due.limit(batch)):
                counts[_deliver(delivery, now, session)] += 1
            if WebhookDelivery.objects(status="pending").first() is not None:
                Tenant.mark_pending(tenant.id, "webhooks")
    return counts
