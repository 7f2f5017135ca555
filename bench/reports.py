"""Time a delivery report and count its database operations as a tenant's messages grow.

    .venv/bin/python bench/reports.py

A tenant with 20 campaigns on 4 bots, its messages spread over 30 days, a fifth of them failed with
one of Telegram's refusals; another tenant with as many messages, which the report must not read past
its index. The report (`GET /api/v1/reports/delivery`, by the day, then by the hour over 2 days) and its
CSV are timed through the test client on the embedded store, where every aggregation reads the whole
collection (a server reads only the tenant's index range); the operations must not grow with the
messages.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("APP_ENV", "testing")

from bson import ObjectId  # noqa: E402

from app import create_app  # noqa: E402
from app.auth import tokens  # noqa: E402
from app.db import counted_operations  # noqa: E402
from app.messages.models import Message  # noqa: E402
from app.tenancy.context import tenant_scope  # noqa: E402
from app.tenants.service import create_tenant  # noqa: E402
from app.users.service import create_user  # noqa: E402

SIZES = (1_000, 5_000, 10_000)
END = datetime(2026, 12, 1, tzinfo=UTC)
ERRORS = (
    "Forbidden: bot was blocked by the user",
    "Bad Request: chat not found",
    "Forbidden: user is deactivated",
)


def fill(tenant, count: int) -> None:
    campaigns = [ObjectId() for _ in range(20)]
    bots = [ObjectId() for _ in range(4)]
    messages = []
    for n in range(count):
        queued = END - timedelta(seconds=(n * 2_592_000) // count + 1)
        failed = n % 5 == 0
        messages.append(
            Message(
                campaign_id=campaigns[n % 20],
                telegram_account_id=bots[n % 4],
                chat=str(1000 + n % 3000),
                text="hi",
                status="failed" if failed else "sent",
                queued_at=queued,
                sent_at=None if failed else queued + timedelta(seconds=n % 30),
                failed_at=queued + timedelta(seconds=1) if failed else None,
                error=ERRORS[n % 3] if failed else None,
            )
        )
    with tenant_scope(tenant):
        for start in range(0, count, 5_000):
            Message.objects.insert(messages[start : start + 5_000], load_bulk=False)


def measure(client, auth, url: str, runs: int = 3) -> tuple[float, int]:
    """The median time of `runs` requests, and the database operations of one."""
    client.get(url, headers=auth)  # warm the caches
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with counted_operations() as counted:
            response = client.get(url, headers=auth)
            response.get_data()
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.get_data(as_text=True)[:200]
    return statistics.median(times), counted["total"]


def main() -> None:
    period = f"from={(END - timedelta(days=30)).isoformat()}&until={END.isoformat()}".replace("+", "%2B")
    hours = f"from={(END - timedelta(days=2)).isoformat()}&until={END.isoformat()}&interval=hour".replace(
        "+", "%2B"
    )
    routes = (
        ("by the day, 30 days", f"/api/v1/reports/delivery?{period}"),
        ("by the hour, 2 days", f"/api/v1/reports/delivery?{hours}"),
        ("CSV, by the day", f"/api/v1/reports/delivery/csv?{period}"),
    )
    print(f"{'messages':>9}  {'report':<22} {'median':>9}  operations")
    for size in SIZES:
        # Cached credentials for the whole run: the count is the report's own operations.
        app = create_app(
            {"MONGODB_URI": f"mongomock://localhost/bench_reports_{size}", "AUTH_CACHE_TTL": 3600}
        )
        with app.app_context():
            tenant = create_tenant(f"Bench {size}", f"bench-{size}", plan="professional")
            neighbour = create_tenant(f"Neighbour {size}", f"neighbour-{size}", plan="professional")
            with tenant_scope(tenant):
                owner = create_user(f"owner@bench{size}.example.com", "Owner", "bench password 1", "owner")
            fill(tenant, size)
            fill(neighbour, size)
            auth = {"Authorization": f"Bearer {tokens.issue(owner, [tokens.PASSWORD])['access_token']}"}
            client = app.test_client()
            for name, url in routes:
                seconds, operations = measure(client, auth, url)
                print(f"{size:>9,}  {name:<22} {seconds * 1000:>7.0f} ms  {operations}")


if __name__ == "__main__":
    main()
