"""Count database operations per request, for every route of the API.

    .venv/bin/python bench/roundtrips.py

Operations are counted as app.db.counted_operations counts them: every call of a read or write
method of a collection is one, and a `find` counts when its cursor is first read, which is when
pymongo sends it (a query set's count() makes a cursor it never reads). Operations mongomock builds
on others (find_one, deletes and distinct read through find) count once.
Each list route is measured with 1 and with 100 items of its resource: the two counts must match (a
difference is an N+1). A cached read should cost at most 2 operations.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("APP_ENV", "testing")


from app import create_app  # noqa: E402
from app.auth import tokens  # noqa: E402
from app.auth.api_keys import create_api_key  # noqa: E402
from app.db import counted_operations  # noqa: E402
from app.tenancy.access import Principal  # noqa: E402
from app.tenancy.context import tenant_scope  # noqa: E402
from app.tenants.service import create_tenant  # noqa: E402
from app.users.service import create_superadmin, create_user  # noqa: E402


def setup(app, items: int):
    """A tenant with `items` of every listed resource, an owner token and an API key."""
    from app.telegram_accounts import service as accounts

    accounts._check_with_telegram = lambda token, base: {"username": "bench_bot"}  # no network here
    tenant = create_tenant(f"Bench {items}", f"bench-{items}", plan="enterprise")
    with tenant_scope(tenant):
        owner = create_user(f"owner{items}@bench.example.com", "Owner", "bench password 1", "owner")
        principal = Principal(subject=str(owner.id), role="owner", tenant_id=tenant.id, via="access_token")
        key = create_api_key("bench", "admin", principal).key
    token = tokens.issue(owner, [tokens.PASSWORD])["access_token"]
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    bot = client.post(
        "/api/v1/telegram-accounts", headers=auth, json={"name": "bot", "token": "123456789:" + "A" * 35}
    ).json["id"]
    for index in range(items):
        campaign = client.post(
            "/api/v1/campaigns",
            headers=auth,
            json={
                "name": f"c{index}",
                "message": {"text": "hi"},
                "targets": ["@channel1"],
                "telegramAccountId": bot,
            },
        ).json["id"]
        client.post(f"/api/v1/campaigns/{campaign}/send", headers=auth)
        with tenant_scope(tenant):
            create_user(f"u{index}-{items}@bench.example.com", "User", "bench password 1", "member")
        client.post(
            "/api/v1/webhooks",
            headers=auth,
            json={"url": f"https://h.example.com/{index}", "events": ["usage.threshold"]},
        )
        client.post(
            "/api/v1/media",
            headers=auth,
            data={"file": (io.BytesIO(b"x" * 10), f"f{index}.txt", "text/plain")},
            content_type="multipart/form-data",
        )
    return client, auth, {"X-API-Key": key}, campaign


ROUTES = [
    ("GET", "/api/v1/tenants/current"),
    ("GET", "/api/v1/tenants/current/usage"),
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/campaigns?perPage=100"),
    ("GET", "/api/v1/users?perPage=100"),
    ("GET", "/api/v1/messages?perPage=100"),
    ("GET", "/api/v1/webhooks?perPage=100"),
    ("GET", "/api/v1/media?perPage=100"),
    ("GET", "/api/v1/audit-logs?perPage=100"),
    ("GET", "/api/v1/api-keys?perPage=100"),
    ("GET", "/api/v1/telegram-accounts?perPage=100"),
]


def main() -> None:
    app = create_app(
        {"MONGODB_URI": "mongomock://localhost/bench_roundtrips", "TELEGRAM_API_BASE": "http://127.0.0.1:9"}
    )
    rows = []
    with app.app_context():
        create_superadmin("root@bench.example.com", "Root", "bench password 1")
        one = setup(app, 1)
        hundred = setup(app, 100)
    for method, path in ROUTES:
        measured = []
        for client, auth, _key, _campaign in (one, hundred):
            client.open(path, method=method, headers=auth)  # warm the tenant cache
            with counted_operations() as result:
                response = client.open(path, method=method, headers=auth)
            assert response.status_code == 200, (
                path,
                response.status_code,
                response.get_data(as_text=True)[:200],
            )
            measured.append(result)
        rows.append((f"{method} {path}", measured[0]["total"], measured[1]["total"], measured[1]))
    client, _auth, key, _campaign = hundred
    client.get("/api/v1/campaigns?perPage=100", headers=key)  # warm the caches
    with counted_operations() as result:
        client.get("/api/v1/campaigns?perPage=100", headers=key)
    rows.append(("GET /api/v1/campaigns?perPage=100 (API key)", "-", result["total"], result))
    width = max(len(r[0]) for r in rows)
    print(f"{'route':<{width}}  {'1 item':>6}  {'100 items':>9}  operations (100 items)")
    for name, small, large, detail in rows:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(detail.items()) if k != "total")
        flag = "  N+1!" if small != "-" and small != large else ""
        print(f"{name:<{width}}  {small!s:>6}  {large!s:>9}  {ops}{flag}")


if __name__ == "__main__":
    main()
