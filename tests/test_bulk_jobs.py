"""The jobs that work a batch of tenants at a time: the same results whatever the batches, a run that
stopped in the middle finished by the next, and a constant number of operations per batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from app.audit.models import AuditLog
from app.billing import service as billing
from app.billing.closing import CLOSE_FIELDS, close_batch
from app.billing.models import Invoice
from app.db import counted_operations, database, insert_missing
from app.jobs import monthly_close, reconcile, retention
from app.maintenance.reconcile import recount_batch
from app.messages.models import Message
from app.tenancy.context import tenant_scope, unscoped
from app.tenants import batches
from app.tenants.models import Tenant
from app.tenants.service import create_tenant, erase_tenant
from app.usage.models import UsageCounter, UsageSnapshot
from app.webhooks.models import Webhook, WebhookDelivery

from .support import update_tenant

pytestmark = pytest.mark.multitenant

LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)
SEPTEMBER_CLOSE = datetime(2026, 10, 1, 0, 5, tzinfo=UTC)
OCTOBER_CLOSE = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)


def mixed_tenants():
    """Tenants of every kind the close meets; return them by name."""
    made = {}

    def make(name, plan, created_at=LONG_AGO, **changes):
        tenant = create_tenant(name.title(), name, plan=plan)
        made[name] = update_tenant(tenant, set__created_at=created_at, **changes)

    make("pro", "professional")
    make(
        "trial",
        "starter",
        set__billing__status="trialing",
        set__billing__trial_ends_at=datetime(2027, 1, 1, tzinfo=UTC),
    )
    make("converted", "starter", set__billing__trial_ends_at=datetime(2026, 10, 16, tzinfo=UTC))
    make("suspended", "professional", set__status="suspended", set__suspended_reason="abuse report")
    make(
        "custom",
        "enterprise",
        set__billing__price_cents=50_000,
        set__limits={"users": 7},
        set__usage__users=5,
    )
    make("late", "starter", created_at=datetime(2026, 10, 15, tzinfo=UTC))
    gone = create_tenant("Gone", "gone", plan="starter")
    update_tenant(gone, set__created_at=LONG_AGO)
    erase_tenant(Tenant.objects.get(id=gone.id))
    with tenant_scope(made["pro"]):
        UsageCounter(resource="messagesPerMonth", period="2026-09", used=40).save()
        UsageCounter(resource="messagesPerMonth", period="2026-10", used=70).save()
        Webhook(url="https://hooks.example.com/pro", events=["invoice.created"], secret_encrypted="x").save()
    return made


def invoices_by_tenant():
    with unscoped("test: read every tenant's invoices"):
        found = {}
        for invoice in Invoice.objects.order_by("number"):
            found.setdefault(invoice.tenant_id, []).append(
                (invoice.period, invoice.number, invoice.amount_cents)
            )
        return found


def snapshot_of(tenant, period):
    with tenant_scope(tenant):
        return UsageSnapshot.objects.get(period=period).resources


@pytest.mark.parametrize("size", [1, 2, 1000])
def test_the_close_of_mixed_tenants_gives_each_its_own_result_whatever_the_batches(app, size, monkeypatch):
    monkeypatch.setattr(batches, "TENANTS_PER_BATCH", size)
    tenants = mixed_tenants()

    assert monthly_close.run(now=SEPTEMBER_CLOSE) == {
        "period": "2026-09",
        "closed": 5,
        "alreadyClosed": 0,
        "invoiced": 5,
    }
    assert monthly_close.run(now=OCTOBER_CLOSE) == {
        "period": "2026-10",
        "closed": 6,
        "alreadyClosed": 0,
        "invoiced": 6,
    }

    october_part = 2900 * 16 // 31  # converted on October 16th: 16 of October's 31 days
    assert invoices_by_tenant() == {
        tenants["pro"].id: [("2026-09", 1, 9900), ("2026-10", 2, 9900)],
        tenants["trial"].id: [("2026-09", 1, 0), ("2026-10", 2, 0)],
        tenants["converted"].id: [("2026-09", 1, 0), ("2026-10", 2, october_part)],
        tenants["suspended"].id: [("2026-09", 1, 9900), ("2026-10", 2, 9900)],
        tenants["custom"].id: [("2026-09", 1, 50_000), ("2026-10", 2, 50_000)],
        tenants["late"].id: [("2026-10", 1, 2900)],
    }
    balances = {name: Tenant.objects.get(id=t.id).billing.balance_cents for name, t in tenants.items()}
    assert balances == {
        "pro": 19_800,
        "trial": 0,
        "converted": october_part,
        "suspended": 19_800,
        "custom": 100_000,
        "late": 2900,
    }
    assert snapshot_of(tenants["pro"], "2026-09")["messagesPerMonth"] == {"used": 40, "limit": 50_000}
    assert snapshot_of(tenants["pro"], "2026-10")["messagesPerMonth"] == {"used": 70, "limit": 50_000}
    assert snapshot_of(tenants["custom"], "2026-10")["users"] == {"used": 5, "limit": 7}
    with tenant_scope(tenants["late"]):
        assert [snap.period for snap in UsageSnapshot.objects] == ["2026-10"]
    for name, tenant in tenants.items():
        with tenant_scope(tenant):
            entries = AuditLog.objects(action="invoice.created").order_by("created_at")
            assert [entry.summary["number"] for entry in entries] == ([1] if name == "late" else [1, 2])
            assert WebhookDelivery.objects(event="invoice.created").count() == (2 if name == "pro" else 0)

    before = invoices_by_tenant()
    assert monthly_close.run(now=SEPTEMBER_CLOSE)["invoiced"] == 0  # a late run of an older period
    assert monthly_close.run(now=OCTOBER_CLOSE) == {
        "period": "2026-10",
        "closed": 0,
        "alreadyClosed": 6,
        "invoiced": 0,
    }
    assert invoices_by_tenant() == before


class Crash(RuntimeError):
    pass


def crash_on_call(number, real):
    calls = []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise Crash("the process died")
        return real(*args, **kwargs)

    return crashing


@pytest.mark.parametrize("where", ["insert_missing", "record_for_tenants"])
def test_a_close_that_died_in_the_middle_is_finished_by_the_next_run_without_a_gap(app, monkeypatch, where):
    monkeypatch.setattr(batches, "TENANTS_PER_BATCH", 2)
    tenants = [
        update_tenant(
            create_tenant(f"Tenant {index}", f"tenant-{index}", plan="professional"), set__created_at=LONG_AGO
        )
        for index in range(5)
    ]
    monthly_close.run(now=SEPTEMBER_CLOSE)
    # The second batch dies before its invoices are written, or after, before they are audited.
    monkeypatch.setattr(billing, where, crash_on_call(2, getattr(billing, where)))
    with pytest.raises(Crash):
        monthly_close.run(now=OCTOBER_CLOSE)
    monkeypatch.undo()
    monkeypatch.setattr(batches, "TENANTS_PER_BATCH", 2)

    result = monthly_close.run(now=OCTOBER_CLOSE)

    assert result["closed"] + result["alreadyClosed"] == 5
    monthly_close.run(now=datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    found = invoices_by_tenant()
    for tenant in tenants:
        assert found[tenant.id] == [("2026-09", 1, 9900), ("2026-10", 2, 9900), ("2026-11", 3, 9900)]
        assert Tenant.objects.get(id=tenant.id).billing.last_invoice_number == 3


def count_operations(run):
    with counted_operations() as counted:
        run()
    return counted


def tenants_with_work(count, first):
    for index in range(first, first + count):
        tenant = create_tenant(f"Tenant {index}", f"tenant-{index}", plan="professional")
        # Counters and drifts of three kinds: a number and a repair for each kind, not each tenant.
        update_tenant(
            tenant,
            set__created_at=LONG_AGO,
            set__usage__campaigns=3 + index % 3,
            set__billing__last_invoice_number=index % 3,
            set__billing__last_invoiced_period="2026-09" if index % 3 else None,
            set__settings__compliance__data_retention_days=30,
        )
        with tenant_scope(tenant):
            Webhook(
                url="https://hooks.example.com/x", events=["invoice.created"], secret_encrypted="x"
            ).save()
            Message(
                campaign_id=ObjectId(),
                telegram_account_id=ObjectId(),
                chat="@channel1",
                text="hi",
                status="sent",
                queued_at=OCTOBER_CLOSE - timedelta(days=60),
            ).save()


JOBS = {
    "monthly close": lambda: monthly_close.run(now=OCTOBER_CLOSE),
    "usage reconcile": reconcile.run,
    "retention purge": lambda: retention.run(now=OCTOBER_CLOSE),
}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_job_costs_the_same_operations_per_batch_however_many_tenants(app_factory, monkeypatch, job):
    """Batches of 2 tenants: 1, 2 and 4 batches of tenants, each with work to do."""
    monkeypatch.setattr(batches, "TENANTS_PER_BATCH", 2)
    operations = []
    for tenants in (2, 4, 8):
        with app_factory().app_context():
            tenants_with_work(tenants, 0)
            operations.append(count_operations(JOBS[job])["total"])

    one, two, four = operations
    per_batch = two - one
    assert four - two == 2 * per_batch, operations
    # The close's are the most: the counters, its snapshots written, the invoices there are, the
    # numbers taken, its invoices written, the balances, the audit entries, the webhooks, their
    # deliveries and the lanes woken.
    assert 0 < per_batch <= 10, operations


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_batch_of_50_tenants_costs_the_operations_of_a_batch_of_10(app_factory, job):
    """One batch (TENANTS_PER_BATCH is 1,000): the same operations, collection by collection."""
    operations = []
    for tenants in (10, 50):
        with app_factory().app_context():
            tenants_with_work(tenants, 0)
            operations.append(count_operations(JOBS[job]))

    assert operations[0] == operations[1]
    if job == "monthly close":
        # The counters move in one bulk write, the balances in another; nothing written is read back.
        assert operations[0]["tenants.bulk_write"] == 2
        assert operations[0]["invoices.find"] == operations[0]["usage_snapshots.insert_many"] == 1
        assert "usage_snapshots.find" not in operations[0]
    if job == "usage reconcile":
        assert operations[0]["tenants.bulk_write"] == 1
        assert "tenants.find" not in operations[0]


def test_invoice_numbers_follow_each_tenants_own_counter_without_gaps_or_repeats(app):
    tenants = []
    for index in range(9):
        tenant = create_tenant(f"Tenant {index}", f"tenant-{index}", plan="professional")
        last = index % 4
        tenants.append(
            update_tenant(
                tenant,
                set__created_at=LONG_AGO,
                set__billing__last_invoice_number=last,
                set__billing__last_invoiced_period="2026-08" if last else None,
            )
        )

    assert monthly_close.run(now=SEPTEMBER_CLOSE)["invoiced"] == 9
    assert monthly_close.run(now=OCTOBER_CLOSE)["invoiced"] == 9
    assert monthly_close.run(now=OCTOBER_CLOSE)["invoiced"] == 0  # a second run issues nothing

    found = invoices_by_tenant()
    for index, tenant in enumerate(tenants):
        last = index % 4
        assert [number for _period, number, _amount in found[tenant.id]] == [last + 1, last + 2]
        billing = Tenant.objects.get(id=tenant.id).billing
        assert (billing.last_invoice_number, billing.last_invoiced_period) == (last + 2, "2026-10")
        assert billing.balance_cents == 2 * 9900


def stored_for_close(tenants):
    """The tenants as the close reads them, before it runs."""
    return list(Tenant._get_collection().find({"_id": {"$in": [t.id for t in tenants]}}, CLOSE_FIELDS))


@pytest.mark.parametrize("count", [1, 3])
def test_a_close_whose_counters_moved_since_it_read_them_takes_the_next_numbers(app, count):
    """Another close ran between this one's read of the tenants and its write: of the same period
    (its invoices stand, this one issues none), or of the period before (this one takes the number
    after that close's). One tenant or several: the numbers are taken again by one filter either way."""
    tenants = [
        update_tenant(
            create_tenant(f"Tenant {index}", f"tenant-{index}", plan="professional"), set__created_at=LONG_AGO
        )
        for index in range(count)
    ]
    read_before_september = stored_for_close(tenants)
    monthly_close.run(now=SEPTEMBER_CLOSE)
    read_before_october = stored_for_close(tenants)
    monthly_close.run(now=OCTOBER_CLOSE)

    assert close_batch(read_before_october, "2026-10", OCTOBER_CLOSE) == {
        "closed": 0,
        "alreadyClosed": count,
        "invoiced": 0,
    }
    assert close_batch(read_before_september, "2026-11", OCTOBER_CLOSE)["invoiced"] == count

    found = invoices_by_tenant()
    for tenant in tenants:
        assert [number for _period, number, _amount in found[tenant.id]] == [1, 2, 3]
        assert Tenant.objects.get(id=tenant.id).billing.last_invoice_number == 3


def test_insert_missing_returns_only_the_documents_that_went_in(app):
    collection = database()["insert_missing"]
    collection.create_index("key", unique=True)
    collection.insert_one({"_id": 1, "key": "a"})

    went_in = insert_missing(
        collection, [{"_id": 2, "key": "a"}, {"_id": 3, "key": "b"}, {"_id": 4, "key": "a"}]
    )

    assert went_in == [{"_id": 3, "key": "b"}]
    assert insert_missing(collection, []) == []
    assert sorted(doc["_id"] for doc in collection.find()) == [1, 3]


def test_a_repair_raced_by_a_reservation_is_neither_written_nor_recorded(app):
    tenants = [
        update_tenant(
            create_tenant(f"Tenant {index}", f"tenant-{index}", plan="professional"), set__usage__campaigns=2
        )
        for index in range(3)
    ]
    stored = list(
        Tenant._get_collection().find({"_id": {"$in": [t.id for t in tenants]}}, ["usage", "owners"])
    )
    update_tenant(tenants[1], set__usage__campaigns=3)  # a reservation after the read

    repairs = recount_batch(stored, OCTOBER_CLOSE)

    assert set(repairs) == {tenants[0].id, tenants[2].id}
    assert {repair["campaigns"]["to"] for repair in repairs.values()} == {0}
    assert [Tenant.objects.get(id=t.id).usage.campaigns for t in tenants] == [0, 3, 0]
