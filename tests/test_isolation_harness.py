"""The isolation harness: every route of the service's own OpenAPI document, probed across tenants.

It reads /api/v1/openapi.json, so a new route is probed without editing this file:
1. every operation with a path parameter, with tenant B's credentials (a token and an API key) and each
   of tenant A's ids, for every method: the answer must be 404, and A's data must not change;
2. every operation with B's credential and a hint naming A (header and query): 403 tenant_mismatch
   (or 403 forbidden on superadmin routes, which a tenant may not reach at all);
3. every superadmin operation with each tenant role and an API key: 403.
It fails on the first leak and prints how many probes it sent.
"""

from __future__ import annotations

import io
import re

import pytest
from bson import ObjectId

from app.auth.api_keys import create_api_key
from app.tenancy.access import Access, Principal, rule_for
from app.tenancy.context import tenant_scope, unscoped
from app.tenancy.registry import tenant_document_classes
from app.tenants.service import create_tenant

from .support import all_tenant_documents, operations

pytestmark = pytest.mark.multitenant

PARAM = re.compile(r"{([^}]+)}")
READ_A = "harness: read tenant A's data"


def _principal(user):
    return Principal(subject=str(user.id), role=user.role, tenant_id=user.tenant_id, via="access_token")


@pytest.fixture
def world(app, client, make_user, headers_for, superadmin):
    """Tenant A with one of everything, tenant B with an owner and an API key."""
    a = create_tenant("Acme Corp", "acme", plan="enterprise")
    b = create_tenant("Globex", "globex", plan="professional")
    a_users = {role: make_user(a, role) for role in ("owner", "admin", "member")}
    b_owner = make_user(b, "owner")
    a_headers = {role: headers_for(user) for role, user in a_users.items()}
    with tenant_scope(a):
        a_key = create_api_key("a-admin", "admin", _principal(a_users["owner"])).key
    with tenant_scope(b):
        b_key = create_api_key("b-admin", "admin", _principal(b_owner)).key
    owner_a = a_headers["owner"]
    bot = client.post(
        "/api/v1/telegram-accounts", headers=owner_a, json={"name": "bot", "token": "123456789:" + "A" * 35}
    ).json
    client.post(
        "/api/v1/webhooks",
        headers=owner_a,
        json={"url": "https://hooks.example.com/a", "events": ["usage.threshold"]},
    )
    campaign = client.post(
        "/api/v1/campaigns",
        headers=owner_a,
        json={
            "name": "c",
            "message": {"text": "hi"},
            "targets": ["@channel1", "12345"],
            "telegramAccountId": bot["id"],
        },
    ).json
    client.post(f"/api/v1/campaigns/{campaign['id']}/send", headers=owner_a)
    client.post(
        "/api/v1/media",
        headers=owner_a,
        data={"file": (io.BytesIO(b"\x89PNG data"), "a.png", "image/png")},
        content_type="multipart/form-data",
    )
    return {
        "a": a,
        "b": b,
        "a_headers": a_headers,
        "a_key": {"X-API-Key": a_key},
        "b_credentials": {"token": headers_for(b_owner), "api key": {"X-API-Key": b_key}},
    }


def a_ids(tenant) -> list[str]:
    """Every id tenant A owns: its own, and each document's in every tenant collection."""
    ids = [str(tenant.id)]
    with unscoped("harness: collect tenant A's ids"):
        for document_class in tenant_document_classes():
            ids += [
                str(doc["_id"]) for doc in document_class.objects(tenant_id=tenant.id).as_pymongo().only("id")
            ]
    return ids


def rule_of(app, path, method):
    concrete = PARAM.sub(lambda _m: str(ObjectId()), path)
    endpoint, _args = app.url_map.bind("localhost").match(concrete, method=method.upper())
    return rule_for(app, endpoint, method.upper())


def send(client, method, url, headers, **kwargs):
    body = {} if method in ("post", "put", "patch") else None
    return client.open(url, method=method.upper(), headers=headers, json=body, **kwargs)


def report(capsys, what, count):
    with capsys.disabled():
        print(f"\n[isolation harness] {what}: {count} probes")


def test_another_tenants_ids_are_404_on_every_route(app, client, world, capsys):
    ids = a_ids(world["a"])
    before = all_tenant_documents(world["a"], reason=READ_A)
    probes = 0
    for path, method in operations(client):
        if not PARAM.search(path) or rule_of(app, path, method).access is Access.PLATFORM:
            continue
        for name, headers in world["b_credentials"].items():
            for target in ids:
                url = PARAM.sub(target, path)
                response = send(client, method, url, headers)
                probes += 1
                assert response.status_code == 404, (
                    f"LEAK? {method.upper()} {url} with B's {name} answered {response.status_code}: "
                    f"{response.get_data(as_text=True)[:200]}"
                )
    assert probes > 0
    assert all_tenant_documents(world["a"], reason=READ_A) == before, (
        "tenant A's data changed under tenant B's requests"
    )
    report(capsys, "another tenant's ids", probes)


def test_a_hint_naming_another_tenant_is_refused_on_every_route(app, client, world, capsys):
    probes = 0
    for path, method in operations(client):
        rule = rule_of(app, path, method)
        if rule.token_type != "access":
            continue  # the refresh route takes a refresh token; its hints are checked the same way
        url = PARAM.sub(lambda _m: str(ObjectId()), path)
        for name, headers in world["b_credentials"].items():
            for hint in (
                {"headers": {"X-Tenant-Id": "acme"}},
                {"query_string": {"tenant": str(world["a"].id)}},
            ):
                response = send(
                    client,
                    method,
                    url,
                    {**headers, **hint.get("headers", {})},
                    query_string=hint.get("query_string"),
                )
                probes += 1
                expected = "forbidden" if rule.access is Access.PLATFORM else "tenant_mismatch"
                assert response.status_code == 403 and response.json["error"]["code"] == expected, (
                    f"{method.upper()} {url} with B's {name} and a hint naming A answered "
                    f"{response.status_code}: {response.get_data(as_text=True)[:200]}"
                )
    report(capsys, "hints naming another tenant", probes)


def test_superadmin_routes_refuse_every_tenant_credential(app, client, world, capsys):
    credentials = {**world["a_headers"], "api key": world["a_key"]}
    probes = 0
    for path, method in operations(client):
        if rule_of(app, path, method).access is not Access.PLATFORM:
            continue
        url = PARAM.sub(str(world["a"].id), path)
        for name, headers in credentials.items():
            response = send(client, method, url, headers)
            probes += 1
            assert response.status_code == 403 and response.json["error"]["code"] == "forbidden", (
                f"{method.upper()} {url} with A's {name} answered {response.status_code}"
            )
    assert probes > 0
    report(capsys, "superadmin routes with tenant credentials", probes)
