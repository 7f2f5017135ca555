"""Quotas never overshoot: limits are checked and consumed in one atomic conditional update."""

from __future__ import annotations

import pytest

from app.campaigns.models import Campaign
from app.errors import LimitExceeded
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.usage import service as usage
from app.usage.models import UsageCounter

from .support import run_together, set_limits

pytestmark = pytest.mark.multitenant

THREADS = 50
REPETITIONS = 20


def _create_campaign(tenant, index):
    from app.campaigns.service import create_campaign
    from app.tenancy.access import Principal

    author = Principal(subject="tester", role="owner", tenant_id=tenant.id, via="access_token")
    with tenant_scope(tenant):
        return create_campaign(
            {"name": f"c{index}", "message": {"text": "hi"}, "targets": ["@channel1"]}, author
        )


def test_fifty_threads_never_create_more_campaigns_than_the_limit(app, tenant, frequent_thread_switches):
    for repetition in range(REPETITIONS):
        fresh = set_limits(tenant, campaigns=10)
        with tenant_scope(fresh):
            Campaign.objects.delete()
        Tenant.objects(id=tenant.id).update(set__usage__campaigns=0)
        results = run_together(THREADS, lambda i, t=fresh: _create_campaign(t, i))
        created = [r for r in results if isinstance(r, Campaign)]
        refused = [r for r in results if isinstance(r, LimitExceeded)]
        assert len(created) == 10, repetition
        assert len(refused) == THREADS - 10, [
            r for r in results if not isinstance(r, (Campaign, LimitExceeded))
        ]
        with tenant_scope(fresh):
            assert Campaign.objects.count() == 10
        assert Tenant.objects.get(id=tenant.id).usage.campaigns == 10


def test_bulk_reservations_are_all_or_nothing_under_concurrency(app, tenant, frequent_thread_switches):
    for repetition in range(REPETITIONS):
        fresh = set_limits(tenant, messagesPerMonth=100)
        with tenant_scope(fresh):
            UsageCounter.objects.delete()

        def reserve_seven(_index, t=fresh):
            with tenant_scope(t):
                usage.reserve("messagesPerMonth", 7)
            return 7

        results = run_together(THREADS, reserve_seven)
        granted = sum(r for r in results if r == 7)
        assert granted == 98, repetition  # 14 reservations of 7 fit in 100; a 15th would overshoot
        assert all(isinstance(r, LimitExceeded) for r in results if r != 7)
        with tenant_scope(fresh):
            assert UsageCounter.objects.get(resource="messagesPerMonth").used == 98


def test_a_failing_create_does_not_consume_quota(app, tenant, monkeypatch):
    fresh = set_limits(tenant, campaigns=1)

    def broken_save(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Campaign, "save", broken_save)
    with pytest.raises(RuntimeError):
        _create_campaign(fresh, 0)
    monkeypatch.undo()
    assert Tenant.objects.get(id=tenant.id).usage.campaigns == 0
    assert isinstance(_create_campaign(fresh, 1), Campaign)


def test_a_bulk_reservation_over_the_rest_reserves_nothing(app, tenant):
    fresh = set_limits(tenant, messagesPerMonth=10)
    with tenant_scope(fresh):
        usage.reserve("messagesPerMonth", 6)
        with pytest.raises(LimitExceeded) as raised:
            usage.reserve("messagesPerMonth", 5)
        assert raised.value.details == {
            "resource": "messagesPerMonth",
            "limit": 10,
            "used": 6,
            "requested": 5,
        }
        usage.reserve("messagesPerMonth", 4)
        assert UsageCounter.objects.get().used == 10


def test_a_new_month_starts_at_zero_without_a_job(app, tenant, monkeypatch):
    from datetime import UTC, datetime

    fresh = set_limits(tenant, messagesPerMonth=10)
    monkeypatch.setattr("app.clock.utcnow", lambda: datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    with tenant_scope(fresh):
        usage.reserve("messagesPerMonth", 10)
        with pytest.raises(LimitExceeded):
            usage.reserve("messagesPerMonth", 1)
    monkeypatch.setattr("app.clock.utcnow", lambda: datetime(2026, 11, 1, 0, 0, tzinfo=UTC))
    with tenant_scope(fresh):
        usage.reserve("messagesPerMonth", 10)
        assert sorted((c.period, c.used) for c in UsageCounter.objects) == [("2026-10", 10), ("2026-11", 10)]


def test_unlimited_is_not_refused(app, tenant):
    fresh = set_limits(tenant, messagesPerMonth=None, campaigns=None)
    with tenant_scope(fresh):
        usage.reserve("messagesPerMonth", 10**9)
        usage.reserve("campaigns", 10**6)
    assert Tenant.objects.get(id=tenant.id).usage.campaigns == 10**6


def test_refund_never_goes_below_zero(app, tenant):
    with tenant_scope(tenant):
        usage.refund("campaigns", 5)
        usage.refund("messagesPerMonth", 5)
    assert Tenant.objects.get(id=tenant.id).usage.campaigns == 0


def test_a_reservation_takes_the_last_unit_and_the_next_one_is_refused(app, tenant):
    fresh = set_limits(tenant, campaigns=1)
    with tenant_scope(fresh):
        assert usage.used(fresh, "campaigns") + 1 <= usage.limit_of(fresh, "campaigns")
        usage.reserve("campaigns")
        assert usage.used(fresh, "campaigns") == usage.limit_of(fresh, "campaigns") == 1
        with pytest.raises(LimitExceeded):
            usage.reserve("campaigns")
    assert Tenant.objects.get(id=tenant.id).usage.campaigns == 1
