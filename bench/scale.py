"""Measure what the service costs as the data grows: one tenant's list as the tenant count grows, and
the monthly close, the usage reconcile, the retention purge and the migration backfill next to their
raw-driver floor.

    .venv/bin/python bench/scale.py [--tenants 10,1000,10000] [--docs 10,10000,100000]
        [--sizes 1000,10000,100000] [--budget 240] [--repeat 3] [--jobs 'monthly close,usage reconcile']

List: one tenant's GET /api/v1/campaigns?perPage=20 (20 campaigns, bearer token, Flask test client)
while the tenants collection holds N tenants; median and p99 latency of --requests requests, and
database operations per request (counted as bench/roundtrips.py counts them).

Documents: one tenant's GET /api/v1/messages?perPage=20 while it holds N messages (one second apart):
its first page, its last page by cursor (the nextCursor of the page before) and by number (?page=,
which skips the documents before it); median and p99 latency of --docs-requests requests, and
operations per request. The embedded store reads and sorts every document of the tenant for each
query (it has no index to walk, only its lookup by tenant), so its latency grows with N where a
server's, walking the index that docs/query-shapes.md lists, would not: compare the operations.

Jobs, each at N documents on fresh data (the database is dropped before every run), timed next to the
raw collection operations that make the same writes on the same store (the floor). A job's time is
the CPU time of this process (the embedded store runs in it, so that is all the run's work; the wall
clock of a machine busy with other work says more about the other work), the best of --repeat runs:
- monthly close (app/jobs/monthly_close.py run): N tenants closed; each gets a usage snapshot, an
  invoice, an audit entry and its invoice number; floor: one insert_many per collection and one
  update_many on the tenants;
- usage reconcile (app/jobs/reconcile.py run): N tenants whose campaigns gauge drifted; each is
  repaired and gets an audit entry; floor: one update_many on the tenants and one insert_many;
- retention purge (app/jobs/retention.py run): N expired messages spread over 10 tenants with a
  retention window; floor: one delete_many with the same filter across tenants;
- migration backfill (app.tenancy.migration.migrate, what the migrate command runs): N untenanted
  documents of a single-tenant database (generated as bench/migration.py does); floor: one
  update_many per collection.
The service and the floor must leave the same number of documents, and of untenanted documents, in
every collection. "ops/batch" is what each batch (1,000 tenants or 1,000 documents; the purge's 10
tenants are one) costs in operations: the service's operations divided by its batches at the first
size, then the operations added per batch added since the size before (a job's fixed operations left
out); constant as N grows when the job works in bulk. The embedded store has no query planner: a
filter that names no _id and no tenantId scans its collection (app/db.py), and it copies every
document it reads or changes, so its times are the store's, not a server's: compare ratios. A run
whose time, projected from the smaller sizes, exceeds --budget seconds is skipped and its projection
printed.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("APP_ENV", "development")

from app import (
    clock,  # noqa: E402
    create_app,  # noqa: E402
)
from app.audit.models import Actor, AuditLog  # noqa: E402
from app.billing.closing import previous_period  # noqa: E402
from app.billing.models import Invoice  # noqa: E402
from app.db import (
    counted_operations,  # noqa: E402
    database,  # noqa: E402
)
from app.jobs import monthly_close, reconcile, retention  # noqa: E402
from app.maintenance.retention import FINISHED_MESSAGES  # noqa: E402
from app.tenancy import migration  # noqa: E402
from app.tenancy.collection import TENANT_FIELD  # noqa: E402
from app.tenants.batches import TENANTS_PER_BATCH  # noqa: E402
from app.tenants.models import Tenant  # noqa: E402
from app.tenants.plans import LIMIT_NAMES, effective_limits  # noqa: E402
from app.tenants.service import create_tenant  # noqa: E402
from app.usage.models import UsageSnapshot  # noqa: E402
from bench.migration import generate  # noqa: E402
from bench.roundtrips import setup  # noqa: E402

LIST_PATH = "/api/v1/campaigns?perPage=20"
DOCS_PATH = "/api/v1/messages?perPage=20"
PER_PAGE = 20
RETENTION_TENANTS = 10
RETENTION_DAYS = 30


def fresh_database():
    db = database()
    db.client.drop_database(db.name)
    return db


def insert_tenants(
    count: int, created_at: datetime, retention_days: int | None = None, campaigns: int = 0
) -> list:
    """Insert `count` valid tenant documents with one insert_many; return their ids."""
    docs = []
    for index in range(count):
        tenant = Tenant(name=f"Tenant {index}", slug=f"tenant-{index}", created_at=created_at)
        tenant.settings.compliance.data_retention_days = retention_days
        tenant.usage.campaigns = campaigns
        docs.append(tenant.to_mongo().to_dict())
    database().tenants.insert_many(docs)
    return [doc["_id"] for doc in docs]


def insert_messages(tenant_ids: list, count: int, queued_at: Callable[[int], datetime]) -> None:
    """Insert `count` sent messages spread over the tenants, the message at `index` queued at
    `queued_at(index)`, with one insert_many."""
    database().messages.insert_many(
        [
            {
                TENANT_FIELD: tenant_ids[index % len(tenant_ids)],
                "campaignId": tenant_ids[0],
                "telegramAccountId": tenant_ids[0],
                "chat": "@chan1",
                "text": "hi",
                "status": "sent",
                "attempts": 1,
                "queuedAt": queued_at(index),
                "sentAt": queued_at(index),
            }
            for index in range(count)
        ]
    )


def timed(client, path: str, auth: dict, requests: int) -> tuple[float, float, float]:
    """Median and p99 latency (ms) and operations per request of `requests` GETs of `path`."""
    assert client.get(path, headers=auth).status_code == 200  # and the caches are warm
    latencies = []
    with counted_operations() as ops:
        for _ in range(requests):
            started = time.perf_counter()
            client.get(path, headers=auth)
            latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(latencies), statistics.quantiles(latencies, n=100)[98], ops["total"] / requests


def measure_list(app, tenants: int, requests: int) -> tuple[float, float, float]:
    """Median and p99 latency (ms) and operations per request of one tenant's campaign list."""
    fresh_database()
    client, auth, _key, _campaign = setup(app, 20)
    insert_tenants(tenants - 1, clock.utcnow())
    return timed(client, LIST_PATH, auth, requests)


def measure_documents(app, documents: int, requests: int) -> dict[str, tuple[float, float, float]]:
    """Latency and operations of one tenant's message list at `documents` messages: its first page,
    and its last page by cursor and by number."""
    fresh_database()
    client, auth, _key, _campaign = setup(app, 1)  # its campaign's send queues one message
    tenant_id = Tenant.objects.get(slug="bench-1").id
    start = clock.utcnow() - timedelta(days=1)
    insert_messages([tenant_id], documents - 1, lambda index: start + timedelta(seconds=index))
    last = math.ceil(documents / PER_PAGE)
    before_last = client.get(f"{DOCS_PATH}&page={last - 1}", headers=auth).json if last > 1 else {}
    pages = {"first page": DOCS_PATH, "last page, by number": f"{DOCS_PATH}&page={last}"}
    if before_last.get("nextCursor"):
        pages["last page, by cursor"] = f"{DOCS_PATH}&cursor={before_last['nextCursor']}"
    return {name: timed(client, path, auth, requests) for name, path in pages.items()}


def system_entries(tenant_ids: list, action: str, target_type: str) -> list[dict]:
    """One audit entry of the system per tenant, as stored."""
    actor = Actor(kind="system")
    return [
        AuditLog(tenant_id=i, action=action, actor=actor, target_type=target_type).to_mongo().to_dict()
        for i in tenant_ids
    ]


def close_case(size: int, floor: bool) -> Callable[[], object]:
    now = clock.utcnow()
    ids = insert_tenants(size, now - timedelta(days=90))
    if not floor:
        return lambda: monthly_close.run(now)
    period = previous_period(now)
    limits = effective_limits("free", {})
    resources = {name: {"used": 0, "limit": limits[name]} for name in LIMIT_NAMES}
    snapshots = [
        UsageSnapshot(tenant_id=i, period=period, plan="free", resources=resources).to_mongo().to_dict()
        for i in ids
    ]
    invoices = [
        Invoice(
            tenant_id=i,
            number=1,
            period=period,
            plan="free",
            amount_cents=0,
            status="paid",
            usage=resources,
            issued_at=now,
            due_at=now,
            paid_at=now,
        )
        .to_mongo()
        .to_dict()
        for i in ids
    ]
    entries = system_entries(ids, "invoice.created", "invoice")
    db = database()

    def writes() -> None:
        db.usage_snapshots.insert_many(snapshots)
        db.tenants.update_many(
            {}, {"$inc": {"billing.lastInvoiceNumber": 1}, "$set": {"billing.lastInvoicedPeriod": period}}
        )
        db.invoices.insert_many(invoices)
        db.audit_logs.insert_many(entries)

    return writes


def reconcile_case(size: int, floor: bool) -> Callable[[], object]:
    ids = insert_tenants(size, clock.utcnow(), campaigns=1)
    if not floor:
        return reconcile.run
    entries = system_entries(ids, "usage.reconciled", "usage")
    db = database()

    def writes() -> None:
        db.tenants.update_many({}, {"$set": {"usage.campaigns": 0}})
        db.audit_logs.insert_many(entries)

    return writes


def retention_case(size: int, floor: bool) -> Callable[[], object]:
    now = clock.utcnow()
    ids = insert_tenants(RETENTION_TENANTS, now - timedelta(days=400), retention_days=RETENTION_DAYS)
    expired = now - timedelta(days=2 * RETENTION_DAYS)
    insert_messages(ids, size, lambda index: expired)
    if not floor:
        return lambda: retention.run(now)
    cutoff = now - timedelta(days=RETENTION_DAYS)
    return lambda: database().messages.delete_many(
        {"status": {"$in": list(FINISHED_MESSAGES)}, "queuedAt": {"$lt": cutoff}}
    )


def migration_case(size: int, floor: bool) -> Callable[[], object]:
    counts = generate(size)
    tenant = create_tenant("Default", "default", plan="enterprise")
    if not floor:
        return lambda: migration.migrate(tenant)
    db = database()

    def writes() -> None:
        for name in counts:
            db[name].update_many(migration.MISSING, {"$set": {TENANT_FIELD: tenant.id}})

    return writes


# Each job: its name, what N counts, how its data is made, and how many batches N makes.
JOBS = [
    ("monthly close", "tenants", close_case, lambda n: math.ceil(n / TENANTS_PER_BATCH)),
    ("usage reconcile", "tenants", reconcile_case, lambda n: math.ceil(n / TENANTS_PER_BATCH)),
    ("retention purge", "messages", retention_case, lambda n: 1),
    ("migration backfill", "documents", migration_case, lambda n: math.ceil(n / 1000)),
]


def measure_job(case: Callable[[int, bool], Callable[[], object]], size: int, floor: bool, repeat: int):
    """CPU seconds of the best of `repeat` runs, each on fresh data, the operations of the last, and
    what it left in each collection."""
    elapsed = math.inf
    for _ in range(repeat):
        db = fresh_database()
        run = case(size, floor)
        gc.collect()
        with counted_operations() as ops:
            started = time.process_time()
            run()
            elapsed = min(elapsed, time.process_time() - started)
    left = {
        name: (db[name].count_documents({}), db[name].count_documents(migration.MISSING))
        for name in db.list_collection_names()
    }
    return elapsed, ops["total"], {name: counts for name, counts in left.items() if counts[0]}


def projected(measured: list[tuple[int, float]], size: int) -> float:
    """The time a run at `size` should take, from the growth of the measured ones (at least linear;
    quadratic while only one is known: every filtered read of the embedded store is a scan)."""
    if not measured:
        return 0.0
    exponent = 2.0
    if len(measured) > 1:
        (n1, t1), (n2, t2) = measured[-2:]
        exponent = max(1.0, math.log(t2 / t1) / math.log(n2 / n1))
    last_size, last_time = measured[-1]
    return last_time * (size / last_size) ** exponent


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=numbers, default=[10, 1000, 10000])
    parser.add_argument("--docs", type=numbers, default=[10, 10000, 100000])
    parser.add_argument("--sizes", type=numbers, default=[1000, 10000, 100000])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--docs-requests", type=int, default=10, help="requests per documents row")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds a single run may take")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each job and floor (the best counts)")
    parser.add_argument("--jobs", type=lambda text: text.split(","), help="only these jobs (comma-separated)")
    args = parser.parse_args()
    # Tenants and credentials cached for an hour: the embedded store's slow lists would otherwise
    # outlast the caches' 60 and 5 seconds and count their reloads with the list's operations.
    app = create_app(
        {
            "AUTH_CACHE_TTL": 3600,
            "TENANT_CACHE_TTL": 3600,
            "CREATE_INDEXES": False,
            "LOG_LEVEL": "WARNING",
            "MONGODB_URI": "mongomock://localhost/bench_scale",
        }
    )
    with app.app_context():
        print(f"GET {LIST_PATH}: one tenant's list, {args.requests} requests per row")
        print(f"{'tenants':>8}  {'median ms':>9}  {'p99 ms':>7}  {'ops/request':>11}")
        for tenants in args.tenants:
            median, p99, ops = measure_list(app, tenants, args.requests)
            print(f"{tenants:>8}  {median:>9.2f}  {p99:>7.2f}  {ops:>11.1f}", flush=True)
        print()
        print(f"GET {DOCS_PATH}: one tenant's messages, {args.docs_requests} requests per row")
        print(f"{'documents':>9}  {'page':<20}  {'median ms':>9}  {'p99 ms':>7}  {'ops/request':>11}")
        for documents in args.docs:
            for page, (median, p99, ops) in measure_documents(app, documents, args.docs_requests).items():
                print(f"{documents:>9}  {page:<20}  {median:>9.2f}  {p99:>7.2f}  {ops:>11.1f}", flush=True)
        print()
        print("jobs on fresh data, service next to the raw collection operations (floor)")
        head = ("job", "documents", "service s", "floor s", "ratio", "service ops", "floor ops", "ops/batch")
        print(f"{head[0]:<20}  {head[1]:>19}  " + "  ".join(f"{h:>11}" for h in head[2:]))
        for name, unit, case, batches in JOBS:
            if args.jobs and name not in args.jobs:
                continue
            measured: list[tuple[int, float]] = []
            counted: tuple[int, int] | None = None  # the last run's batches and operations
            for size in args.sizes:
                label = f"{name:<20}  {size:>9} {unit:<9}"
                estimate = projected(measured, size)
                if estimate > args.budget:
                    print(f"{label}  skipped: projected {estimate:.0f} s > --budget {args.budget:.0f} s")
                    continue
                service, service_ops, service_left = measure_job(case, size, False, args.repeat)
                floor, floor_ops, floor_left = measure_job(case, size, True, args.repeat)
                assert service_left == floor_left, (name, size, service_left, floor_left)
                measured.append((size, service))
                per_batch = service_ops / batches(size)
                if counted is not None and batches(size) > counted[0]:
                    # What each batch more costs: the operations a job makes once are left out.
                    per_batch = (service_ops - counted[1]) / (batches(size) - counted[0])
                counted = (batches(size), service_ops)
                print(
                    f"{label}  {service:>11.2f}  {floor:>11.3f}  {service / floor:>11.1f}  "
                    f"{service_ops:>11}  {floor_ops:>11}  {per_batch:>11.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
