"""Bad input: every malformed or hostile body and query gets its status in the envelope and stores nothing."""

from __future__ import annotations

import json

import pytest

from app.campaigns.models import Campaign
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.users.models import User

CAMPAIGNS = "/api/v1/campaigns"
SIGNUP = "/api/v1/tenants/signup"


def envelope(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.json
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return body["error"]["code"]


def nothing_stored(tenant):
    with tenant_scope(tenant):
        return Campaign.objects.count() == 0 and User.objects.count() == 1


def post_raw(client, url, data, headers, content_type="application/json"):
    return client.post(url, data=data, headers={**headers, "Content-Type": content_type})


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ('{"name": "x",', 400),
        ("[" * 20_000 + "]" * 20_000, 400),
        ('{"name": "x", "message": {"text": NaN}, "targets": ["@chan1"]}', 422),
        ('{"name": Infinity, "message": {"text": "hi"}, "targets": ["@chan1"]}', 422),
        ('"a string"', 422),
        ("[1, 2, 3]", 422),
        ("null", 422),
        (b'{"name": "\xff"}', 400),
    ],
)
def test_malformed_json(client, auth_headers, tenant, data, status):
    envelope(post_raw(client, CAMPAIGNS, data, auth_headers), status)
    assert nothing_stored(tenant)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"]
)
def test_wrong_content_types(client, auth_headers, tenant, content_type):
    body = json.dumps({"name": "x", "message": {"text": "hi"}, "targets": ["@chan1"]})
    assert (
        envelope(post_raw(client, CAMPAIGNS, body, auth_headers, content_type), 415)
        == "unsupported_media_type"
    )
    assert nothing_stored(tenant)


def test_a_body_over_max_content_length(app_factory, make_user, headers_for):
    app = app_factory(MAX_CONTENT_LENGTH=4096)
    with app.app_context():
        from app.tenants.service import create_tenant

        tenant = create_tenant("Acme Corp", "acme", plan="professional")
        headers = headers_for(make_user(tenant, "owner"))
        body = {"name": "x", "description": "y" * 10_000, "message": {"text": "hi"}, "targets": ["@chan1"]}
        response = app.test_client().post(CAMPAIGNS, json=body, headers=headers)
        assert envelope(response, 413) == "payload_too_large"
        assert nothing_stored(tenant)


@pytest.mark.parametrize(
    "body",
    [
        {"name": {"$ne": None}, "message": {"text": "hi"}, "targets": ["@chan1"]},
        {"name": "x", "message": {"text": {"$gt": ""}}, "targets": ["@chan1"]},
        {"name": "x", "message": {"text": "hi"}, "targets": [{"$where": "1"}]},
        {"name": "x", "message": {"text": "hi"}, "targets": ["@chan1"], "$set": {"tenantId": "x"}},
        {"name": "x", "message": {"text": "hi", "a.b": 1}, "targets": ["@chan1"]},
        {"name": "x", "message": {"text": "hi"}, "targets": ["@chan1"] * 20_000},
        {"name": "x", "message": {"text": "hi"}, "targets": [["@chan1"]]},
    ],
)
def test_operators_keys_and_huge_arrays_in_bodies(client, auth_headers, tenant, body):
    assert envelope(client.post(CAMPAIGNS, json=body, headers=auth_headers), 422) == "validation_error"
    assert nothing_stored(tenant)


def test_errors_of_list_items_and_of_the_whole_list_come_together(client, auth_headers, tenant):
    body = {"name": "x", "message": {"text": "hi"}, "targets": [None, 0, 0]}
    response = client.post(CAMPAIGNS, json=body, headers=auth_headers)
    assert envelope(response, 422) == "validation_error"
    assert response.json["error"]["details"]["targets"] == {
        "0": ["Field may not be null."],
        "_schema": ["Each chat may appear once."],
    }
    assert nothing_stored(tenant)


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/users", {"email": "new@acme.example.com", "name": "\u0085 \t", "password": "x" * 12}),
        ("/api/v1/api-keys", {"name": "\r", "role": "admin"}),
        ("/api/v1/telegram-accounts", {"name": "  ", "token": "123456789:" + "A" * 35}),
    ],
)
def test_a_name_of_white_space_only_is_refused(client, auth_headers, tenant, url, body):
    response = client.post(url, json=body, headers=auth_headers)
    assert envelope(response, 422) == "validation_error"
    assert response.json["error"]["details"]["name"] == ["Must contain more than white space."]
    assert nothing_stored(tenant)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("status[$ne]=draft", 200),
        ("page[$gt]=5", 200),
        ("status=draft&status[$regex]=.*", 200),
        ("perPage=1e9", 422),
        ("page=-1", 422),
        ("perPage=NaN", 422),
        ("status[$ne]=", 200),
    ],
)
def test_operators_in_query_strings_are_never_operators(client, auth_headers, tenant, query, status):
    created = client.post(
        CAMPAIGNS,
        json={"name": "only", "message": {"text": "hi"}, "targets": ["@chan1"]},
        headers=auth_headers,
    )
    assert created.status_code == 201
    response = client.get(f"{CAMPAIGNS}?{query}", headers=auth_headers)
    if status == 422:
        assert envelope(response, 422) == "validation_error"
        return
    # An unknown key such as status[$ne] is ignored, never read as MongoDB's $ne: the draft is listed.
    assert response.status_code == 200
    assert [item["name"] for item in response.json["items"]] == ["only"]


def test_an_operator_in_a_login_email_never_matches(client, owner):
    response = client.post("/api/v1/auth/login", json={"email": {"$ne": None}, "password": "x"})
    assert envelope(response, 422) == "validation_error"
    response = client.get("/api/v1/tenants/current?email[$ne]=", headers={"X-Tenant-Id": "acme"})
    assert envelope(response, 401) == "unauthorized"


@pytest.mark.parametrize(
    "slug",
    ["\u0430cme", "acme\u200b", "ac\u2010me", "ACME", "xn--acme", "acme\n", "ac me", "a" * 64, "www"],
)
def test_lookalike_and_reserved_slugs_are_refused(client, app, slug):
    body = {
        "tenant": {"name": "Lookalike", "slug": slug},
        "user": {"email": "a@b.co", "password": "long enough 1", "name": "A"},
    }
    assert envelope(client.post(SIGNUP, json=body), 422) == "validation_error"
    assert Tenant.objects.count() == 0
