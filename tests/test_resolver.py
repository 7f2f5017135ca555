"""The resolver chain and middleware: hints, their precedence, status, cache, debug logging."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from app.tenancy.cache import TTLCache, tenant_cache
from app.tenancy.resolver import Hint, host_hint
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.tenants.slugs import RESERVED

from .support import log_records, register_probe

pytestmark = pytest.mark.multitenant


@pytest.fixture
def probe(app, tenant, other_tenant):
    register_probe(app)
    return app.test_client()


def slug_of(response):
    assert response.status_code == 200, response.json
    return response.json["slug"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("acme.example.com", Hint("subdomain", "acme")),
        ("ACME.Example.com:8080", Hint("subdomain", "acme")),
        ("acme.example.com.", Hint("subdomain", "acme")),
        ("www.example.com", None),
        ("api.example.com", None),
        ("admin.example.com", None),
        ("example.com", None),
        ("localhost:5000", None),
        ("127.0.0.1:5000", None),
        ("[::1]:5000", None),
        ("marketing.acme.io", Hint("domain", "marketing.acme.io")),
        ("a.b.example.com", Hint("subdomain", "a.b")),
    ],
)
def test_host_hint(host, expected):
    assert host_hint(host, "example.com", RESERVED) == expected


class TestHints:
    def test_no_hint_no_tenant(self, probe):
        assert slug_of(probe.get("/api/v1/probe/tenant")) is None

    def test_header_by_slug_and_by_id(self, probe, tenant):
        assert slug_of(probe.get("/api/v1/probe/tenant", headers={"X-Tenant-Id": "acme"})) == "acme"
        by_id = probe.get("/api/v1/probe/tenant", headers={"X-Tenant-Id": str(tenant.id)})
        assert slug_of(by_id) == "acme"

    def test_query_parameter(self, probe):
        assert slug_of(probe.get("/api/v1/probe/tenant?tenant=globex")) == "globex"

    def test_subdomain(self, app, probe):
        app.config["BASE_DOMAIN"] = "example.com"
        response = probe.get("/api/v1/probe/tenant", headers={"Host": "globex.example.com"})
        assert slug_of(response) == "globex"

    def test_custom_domain(self, probe, other_tenant):
        Tenant.objects(id=other_tenant.id).update(set__domain="marketing.globex.io")
        tenant_cache().clear()
        response = probe.get("/api/v1/probe/tenant", headers={"Host": "marketing.globex.io"})
        assert slug_of(response) == "globex"

    def test_unknown_custom_domain_names_no_tenant(self, probe):
        response = probe.get("/api/v1/probe/tenant", headers={"Host": "unknown.example.org"})
        assert slug_of(response) is None

    def test_precedence_header_param_domain_subdomain(self, app, probe, tenant, other_tenant):
        app.config["BASE_DOMAIN"] = "example.com"
        third = create_tenant("Initech", "initech")
        Tenant.objects(id=third.id).update(set__domain="initech.io")
        tenant_cache().clear()
        url = "/api/v1/probe/tenant"
        header_and_host = {"X-Tenant-Id": "acme", "Host": "globex.example.com"}
        assert slug_of(probe.get(url, headers=header_and_host)) == "acme"
        assert slug_of(probe.get(url + "?tenant=acme", headers={"Host": "globex.example.com"})) == "acme"
        both = probe.get(url + "?tenant=globex", headers={"X-Tenant-Id": "acme"})
        assert slug_of(both) == "acme"
        assert slug_of(probe.get(url + "?tenant=acme", headers={"Host": "initech.io"})) == "acme"

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"headers": {"X-Tenant-Id": "nope"}},
            {"headers": {"X-Tenant-Id": "507f1f77bcf86cd799439011"}},
            {"query_string": {"tenant": "nope"}},
            {"headers": {"Host": "nope.localhost"}},
            {"headers": {"X-Tenant-Id": "\u0430cme"}},
            {"headers": {"X-Tenant-Id": "acme", "Host": "nope.localhost"}},
        ],
    )
    def test_a_hint_naming_no_tenant_is_404(self, probe, kwargs):
        response = probe.get("/api/v1/probe/tenant", **kwargs)
        assert response.status_code == 404
        assert response.json["error"]["code"] == "tenant_not_found"

    def test_suspended_tenant_is_403(self, probe, tenant):
        Tenant.objects(id=tenant.id).update(set__status="suspended")
        tenant_cache().clear()
        response = probe.get("/api/v1/probe/tenant", headers={"X-Tenant-Id": "acme"})
        assert response.status_code == 403
        assert response.json["error"]["code"] == "tenant_suspended"

    def test_hint_alone_does_not_open_a_private_route(self, probe):
        response = probe.get("/api/v1/probe/private", headers={"X-Tenant-Id": "acme"})
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"


class TestDoneWhen:
    def test_current_tenant_with_a_hint_and_no_credential_is_401(self, client, tenant):
        response = client.get("/api/v1/tenants/current", headers={"X-Tenant-Id": "acme"})
        assert response.status_code == 401
        assert response.json == {"error": {"code": "unauthorized", "message": "Authentication required"}}

    def test_current_tenant_with_an_unknown_slug_is_404(self, client, tenant):
        response = client.get("/api/v1/tenants/current", headers={"X-Tenant-Id": "nobody"})
        assert response.status_code == 404
        assert response.json["error"]["code"] == "tenant_not_found"


class TestCache:
    def test_a_change_in_this_process_is_seen_at_once(self, probe, tenant):
        assert slug_of(probe.get("/api/v1/probe/tenant", headers={"X-Tenant-Id": "acme"})) == "acme"
        fresh = Tenant.objects.get(id=tenant.id)
        fresh.status = "suspended"
        fresh.save()
        response = probe.get("/api/v1/probe/tenant", headers={"X-Tenant-Id": "acme"})
        assert response.json["error"]["code"] == "tenant_suspended"

    def test_hits_do_not_query_and_expire_after_the_ttl(self):
        now = [1000.0]
        cache = TTLCache(ttl=60, timer=lambda: now[0])
        loads = []

        def load():
            loads.append(1)
            return len(loads)

        assert cache.get("k", load) == 1
        now[0] += 59
        assert cache.get("k", load) == 1
        now[0] += 2
        assert cache.get("k", load) == 2
        cache.clear()
        assert cache.get("k", load) == 3

    def test_a_change_during_a_load_is_not_cached(self):
        cache = TTLCache(ttl=60)

        def load_while_changing():
            cache.clear()
            return "stale"

        assert cache.get("k", load_while_changing) == "stale"
        assert cache.get("k", lambda: "fresh") == "fresh"

    def test_misses_are_cached(self, monkeypatch):
        cache = TTLCache(ttl=60)
        calls = []
        for _ in range(3):
            cache.get("unknown", lambda: calls.append(1))
        assert len(calls) == 1

    def test_at_the_bound_the_least_recently_used_goes_and_the_rest_stay(self):
        cache = TTLCache(ttl=60, max_entries=3)
        loads = []

        def loader(key):
            return lambda: loads.append(key) or key

        for key in ("a", "b", "c"):
            cache.get(key, loader(key))
        cache.get("a", loader("a"))  # used again: "b" is now the least recently used
        cache.get("d", loader("d"))
        for key in ("a", "c", "d", "b"):
            assert cache.get(key, loader(key)) == key
        assert loads == ["a", "b", "c", "d", "b"]

    def test_a_stream_of_unknown_keys_does_not_push_out_the_keys_in_use(self):
        cache = TTLCache(ttl=60, max_entries=100)
        loads = []
        for index in range(1_000):
            cache.get(("hot", index % 10), lambda: loads.append(1))
            cache.get(("unknown", index), lambda: None)
        assert len(loads) == 10

    def test_a_ttl_of_zero_keeps_nothing(self):
        cache = TTLCache(ttl=0)
        loads = []
        for _ in range(3):
            cache.get("k", lambda: loads.append(1))
        assert len(loads) == 3

    def test_a_new_timer_or_ttl_starts_empty(self):
        now = [0.0]
        cache = TTLCache(ttl=60)
        cache.get("k", lambda: "before")
        cache.timer = lambda: now[0]
        assert cache.get("k", lambda: "after") == "after"
        cache.ttl = 10
        assert cache.get("k", lambda: "shorter") == "shorter"
        now[0] += 11
        assert cache.get("k", lambda: "expired") == "expired"

    def test_threads_sharing_a_cache_at_its_bound_get_their_own_values(self, frequent_thread_switches):
        cache = TTLCache(ttl=60, max_entries=16)
        wrong = []

        def work(offset):
            for index in range(2_000):
                key = (index + offset) % 50
                value = cache.get(key, lambda key=key: key)
                if value != key:
                    wrong.append((key, value))
                if index % 500 == 0:
                    cache.clear()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        assert wrong == []


def test_tenant_debug_logs_each_resolution_and_filter(app_factory):
    app = app_factory(TENANT_DEBUG=True, LOG_LEVEL="DEBUG")
    register_probe(app)
    with app.app_context():
        create_tenant("Acme Corp", "acme")
    with log_records("app.tenancy") as records:
        from app.tenancy.context import tenant_scope

        from .support import Note

        app.test_client().get("/api/v1/probe/tenant", headers={"X-Tenant-Id": "acme"})
        with app.app_context():
            tenant = Tenant.objects.get(slug="acme")
            with tenant_scope(tenant):
                Note.objects.count()
    messages = [r.getMessage() for r in records]
    assert "tenant resolved" in messages
    assert "tenant filter" in messages
