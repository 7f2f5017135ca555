"""The seams between packages: events travel as signals (app/signals.py) to the audit log, the
webhooks and the accounts, and the tenancy core works with whatever directory of tenants it is given."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from bson import ObjectId
from flask import Flask, jsonify

from app import signals
from app.audit import service as audit_service
from app.auth import cache as credentials_cache
from app.errors import register_error_handlers
from app.tenancy import middleware
from app.tenancy.access import public
from app.tenancy.context import current_tenant, tenant_scope
from app.tenancy.resolver import TenantDirectory
from app.usage import service as usage
from app.users import service as users_service
from app.users.models import User
from app.webhooks import events as webhook_events
from app.webhooks.models import WebhookDelivery

from .support import audit_entries, created, set_limits, update_tenant

pytestmark = pytest.mark.multitenant


@contextmanager
def disconnected(signal: Any, receiver: Any) -> Iterator[None]:
    """Run the block with `receiver` not connected to `signal`, as if its package had not connected it."""
    signal.disconnect(receiver)
    try:
        yield
    finally:
        signal.connect(receiver)


def subscribe(client, headers, event: str) -> None:
    """Subscribe a webhook of the tenant to `event`, through the API."""
    body = {"url": f"https://hooks.acme.example.com/{event}", "events": [event]}
    created(client.post("/api/v1/webhooks", headers=headers, json=body))


@pytest.fixture
def watched(client, tenant, auth_headers):
    """A tenant whose plan allows 10 messages a month, alerted at half, with a webhook for the alert."""
    subscribe(client, auth_headers, "usage.threshold")
    set_limits(tenant, messagesPerMonth=10)
    return update_tenant(tenant, set__settings__notifications__usage_alert_thresholds=[50])


def cross_half(tenant) -> None:
    with tenant_scope(tenant):
        usage.reserve("messagesPerMonth", 5)


def queued(tenant, event: str) -> list[WebhookDelivery]:
    with tenant_scope(tenant):
        return list(WebhookDelivery.objects(event=event))


class TestUsageAlerts:
    def test_a_crossed_threshold_reaches_the_audit_log_and_the_webhooks(self, watched):
        cross_half(watched)
        (entry,) = audit_entries(watched, "usage.threshold_crossed")
        assert entry.summary == {"resource": "messagesPerMonth", "threshold": 50, "used": 5, "limit": 10} | {
            "period": entry.summary["period"]
        }
        (delivery,) = queued(watched, "usage.threshold")
        assert delivery.payload["data"] == entry.summary

    def test_a_receiver_not_connected_writes_nothing(self, watched):
        with disconnected(signals.usage_threshold_crossed, audit_service._usage_threshold_crossed):
            cross_half(watched)
        assert audit_entries(watched, "usage.threshold_crossed") == []
        assert len(queued(watched, "usage.threshold")) == 1

    def test_a_webhook_receiver_not_connected_queues_nothing(self, watched):
        with disconnected(signals.usage_threshold_crossed, webhook_events._usage_threshold_crossed):
            cross_half(watched)
        assert queued(watched, "usage.threshold") == []
        assert len(audit_entries(watched, "usage.threshold_crossed")) == 1

    @pytest.fixture
    def earlier_app(self, app_factory):
        """An app built before the test's own (which is then the one connected to the database)."""
        return app_factory()

    def test_two_apps_in_one_process_deliver_once(self, earlier_app, watched):
        cross_half(watched)
        assert len(audit_entries(watched, "usage.threshold_crossed")) == 1
        assert len(queued(watched, "usage.threshold")) == 1

    def test_a_failing_receiver_fails_the_sender_as_a_direct_call_did(self, watched):
        def broken(_sender, **_data):
            raise RuntimeError("audit store down")

        with disconnected(signals.usage_threshold_crossed, audit_service._usage_threshold_crossed):
            signals.usage_threshold_crossed.connect(broken)
            try:
                with pytest.raises(RuntimeError, match="audit store down"):
                    cross_half(watched)
            finally:
                signals.usage_threshold_crossed.disconnect(broken)


class TestWebhookEvents:
    @pytest.fixture(autouse=True)
    def subscribed(self, client, auth_headers):
        subscribe(client, auth_headers, "campaign.completed")

    def test_notify_queues_for_the_subscribed_webhooks(self, tenant):
        with tenant_scope(tenant):
            signals.notify_many("campaign.completed", [{"n": 1}, {"n": 2}])
            signals.notify_many("campaign.completed", [])
        assert sorted(d.payload["data"]["n"] for d in queued(tenant, "campaign.completed")) == [1, 2]

    def test_without_the_receiver_nothing_is_queued(self, tenant):
        with disconnected(signals.webhook_event, webhook_events._webhook_event), tenant_scope(tenant):
            signals.notify("campaign.completed", {"n": 1})
        assert queued(tenant, "campaign.completed") == []


class TestTenantMismatch:
    def mismatch(self, client, auth_headers, other_tenant):
        response = client.get(
            "/api/v1/tenants/current", headers={**auth_headers, "X-Tenant-Id": other_tenant.slug}
        )
        assert response.status_code == 403 and response.json["error"]["code"] == "tenant_mismatch"

    def test_the_refusal_reaches_the_audit_log(self, client, tenant, other_tenant, auth_headers):
        self.mismatch(client, auth_headers, other_tenant)
        (entry,) = audit_entries(tenant, "auth.tenant_mismatch")
        assert entry.summary == {
            "hint": "header",
            "namedTenant": str(other_tenant.id),
            "path": "/api/v1/tenants/current",
        }

    def test_without_the_receiver_the_refusal_stands_and_nothing_is_written(
        self, client, tenant, other_tenant, auth_headers
    ):
        with disconnected(signals.tenant_mismatch, audit_service._tenant_mismatch):
            self.mismatch(client, auth_headers, other_tenant)
        assert audit_entries(tenant, "auth.tenant_mismatch") == []


class TestCredentialsChanged:
    def test_the_credential_cache_forgets(self, app):
        credentials_cache.auth_cache().get("probe", lambda: "cached")
        signals.credentials_changed.send()
        assert credentials_cache.auth_cache().get("probe", lambda: "loaded again") == "loaded again"

    def test_without_the_receiver_the_cache_keeps_its_entries(self, app):
        credentials_cache.auth_cache().get("probe", lambda: "cached")
        with disconnected(signals.credentials_changed, credentials_cache.forget):
            signals.credentials_changed.send()
        assert credentials_cache.auth_cache().get("probe", lambda: "loaded again") == "cached"


class TestSecondFactorRequired:
    def require(self, client, headers):
        return client.patch(
            "/api/v1/tenants/current/settings", headers=headers, json={"security": {"require2fa": True}}
        )

    def test_the_accounts_refuse_a_requester_without_one(self, client, tenant, auth_headers):
        response = self.require(client, auth_headers)
        assert response.status_code == 422
        assert "require2fa" in response.json["error"]["details"]["security"]

    def test_without_the_receivers_nothing_is_refused_and_no_session_ends(
        self, client, tenant, owner, auth_headers
    ):
        with (
            disconnected(signals.requiring_second_factor, users_service._check_enrolled),
            disconnected(signals.second_factor_required, users_service._end_sessions_without_second_factor),
        ):
            assert self.require(client, auth_headers).status_code == 200
        with tenant_scope(tenant):
            assert User.objects.get(id=owner.id).token_version == owner.token_version


@dataclass
class Record:
    """A tenant as the core sees it, with no model and no database behind it."""

    slug: str
    is_active: bool = True
    ip_whitelist: list[str] = field(default_factory=list)
    id: ObjectId = field(default_factory=ObjectId)


class TestInjectedDirectory:
    """The core resolves through the directory it is given: here a dict, on a bare Flask app."""

    @pytest.fixture
    def bare(self):
        records = {r.slug: r for r in (Record("acme"), Record("initech", is_active=False))}
        records["walled"] = Record("walled", ip_whitelist=["10.0.0.0/8"])
        by_id = {r.id: r for r in records.values()}
        directory = TenantDirectory(
            by_id=lambda tenant_id: by_id.get(tenant_id),
            by_slug=records.get,
            by_domain={"marketing.acme.io": records["acme"]}.get,
            reserved={"www"},
        )
        app = Flask(__name__)
        app.config.update(ENABLE_MULTI_TENANT=True, BASE_DOMAIN="example.com", TENANT_DEBUG=False)
        middleware.init_app(app, lambda _rule: None, directory)
        register_error_handlers(app)

        @app.get("/which")
        @public
        def which():
            tenant = current_tenant()
            return jsonify(slug=tenant.slug if tenant else None)

        return app.test_client()

    def test_hints_are_resolved_through_the_directory(self, bare):
        assert bare.get("/which", headers={"X-Tenant-Id": "acme"}).json == {"slug": "acme"}
        assert bare.get("/which", base_url="http://acme.example.com").json == {"slug": "acme"}
        assert bare.get("/which", base_url="http://marketing.acme.io").json == {"slug": "acme"}

    def test_the_slug_rule_comes_with_the_directory(self, bare):
        assert bare.get("/which", base_url="http://www.example.com").json == {"slug": None}
        missing = bare.get("/which", base_url="http://api.example.com")
        assert missing.status_code == 404 and missing.json["error"]["code"] == "tenant_not_found"

    def test_status_and_whitelist_are_read_from_the_record(self, bare):
        suspended = bare.get("/which", headers={"X-Tenant-Id": "initech"})
        assert suspended.status_code == 403 and suspended.json["error"]["code"] == "tenant_suspended"
        walled = bare.get("/which", headers={"X-Tenant-Id": "walled"})
        assert walled.status_code == 403 and walled.json["error"]["code"] == "ip_not_allowed"
        inside = bare.get(
            "/which", headers={"X-Tenant-Id": "walled"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
        )
        assert inside.json == {"slug": "walled"}
