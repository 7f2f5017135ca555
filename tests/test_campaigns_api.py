"""/api/v1/campaigns: drafts within the `campaigns` limit; sends reserve `messagesPerMonth` all at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from bson import ObjectId

from app.campaigns.models import Campaign
from app.messages.models import Message
from app.tenancy.cache import tenant_cache
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.usage import service as usage_service
from app.usage.models import UsageCounter

from .support import (
    assert_limit_exceeded,
    create_bot,
    document_snapshot,
    error_code,
    messages_used,
    set_limits,
    stored_document,
)

API = "/api/v1"
CAMPAIGNS = f"{API}/campaigns"
TEXT_LIMIT = 4096
TARGETS = ["@channel_one", "@channel_two", -1001234567890]


# -- helpers ----------------------------------------------------------------------------------------


def campaign_url(campaign_id, suffix: str = "") -> str:
    return f"{CAMPAIGNS}/{campaign_id}{suffix}"


def in_future(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**(delta or {"days": 1}))).isoformat()


def in_past(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**(delta or {"hours": 1}))).isoformat()


def campaign_body(**changes) -> dict:
    body = {"name": "Spring sale", "message": {"text": "Everything is 20% off"}, "targets": list(TARGETS)}
    return {**body, **changes}


def create(client, headers, **changes) -> dict:
    response = client.post(CAMPAIGNS, json=campaign_body(**changes), headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def send(client, headers, campaign_id):
    return client.post(campaign_url(campaign_id, "/send"), headers=headers)


def campaigns_used(tenant) -> int:
    return Tenant.objects.get(id=tenant.id).usage.campaigns


stored_campaign = partial(stored_document, Campaign)
campaign_snapshot = partial(document_snapshot, Campaign)


def messages_of(tenant, campaign_id, status: str | None = None) -> list[Message]:
    with tenant_scope(tenant):
        messages = Message.objects(campaign_id=ObjectId(campaign_id))
        if status:
            messages = messages.filter(status=status)
        return list(messages)


def mark_messages(tenant, campaign_id, status: str, how_many: int) -> None:
    """Play the dispatcher: move `how_many` queued messages of a campaign to `status`."""
    for message in messages_of(tenant, campaign_id, "queued")[:how_many]:
        with tenant_scope(tenant):
            Message.objects(id=message.id).update_one(set__status=status)


@pytest.fixture
def free_headers(free_tenant, make_user, headers_for):
    return headers_for(make_user(free_tenant, "owner"))


# -- POST /campaigns -------------------------------------------------------------------------------


class TestCreate:
    def test_owner_creates_a_draft(self, client, tenant, owner, auth_headers, bot):
        response = client.post(
            CAMPAIGNS,
            json=campaign_body(description="For the newsletter", telegramAccountId=bot),
            headers=auth_headers,
        )
        assert response.status_code == 201, response.json
        body = response.json
        assert ObjectId.is_valid(body["id"])
        assert body["status"] == "draft"
        assert body["name"] == "Spring sale"
        assert body["description"] == "For the newsletter"
        assert body["message"]["text"] == "Everything is 20% off"
        assert body["targets"] == ["@channel_one", "@channel_two", "-1001234567890"]
        assert body["telegramAccountId"] == bot
        assert campaigns_used(tenant) == 1
        stored = stored_campaign(tenant, body["id"])
        assert stored.tenant_id == tenant.id and stored.status == "draft"

    def test_admin_creates(self, client, tenant, make_user, headers_for):
        response = client.post(
            CAMPAIGNS, json=campaign_body(), headers=headers_for(make_user(tenant, "admin"))
        )
        assert response.status_code == 201

    def test_description_bot_and_schedule_are_optional(self, client, auth_headers):
        body = create(client, auth_headers)
        assert body["telegramAccountId"] is None
        assert body["scheduledAt"] is None

    @pytest.mark.parametrize(
        ("targets", "stored"),
        [
            (["@durov"], ["@durov"]),
            ([123456789], ["123456789"]),
            (["123456789"], ["123456789"]),
            ([-1001234567890], ["-1001234567890"]),
            (["-1001234567890", "@some_channel_2"], ["-1001234567890", "@some_channel_2"]),
        ],
    )
    def test_targets_are_usernames_or_chat_ids(self, client, auth_headers, targets, stored):
        assert create(client, auth_headers, targets=targets)["targets"] == stored

    def test_text_of_4096_characters_is_accepted(self, client, auth_headers):
        body = create(client, auth_headers, message={"text": "x" * TEXT_LIMIT})
        assert len(body["message"]["text"]) == TEXT_LIMIT

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"message": {"text": "x" * (TEXT_LIMIT + 1)}}, "message"),
            ({"message": {"text": ""}}, "message"),
            ({"message": {}}, "message"),
            ({"message": "just a string"}, "message"),
            ({"name": ""}, "name"),
            ({"name": "n" * 201}, "name"),
            ({"targets": []}, "targets"),
            ({"targets": "@channel_one"}, "targets"),
            ({"targets": ["@channel_one", "@channel_one"]}, "targets"),
            ({"targets": [123456789, "123456789"]}, "targets"),
            ({"targets": ["@channel_one", " @channel_one "]}, "targets"),
            ({"targets": ["channel_one"]}, "targets"),
            ({"targets": ["@ab"]}, "targets"),
            ({"targets": ["@bad-name"]}, "targets"),
            ({"targets": ["@" + "a" * 40]}, "targets"),
            ({"targets": ["12ab"]}, "targets"),
            ({"targets": [1.5]}, "targets"),
            ({"targets": [True]}, "targets"),
            ({"targets": [None]}, "targets"),
            ({"targets": [{"chat": 1}]}, "targets"),
            ({"telegramAccountId": "not-an-id"}, "telegramAccountId"),
            ({"telegramAccountId": str(ObjectId())}, "telegramAccountId"),
            ({"scheduledAt": "tomorrow"}, "scheduledAt"),
            ({"scheduledAt": "2999-01-01T10:00:00"}, "scheduledAt"),  # no time zone
            ({"status": "sending"}, "status"),
            ({"tenantId": "5f0000000000000000000000"}, "tenantId"),
            ({"createdBy": "someone"}, "createdBy"),
        ],
    )
    def test_bad_input_is_422_and_creates_nothing(self, client, tenant, auth_headers, changes, field):
        response = client.post(CAMPAIGNS, json=campaign_body(**changes), headers=auth_headers)
        assert response.status_code == 422, response.json
        assert error_code(response) == "validation_error"
        assert field in response.json["error"]["details"]
        assert campaigns_used(tenant) == 0
        with tenant_scope(tenant):
            assert Campaign.objects.count() == 0

    def test_usernames_differing_only_in_case_are_duplicates(self, client, tenant, auth_headers):
        # Telegram usernames are case-insensitive: both name one chat, which would get the message twice.
        response = client.post(
            CAMPAIGNS, json=campaign_body(targets=["@Channel_One", "@channel_one"]), headers=auth_headers
        )
        assert response.status_code == 422, response.json
        assert "targets" in response.json["error"]["details"]
        assert campaigns_used(tenant) == 0

    @pytest.mark.parametrize("missing", ["name", "message", "targets"])
    def test_required_fields(self, client, tenant, auth_headers, missing):
        body = campaign_body()
        del body[missing]
        response = client.post(CAMPAIGNS, json=body, headers=auth_headers)
        assert response.status_code == 422
        assert missing in response.json["error"]["details"]

    def test_another_tenants_bot_is_422(self, client, tenant, auth_headers, other_owner, headers_for):
        foreign_bot = create_bot(client, headers_for(other_owner))
        response = client.post(
            CAMPAIGNS, json=campaign_body(telegramAccountId=foreign_bot), headers=auth_headers
        )
        assert response.status_code == 422
        assert "telegramAccountId" in response.json["error"]["details"]
        assert campaigns_used(tenant) == 0

    def test_the_foreign_bot_error_looks_like_a_missing_bot(
        self, client, auth_headers, other_owner, headers_for
    ):
        foreign = client.post(
            CAMPAIGNS,
            json=campaign_body(telegramAccountId=create_bot(client, headers_for(other_owner))),
            headers=auth_headers,
        )
        missing = client.post(
            CAMPAIGNS, json=campaign_body(telegramAccountId=str(ObjectId())), headers=auth_headers
        )
        assert foreign.json == missing.json

    def test_malformed_json_is_400(self, client, auth_headers):
        response = client.post(
            CAMPAIGNS, data="{not json", headers={**auth_headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert error_code(response) == "bad_request"


class TestSchedule:
    def test_a_future_time_is_kept(self, client, tenant, auth_headers):
        when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        body = create(client, auth_headers, scheduledAt=when.isoformat())
        assert datetime.fromisoformat(body["scheduledAt"]) == when

    def test_a_past_time_is_422(self, client, tenant, auth_headers):
        response = client.post(CAMPAIGNS, json=campaign_body(scheduledAt=in_past()), headers=auth_headers)
        assert response.status_code == 422
        assert "scheduledAt" in response.json["error"]["details"]
        assert campaigns_used(tenant) == 0

    def test_scheduling_needs_automation(self, client, free_tenant, free_headers):
        response = client.post(CAMPAIGNS, json=campaign_body(scheduledAt=in_future()), headers=free_headers)
        assert response.status_code == 403
        assert error_code(response) == "feature_not_available"
        assert campaigns_used(free_tenant) == 0
        with tenant_scope(free_tenant):
            assert Campaign.objects.count() == 0

    def test_free_plan_creates_unscheduled_campaigns(self, client, free_tenant, free_headers):
        assert create(client, free_headers)["status"] == "draft"
        response = client.post(CAMPAIGNS, json=campaign_body(scheduledAt=None), headers=free_headers)
        assert response.status_code == 201

    def test_free_plan_cannot_schedule_by_patch(self, client, free_tenant, free_headers):
        campaign = create(client, free_headers)
        before = campaign_snapshot(free_tenant, campaign["id"])
        response = client.patch(
            campaign_url(campaign["id"]), json={"scheduledAt": in_future()}, headers=free_headers
        )
        assert response.status_code == 403
        assert error_code(response) == "feature_not_available"
        assert campaign_snapshot(free_tenant, campaign["id"]) == before

    def test_a_feature_override_enables_scheduling(self, client, free_tenant, free_headers):
        Tenant.objects(id=free_tenant.id).update(set__features={"automation": True})
        tenant_cache().clear()
        response = client.post(CAMPAIGNS, json=campaign_body(scheduledAt=in_future()), headers=free_headers)
        assert response.status_code == 201, response.json

    def test_patch_to_a_past_time_is_422(self, client, tenant, auth_headers):
        campaign = create(client, auth_headers)
        response = client.patch(
            campaign_url(campaign["id"]), json={"scheduledAt": in_past()}, headers=auth_headers
        )
        assert response.status_code == 422
        assert "scheduledAt" in response.json["error"]["details"]
        assert stored_campaign(tenant, campaign["id"]).scheduled_at is None

    def test_cancelling_a_scheduled_campaign_refunds_its_messages(self, client, tenant, auth_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot, scheduledAt=in_future())
        assert send(client, auth_headers, campaign["id"]).status_code == 202
        assert messages_used(tenant) == len(TARGETS)
        response = client.patch(
            campaign_url(campaign["id"]), json={"status": "cancelled"}, headers=auth_headers
        )
        assert response.status_code == 200
        assert response.json["status"] == "cancelled"
        assert len(messages_of(tenant, campaign["id"], "cancelled")) == len(TARGETS)
        assert messages_used(tenant) == 0

    def test_sending_a_scheduled_campaign_queues_for_later(self, client, tenant, auth_headers, bot):
        when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        campaign = create(client, auth_headers, telegramAccountId=bot, scheduledAt=when.isoformat())
        response = send(client, auth_headers, campaign["id"])
        assert response.status_code == 202, response.json
        assert response.json["status"] == "scheduled"
        messages = messages_of(tenant, campaign["id"])
        assert len(messages) == len(TARGETS)
        assert all(m.not_before.replace(tzinfo=UTC) == when for m in messages)


# -- GET /campaigns and /campaigns/{id} ------------------------------------------------------------


class TestRead:
    def test_list_newest_first_with_pages(self, client, tenant, auth_headers):
        ids = [create(client, auth_headers, name=f"c{i}")["id"] for i in range(5)]
        base = datetime(2030, 1, 1, tzinfo=UTC)
        with tenant_scope(tenant):  # distinct creation times, whatever the clock's resolution
            for offset, campaign_id in enumerate(ids):
                Campaign.objects(id=campaign_id).update_one(set__created_at=base + timedelta(minutes=offset))
        seen = []
        for page in (1, 2, 3):
            response = client.get(CAMPAIGNS, query_string={"page": page, "perPage": 2}, headers=auth_headers)
            assert response.status_code == 200
            body = response.json
            assert (body["page"], body["perPage"], body["total"]) == (page, 2, 5)
            seen += [item["id"] for item in body["items"]]
        assert seen == list(reversed(ids))

    def test_list_defaults(self, client, auth_headers):
        create(client, auth_headers)
        body = client.get(CAMPAIGNS, headers=auth_headers).json
        assert (body["page"], body["perPage"], body["total"]) == (1, 20, 1)
        assert client.get(CAMPAIGNS, query_string={"perPage": 100}, headers=auth_headers).status_code == 200

    @pytest.mark.parametrize("query", ["perPage=101", "perPage=0", "page=0", "status=unknown"])
    def test_bad_paging_or_filter_is_422(self, client, auth_headers, query):
        response = client.get(f"{CAMPAIGNS}?{query}", headers=auth_headers)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"

    def test_filter_by_status(self, client, auth_headers, bot):
        draft = create(client, auth_headers, name="draft")["id"]
        sent = create(client, auth_headers, name="sent", telegramAccountId=bot)["id"]
        assert send(client, auth_headers, sent).status_code == 202
        drafts = client.get(CAMPAIGNS, query_string={"status": "draft"}, headers=auth_headers).json
        assert [item["id"] for item in drafts["items"]] == [draft] and drafts["total"] == 1
        sending = client.get(CAMPAIGNS, query_string={"status": "sending"}, headers=auth_headers).json
        assert [item["id"] for item in sending["items"]] == [sent]

    def test_get_one(self, client, auth_headers):
        campaign = create(client, auth_headers)
        response = client.get(campaign_url(campaign["id"]), headers=auth_headers)
        assert response.status_code == 200
        assert response.json == campaign

    def test_unknown_id_is_404(self, client, auth_headers):
        response = client.get(campaign_url(ObjectId()), headers=auth_headers)
        assert response.status_code == 404
        assert error_code(response) == "not_found"

    def test_list_shows_only_the_callers_tenant(self, client, auth_headers, other_owner, headers_for):
        create(client, auth_headers)
        body = client.get(CAMPAIGNS, headers=headers_for(other_owner)).json
        assert body["items"] == [] and body["total"] == 0


# -- PATCH /campaigns/{id} -------------------------------------------------------------------------


class TestUpdate:
    def test_a_draft_changes_freely(self, client, tenant, auth_headers, bot):
        campaign = create(client, auth_headers)
        changes = {
            "name": "Summer sale",
            "description": "Renamed",
            "message": {"text": "Now 30% off"},
            "targets": ["@summer_fans", 42],
            "telegramAccountId": bot,
        }
        response = client.patch(campaign_url(campaign["id"]), json=changes, headers=auth_headers)
        assert response.status_code == 200, response.json
        body = response.json
        assert body["name"] == "Summer sale" and body["description"] == "Renamed"
        assert body["message"]["text"] == "Now 30% off"
        assert body["targets"] == ["@summer_fans", "42"]
        assert body["telegramAccountId"] == bot
        stored = stored_campaign(tenant, campaign["id"])
        assert stored.name == "Summer sale" and stored.targets == ["@summer_fans", "42"]
        assert campaigns_used(tenant) == 1

    def test_text_boundary_on_patch(self, client, tenant, auth_headers):
        campaign = create(client, auth_headers)
        url = campaign_url(campaign["id"])
        ok = client.patch(url, json={"message": {"text": "y" * TEXT_LIMIT}}, headers=auth_headers)
        assert ok.status_code == 200
        too_long = client.patch(url, json={"message": {"text": "z" * (TEXT_LIMIT + 1)}}, headers=auth_headers)
        assert too_long.status_code == 422
        assert "message" in too_long.json["error"]["details"]
        assert stored_campaign(tenant, campaign["id"]).message.text == "y" * TEXT_LIMIT

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"targets": ["@dupe_name", "@dupe_name"]}, "targets"),
            ({"targets": ["not a chat"]}, "targets"),
            ({"targets": []}, "targets"),
            ({"name": ""}, "name"),
            ({"status": "sending"}, "status"),
            ({"status": "completed"}, "status"),
            ({"telegramAccountId": str(ObjectId())}, "telegramAccountId"),
            ({"tenantId": "5f0000000000000000000000"}, "tenantId"),
            ({"status": "cancelled", "name": "and renamed"}, "status"),
        ],
    )
    def test_bad_changes_are_422_and_change_nothing(self, client, tenant, auth_headers, changes, field):
        campaign = create(client, auth_headers)
        before = campaign_snapshot(tenant, campaign["id"])
        response = client.patch(campaign_url(campaign["id"]), json=changes, headers=auth_headers)
        assert response.status_code == 422, response.json
        assert field in response.json["error"]["details"]
        assert campaign_snapshot(tenant, campaign["id"]) == before

    def test_another_tenants_bot_is_422_on_patch(
        self, client, tenant, auth_headers, other_owner, headers_for
    ):
        campaign = create(client, auth_headers)
        foreign_bot = create_bot(client, headers_for(other_owner))
        response = client.patch(
            campaign_url(campaign["id"]), json={"telegramAccountId": foreign_bot}, headers=auth_headers
        )
        assert response.status_code == 422
        assert "telegramAccountId" in response.json["error"]["details"]
        assert stored_campaign(tenant, campaign["id"]).telegram_account is None

    def test_a_draft_may_be_cancelled(self, client, tenant, auth_headers):
        campaign = create(client, auth_headers)
        response = client.patch(
            campaign_url(campaign["id"]), json={"status": "cancelled"}, headers=auth_headers
        )
        assert response.status_code == 200
        assert response.json["status"] == "cancelled"

    @pytest.mark.parametrize(
        "changes",
        [{"name": "Too late"}, {"targets": ["@someone_else"]}, {"message": {"text": "changed"}}],
    )
    def test_a_sent_campaign_cannot_change(self, client, tenant, auth_headers, bot, changes):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        assert send(client, auth_headers, campaign["id"]).status_code == 202
        before = campaign_snapshot(tenant, campaign["id"])
        response = client.patch(campaign_url(campaign["id"]), json=changes, headers=auth_headers)
        assert response.status_code == 409
        assert error_code(response) == "conflict"
        assert campaign_snapshot(tenant, campaign["id"]) == before

    def test_cancelling_a_sent_campaign_cancels_queued_messages_and_refunds(
        self, client, tenant, auth_headers, bot
    ):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        assert send(client, auth_headers, campaign["id"]).status_code == 202
        assert messages_used(tenant) == 3
        mark_messages(tenant, campaign["id"], "sent", 1)
        response = client.patch(
            campaign_url(campaign["id"]), json={"status": "cancelled"}, headers=auth_headers
        )
        assert response.status_code == 200, response.json
        assert response.json["status"] == "cancelled"
        assert len(messages_of(tenant, campaign["id"], "cancelled")) == 2
        assert len(messages_of(tenant, campaign["id"], "sent")) == 1
        assert messages_of(tenant, campaign["id"], "queued") == []
        assert messages_used(tenant) == 1  # the message already sent keeps its unit
        stats = client.get(campaign_url(campaign["id"], "/stats"), headers=auth_headers).json
        assert stats["messages"]["cancelled"] == 2 and stats["messages"]["queued"] == 0

    def test_units_go_back_to_the_month_of_the_send(self, client, tenant, auth_headers, bot, monkeypatch):
        october = datetime(2026, 10, 31, 23, 59, tzinfo=UTC)
        monkeypatch.setattr("app.clock.utcnow", lambda: october)
        campaign = create(client, auth_headers, telegramAccountId=bot)
        assert send(client, auth_headers, campaign["id"]).status_code == 202
        november = october + timedelta(minutes=2)
        monkeypatch.setattr("app.clock.utcnow", lambda: november)
        with tenant_scope(tenant):
            usage_service.reserve("messagesPerMonth", 2)  # November's own sends
        cancelled = client.patch(
            campaign_url(campaign["id"]), json={"status": "cancelled"}, headers=auth_headers
        )
        assert cancelled.status_code == 200
        with tenant_scope(tenant):
            counters = {c.period: c.used for c in UsageCounter.objects(resource="messagesPerMonth")}
        assert counters == {"2026-10": 0, "2026-11": 2}

    def test_cancelling_twice_is_409_and_refunds_once(self, client, tenant, auth_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        send(client, auth_headers, campaign["id"])
        url = campaign_url(campaign["id"])
        assert client.patch(url, json={"status": "cancelled"}, headers=auth_headers).status_code == 200
        response = client.patch(url, json={"status": "cancelled"}, headers=auth_headers)
        assert response.status_code == 409
        assert messages_used(tenant) == 0

    def test_a_cancelled_campaign_cannot_be_sent(self, client, tenant, auth_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        client.patch(campaign_url(campaign["id"]), json={"status": "cancelled"}, headers=auth_headers)
        assert send(client, auth_headers, campaign["id"]).status_code == 409
        assert messages_of(tenant, campaign["id"]) == []
        assert messages_used(tenant) == 0


# -- DELETE /campaigns/{id} ------------------------------------------------------------------------


class TestDelete:
    def test_deleting_a_draft_refunds_its_slot(self, client, tenant, auth_headers):
        campaign = create(client, auth_headers)
        assert campaigns_used(tenant) == 1
        response = client.delete(campaign_url(campaign["id"]), headers=auth_headers)
        assert response.status_code == 204
        assert campaigns_used(tenant) == 0
        assert stored_campaign(tenant, campaign["id"]) is None
        assert client.get(campaign_url(campaign["id"]), headers=auth_headers).status_code == 404

    def test_deleting_a_sent_campaign_refunds_queued_messages(self, client, tenant, auth_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        send(client, auth_headers, campaign["id"])
        mark_messages(tenant, campaign["id"], "sent", 1)
        assert messages_used(tenant) == 3
        assert client.delete(campaign_url(campaign["id"]), headers=auth_headers).status_code == 204
        assert messages_used(tenant) == 1
        assert campaigns_used(tenant) == 0
        assert messages_of(tenant, campaign["id"]) == []

    def test_deleting_twice_is_404_and_refunds_once(self, client, tenant, auth_headers):
        first = create(client, auth_headers)
        create(client, auth_headers)
        assert client.delete(campaign_url(first["id"]), headers=auth_headers).status_code == 204
        assert client.delete(campaign_url(first["id"]), headers=auth_headers).status_code == 404
        assert campaigns_used(tenant) == 1


# -- POST /campaigns/{id}/send ---------------------------------------------------------------------


class TestSend:
    def test_send_queues_one_message_per_target(self, client, tenant, auth_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        response = send(client, auth_headers, campaign["id"])
        assert response.status_code == 202, response.json
        assert response.json["id"] == campaign["id"]
        assert response.json["status"] == "sending"
        messages = messages_of(tenant, campaign["id"])
        assert sorted(m.chat for m in messages) == sorted(str(t) for t in TARGETS)
        assert {m.status for m in messages} == {"queued"}
        assert {m.text for m in messages} == {"Everything is 20% off"}
        assert {str(m.telegram_account_id) for m in messages} == {bot}
        assert messages_used(tenant) == len(TARGETS)
        assert stored_campaign(tenant, campaign["id"]).status == "sending"

    def test_sending_twice_is_409(self, client, tenant, auth_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        assert send(client, auth_headers, campaign["id"]).status_code == 202
        response = send(client, auth_headers, campaign["id"])
        assert response.status_code == 409
        assert error_code(response) == "conflict"
        assert len(messages_of(tenant, campaign["id"])) == len(TARGETS)
        assert messages_used(tenant) == len(TARGETS)

    def test_send_without_a_bot_is_422(self, client, tenant, auth_headers):
        campaign = create(client, auth_headers)
        response = send(client, auth_headers, campaign["id"])
        assert response.status_code == 422
        assert error_code(response) == "validation_error"
        assert "telegramAccountId" in response.json["error"]["details"]
        assert stored_campaign(tenant, campaign["id"]).status == "draft"
        assert messages_of(tenant, campaign["id"]) == []
        assert messages_used(tenant) == 0

    def test_send_after_the_bot_was_removed_is_422(self, client, tenant, auth_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        assert client.delete(f"{API}/telegram-accounts/{bot}", headers=auth_headers).status_code == 204
        response = send(client, auth_headers, campaign["id"])
        assert response.status_code == 422
        assert messages_of(tenant, campaign["id"]) == []

    def test_a_quota_smaller_than_the_targets_refuses_everything(self, client, tenant, auth_headers, bot):
        set_limits(tenant, messagesPerMonth=len(TARGETS) - 1)
        campaign = create(client, auth_headers, telegramAccountId=bot)
        before = campaign_snapshot(tenant, campaign["id"])
        response = send(client, auth_headers, campaign["id"])
        assert_limit_exceeded(
            response, "messagesPerMonth", limit=len(TARGETS) - 1, used=0, requested=len(TARGETS)
        )
        assert messages_of(tenant, campaign["id"]) == []
        assert stored_campaign(tenant, campaign["id"]).status == "draft"
        assert campaign_snapshot(tenant, campaign["id"]) == before
        assert messages_used(tenant) == 0

    def test_the_rest_of_the_quota_must_cover_every_target(self, client, tenant, auth_headers, bot):
        set_limits(tenant, messagesPerMonth=5)
        first = create(client, auth_headers, telegramAccountId=bot)
        second = create(client, auth_headers, telegramAccountId=bot, name="second")
        assert send(client, auth_headers, first["id"]).status_code == 202  # 3 of 5
        response = send(client, auth_headers, second["id"])  # 3 more would be 6
        assert response.status_code == 403
        assert response.json["error"]["details"] == {
            "resource": "messagesPerMonth",
            "limit": 5,
            "used": 3,
            "requested": 3,
        }
        assert messages_of(tenant, second["id"]) == []
        assert stored_campaign(tenant, second["id"]).status == "draft"
        assert messages_used(tenant) == 3

    def test_a_quota_equal_to_the_targets_is_enough(self, client, tenant, auth_headers, bot):
        set_limits(tenant, messagesPerMonth=len(TARGETS))
        campaign = create(client, auth_headers, telegramAccountId=bot)
        assert send(client, auth_headers, campaign["id"]).status_code == 202
        assert messages_used(tenant) == len(TARGETS)

    def test_a_refused_send_can_go_after_the_quota_grows(self, client, tenant, auth_headers, bot):
        set_limits(tenant, messagesPerMonth=1)
        campaign = create(client, auth_headers, telegramAccountId=bot)
        assert send(client, auth_headers, campaign["id"]).status_code == 403
        set_limits(tenant, messagesPerMonth=100)
        assert send(client, auth_headers, campaign["id"]).status_code == 202
        assert len(messages_of(tenant, campaign["id"])) == len(TARGETS)

    def test_the_send_is_audited(self, client, tenant, auth_headers, bot):
        from app.audit.models import AuditLog

        campaign = create(client, auth_headers, telegramAccountId=bot)
        send(client, auth_headers, campaign["id"])
        with tenant_scope(tenant):
            entries = list(AuditLog.objects(action="campaign.send_requested", target_id=campaign["id"]))
        assert len(entries) == 1


# -- GET /campaigns/{id}/stats ---------------------------------------------------------------------


class TestStats:
    def test_counts_messages_by_status(self, client, tenant, auth_headers, bot):
        campaign = create(
            client, auth_headers, telegramAccountId=bot, targets=[f"@target_{i}" for i in range(6)]
        )
        stats = client.get(campaign_url(campaign["id"], "/stats"), headers=auth_headers)
        assert stats.status_code == 200
        assert stats.json["messages"] == {
            "held": 0,
            "queued": 0,
            "sending": 0,
            "sent": 0,
            "failed": 0,
            "cancelled": 0,
        }
        assert stats.json["targets"] == 6
        send(client, auth_headers, campaign["id"])
        mark_messages(tenant, campaign["id"], "sent", 3)
        mark_messages(tenant, campaign["id"], "failed", 1)
        body = client.get(campaign_url(campaign["id"], "/stats"), headers=auth_headers).json
        assert body["campaignId"] == campaign["id"]
        assert body["status"] == "sending"
        assert body["messages"] == {
            "held": 0,
            "queued": 2,
            "sending": 0,
            "sent": 3,
            "failed": 1,
            "cancelled": 0,
        }
        assert body["deliveryRate"] == pytest.approx(0.75)

    def test_stats_count_only_this_campaign(self, client, auth_headers, bot):
        first = create(client, auth_headers, telegramAccountId=bot)
        second = create(client, auth_headers, telegramAccountId=bot, targets=["@elsewhere"])
        send(client, auth_headers, first["id"])
        send(client, auth_headers, second["id"])
        body = client.get(campaign_url(second["id"], "/stats"), headers=auth_headers).json
        assert body["messages"]["queued"] == 1

    def test_unknown_campaign_is_404(self, client, auth_headers):
        response = client.get(campaign_url(ObjectId(), "/stats"), headers=auth_headers)
        assert response.status_code == 404


# -- roles -----------------------------------------------------------------------------------------


class TestMembers:
    def test_members_read(self, client, auth_headers, member_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        send(client, auth_headers, campaign["id"])
        assert client.get(CAMPAIGNS, headers=member_headers).json["total"] == 1
        assert client.get(campaign_url(campaign["id"]), headers=member_headers).status_code == 200
        assert client.get(campaign_url(campaign["id"], "/stats"), headers=member_headers).status_code == 200

    def test_members_cannot_write(self, client, tenant, auth_headers, member_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        before = campaign_snapshot(tenant, campaign["id"])
        url = campaign_url(campaign["id"])
        calls = [
            client.post(CAMPAIGNS, json=campaign_body(), headers=member_headers),
            client.patch(url, json={"name": "Mine"}, headers=member_headers),
            client.patch(url, json={"status": "cancelled"}, headers=member_headers),
            client.delete(url, headers=member_headers),
            send(client, member_headers, campaign["id"]),
        ]
        for response in calls:
            assert response.status_code == 403, (response.request.method, response.request.path)
            assert error_code(response) == "forbidden"
        assert campaign_snapshot(tenant, campaign["id"]) == before
        assert campaigns_used(tenant) == 1
        assert messages_of(tenant, campaign["id"]) == []


# -- the `campaigns` limit and downgrades ----------------------------------------------------------


class TestCampaignLimit:
    def test_boundary(self, client, tenant, auth_headers):
        set_limits(tenant, campaigns=3)
        create(client, auth_headers, name="one")
        create(client, auth_headers, name="two")  # limit-1
        create(client, auth_headers, name="three")  # the limit
        response = client.post(CAMPAIGNS, json=campaign_body(name="four"), headers=auth_headers)
        assert_limit_exceeded(response, "campaigns", limit=3, used=3)
        assert campaigns_used(tenant) == 3
        assert client.get(CAMPAIGNS, headers=auth_headers).json["total"] == 3

    def test_a_deleted_campaign_frees_its_slot(self, client, tenant, auth_headers):
        set_limits(tenant, campaigns=1)
        first = create(client, auth_headers)
        assert client.post(CAMPAIGNS, json=campaign_body(), headers=auth_headers).status_code == 403
        client.delete(campaign_url(first["id"]), headers=auth_headers)
        assert client.post(CAMPAIGNS, json=campaign_body(), headers=auth_headers).status_code == 201

    def test_a_refused_create_stores_nothing(self, client, tenant, auth_headers):
        set_limits(tenant, campaigns=0)
        response = client.post(CAMPAIGNS, json=campaign_body(), headers=auth_headers)
        assert response.status_code == 403
        with tenant_scope(tenant):
            assert Campaign.objects.count() == 0
        assert campaigns_used(tenant) == 0


class TestDowngrade:
    def downgrade(self, client, superadmin_headers, tenant, campaigns):
        response = client.patch(
            f"{API}/tenants/{tenant.id}",
            json={"limits": {"campaigns": campaigns}},
            headers=superadmin_headers,
        )
        assert response.status_code == 200, response.json

    def test_existing_campaigns_stay_and_new_ones_wait(
        self, client, tenant, auth_headers, superadmin_headers
    ):
        ids = [create(client, auth_headers, name=f"c{i}")["id"] for i in range(4)]
        self.downgrade(client, superadmin_headers, tenant, 2)

        listed = client.get(CAMPAIGNS, headers=auth_headers).json
        assert listed["total"] == 4
        assert sorted(item["id"] for item in listed["items"]) == sorted(ids)
        for campaign_id in ids:
            assert client.get(campaign_url(campaign_id), headers=auth_headers).status_code == 200
        renamed = client.patch(campaign_url(ids[0]), json={"name": "still editable"}, headers=auth_headers)
        assert renamed.status_code == 200

        response = client.post(CAMPAIGNS, json=campaign_body(), headers=auth_headers)
        assert_limit_exceeded(response, "campaigns", limit=2, used=4)
        for campaign_id, remaining in ((ids[0], 3), (ids[1], 2)):
            assert client.delete(campaign_url(campaign_id), headers=auth_headers).status_code == 204
            assert campaigns_used(tenant) == remaining
            refused = client.post(CAMPAIGNS, json=campaign_body(), headers=auth_headers)
            assert refused.status_code == 403, remaining
        assert client.delete(campaign_url(ids[2]), headers=auth_headers).status_code == 204
        assert client.post(CAMPAIGNS, json=campaign_body(), headers=auth_headers).status_code == 201
        assert campaigns_used(tenant) == 2

    def test_existing_drafts_can_still_be_sent(self, client, tenant, auth_headers, bot, superadmin_headers):
        ids = [create(client, auth_headers, name=f"c{i}", telegramAccountId=bot)["id"] for i in range(3)]
        self.downgrade(client, superadmin_headers, tenant, 1)
        assert send(client, auth_headers, ids[0]).status_code == 202
        assert len(messages_of(tenant, ids[0])) == len(TARGETS)
        assert campaigns_used(tenant) == 3

    def test_a_plan_downgrade_applies_at_once(self, client, tenant, auth_headers, superadmin_headers):
        ids = [create(client, auth_headers, name=f"c{i}")["id"] for i in range(11)]
        response = client.patch(
            f"{API}/tenants/{tenant.id}", json={"plan": "free"}, headers=superadmin_headers
        )
        assert response.status_code == 200, response.json
        refused = client.post(CAMPAIGNS, json=campaign_body(), headers=auth_headers)
        assert refused.status_code == 403
        assert refused.json["error"]["details"] == {
            "resource": "campaigns",
            "limit": 10,
            "used": 11,
            "requested": 1,
        }
        assert client.get(CAMPAIGNS, headers=auth_headers).json["total"] == 11
        for campaign_id in ids[:2]:
            client.delete(campaign_url(campaign_id), headers=auth_headers)
        assert client.post(CAMPAIGNS, json=campaign_body(), headers=auth_headers).status_code == 201


# -- another tenant --------------------------------------------------------------------------------


class TestCrossTenant:
    def calls(self, client, headers, campaign_id):
        url = campaign_url(campaign_id)
        return [
            ("GET", client.get(url, headers=headers)),
            ("PATCH name", client.patch(url, json={"name": "Stolen"}, headers=headers)),
            ("PATCH cancel", client.patch(url, json={"status": "cancelled"}, headers=headers)),
            ("POST send", send(client, headers, campaign_id)),
            ("GET stats", client.get(campaign_url(campaign_id, "/stats"), headers=headers)),
            ("DELETE", client.delete(url, headers=headers)),
        ]

    def state(self, tenant, campaign_id) -> tuple:
        messages = sorted((m.chat, m.status) for m in messages_of(tenant, campaign_id))
        return campaign_snapshot(tenant, campaign_id), messages, campaigns_used(tenant), messages_used(tenant)

    @pytest.mark.parametrize("sent", [False, True], ids=["draft", "sending"])
    def test_every_route_is_404_like_a_missing_id(
        self, client, tenant, auth_headers, bot, other_owner, headers_for, sent
    ):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        if sent:
            assert send(client, auth_headers, campaign["id"]).status_code == 202
        before = self.state(tenant, campaign["id"])
        headers = headers_for(other_owner)
        create_bot(client, headers)  # globex has a bot of its own: a send could not fail for lack of one
        foreign = self.calls(client, headers, campaign["id"])
        missing = self.calls(client, headers, str(ObjectId()))
        for (label, response), (_, random) in zip(foreign, missing, strict=True):
            assert response.status_code == 404, (label, response.json)
            assert error_code(response) == "not_found", label
            assert (response.status_code, response.json) == (random.status_code, random.json), label
        assert self.state(tenant, campaign["id"]) == before
        assert client.get(campaign_url(campaign["id"]), headers=auth_headers).status_code == 200

    def test_another_tenants_admin_and_member_get_404(
        self, client, tenant, auth_headers, other_tenant, make_user, headers_for
    ):
        campaign = create(client, auth_headers)
        before = self.state(tenant, campaign["id"])
        for role in ("admin", "member"):
            headers = headers_for(make_user(other_tenant, role))
            assert client.get(campaign_url(campaign["id"]), headers=headers).status_code == 404
            assert client.get(campaign_url(campaign["id"], "/stats"), headers=headers).status_code == 404
        admin_headers = headers_for(make_user(other_tenant, "admin"))
        assert client.delete(campaign_url(campaign["id"]), headers=admin_headers).status_code == 404
        assert self.state(tenant, campaign["id"]) == before

    def test_the_other_tenant_usage_is_untouched(self, client, tenant, other_tenant, auth_headers, bot):
        campaign = create(client, auth_headers, telegramAccountId=bot)
        send(client, auth_headers, campaign["id"])
        assert campaigns_used(other_tenant) == 0
        assert messages_used(other_tenant) == 0
