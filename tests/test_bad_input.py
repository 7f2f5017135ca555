"""Bad input: every malformed or hostile body and query gets its status in the envelope and stores nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from marshmallow import ValidationError, class_registry, fields

from app.campaigns.models import Campaign
from app.fields import UtcDateTime
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


# -- date-times at the ends of the calendar ---------------------------------------------------------------

# Each names an instant outside the years 1 to 9999 once converted to UTC, which Python cannot hold.
OUT_OF_RANGE = [
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59.999999-00:01",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00.000001+00:01",
]
FIRST_AND_LAST = ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999000+00:00"]


def app_schemas() -> list[type]:
    """Every schema class the app defines (response schemas included)."""
    return sorted(
        {
            cls
            for cls in class_registry._registry.values()
            for cls in cls
            if cls.__module__.startswith("app.")
        },
        key=lambda cls: f"{cls.__module__}.{cls.__name__}",
    )


def date_time_fields() -> list[tuple[type, str, fields.Field]]:
    found = [
        (schema, name, field)
        for schema in app_schemas()
        for name, field in schema().fields.items()
        if isinstance(field, fields.DateTime)
    ]
    assert len(found) > 30  # every schema module was imported (the app was built)
    return found


def test_every_date_time_field_of_the_api_takes_its_value_in_utc(app):
    others = [
        (schema.__name__, name)
        for schema, name, field in date_time_fields()
        if type(field) is not UtcDateTime
    ]
    assert others == []


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_every_date_time_field_refuses_an_instant_outside_the_calendar(app, value):
    for schema, name, field in date_time_fields():
        key = field.data_key or name
        with pytest.raises(ValidationError) as refused:
            schema().load({key: value}, partial=True)
        assert key in refused.value.messages, schema


@pytest.mark.parametrize("value", FIRST_AND_LAST)
def test_every_date_time_field_takes_the_first_and_last_instants(app, value):
    expected = datetime.fromisoformat(value)
    for schema, name, field in date_time_fields():
        loaded = schema().load({field.data_key or name: value}, partial=True)
        assert loaded[name] == expected and loaded[name].tzinfo == UTC, schema


DATED_REQUESTS = [
    ("post", CAMPAIGNS, "scheduledAt", lambda when: {"json": {**CAMPAIGN, "scheduledAt": when}}),
    ("patch", "{campaign}", "scheduledAt", lambda when: {"json": {"scheduledAt": when}}),
    ("get", "/api/v1/audit-logs", "since", lambda when: {"query_string": {"since": when}}),
    ("get", "/api/v1/audit-logs", "until", lambda when: {"query_string": {"until": when}}),
    ("get", "/api/v1/platform/audit-logs", "since", lambda when: {"query_string": {"since": when}}),
    ("get", "/api/v1/platform/audit-logs", "until", lambda when: {"query_string": {"until": when}}),
    ("patch", "{tenant}", "trialEndsAt", lambda when: {"json": {"billing": {"trialEndsAt": when}}}),
    ("patch", "{tenant}", "currentPeriodEnd", lambda when: {"json": {"billing": {"currentPeriodEnd": when}}}),
]
DATED_IDS = [f"{method} {url} {field}" for method, url, field, _body in DATED_REQUESTS]
CAMPAIGN = {"name": "Launch", "message": {"text": "hi"}, "targets": ["@channel1"]}


@pytest.fixture
def dated_request(client, tenant, auth_headers, superadmin_headers):
    """Send one of DATED_REQUESTS with a date-time, as someone allowed to; return the answer."""
    draft = client.post(CAMPAIGNS, headers=auth_headers, json=CAMPAIGN).json["id"]
    urls = {"campaign": f"{CAMPAIGNS}/{draft}", "tenant": f"/api/v1/tenants/{tenant.id}"}

    def send(method, url, when_in):
        headers = superadmin_headers if "platform" in url or url == "{tenant}" else auth_headers
        return getattr(client, method)(url.format(**urls), headers=headers, **when_in)

    return send


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize(("method", "url", "field", "body"), DATED_REQUESTS, ids=DATED_IDS)
def test_an_instant_outside_the_calendar_is_a_422_that_changes_nothing(
    dated_request, tenant, value, method, url, field, body
):
    before = Tenant.objects.get(id=tenant.id).to_mongo().to_dict()
    response = dated_request(method, url, body(value))
    assert envelope(response, 422) == "validation_error"
    assert field in json.dumps(response.json["error"]["details"])
    with tenant_scope(tenant):
        assert Campaign.objects.count() == 1 and Campaign.objects.get().scheduled_at is None
    assert Tenant.objects.get(id=tenant.id).to_mongo().to_dict() == before


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
@pytest.mark.parametrize(("method", "url", "field", "body"), DATED_REQUESTS, ids=DATED_IDS)
def test_the_first_and_last_instants_are_answered(dated_request, value, method, url, field, body):
    response = dated_request(method, url, body(value))
    # A scheduled time in the past is refused as such; nothing else is refused.
    past = field == "scheduledAt" and value.startswith("0001")
    assert response.status_code == (422 if past else 201 if method == "post" else 200), response.json
