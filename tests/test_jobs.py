"""Scheduled jobs: the schedule, the leader lease, and the monthly close, retention and reconciliation.

Jobs are called directly (with a fixed `now`), through run_job() and through the `flask jobs` commands,
on documents created directly in each tenant's scope.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from bson import ObjectId

from app import leases
from app.audit.models import Actor, AuditLog
from app.billing import closing
from app.campaigns.models import Campaign, CampaignMessage
from app.clock import utcnow
from app.errors import Conflict, LimitExceeded
from app.jobs import (
    SCHEDULE,
    Job,
    build_scheduler,
    deletion_sweep,
    job_named,
    monthly_close,
    reconcile,
    retention,
    run_job,
    run_scheduler,
    trial_end,
    wait_for_lease,
)
from app.jobs.common import each_tenant
from app.leases import SCHEDULER, Lease
from app.maintenance import reconcile as reconcile_service
from app.maintenance import retention as retention_service
from app.media.models import MediaFile
from app.messages.models import Message
from app.telegram_accounts.models import TelegramAccount
from app.tenancy import collection, context, documents
from app.tenancy.access import Principal
from app.tenancy.context import (
    TenantContextMissing,
    TenantState,
    current_state,
    current_tenant_id,
    tenant_scope,
    unscoped,
)
from app.tenancy.registry import global_document_classes, tenant_document_classes
from app.tenants.admin import DELETING
from app.tenants.models import Tenant
from app.tenants.plans import GB, LIMIT_NAMES
from app.tenants.service import create_tenant
from app.usage import service as usage
from app.usage.models import UsageCounter, UsageSnapshot
from app.users import owners
from app.users.models import EmailDirectory, User
from app.users.service import update_user
from app.webhooks.models import Webhook, WebhookDelivery

from .support import run_together, update_tenant

pytestmark = pytest.mark.multitenant

THREADS = 8
REPETITIONS = 5
SECOND = timedelta(seconds=1)
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


def dump(tenant_id=None):
    """Every stored document as MongoDB holds it: one tenant's (and its record), or the whole database."""
    documents = {}
    with unscoped("test: compare stored documents before and after a job"):
        for cls in tenant_document_classes():
            found = cls.objects if tenant_id is None else cls.objects(tenant_id=tenant_id)
            documents[cls.__name__] = sorted(
                (doc.to_mongo().to_dict() for doc in found), key=lambda doc: str(doc["_id"])
            )
        for cls in global_document_classes():
            if tenant_id is None or cls is Tenant:
                found = cls.objects if tenant_id is None else cls.objects(id=tenant_id)
                documents[cls.__name__] = sorted(
                    (doc.to_mongo().to_dict() for doc in found), key=lambda doc: str(doc["_id"])
                )
    return documents


# -- the schedule and the commands -----------------------------------------------------------------


MAINTENANCE = [job for job in SCHEDULE if job.name in ("monthly-close", "retention-purge", "usage-reconcile")]


def test_the_schedule_names_every_job(app):
    assert [job.name for job in SCHEDULE] == [
        "monthly-close",
        "retention-purge",
        "usage-reconcile",
        "deletion-sweep",
        "billing-overdue",
        "trial-end",
        "ab-test-winners",
    ]
    assert job_named("monthly-close").func is monthly_close.run
    assert job_named("trial-end").func is trial_end.run
    assert job_named("retention-purge").func is retention.run
    assert job_named("usage-reconcile").func is reconcile.run
    with pytest.raises(KeyError):
        job_named("nightly-backup")


def test_jobs_list_prints_every_job(app):
    result = app.test_cli_runner().invoke(args=["jobs", "list"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(SCHEDULE)
    for job, line in zip(SCHEDULE, lines, strict=True):
        assert line.split()[0] == job.name
        assert job.trigger(app.config)["trigger"] in line
        assert job.description in line


def test_jobs_run_once_runs_the_named_job_and_prints_its_result(app, tenant):
    acme = update_tenant(
        tenant,
        set__created_at=LONG_AGO,
        set__usage__campaigns=7,
        set__settings__compliance__gdpr_enabled=True,
        set__settings__compliance__data_retention_days=30,
    )
    with tenant_scope(acme):
        expired = message("sent", utcnow() - timedelta(days=31))
    runner = app.test_cli_runner()

    printed = {}
    for job in SCHEDULE:
        result = runner.invoke(args=["jobs", "run-once", job.name])
        assert result.exit_code == 0, result.output
        printed[job.name] = result.output

    assert printed["usage-reconcile"] == f"usage-reconcile: { ({'tenants': 1, 'repaired': 1}) }\n"
    assert Tenant.objects.get(id=acme.id).usage.campaigns == 0
    assert printed["retention-purge"] == "retention-purge: {}\n".format(
        {"tenants": 1, "messages": 1, "webhookDeliveries": 0, "auditLogs": 0}
    )
    with tenant_scope(acme):
        assert Message.objects(id=expired.id).first() is None
        assert UsageSnapshot.objects.count() == 1
    assert printed["monthly-close"].startswith("monthly-close: {'period': ")
    assert printed["monthly-close"].endswith("'closed': 1, 'alreadyClosed': 0, 'invoiced': 1}\n")


def test_the_scheduler_process_refuses_the_embedded_store(app):
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code != 0
    assert "embedded store" in result.output and "runs the scheduler itself" in result.output
    assert Lease.objects.count() == 0  # it never started


def test_jobs_run_once_with_an_unknown_name_fails_and_lists_the_jobs(app, tenant):
    update_tenant(tenant, set__usage__campaigns=7)

    result = app.test_cli_runner().invoke(args=["jobs", "run-once", "nightly-backup"])

    assert result.exit_code != 0
    assert "nightly-backup" in result.output
    for job in SCHEDULE:
        assert job.name in result.output
    assert Tenant.objects.get(id=tenant.id).usage.campaigns == 7  # nothing ran


# -- the lease -------------------------------------------------------------------------------------


def expire_lease():
    Lease.objects(name=SCHEDULER).update(set__expires_at=utcnow() - SECOND)


def test_a_lease_has_one_holder_until_it_expires(app):
    assert leases.acquire(SCHEDULER, "host-a", 60)
    assert leases.holds(SCHEDULER, "host-a")
    assert not leases.holds(SCHEDULER, "host-b")

    assert not leases.acquire(SCHEDULER, "host-b", 60)
    assert leases.holds(SCHEDULER, "host-a")
    assert not leases.holds(SCHEDULER, "host-b")

    before = Lease.objects.get(name=SCHEDULER).expires_at
    assert leases.acquire(SCHEDULER, "host-a", 120)  # a renewal
    assert Lease.objects.get(name=SCHEDULER).expires_at > before
    assert leases.holds(SCHEDULER, "host-a")

    expire_lease()  # host-a stopped renewing
    assert not leases.holds(SCHEDULER, "host-a")
    assert leases.acquire(SCHEDULER, "host-b", 60)
    assert leases.holds(SCHEDULER, "host-b")
    assert not leases.holds(SCHEDULER, "host-a")
    assert not leases.acquire(SCHEDULER, "host-a", 60)  # the old leader's renewal fails
    assert leases.holds(SCHEDULER, "host-b")
    assert Lease.objects.count() == 1


def test_a_released_lease_is_taken_over_at_once(app):
    assert leases.acquire(SCHEDULER, "host-a", 60)
    assert not leases.acquire(SCHEDULER, "host-b", 60)

    leases.release(SCHEDULER, "host-a")
    assert not leases.holds(SCHEDULER, "host-a")
    assert leases.acquire(SCHEDULER, "host-b", 60)
    assert leases.holds(SCHEDULER, "host-b")

    leases.release(SCHEDULER, "host-a")  # a late release by the old holder takes nothing from the new one
    assert leases.holds(SCHEDULER, "host-b")
    assert not leases.acquire(SCHEDULER, "host-a", 60)


def test_holders_racing_for_a_free_lease_get_exactly_one_leader(app, frequent_thread_switches):
    for repetition in range(REPETITIONS):
        results = run_together(
            THREADS, lambda i, r=repetition: leases.acquire(SCHEDULER, f"host-{r}-{i}", 60)
        )

        assert all(r is None or isinstance(r, Lease) for r in results), results
        winners = [i for i, won in enumerate(results) if won]
        assert len(winners) == 1, (repetition, results)
        leader = f"host-{repetition}-{winners[0]}"
        assert leases.holds(SCHEDULER, leader)
        assert [i for i in range(THREADS) if leases.holds(SCHEDULER, f"host-{repetition}-{i}")] == winners
        assert Lease.objects.count() == 1
        leases.release(SCHEDULER, leader)


def test_run_job_runs_only_while_the_holder_holds_the_lease(app):
    calls = []
    probe = Job("probe", lambda: calls.append("ran") or "done", {"trigger": "interval", "seconds": 60}, "P.")

    assert run_job(app, probe) == "done"  # without a holder (run-once): no lease needed
    assert run_job(app, probe, "host-a") is None  # never held it
    assert leases.acquire(SCHEDULER, "host-a", 60)
    assert run_job(app, probe, "host-a") == "done"

    expire_lease()
    assert leases.acquire(SCHEDULER, "host-b", 60)
    assert run_job(app, probe, "host-a") is None  # fenced: host-a lost the lease
    assert run_job(app, probe, "host-b") == "done"
    assert calls == ["ran", "ran", "ran"]


def test_build_scheduler_holds_every_job_and_a_lease_renewal(app):
    scheduler = build_scheduler(app, "host-a")

    scheduled = {job.id: job for job in scheduler.get_jobs()}
    assert set(scheduled) == {job.name for job in SCHEDULE} | {"lease-renewal", "stop-check"}
    for job in SCHEDULE:
        entry = scheduled[job.name]
        assert entry.func is run_job
        assert entry.args == (app, job, "host-a")  # every run is fenced by the lease
        expected = CronTrigger if job.trigger(app.config)["trigger"] == "cron" else IntervalTrigger
        assert isinstance(entry.trigger, expected)
    mid_november = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
    assert scheduled["monthly-close"].trigger.get_next_fire_time(None, mid_november) == datetime(
        2026, 12, 1, 0, 5, tzinfo=UTC
    )
    assert scheduled["retention-purge"].trigger.get_next_fire_time(None, mid_november) == datetime(
        2026, 11, 16, 3, 0, tzinfo=UTC
    )
    assert scheduled["usage-reconcile"].trigger.get_next_fire_time(None, mid_november) == datetime(
        2026, 11, 15, 12, 17, tzinfo=UTC
    )
    ttl = timedelta(seconds=app.config["SCHEDULER_LEASE_TTL"])
    assert scheduled["lease-renewal"].trigger.interval <= ttl / 2  # renewed well before it expires


def test_the_lease_renewal_extends_the_lease_and_stops_the_scheduler_once_lost(app, monkeypatch):
    scheduler = build_scheduler(app, "host-a")
    stops = []
    monkeypatch.setattr(scheduler, "shutdown", lambda wait=True: stops.append(wait))
    renew = scheduler.get_job("lease-renewal").func
    assert leases.acquire(SCHEDULER, "host-a", 60)
    soon = utcnow() + 5 * SECOND
    Lease.objects(name=SCHEDULER).update(set__expires_at=soon)

    renew()
    assert Lease.objects.get(name=SCHEDULER).expires_at > soon
    assert leases.holds(SCHEDULER, "host-a")
    assert stops == []

    expire_lease()
    assert leases.acquire(SCHEDULER, "host-b", 60)
    renew()
    assert stops == [False]
    assert leases.holds(SCHEDULER, "host-b")


class CountedStop(threading.Event):
    """A stop event that records how long each wait was, and is set after `waits` of them."""

    def __init__(self, waits: int = 1_000):
        super().__init__()
        self.waits = waits
        self.waited: list[float] = []

    def wait(self, timeout=None):
        self.waited.append(timeout)
        if len(self.waited) >= self.waits:
            self.set()
        return self.is_set()


def test_wait_for_lease_returns_at_once_when_the_lease_is_free_or_expired(app_factory):
    app = app_factory(SCHEDULER_POLL_SECONDS=1)
    stop = CountedStop()

    assert wait_for_lease(app, "host-a", stop) is True
    with app.app_context():
        assert leases.holds(SCHEDULER, "host-a")
        expire_lease()
    assert wait_for_lease(app, "host-b", stop) is True
    with app.app_context():
        assert leases.holds(SCHEDULER, "host-b")
    assert stop.waited == []


def test_wait_for_lease_gives_up_when_told_while_another_holder_leads(app_factory):
    app = app_factory(SCHEDULER_POLL_SECONDS=1)
    with app.app_context():
        assert leases.acquire(SCHEDULER, "host-b", 60)
    stop = CountedStop(waits=1)

    assert wait_for_lease(app, "host-a", stop) is False
    assert stop.waited == [1]  # one poll, then it waited SCHEDULER_POLL_SECONDS and was told to stop
    with app.app_context():
        assert leases.holds(SCHEDULER, "host-b")
        assert not leases.holds(SCHEDULER, "host-a")


def test_the_scheduler_stops_when_asked_and_gives_the_lease_up(app_factory):
    app = app_factory(SCHEDULER_POLL_SECONDS=1)
    stop = threading.Event()
    scheduler = threading.Thread(target=run_scheduler, args=(app, stop), daemon=True)
    scheduler.start()
    with app.app_context():
        deadline = time.monotonic() + 10
        while not Lease.objects(name=SCHEDULER).first():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    stop.set()
    scheduler.join(timeout=10)
    assert not scheduler.is_alive()
    with app.app_context():
        assert Lease.objects(name=SCHEDULER).count() == 0  # a waiting copy may take over at once


def test_sigterm_ends_jobs_run_and_gives_the_lease_up(app_factory, monkeypatch):
    """`flask jobs run` as a process of its own: it leads, and SIGTERM ends it, the lease released."""
    app = app_factory(SCHEDULER_POLL_SECONDS=1)
    monkeypatch.setattr("app.cli._refuse_embedded", lambda process: None)  # one process: the test's
    held = []

    def terminate_once_leading() -> None:
        with app.app_context():
            deadline = time.monotonic() + 10
            while not (lease := Lease.objects(name=SCHEDULER).first()):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            held.append(lease.holder)
        os.kill(os.getpid(), signal.SIGTERM)

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    terminator = threading.Thread(target=terminate_once_leading)
    terminator.start()
    try:
        result = app.test_cli_runner().invoke(args=["jobs", "run"])
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    terminator.join()

    assert result.exit_code == 0, result.output
    assert held[0].split(":")[1] == str(os.getpid())  # this process led
    with app.app_context():
        assert Lease.objects(name=SCHEDULER).count() == 0  # a waiting copy may take over at once


# -- monthly close ---------------------------------------------------------------------------------

CLOSE_NOW = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
ACME_OCTOBER = {
    "users": {"used": 3, "limit": 100},
    "campaigns": {"used": 12, "limit": 200},
    "messagesPerMonth": {"used": 1234, "limit": 2000},  # the tenant's override wins over the plan
    "telegramAccounts": {"used": 2, "limit": 10},
    "storage": {"used": 5000, "limit": 10 * GB},
    "webhooks": {"used": 4, "limit": 20},
}
GLOBEX_OCTOBER = {
    "users": {"used": 1, "limit": 20},
    "campaigns": {"used": 2, "limit": 50},
    "messagesPerMonth": {"used": 77, "limit": 10_000},
    "telegramAccounts": {"used": 0, "limit": 3},
    "storage": {"used": 0, "limit": 1 * GB},
    "webhooks": {"used": 0, "limit": 5},
}


@pytest.fixture
def october(tenant, other_tenant):
    """acme (signed up long ago) and globex (one second before November), with October's usage."""
    acme = update_tenant(
        tenant,
        set__created_at=LONG_AGO,
        set__limits={"messagesPerMonth": 2000},
        set__usage__users=3,
        set__usage__campaigns=12,
        set__usage__telegram_accounts=2,
        set__usage__webhooks=4,
        set__usage__storage=5000,
    )
    globex = update_tenant(
        other_tenant,
        set__created_at=datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC),
        set__usage__users=1,
        set__usage__campaigns=2,
    )
    with tenant_scope(acme):
        UsageCounter(resource="messagesPerMonth", period="2026-09", used=999).save()
        UsageCounter(resource="messagesPerMonth", period="2026-10", used=1234).save()
        UsageCounter(resource="messagesPerMonth", period="2026-11", used=5).save()
    with tenant_scope(globex):
        UsageCounter(resource="messagesPerMonth", period="2026-10", used=77).save()
    return acme, globex


def snapshots():
    with unscoped("test: read every tenant's snapshots"):
        return {(snap.tenant_id, snap.period): snap for snap in UsageSnapshot.objects}


def without_api_calls(resources):
    """An hourly rate limit has no monthly usage; its limit is checked on its own."""
    return {name: value for name, value in resources.items() if name != "apiCallsPerHour"}


def assert_october_closed(acme, globex):
    found = snapshots()
    assert set(found) == {(acme.id, "2026-10"), (globex.id, "2026-10")}
    for tenant, plan, expected, api_calls in (
        (acme, "professional", ACME_OCTOBER, 20_000),
        (globex, "starter", GLOBEX_OCTOBER, 5_000),
    ):
        snap = found[(tenant.id, "2026-10")]
        assert snap.plan == plan
        assert set(snap.resources) == set(LIMIT_NAMES)
        assert without_api_calls(snap.resources) == expected
        assert snap.resources["apiCallsPerHour"]["limit"] == api_calls


@pytest.mark.parametrize(
    ("now", "period"),
    [
        (datetime(2026, 11, 1, 0, 5, tzinfo=UTC), "2026-10"),
        (datetime(2026, 11, 20, 9, 0, tzinfo=UTC), "2026-10"),
        (datetime(2027, 1, 1, 0, 5, tzinfo=UTC), "2026-12"),
        (datetime(2026, 3, 31, 23, 59, tzinfo=UTC), "2026-02"),
    ],
)
def test_the_period_closed_is_the_month_before_now(now, period):
    assert closing.previous_period(now) == period


def test_monthly_close_writes_one_snapshot_per_tenant_for_the_month_that_ended(app, october):
    acme, globex = october

    assert monthly_close.run(now=CLOSE_NOW) == {
        "period": "2026-10",
        "closed": 2,
        "alreadyClosed": 0,
        "invoiced": 2,
    }

    assert_october_closed(acme, globex)


def test_a_second_run_of_the_monthly_close_changes_nothing(app, october):
    acme, globex = october
    monthly_close.run(now=CLOSE_NOW)
    before = dump()

    assert monthly_close.run(now=CLOSE_NOW) == {
        "period": "2026-10",
        "closed": 0,
        "alreadyClosed": 2,
        "invoiced": 0,
    }

    assert dump() == before
    assert_october_closed(acme, globex)


def test_a_late_monthly_close_closes_the_same_period_once(app, october):
    acme, globex = october

    late = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert monthly_close.run(now=late) == {
        "period": "2026-10",
        "closed": 2,
        "alreadyClosed": 0,
        "invoiced": 2,
    }
    assert_october_closed(acme, globex)
    before = dump()

    assert monthly_close.run(now=CLOSE_NOW) == {
        "period": "2026-10",
        "closed": 0,
        "alreadyClosed": 2,
        "invoiced": 0,
    }
    assert monthly_close.run(now=late) == {
        "period": "2026-10",
        "closed": 0,
        "alreadyClosed": 2,
        "invoiced": 0,
    }
    assert dump() == before


def test_concurrent_monthly_closes_write_each_snapshot_once(app, october, frequent_thread_switches):
    acme, globex = october
    for repetition in range(REPETITIONS):
        with unscoped("test: start the repetition without snapshots"):
            UsageSnapshot.objects.delete()

        def close(_index):
            with app.app_context():  # as run_job gives every job
                return monthly_close.run(now=CLOSE_NOW)

        results = run_together(THREADS, close)

        assert all(isinstance(r, dict) for r in results), results
        assert {r["period"] for r in results} == {"2026-10"}
        assert sum(r["closed"] for r in results) == 2, (repetition, results)
        assert sum(r["alreadyClosed"] for r in results) == 2 * (THREADS - 1), (repetition, results)
        assert_october_closed(acme, globex)


def test_a_tenant_created_after_the_period_ended_gets_no_snapshot(app, october):
    acme, globex = october
    initech = update_tenant(
        create_tenant("Initech", "initech"), set__created_at=datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    )

    assert monthly_close.run(now=CLOSE_NOW) == {
        "period": "2026-10",
        "closed": 2,
        "alreadyClosed": 0,
        "invoiced": 2,
    }

    assert (initech.id, "2026-10") not in snapshots()
    with tenant_scope(initech):
        assert UsageSnapshot.objects.count() == 0
    assert_october_closed(acme, globex)


def test_closing_a_batch_of_one_tenant_is_idempotent_and_resets_no_counter(app, october):
    acme, globex = october
    stored = Tenant.objects(id=acme.id).as_pymongo().first()

    assert closing.close_batch([stored], "2026-10", CLOSE_NOW) == {
        "closed": 1,
        "alreadyClosed": 0,
        "invoiced": 1,
    }
    first = dump()
    assert closing.close_batch([stored], "2026-10", CLOSE_NOW) == {
        "closed": 0,
        "alreadyClosed": 1,
        "invoiced": 0,
    }

    assert dump() == first
    assert set(snapshots()) == {(acme.id, "2026-10")}
    with tenant_scope(acme):
        resources = UsageSnapshot.objects.get(period="2026-10").resources
        assert without_api_calls(resources) == ACME_OCTOBER
        # closing records the month; it resets no counter
        assert UsageCounter.objects.get(period="2026-10").used == 1234
    assert current_tenant_id() is None


def test_a_new_month_starts_at_zero_without_the_monthly_close(app, tenant, monkeypatch):
    acme = update_tenant(tenant, set__created_at=LONG_AGO, set__limits={"messagesPerMonth": 10})
    monkeypatch.setattr("app.clock.utcnow", lambda: datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    with tenant_scope(acme):
        usage.reserve("messagesPerMonth", 10)
        with pytest.raises(LimitExceeded):
            usage.reserve("messagesPerMonth", 1)

    monkeypatch.setattr("app.clock.utcnow", lambda: datetime(2026, 11, 1, 0, 1, tzinfo=UTC))
    with tenant_scope(acme):
        usage.reserve("messagesPerMonth", 10)  # before the job has run

    assert monthly_close.run(now=CLOSE_NOW)["closed"] == 1
    with tenant_scope(acme):
        assert UsageSnapshot.objects.get(period="2026-10").resources["messagesPerMonth"] == {
            "used": 10,
            "limit": 10,
        }
        assert sorted((c.period, c.used) for c in UsageCounter.objects) == [("2026-10", 10), ("2026-11", 10)]


# -- retention purge -------------------------------------------------------------------------------

PURGE_NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
PURGED_PER_FILL = {"messages": 3, "webhookDeliveries": 2, "auditLogs": 1}
RETAINED = (Message, WebhookDelivery, AuditLog)


def message(status, queued_at):
    return Message(
        campaign_id=ObjectId(),
        telegram_account_id=ObjectId(),
        chat="@channel1",
        text="hello",
        status=status,
        queued_at=queued_at,
    ).save()


def delivery(status, created_at):
    return WebhookDelivery(
        webhook_id=ObjectId(),
        event="campaign.completed",
        payload={"campaign": "c1"},
        status=status,
        created_at=created_at,
    ).save()


def audit_entry(created_at):
    return AuditLog(action="campaign.created", actor=Actor(kind="system"), created_at=created_at).save()


def fill(tenant, days, now=PURGE_NOW):
    """Store finished documents one second inside and one second outside a `days` window ending at
    `now`, and unfinished ones far older; return (what must stay, what must go) as (kind, id) pairs."""
    cutoff = now - timedelta(days=days)
    inside, outside, ancient = cutoff + SECOND, cutoff - SECOND, cutoff - timedelta(days=1000)
    keep, purge = set(), set()
    with tenant_scope(tenant):
        for status in ("sent", "failed", "cancelled"):
            keep.add(("Message", message(status, inside).id))
            purge.add(("Message", message(status, outside).id))
        for status in ("queued", "sending"):
            keep.add(("Message", message(status, ancient).id))
        for status in ("delivered", "failed"):
            keep.add(("WebhookDelivery", delivery(status, inside).id))
            purge.add(("WebhookDelivery", delivery(status, outside).id))
        keep.add(("WebhookDelivery", delivery("pending", ancient).id))
        keep.add(("AuditLog", audit_entry(inside).id))
        purge.add(("AuditLog", audit_entry(outside).id))
    return keep, purge


def stored(tenant):
    with tenant_scope(tenant):
        return {(cls.__name__, doc.id) for cls in RETAINED for doc in cls.objects}


def with_retention(tenant, days, gdpr=True):
    return update_tenant(
        tenant,
        set__settings__compliance__gdpr_enabled=gdpr,
        set__settings__compliance__data_retention_days=days,
    )


def test_retention_purge_deletes_finished_documents_past_the_window_to_the_second(app, tenant):
    acme = with_retention(tenant, 30)
    keep, purge = fill(acme, 30)
    assert stored(acme) == keep | purge

    assert retention.run(now=PURGE_NOW) == {"tenants": 1, **PURGED_PER_FILL}

    assert stored(acme) == keep


def test_retention_purge_leaves_other_tenants_byte_identical(app, tenant, other_tenant):
    acme = with_retention(tenant, 30)
    globex = other_tenant  # neither GDPR nor a retention: never purged
    initech = with_retention(create_tenant("Initech", "initech"), 365)  # a longer window of its own
    keep, _purge = fill(acme, 30)
    globex_docs = fill(globex, 30)
    fill(initech, 30)
    before = {globex.id: dump(globex.id), initech.id: dump(initech.id)}
    assert before[globex.id]["Message"] and before[initech.id]["AuditLog"]

    assert retention.run(now=PURGE_NOW) == {"tenants": 2, **PURGED_PER_FILL}

    assert stored(acme) == keep
    assert stored(globex) == globex_docs[0] | globex_docs[1]
    assert {globex.id: dump(globex.id), initech.id: dump(initech.id)} == before


def test_a_second_retention_purge_deletes_nothing(app, tenant):
    acme = with_retention(tenant, 30)
    keep, _purge = fill(acme, 30)
    retention.run(now=PURGE_NOW)
    before = dump()

    assert retention.run(now=PURGE_NOW) == {
        "tenants": 1,
        "messages": 0,
        "webhookDeliveries": 0,
        "auditLogs": 0,
    }

    assert dump() == before
    assert stored(acme) == keep


def test_retention_default_days_apply_when_gdpr_is_on_without_a_retention(app_factory):
    app = app_factory(RETENTION_DEFAULT_DAYS=10)
    with app.app_context():
        acme = with_retention(create_tenant("Acme Corp", "acme"), None)
        keep, _purge = fill(acme, 10)

        assert retention.run(now=PURGE_NOW) == {"tenants": 1, **PURGED_PER_FILL}

        assert stored(acme) == keep


def test_a_retention_without_gdpr_still_applies(app, tenant):
    acme = with_retention(tenant, 30, gdpr=False)
    keep, _purge = fill(acme, 30)

    assert retention.run(now=PURGE_NOW) == {"tenants": 1, **PURGED_PER_FILL}

    assert stored(acme) == keep


def test_concurrent_retention_purges_delete_each_document_once(app, tenant, frequent_thread_switches):
    acme = with_retention(tenant, 30)
    kept = set()

    def purge_once(_index):
        with app.app_context():
            return retention.run(now=PURGE_NOW)

    for repetition in range(REPETITIONS):
        keep, _purge = fill(acme, 30)
        kept |= keep

        results = run_together(THREADS, purge_once)

        assert all(isinstance(r, dict) for r in results), results
        assert all(r["tenants"] == 1 for r in results)
        totals = {name: sum(r[name] for r in results) for name in PURGED_PER_FILL}
        assert totals == PURGED_PER_FILL, (repetition, results)
        assert stored(acme) == kept


# -- usage reconciliation --------------------------------------------------------------------------

RECONCILED = {"users": 1, "campaigns": 2, "telegram_accounts": 1, "webhooks": 1, "storage": 150}


def seed_data(tenant, make_user):
    """An owner (reserved through the service), and campaigns, a bot, a webhook and media stored directly."""
    make_user(tenant, "owner")
    with tenant_scope(tenant):
        TelegramAccount(name="Bot", bot_id=1, token_encrypted="x", token_last4="abcd").save()
        for name in ("c1", "c2"):
            Campaign(name=name, message=CampaignMessage(text="hi"), targets=["@channel1"]).save()
        Webhook(url="https://hooks.example.com/x", events=["campaign.completed"], secret_encrypted="x").save()
        for size, complete in ((100, True), (50, True), (1000, False)):
            MediaFile(
                filename="a.png", content_type="image/png", size=size, sha256="0" * 64, complete=complete
            ).save()


def gauges(tenant):
    found = Tenant.objects.get(id=tenant.id).usage
    return {name: getattr(found, name) for name in RECONCILED}


def reconciled_entries(tenant):
    with tenant_scope(tenant):
        return list(AuditLog.objects(action="usage.reconciled"))


def test_reconciliation_repairs_drifting_gauges_and_audits_each_repair(app, tenant, other_tenant, make_user):
    seed_data(tenant, make_user)
    make_user(other_tenant, "owner")
    acme = update_tenant(
        tenant,
        set__usage__users=3,
        set__usage__campaigns=7,
        set__usage__telegram_accounts=0,
        set__usage__webhooks=5,
        set__usage__storage=999,
    )
    globex_before = dump(other_tenant.id)

    assert reconcile.run() == {"tenants": 2, "repaired": 1}

    assert gauges(acme) == RECONCILED
    [entry] = reconciled_entries(acme)
    assert entry.summary == {
        "users": {"from": 3, "to": 1},
        "campaigns": {"from": 7, "to": 2},
        "telegramAccounts": {"from": 0, "to": 1},
        "webhooks": {"from": 5, "to": 1},
        "storage": {"from": 999, "to": 150},
    }
    assert entry.actor.kind == "system"
    assert reconciled_entries(other_tenant) == []
    assert dump(other_tenant.id) == globex_before


def test_a_second_reconciliation_repairs_nothing(app, tenant, make_user):
    seed_data(tenant, make_user)
    update_tenant(tenant, set__usage__campaigns=7)
    assert reconcile.run() == {"tenants": 1, "repaired": 1}
    before = dump()

    assert reconcile.run() == {"tenants": 1, "repaired": 0}

    assert dump() == before
    assert len(reconciled_entries(tenant)) == 1
    assert gauges(tenant) == RECONCILED


def test_a_tenant_without_drift_gets_no_audit_entry(app, tenant, make_user):
    seed_data(tenant, make_user)
    update_tenant(tenant, set__usage__campaigns=2, set__usage__telegram_accounts=1, set__usage__webhooks=1)
    update_tenant(tenant, set__usage__storage=150)
    before = dump()

    assert reconcile.run() == {"tenants": 1, "repaired": 0}

    assert dump() == before
    assert reconciled_entries(tenant) == []


def test_reconciliation_does_not_count_erased_users(app, tenant, make_user):
    make_user(tenant)
    erased = make_user(tenant)
    with tenant_scope(tenant):
        User.objects(id=erased.id).update(set__erased_at=utcnow())
        usage.refund("users")  # as the erasure does
    assert gauges(tenant)["users"] == 1

    assert reconcile.run() == {"tenants": 1, "repaired": 0}
    assert gauges(tenant)["users"] == 1

    update_tenant(tenant, set__usage__users=2)
    assert reconcile.run() == {"tenants": 1, "repaired": 1}
    assert gauges(tenant)["users"] == 1
    assert [entry.summary for entry in reconciled_entries(tenant)] == [{"users": {"from": 2, "to": 1}}]


def test_reconciliation_never_overwrites_a_reservation_made_while_it_counted(app, tenant, monkeypatch):
    acme = update_tenant(tenant, set__usage__campaigns=7)
    real_count = reconcile_service.count_gauges

    def count_then_reserve(tenant_ids):
        counted = real_count(tenant_ids)
        # meanwhile a request creates a campaign (and reserves it)
        with tenant_scope(acme):
            Campaign(name="late", message=CampaignMessage(text="hi"), targets=["@channel1"]).save()
        Tenant.objects(id=acme.id).update(inc__usage__campaigns=1)
        return counted

    monkeypatch.setattr(reconcile_service, "count_gauges", count_then_reserve)
    assert reconcile.run() == {"tenants": 1, "repaired": 0}
    assert gauges(acme)["campaigns"] == 8
    assert reconciled_entries(acme) == []

    monkeypatch.undo()
    assert reconcile.run() == {"tenants": 1, "repaired": 1}
    assert gauges(acme)["campaigns"] == 1
    assert [entry.summary for entry in reconciled_entries(acme)] == [{"campaigns": {"from": 8, "to": 1}}]


# -- the count of active owners ----------------------------------------------------------------------


def owner_count(tenant) -> int:
    return Tenant.objects.get(id=tenant.id).owners.active


def try_to_demote(tenant, user) -> bool:
    """Demote `user` as its tenant's other owner would; True when it was allowed."""
    principal = Principal(subject="other", role="owner", tenant_id=tenant.id, via="access_token")
    with tenant_scope(tenant):
        try:
            update_user(principal, user.id, {"role": "admin"})
        except Conflict:
            return False
    return True


def test_a_count_of_owners_left_too_low_is_repaired_once_it_has_settled(app, tenant, make_user):
    first, second = make_user(tenant, "owner"), make_user(tenant, "owner")
    assert owner_count(tenant) == 2
    # A process died between taking an owner off the count and demoting it: the count is one short.
    update_tenant(tenant, dec__owners__active=1, inc__owners__version=1)
    assert not try_to_demote(tenant, first)  # the count errs on the side of keeping an owner

    start = utcnow()
    with time_machine.travel(start, tick=False):
        assert reconcile.run() == {"tenants": 1, "repaired": 0}  # seen, not repaired yet
    with time_machine.travel(start + owners.SETTLE / 2, tick=False):
        assert reconcile.run() == {"tenants": 1, "repaired": 0}
    assert owner_count(tenant) == 1
    with time_machine.travel(start + owners.SETTLE, tick=False):
        assert reconcile.run() == {"tenants": 1, "repaired": 1}
    assert owner_count(tenant) == 2
    assert reconciled_entries(tenant)[-1].summary == {"activeOwners": {"from": 1, "to": 2}}
    assert try_to_demote(tenant, first)
    assert not try_to_demote(tenant, second)
    assert owner_count(tenant) == 1


def test_a_change_of_an_owner_begun_after_the_drift_was_seen_puts_the_repair_off(app, tenant, make_user):
    make_user(tenant, "owner")
    make_user(tenant, "owner")
    update_tenant(tenant, dec__owners__active=1, inc__owners__version=1)
    start = utcnow()
    with time_machine.travel(start, tick=False):
        reconcile.run()
    # A change that began meanwhile may not have finished when the users are counted: no repair then.
    with time_machine.travel(start + owners.SETTLE / 2, tick=False):
        make_user(tenant, "owner")
    assert owner_count(tenant) == 2
    with time_machine.travel(start + owners.SETTLE, tick=False):
        assert reconcile.run()["repaired"] == 0
    with time_machine.travel(start + owners.SETTLE * 2, tick=False):
        assert reconcile.run()["repaired"] == 1
    assert owner_count(tenant) == 3


def test_a_count_that_agrees_is_left_alone_and_a_past_drift_forgotten(app, tenant, make_user):
    make_user(tenant, "owner")
    before = Tenant.objects.get(id=tenant.id).owners.to_mongo().to_dict()
    assert reconcile.run()["repaired"] == 0
    assert Tenant.objects.get(id=tenant.id).owners.to_mongo().to_dict() == before
    update_tenant(tenant, inc__owners__active=1)
    reconcile.run()
    assert Tenant.objects.get(id=tenant.id).owners.drift_seen_at is not None
    update_tenant(tenant, dec__owners__active=1)
    reconcile.run()
    assert Tenant.objects.get(id=tenant.id).owners.to_mongo().to_dict() == before


def test_a_tenant_stored_before_the_count_is_counted_at_its_first_change(app, tenant, make_user):
    first, second = make_user(tenant, "owner"), make_user(tenant, "owner")
    make_user(tenant, "owner")
    update_tenant(tenant, unset__owners=True)
    assert "owners" not in Tenant.objects(id=tenant.id).as_pymongo().first()
    assert try_to_demote(tenant, first)
    assert owner_count(tenant) == 2
    assert try_to_demote(tenant, second)
    assert owner_count(tenant) == 1
    with tenant_scope(tenant):
        last = User.objects.get(role="owner")
    assert not try_to_demote(tenant, last)


def test_the_reconciliation_counts_owners_of_a_tenant_stored_before_the_count(app, tenant, make_user):
    make_user(tenant, "owner")
    make_user(tenant, "owner")
    update_tenant(tenant, unset__owners=True)
    assert reconcile.run()["repaired"] == 0
    assert owner_count(tenant) == 2


# -- every job: the tenant context -----------------------------------------------------------------


def tenants_with_work(*tenants):
    for tenant in tenants:
        update_tenant(
            tenant,
            set__created_at=LONG_AGO,
            set__usage__campaigns=3,
            set__settings__compliance__gdpr_enabled=True,
        )


# Each job that works a batch of tenants at a time: its service's function for one batch.
BATCHES = {
    "monthly-close": (closing, "close_batch"),
    "retention-purge": (retention_service, "purge_expired_batch"),
    "usage-reconcile": (reconcile_service, "recount_batch"),
}
# The unscoped access of each job that reads or writes across tenants, and why.
UNSCOPED_REASONS = {
    "monthly-close": {closing.CLOSE_REASON},
    "retention-purge": {retention_service.PURGE_REASON},
    "usage-reconcile": {reconcile_service.RECOUNT_REASON},
    "deletion-sweep": {deletion_sweep.SWEEP_REASON},
}


def tenant_id_of(tenant):
    return tenant["_id"] if isinstance(tenant, dict) else tenant.id


@pytest.mark.parametrize("job", MAINTENANCE, ids=lambda job: job.name)
def test_every_job_visits_every_tenant_and_leaves_no_tenant_in_context(
    app, tenant, other_tenant, job, monkeypatch
):
    tenants_with_work(tenant, other_tenant)
    module, name = BATCHES[job.name]
    work_on_batch = getattr(module, name)
    visited = []

    def recording_batch(batch, *args):
        assert current_state() == TenantState()  # each batch enters its own unscoped access
        visited.extend(tenant_id_of(each) for each in batch)
        return work_on_batch(batch, *args)

    monkeypatch.setattr(module, name, recording_batch)
    assert current_state() == TenantState()

    assert run_job(app, job) is not None

    assert sorted(visited) == sorted([tenant.id, other_tenant.id])  # each tenant once
    assert current_tenant_id() is None
    assert current_state() == TenantState()  # neither a tenant nor unscoped access is left behind


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_a_job_failing_midway_leaves_no_tenant_in_context(app, tenant, other_tenant, name, monkeypatch):
    tenants_with_work(tenant, other_tenant)
    job = job_named(name)
    module, per_batch = BATCHES[name]

    def fail(batch, *args):
        with unscoped("test: the database goes away in the middle of a batch"), tenant_scope(tenant):
            raise RuntimeError("the database went away")

    monkeypatch.setattr(module, per_batch, fail)

    with pytest.raises(RuntimeError):
        run_job(app, job)

    assert current_tenant_id() is None
    assert current_state() == TenantState()


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_every_write_of_a_job_across_tenants_names_its_tenants(app, tenant, other_tenant, name, monkeypatch):
    """Unscoped access lets any filter through: the bulk jobs bind each write to its tenants themselves."""
    tenants_with_work(tenant, other_tenant)
    with tenant_scope(tenant):
        Webhook(url="https://hooks.example.com/x", events=["invoice.created"], secret_encrypted="x").save()
    update_tenant(tenant, set__usage__campaigns=9, set__billing__price_cents=100)
    for each in (tenant, other_tenant):
        with tenant_scope(each):
            message("sent", LONG_AGO)
    ours = {tenant.id, other_tenant.id}
    named = []

    def names_ours(value):
        tenants = value.get("$in") if isinstance(value, dict) else [value]
        named.append(tuple(tenants))
        return bool(tenants) and set(tenants) <= ours

    raw_bulk_write, raw_insert_many = (
        collection.GuardedCollection.bulk_write,
        collection.GuardedCollection.insert_many,
    )

    def bulk_write(self, requests, *args, **kwargs):
        for request in requests:
            document = getattr(request, "_doc", None)
            request_filter = getattr(request, "_filter", None)
            assert names_ours((request_filter or document)[collection.TENANT_FIELD]), request
        return raw_bulk_write(self, requests, *args, **kwargs)

    def insert_many(self, documents, *args, **kwargs):
        documents = list(documents)
        assert all(names_ours(document[collection.TENANT_FIELD]) for document in documents), documents
        return raw_insert_many(self, documents, *args, **kwargs)

    monkeypatch.setattr(collection.GuardedCollection, "bulk_write", bulk_write)
    monkeypatch.setattr(collection.GuardedCollection, "insert_many", insert_many)

    run_job(app, job_named(name))

    assert named  # the job wrote


def test_the_loop_over_tenants_runs_its_body_with_no_tenant_in_context(app, tenant, other_tenant):
    """A tenant-owned query written in the loop's body raises rather than reading every tenant."""
    suspended = create_tenant("Initech", "initech")
    update_tenant(suspended, set__status="suspended")
    for each, campaigns in ((tenant, 2), (other_tenant, 1), (suspended, 3)):
        with tenant_scope(each):
            for n in range(campaigns):
                Campaign(name=f"c{n}", message=CampaignMessage(text="hi"), targets=["@channel1"]).save()

    counted = {}
    for each in each_tenant():
        assert current_state() == TenantState()
        with pytest.raises(TenantContextMissing):
            Campaign.objects.count()
        with tenant_scope(each):
            counted[each.slug] = Campaign.objects.count()

    assert counted == {"acme": 2, "globex": 1, "initech": 3}
    assert [each.slug for each in each_tenant(include_suspended=False)] == ["acme", "globex"]
    assert current_state() == TenantState()


@pytest.mark.parametrize("job", SCHEDULE, ids=lambda job: job.name)
def test_every_tenant_owned_query_of_a_job_is_scoped_to_one_tenant_or_under_the_jobs_reason(
    app, tenant, other_tenant, job, monkeypatch
):
    tenants_with_work(tenant, other_tenant)
    for each in (tenant, other_tenant):
        with tenant_scope(each):
            Campaign(name="old", message=CampaignMessage(text="hi"), targets=["@channel1"]).save()
            message("sent", LONG_AGO)
        # A trial that ran out: the trial-end job has work in both tenants too.
        update_tenant(each, set__billing__status="trialing", set__billing__trial_ends_at=LONG_AGO)
    states = []

    def recording_state():
        state = context.current_state()
        states.append((state.tenant_id, state.unscoped_reason))
        return state

    monkeypatch.setattr(documents, "current_state", recording_state)
    monkeypatch.setattr(collection, "current_state", recording_state)

    run_job(app, job)

    assert states
    # Cross-tenant work is done by the jobs that work in batches of tenants and the deletion sweep,
    # each under its own reason; the others work in one tenant's scope at a time.
    expected_reasons = UNSCOPED_REASONS.get(job.name, set())
    assert {reason for _tenant_id, reason in states if reason} == expected_reasons
    scoped = {tenant_id for tenant_id, reason in states if not reason}
    assert scoped == (set() if expected_reasons else {tenant.id, other_tenant.id})


# -- deletion sweep ---------------------------------------------------------------------------------


def owned_by(tenant_id) -> dict[str, int]:
    """How many documents of each kind name `tenant_id`, the email directory included."""
    with unscoped("test: count a tenant's documents"):
        counts = {
            "email_directory": EmailDirectory.objects(tenant_id=tenant_id).count(),
            "leases": Lease.objects(tenant_id=tenant_id).count(),
        }
        for document_class in tenant_document_classes():
            counts[document_class._get_collection_name()] = document_class.objects(
                tenant_id=tenant_id
            ).count()
    return {name: count for name, count in counts.items() if count}


def test_documents_written_for_a_deleted_tenant_are_removed(app, tenant, other_tenant, make_user):
    assert leases.acquire(SCHEDULER, "host-a", 60)
    for owner in (tenant, other_tenant):
        make_user(owner, "member")
        with tenant_scope(owner):
            message("queued", utcnow())
        leases.wake(leases.lane_name("bot", ObjectId()), owner.id)
    others = owned_by(other_tenant.id)
    Tenant.objects(id=tenant.id).delete()  # as if a late request wrote after the purge
    assert owned_by(tenant.id) == {"email_directory": 1, "users": 1, "messages": 1, "leases": 1}

    assert deletion_sweep.run() == {"deletionsFinished": 0, "orphansRemoved": 4}
    assert owned_by(tenant.id) == {}
    assert owned_by(other_tenant.id) == others
    assert leases.holds(SCHEDULER, "host-a")  # the platform's own lease names no tenant: it stays
    assert deletion_sweep.run() == {"deletionsFinished": 0, "orphansRemoved": 0}


def test_a_deletion_that_stopped_halfway_is_finished(app, tenant, other_tenant, make_user):
    for owner in (tenant, other_tenant):
        make_user(owner, "member")
        update_tenant(owner, set__status="suspended", set__suspended_reason=DELETING)
    update_tenant(tenant, set__updated_at=utcnow() - timedelta(hours=1))
    update_tenant(other_tenant, set__updated_at=utcnow())  # being deleted right now: left to its request

    assert deletion_sweep.run() == {"deletionsFinished": 1, "orphansRemoved": 0}
    assert Tenant.objects(id=tenant.id).first() is None and owned_by(tenant.id) == {}
    assert Tenant.objects(id=other_tenant.id).first() is not None
    assert owned_by(other_tenant.id) == {"email_directory": 1, "users": 1}
