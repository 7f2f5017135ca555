"""/api/v1/messages: the tenant's queued, sent and failed messages, newest first, filtered and paginated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from app.messages.models import Message
from app.tenancy.context import tenant_scope

from .support import create_bot, error_code, sent_campaign

API = "/api/v1"
MESSAGES = f"{API}/messages"
EMPTY_PAGE = {
    "items": [],
    "page": 1,
    "perPage": 20,
    "total": 0,
    "totalIsLowerBound": False,
    "nextCursor": None,
}


# -- helpers ----------------------------------------------------------------------------------------


def stored_messages(tenant, **filters) -> list[Message]:
    with tenant_scope(tenant):
        return list(Message.objects(**filters))


def snapshot(tenant) -> list[dict]:
    return sorted((m.to_mongo().to_dict() for m in stored_messages(tenant)), key=lambda d: str(d["_id"]))


def set_status(tenant, message_id, status: str) -> None:
    with tenant_scope(tenant):
        Message.objects(id=message_id).update_one(set__status=status)


def spread_queued_at(tenant, message_ids: list) -> None:
    """Give messages distinct queue times, in the order given (the last is the newest)."""
    base = datetime(2030, 1, 1, tzinfo=UTC)
    with tenant_scope(tenant):
        for offset, message_id in enumerate(message_ids):
            Message.objects(id=message_id).update_one(set__queued_at=base + timedelta(minutes=offset))


def listing(client, headers, **query):
    response = client.get(MESSAGES, query_string=query, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def ids_of(body) -> list[str]:
    return [item["id"] for item in body["items"]]


@pytest.fixture
def two_campaigns(client, tenant, auth_headers, bot):
    """Two sent campaigns of `tenant` (3 and 2 messages); one message sent, one failed, queue times spread.

    Returns (first campaign id, second campaign id, message ids oldest first).
    """
    first = sent_campaign(client, auth_headers, bot, ["@first_one", "@first_two", 1001], text="First")
    second = sent_campaign(client, auth_headers, bot, ["@second_one", -1002], text="Second")
    ordered = [m.id for m in stored_messages(tenant, campaign_id=ObjectId(first))]
    ordered += [m.id for m in stored_messages(tenant, campaign_id=ObjectId(second))]
    spread_queued_at(tenant, ordered)
    set_status(tenant, ordered[0], "sent")
    set_status(tenant, ordered[3], "failed")
    return first, second, [str(i) for i in ordered]


# -- listing ---------------------------------------------------------------------------------------


class TestList:
    def test_every_message_newest_first(self, client, auth_headers, two_campaigns):
        first, second, ordered = two_campaigns
        body = listing(client, auth_headers)
        assert (body["page"], body["perPage"], body["total"]) == (1, 20, 5)
        assert ids_of(body) == list(reversed(ordered))

    def test_items_describe_the_message(self, client, auth_headers, bot, two_campaigns):
        first, second, ordered = two_campaigns
        items = {item["id"]: item for item in listing(client, auth_headers)["items"]}
        oldest = items[ordered[0]]
        assert oldest["campaignId"] == first
        assert oldest["telegramAccountId"] == bot
        assert oldest["chat"] == "@first_one"
        assert oldest["text"] == "First"
        assert oldest["status"] == "sent"
        assert datetime.fromisoformat(oldest["queuedAt"]) == datetime(2030, 1, 1, tzinfo=UTC)
        assert {items[i]["status"] for i in ordered} == {"queued", "sent", "failed"}
        assert sorted(item["chat"] for item in items.values()) == sorted(
            ["@first_one", "@first_two", "1001", "@second_one", "-1002"]
        )

    def test_pages_split_the_list_without_overlap(self, client, auth_headers, two_campaigns):
        _, _, ordered = two_campaigns
        seen = []
        for page in (1, 2, 3):
            body = listing(client, auth_headers, page=page, perPage=2)
            assert (body["page"], body["perPage"], body["total"]) == (page, 2, 5)
            assert len(body["items"]) == (2 if page < 3 else 1)
            seen += ids_of(body)
        assert seen == list(reversed(ordered))
        beyond = listing(client, auth_headers, page=4, perPage=2)
        assert beyond["items"] == [] and beyond["total"] == 5

    def test_pages_hold_when_messages_share_a_queue_time(self, client, tenant, auth_headers, bot):
        # One send queues many messages in the same millisecond: paging must still list each once.
        sent_campaign(client, auth_headers, bot, [f"@same_time_{i}" for i in range(7)])
        with tenant_scope(tenant):
            Message.objects.update(set__queued_at=datetime(2030, 1, 1, tzinfo=UTC))
        seen = []
        for page in (1, 2, 3, 4):
            seen += ids_of(listing(client, auth_headers, page=page, perPage=2))
        assert sorted(seen) == sorted(str(m.id) for m in stored_messages(tenant))

    def test_per_page_of_100_is_allowed(self, client, auth_headers, two_campaigns):
        body = listing(client, auth_headers, perPage=100)
        assert body["perPage"] == 100 and len(body["items"]) == 5

    def test_an_empty_tenant_has_an_empty_list(self, client, auth_headers):
        assert listing(client, auth_headers) == EMPTY_PAGE

    @pytest.mark.parametrize(
        "query",
        [
            "perPage=101",
            "perPage=0",
            "page=0",
            "page=first",
            "status=delivered",
            "campaignId=123",
            "campaignId=zz",
        ],
    )
    def test_bad_paging_or_filter_is_422(self, client, auth_headers, query):
        response = client.get(f"{MESSAGES}?{query}", headers=auth_headers)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"
        assert response.json["error"]["details"]


class TestFilters:
    def test_by_campaign(self, client, auth_headers, two_campaigns):
        first, second, ordered = two_campaigns
        body = listing(client, auth_headers, campaignId=second)
        assert body["total"] == 2
        assert ids_of(body) == [ordered[4], ordered[3]]
        assert {item["campaignId"] for item in body["items"]} == {second}

    @pytest.mark.parametrize(("status", "positions"), [("sent", [0]), ("failed", [3]), ("queued", [4, 2, 1])])
    def test_by_status(self, client, auth_headers, two_campaigns, status, positions):
        _, _, ordered = two_campaigns
        body = listing(client, auth_headers, status=status)
        assert ids_of(body) == [ordered[p] for p in positions]
        assert body["total"] == len(positions)

    def test_by_campaign_and_status(self, client, auth_headers, two_campaigns):
        first, second, ordered = two_campaigns
        assert ids_of(listing(client, auth_headers, campaignId=first, status="queued")) == [
            ordered[2],
            ordered[1],
        ]
        assert listing(client, auth_headers, campaignId=first, status="failed")["total"] == 0

    def test_filters_and_pages_together(self, client, auth_headers, two_campaigns):
        _, _, ordered = two_campaigns
        body = listing(client, auth_headers, status="queued", page=2, perPage=2)
        assert (body["total"], ids_of(body)) == (3, [ordered[1]])

    def test_an_unknown_campaign_lists_nothing(self, client, auth_headers, two_campaigns):
        body = listing(client, auth_headers, campaignId=str(ObjectId()))
        assert body["items"] == [] and body["total"] == 0

    def test_cancelled_messages_show_as_cancelled(self, client, auth_headers, two_campaigns):
        first, _, ordered = two_campaigns
        response = client.patch(
            f"{API}/campaigns/{first}", json={"status": "cancelled"}, headers=auth_headers
        )
        assert response.status_code == 200
        body = listing(client, auth_headers, status="cancelled")
        assert ids_of(body) == [ordered[2], ordered[1]]  # the sent one stays sent
        assert ids_of(listing(client, auth_headers, status="sent")) == [ordered[0]]

    def test_a_deleted_campaigns_messages_are_gone(self, client, auth_headers, two_campaigns):
        first, second, _ = two_campaigns
        assert client.delete(f"{API}/campaigns/{first}", headers=auth_headers).status_code == 204
        body = listing(client, auth_headers)
        assert body["total"] == 2
        assert {item["campaignId"] for item in body["items"]} == {second}


# -- who may read ----------------------------------------------------------------------------------


class TestAccess:
    @pytest.mark.parametrize("role", ["admin", "member"])
    def test_every_role_of_the_tenant_reads(
        self, client, tenant, make_user, headers_for, two_campaigns, role
    ):
        assert listing(client, headers_for(make_user(tenant, role)))["total"] == 5

    def test_no_credential_is_401(self, client, two_campaigns):
        response = client.get(MESSAGES)
        assert response.status_code == 401

    def test_the_list_is_read_only(self, client, tenant, auth_headers, two_campaigns):
        before = snapshot(tenant)
        response = client.post(MESSAGES, json={"chat": "@someone", "text": "hi"}, headers=auth_headers)
        assert response.status_code == 405
        assert snapshot(tenant) == before


class TestCrossTenant:
    def test_another_tenant_never_sees_them(
        self, client, tenant, other_tenant, two_campaigns, other_owner, make_user, headers_for
    ):
        first, second, _ = two_campaigns
        before = snapshot(tenant)
        for account in (other_owner, make_user(other_tenant, "member")):
            headers = headers_for(account)
            assert listing(client, headers) == EMPTY_PAGE
            for query in (
                {"campaignId": first},
                {"campaignId": second, "status": "queued"},
                {"status": "sent"},
            ):
                body = listing(client, headers, **query)
                assert body["items"] == [] and body["total"] == 0, query
        assert snapshot(tenant) == before

    def test_each_tenant_sees_only_its_own(
        self, client, tenant, auth_headers, two_campaigns, other_owner, headers_for
    ):
        other_headers = headers_for(other_owner)
        other_campaign = sent_campaign(
            client, other_headers, create_bot(client, other_headers), ["@globex_news"]
        )
        theirs = listing(client, other_headers)
        assert theirs["total"] == 1
        assert theirs["items"][0]["campaignId"] == other_campaign
        ours = listing(client, auth_headers)
        assert ours["total"] == 5
        assert other_campaign not in {item["campaignId"] for item in ours["items"]}
        assert listing(client, auth_headers, campaignId=other_campaign)["total"] == 0

    def test_a_hint_for_the_first_tenant_is_refused(
        self, client, tenant, two_campaigns, other_owner, headers_for
    ):
        headers = {**headers_for(other_owner), "X-Tenant-Id": str(tenant.id)}
        response = client.get(MESSAGES, headers=headers)
        assert response.status_code == 403
        assert error_code(response) == "tenant_mismatch"
        response = client.get(MESSAGES, query_string={"tenant": "acme"}, headers=headers_for(other_owner))
        assert response.status_code == 403
