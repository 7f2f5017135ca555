"""Responses dumped from stored documents (app/wire.py) and encoded by orjson (app/json_provider.py):
the same bodies as marshmallow's dump of built documents, without building them."""

from __future__ import annotations

from datetime import UTC, date, datetime

import mongoengine as me
import pytest
from bson import Int64, ObjectId
from marshmallow import Schema, fields, post_dump

from app import wire
from app.audit.models import AuditLog
from app.audit.schemas import AuditLogSchema
from app.campaigns.models import Campaign
from app.campaigns.schemas import CampaignSchema
from app.messages.models import Message
from app.messages.schemas import MessageSchema
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.plans import PLANS
from app.tenants.schemas import PublicTenantSchema, TenantSchema
from app.users.models import User
from app.users.schemas import UserSchema
from app.webhooks.models import WebhookDelivery
from app.webhooks.schemas import DeliverySchema

from .support import create_bot, sent_campaign

CAMPAIGNS = "/api/v1/campaigns"


@pytest.fixture
def built(monkeypatch):
    """Count the campaigns MongoEngine builds from stored documents."""
    calls = []
    original = Campaign._from_son.__func__

    def counting(cls, *args, **kwargs):
        if cls is Campaign:
            calls.append(1)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Campaign, "_from_son", classmethod(counting))
    return calls


def create_campaigns(client, headers, count: int, **extra) -> list[dict]:
    bodies = []
    for number in range(count):
        body = {
            "name": f"Campaign {number}",
            "message": {"text": "Hi"},
            "targets": ["@channel_one", -100123],
            **extra,
        }
        response = client.post(CAMPAIGNS, json=body, headers=headers)
        assert response.status_code == 201, response.json
        bodies.append(response.json)
    return bodies


@pytest.mark.parametrize(
    ("schema_class", "document_class"),
    [(CampaignSchema, Campaign), (MessageSchema, Message), (UserSchema, User), (AuditLogSchema, AuditLog)],
)
def test_the_response_schemas_of_lists_compile(schema_class, document_class):
    assert wire.dumper(schema_class(), document_class) is not None


def test_a_schema_with_a_method_field_or_a_dump_hook_is_dumped_by_marshmallow():
    class Shout(Schema):
        name = fields.Method("_name")

        def _name(self, campaign):
            return campaign.name.upper()

    class Hooked(Schema):
        name = fields.String()

        @post_dump
        def mark(self, data, **kwargs):
            return {**data, "marked": True}

    class Unknown(Schema):
        not_a_field = fields.String()

    for schema_class in (Shout, Hooked, Unknown):
        assert wire.dumper(schema_class(), Campaign) is None
    # A schema narrowed by `only` is not the class's compiled dump either.
    assert wire.dumper(CampaignSchema(only=("name",)), Campaign) is None
    # And the delivery schema's attempt log (a list of dicts of a dict field) does not compile.
    assert wire.dumper(DeliverySchema(), WebhookDelivery) is None


def test_a_list_dumps_stored_documents_without_building_them(app, client, auth_headers, built):
    app.config["WIRE_CHECK"] = False
    created = create_campaigns(client, auth_headers, 3)
    built.clear()
    response = client.get(f"{CAMPAIGNS}?perPage=20", headers=auth_headers)
    assert response.status_code == 200
    assert built == []
    assert sorted(item["id"] for item in response.json["items"]) == sorted(body["id"] for body in created)
    assert response.json["total"] == 3


def test_one_campaign_is_dumped_from_its_stored_form(app, client, auth_headers, built):
    app.config["WIRE_CHECK"] = False
    (created,) = create_campaigns(client, auth_headers, 1)
    built.clear()
    response = client.get(f"{CAMPAIGNS}/{created['id']}", headers=auth_headers)
    assert response.status_code == 200
    assert built == []
    assert response.json == created


def test_compiled_and_marshmallow_dumps_agree_on_every_kind_of_campaign(app, client, tenant, auth_headers):
    """With WIRE_CHECK (on in the tests) a difference would fail the request; the bodies are also
    compared here with marshmallow's dump of the built documents, field by field."""
    assert app.config["WIRE_CHECK"]
    account = create_bot(client, auth_headers)
    create_campaigns(client, auth_headers, 1)
    create_campaigns(client, auth_headers, 1, telegramAccountId=account, scheduledAt="2999-01-01T00:00:00Z")
    sent_campaign(client, auth_headers, account, ["@first_chat", "@second_chat"])
    response = client.get(f"{CAMPAIGNS}?perPage=20", headers=auth_headers)
    assert response.status_code == 200
    with tenant_scope(tenant):
        expected = {str(c.id): CampaignSchema().dump(c) for c in Campaign.objects}
    assert {item["id"]: item for item in response.json["items"]} == expected
    by_account = [item for item in response.json["items"] if item["telegramAccountId"] == account]
    assert len(by_account) == 2
    assert any(item["telegramAccountId"] is None for item in response.json["items"])


def test_a_compiled_dump_that_differs_from_marshmallows_is_an_error(app, tenant):
    with tenant_scope(tenant):
        campaign = Campaign(name="Checked", message={"text": "Hi"}, targets=["@channel_one"]).save()
        stored = wire.stored(Campaign, Campaign.find_stored(id=campaign.id))
    schema = CampaignSchema()

    def wrong(raw):
        return {**wire.dumper(schema, Campaign)(raw), "name": "Not it"}

    with pytest.raises(wire.WireMismatch):
        wire._checked(schema, wrong, stored.raw, Campaign)
    assert wire.dump_stored(schema, stored)["name"] == "Checked"


def test_a_reference_id_reads_the_stored_id_of_a_built_document_or_a_dict():
    class Account(me.Document):
        meta = {"collection": "wire_accounts"}

    class Holder(me.Document):
        account = me.ReferenceField(Account)
        meta = {"collection": "wire_holders"}

    class HolderSchema(Schema):
        account_id = wire.ReferenceId(attribute="account", data_key="accountId")

    account_id = ObjectId()
    holder = Holder._from_son({"account": account_id})
    assert HolderSchema().dump(holder) == {"accountId": str(account_id)}
    assert HolderSchema().dump({"account": None}) == {"accountId": None}
    assert wire.dumper(HolderSchema(), Holder)({"account": account_id}) == {"accountId": str(account_id)}
    assert wire.dumper(HolderSchema(), Holder)({}) == {"accountId": None}


def test_responses_are_encoded_as_flasks_encoder_would(app):
    body = {"b": 1, "a": [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), date(2026, 1, 2)], 3: "a number key"}
    assert app.json.loads(app.json.dumps(body)) == {
        "3": "a number key",
        "a": ["Fri, 02 Jan 2026 03:04:05 GMT", "Fri, 02 Jan 2026 00:00:00 GMT"],
        "b": 1,
    }
    assert (
        app.json.dumps(body).index('"3"')
        < app.json.dumps(body).index('"a"')
        < app.json.dumps(body).index('"b"')
    )
    # What orjson refuses (an integer past 64 bits) is encoded by json.dumps, as Flask's encoder does.
    assert app.json.dumps({"big": 2**70, "a": 1}) == '{"a": 1, "big": 1180591620717411303424}'
    small = {"b": 1, "a": date(2026, 1, 2)}
    with app.test_request_context():
        response = app.json.response(small)
    assert response.mimetype == "application/json"
    assert response.get_data(as_text=True) == '{"a":"Fri, 02 Jan 2026 00:00:00 GMT","b":1}\n'


def test_the_tenant_schemas_compile():
    assert wire.dumper(TenantSchema(), Tenant) is not None
    assert wire.dumper(PublicTenantSchema(), Tenant) is not None


def test_a_tenant_stored_without_its_groups_dumps_as_marshmallow_dumps_it(app):
    """An older tenant lacks groups its class has now: the compiled dump gives each group's defaults,
    the computed fields included, as the built document holds them."""
    moment = datetime(2026, 1, 2, tzinfo=UTC)
    stored = {"_id": ObjectId(), "name": "Old Corp", "slug": "old", "plan": "starter"}
    stored |= {"createdAt": moment, "updatedAt": moment}
    schema = TenantSchema()
    with app.test_request_context():
        dumped = wire.dumper(schema, Tenant)(stored)
        assert dumped == schema.dump(Tenant._from_son(stored))
    assert dumped["billing"]["status"] == "active"
    assert dumped["billing"]["priceCents"] == PLANS["starter"]["price"]["amount"] * 100
    assert dumped["limits"] == PLANS["starter"]["limits"]
    assert dumped["settings"]["security"]["sso"]["configured"] is False
    assert dumped["compliance"] == {"gdprEnabled": False, "dataRetentionDays": None}


def test_a_computed_field_reads_the_fields_it_names_dotted_or_not():
    class Inner(me.EmbeddedDocument):
        size = me.IntField(db_field="sz", default=3)

    class Outer(me.Document):
        name = me.StringField()
        inner = me.EmbeddedDocumentField(Inner, db_field="in", default=Inner)
        meta = {"collection": "wire_outer"}

    class OuterSchema(Schema):
        label = wire.Computed(lambda name, size: f"{name}:{size}", "name", "inner.size")
        size = fields.Integer(attribute="inner.size")

    dump = wire.dumper(OuterSchema(), Outer)
    for stored in ({"name": "a", "in": {"sz": 5}}, {"name": "b"}, {"name": "c", "in": {}}):
        assert dump(stored) == OuterSchema().dump(Outer._from_son(stored))
    assert dump({"name": "b"}) == {"label": "b:3", "size": 3}

    class Missing(Schema):
        label = wire.Computed(len, "inner.nothing")

    assert wire.dumper(Missing(), Outer) is None


def test_me_shows_the_tenant_as_stored_now(client, tenant, auth_headers):
    client.get("/api/v1/auth/me", headers=auth_headers)  # the tenant is cached for the requests
    Tenant._get_collection().update_one({"_id": tenant.id}, {"$set": {"name": "Renamed elsewhere"}})
    assert client.get("/api/v1/auth/me", headers=auth_headers).json["tenant"]["name"] == "Renamed elsewhere"
    current = client.get("/api/v1/tenants/current", headers=auth_headers).json
    assert current == client.get("/api/v1/auth/me", headers=auth_headers).json["tenant"]


class Kinds(me.Document):
    name = me.StringField()
    count = me.IntField()
    flag = me.BooleanField()
    at = me.DateTimeField()
    ref = me.ObjectIdField()
    tags = me.ListField(me.StringField(), default=list)
    meta = {"collection": "wire_kinds"}


class KindsSchema(Schema):
    name = fields.String()
    count = fields.Integer()
    flag = fields.Boolean()
    at = fields.AwareDateTime()
    ref = fields.String()
    tags = fields.List(fields.String())
    count_text = fields.Integer(attribute="count", as_string=True, dump_only=True)
    day = fields.DateTime(attribute="at", format="%Y-%m-%d", dump_only=True)


@pytest.mark.parametrize(
    "stored",
    [
        {"name": "a", "count": 3, "flag": True, "at": datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)},
        {"ref": ObjectId(), "tags": ["x", "y"]},
        {"name": None, "count": None, "flag": None, "at": None, "ref": None, "tags": None},
        # Stored by something else than this class: other types than the driver's usual ones.
        {"name": 5, "count": "7", "flag": 0, "ref": str(ObjectId()), "tags": [1, "b"]},
        {"count": Int64(2**40), "flag": 1},
        {},
    ],
)
def test_each_kind_of_field_dumps_as_marshmallow_dumps_the_built_document(stored):
    assert wire.dumper(KindsSchema(), Kinds)(stored) == KindsSchema().dump(Kinds._from_son(stored))


def test_a_mapping_dumper_dumps_as_marshmallow_dumps_the_mapping(app):
    class Summary(Schema):
        status = fields.String()
        at = fields.AwareDateTime(data_key="atTime")
        cents = fields.Integer(allow_none=True)

    dump = wire.mapping_dumper(Summary())
    for mapping in (
        {"status": "active", "at": datetime(2026, 1, 2, tzinfo=UTC), "cents": 5},
        {"status": None, "at": None, "cents": None},
    ):
        assert dump(mapping) == Summary().dump(mapping)

    class Nests(Schema):
        inner = fields.Nested(Summary, allow_none=True)
        stored = fields.Nested(Summary)

    nests = {"inner": {"status": "s", "at": None, "cents": 1}, "stored": object()}
    assert wire.mapping_dumper(Nests(), frozenset({"stored"}))(nests) == {
        "inner": {"status": "s", "atTime": None, "cents": 1}
    }
    assert wire.mapping_dumper(Nests(), frozenset({"stored"}))({"inner": None}) == {"inner": None}
    assert wire.mapping_dumper(Summary())({"status": "only"}) == {"status": "only"}  # as marshmallow

    class Many(Schema):
        inner = fields.Nested(Summary, many=True)

    with pytest.raises(wire.NotCompilable):
        wire.mapping_dumper(Many())


class Holder(me.Document):
    names = me.ListField(me.StringField(), default=list)
    counts = me.DictField(default=dict)
    refs = me.ListField(me.ObjectIdField())
    meta = {"collection": "wire_holder"}


@pytest.mark.parametrize(
    "stored",
    [
        {"names": ["a", "b"], "counts": {"a": 1, "b": None, "c": True}, "refs": [ObjectId()]},
        {"names": [1, "b"], "counts": {"a": {"nested": 1}, "b": [1]}, "refs": [str(ObjectId())]},
        {},
    ],
)
def test_a_computed_field_is_given_what_the_built_document_holds(stored):
    class Used(Schema):
        seen = wire.Computed(lambda *values: repr(values), "names", "counts", "refs")

    assert wire.dumper(Used(), Holder)(stored) == Used().dump(Holder._from_son(stored))
