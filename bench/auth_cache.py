"""Measure the per-process caches an authenticated request goes through, next to a floor measured in
the same run.

    .venv/bin/python bench/auth_cache.py [--repeat 7]

Each row is the best of --repeat rounds, in nanoseconds per operation, and its ratio to the floor:
- hit: `auth_cache().get(("user", tenant id, subject), load)` on a stored key, as every authenticated
  request asks it (the tenant cache and the revocation check ask the same way); floor: `dict.get` of
  the same key;
- miss and store: `get` of a new key each time, past the cache's size bound (so the bound's eviction is
  paid for); floor: storing into a dict;
- verified token: `app.auth.tokens.decode` of a token verified before (its signature is not checked
  again); floor: `dict.get` of the token;
- request: `GET /api/v1/auth/me` with a bearer token through the Flask test client (every cache of the
  request warm); floor: a bare Flask app's `GET /ping` through its test client.
Then the hot keys under a stream of unknown keys: 100 keys asked for again and again, each between two
keys never seen before (a stream of unknown hosts or API keys), 100,000 asks in all; the loads of the
hot keys say whether the size bound throws the hot keys out (100 loads: never).
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("APP_ENV", "testing")

from bson import ObjectId  # noqa: E402

from app import create_app  # noqa: E402
from app.auth import tokens  # noqa: E402
from app.auth.cache import auth_cache  # noqa: E402
from app.tenancy.cache import TTLCache  # noqa: E402
from app.tenancy.context import tenant_scope  # noqa: E402
from app.tenants.service import create_tenant  # noqa: E402
from app.users.service import create_user  # noqa: E402
from bench.bare_app import app as bare_app  # noqa: E402

HOT_KEYS = 100
STREAM = 100_000


def best(statement, number: int, repeat: int) -> float:
    """Nanoseconds per call of `statement`, the best of `repeat` rounds of `number` calls."""
    return min(timeit.repeat(statement, number=number, repeat=repeat)) / number * 1e9


def cache_rows(app, repeat: int) -> list[tuple[str, float, float]]:
    with app.app_context():
        return _cache_rows(repeat)


def _cache_rows(repeat: int) -> list[tuple[str, float, float]]:
    key = ("user", ObjectId(), str(ObjectId()))
    user = object()
    auth_cache().get(key, lambda: user)
    plain = {key: user}
    hit = best(lambda: auth_cache().get(key, lambda: user), 200_000, repeat)
    hit_floor = best(lambda: plain.get(key), 200_000, repeat)

    counter = iter(range(10**9))
    cache = TTLCache(ttl=60)
    store = {}
    miss = best(lambda: cache.get(("user", next(counter)), lambda: user), 50_000, repeat)
    miss_floor = best(lambda: store.__setitem__(("user", next(counter)), user), 50_000, repeat)
    return [("hit", hit, hit_floor), ("miss and store", miss, miss_floor)]


def token_and_request_rows(app, repeat: int) -> list[tuple[str, float, float]]:
    with app.app_context():
        tenant = create_tenant("Bench", "bench", plan="enterprise")
        with tenant_scope(tenant):
            owner = create_user("owner@bench.example.com", "Owner", "bench password 1", "owner")
        token = tokens.issue(owner, [tokens.PASSWORD])["access_token"]
        tokens.decode(token)
        verified = best(lambda: tokens.decode(token), 200_000, repeat)
        plain = {token: {}}
        verified_floor = best(lambda: plain.get(token), 200_000, repeat)

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    bare = bare_app.test_client()
    request = best(lambda: client.get("/api/v1/auth/me", headers=headers), 300, repeat)
    request_floor = best(lambda: bare.get("/ping"), 300, repeat)
    return [("verified token", verified, verified_floor), ("request", request, request_floor)]


def hot_key_loads() -> int:
    """Loads of the hot keys while a stream of unknown keys passes through a cache of the default size."""
    cache = TTLCache(ttl=3600)
    loads = 0

    def load_hot():
        nonlocal loads
        loads += 1
        return True

    for index in range(STREAM // 2):
        cache.get(("hot", index % HOT_KEYS), load_hot)
        cache.get(("unknown", index), lambda: None)
    return loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    app = create_app(
        {
            "APP_ENV": "testing",
            "LOG_LEVEL": "WARNING",
            "MONGODB_URI": "mongomock://localhost/bench_auth_cache",
        }
    )
    rows = cache_rows(app, args.repeat) + token_and_request_rows(app, args.repeat)
    print(f"{'case':<16}  {'ns/op':>10}  {'floor ns/op':>11}  {'ratio':>6}")
    for name, measured, floor in rows:
        print(f"{name:<16}  {measured:>10.0f}  {floor:>11.0f}  {measured / floor:>6.2f}")
    print(f"hot keys: {HOT_KEYS}, asks: {STREAM:,}, loads of hot keys: {hot_key_loads()}")


if __name__ == "__main__":
    main()
