"""A/B tests (plan feature abTesting): 2 to 5 variants of a campaign's message, each sent to its share of
the test targets, split deterministically; the other targets are held until a winner is chosen, by an
owner or an admin (POST /campaigns/{id}/winner) or by the winner rule (the ab-test-winners job), and
then get the winner's message. Delivered through the fake Bot API."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from bson import ObjectId

from app.campaigns import ab_tests
from app.campaigns.models import Campaign
from app.campaigns.outgoing import count_tested, split
from app.clock import utcnow
from app.jobs import ab_winners, job_named, run_job
from app.messages.models import Message
from app.tenancy.context import tenant_scope
from app.webhooks.models import WebhookDelivery
from app.workers import SENDERS

from .support import (
    API,
    audit_entries,
    connect_bot,
    error_of,
    messages_used,
    random_id,
    run_together,
    stored_document,
    update_tenant,
)

CAMPAIGNS = f"{API}/campaigns"
TEXTS = {
    "A": "Cover sheets are here",
    "B": "Every TPS report now gets a cover sheet",
    "C": "New: cover sheets",
}


# -- helpers ----------------------------------------------------------------------------------------


def variants(*names: str) -> list[dict]:
    return [{"name": name, "message": {"text": TEXTS[name]}} for name in names]


def a_test(**changes) -> dict:
    """An A/B test of variants A and B, half of the targets in it, with `changes`."""
    return {"variants": variants("A", "B"), "testPercent": 50, **changes}


def ab_body(targets, percent=50, rule=None, names=("A", "B"), **changes) -> dict:
    return {
        "name": "Cover sheets",
        "targets": list(targets),
        "abTest": {"variants": variants(*names), "testPercent": percent, "winnerRule": rule},
        **changes,
    }


def chats(n: int, start: int = 7_000_000) -> list[str]:
    return [str(start + i) for i in range(n)]


def create(client, headers, body) -> dict:
    response = client.post(CAMPAIGNS, json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def sent(client, headers, body) -> str:
    campaign_id = create(client, headers, body)["id"]
    response = client.post(f"{CAMPAIGNS}/{campaign_id}/send", headers=headers)
    assert response.status_code == 202, response.json
    return campaign_id


def stored_messages(tenant, campaign_id) -> list[Message]:
    with tenant_scope(tenant):
        return list(Message.objects(campaign_id=ObjectId(campaign_id)).order_by("position"))


def choose(client, headers, campaign_id, variant="B"):
    return client.post(f"{CAMPAIGNS}/{campaign_id}/winner", json={"variant": variant}, headers=headers)


def stats(client, headers, campaign_id) -> dict:
    response = client.get(f"{CAMPAIGNS}/{campaign_id}/stats", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def received(fake, bot_id) -> dict[str, str]:
    """Chat -> the text the fake Bot API got for it from `bot_id`."""
    return {s["chat"]: s["text"] for s in fake.sent if s["bot"] == bot_id}


@pytest.fixture
def senders():
    return {"bot": SENDERS["bot"]}  # tenant events stay queued for the tests to look at


@pytest.fixture
def sender(client, auth_headers) -> tuple[str, str]:
    """A bot of acme: (account id, Telegram bot id)."""
    return connect_bot(client, auth_headers)


# -- the request -------------------------------------------------------------------------------------


class TestValidation:
    @pytest.mark.parametrize(
        ("test", "field"),
        [
            (a_test(variants=variants("A")), "variants"),
            (a_test(variants=variants("A", "B", "C", "A", "B", "C")), "variants"),
            (a_test(variants=variants("A", "A")), "variants"),
            (a_test(variants=[{"name": "x" * 33, "message": {"text": "t"}}, *variants("A")]), "variants"),
            (a_test(variants=[{"name": "  ", "message": {"text": "t"}}, *variants("A")]), "variants"),
            (a_test(variants=[{"name": "X", "message": {}}, *variants("A")]), "variants"),
            (a_test(variants=[{"name": "X"}, *variants("A")]), "variants"),
            (a_test(testPercent=0), "testPercent"),
            (a_test(testPercent=101), "testPercent"),
            (a_test(testPercent="50"), "testPercent"),
            (a_test(testPercent=50.5), "testPercent"),
            ({"variants": variants("A", "B")}, "testPercent"),
            (a_test(winnerRule={"metric": "clicks", "afterMinutes": 5}), "winnerRule"),
            (a_test(winnerRule={"metric": "deliveryRate", "afterMinutes": 0}), "winnerRule"),
            (a_test(winnerRule={"metric": "deliveryRate", "afterMinutes": 10081}), "winnerRule"),
            (a_test(winnerRule={"metric": "deliveryRate"}), "winnerRule"),
            (
                a_test(testPercent=100, winnerRule={"metric": "deliveryRate", "afterMinutes": 60}),
                "winnerRule",
            ),
            (a_test(winner="A"), "winner"),
        ],
    )
    def test_a_bad_test_is_422_at_its_field_and_stores_nothing(
        self, client, tenant, auth_headers, test, field
    ):
        response = client.post(
            CAMPAIGNS, json={"name": "n", "targets": ["1001"], "abTest": test}, headers=auth_headers
        )

        error = error_of(response, 422)
        assert error["code"] == "validation_error"
        assert field in error["details"]["abTest"], error
        with tenant_scope(tenant):
            assert Campaign.objects.count() == 0

    def test_without_a_test_the_message_is_required(self, client, tenant, auth_headers):
        response = client.post(
            CAMPAIGNS, json={"name": "n", "targets": ["1001"], "abTest": None}, headers=auth_headers
        )
        assert "message" in error_of(response, 422)["details"]

    def test_removing_the_test_of_a_draft_without_a_message_is_422(self, client, tenant, auth_headers):
        campaign = create(client, auth_headers, ab_body(["1001"]))
        response = client.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"abTest": None}, headers=auth_headers)
        assert "message" in error_of(response, 422)["details"]
        with tenant_scope(tenant):
            assert Campaign.objects.get(id=campaign["id"]).ab_test is not None

    def test_a_variants_media_must_exist(self, client, tenant, auth_headers):
        body = ab_body(["1001"])
        body["abTest"]["variants"][1]["message"]["mediaId"] = random_id()
        response = client.post(CAMPAIGNS, json=body, headers=auth_headers)
        details = error_of(response, 422)["details"]
        assert details == {"abTest": {"variants": {"1": {"message": {"mediaId": ["No such media file."]}}}}}


class TestTheCampaign:
    def test_the_test_is_echoed_and_the_message_may_be_left_out(self, client, tenant, auth_headers):
        rule = {"metric": "deliveryRate", "afterMinutes": 90}
        campaign = create(client, auth_headers, ab_body(["1001", "@initech_news"], percent=20, rule=rule))

        assert campaign["message"] is None
        assert campaign["abTest"] == {
            "variants": [
                {
                    "name": "A",
                    "message": {"text": TEXTS["A"], "parseMode": None, "mediaId": None, "translations": {}},
                },
                {
                    "name": "B",
                    "message": {"text": TEXTS["B"], "parseMode": None, "mediaId": None, "translations": {}},
                },
            ],
            "testPercent": 20,
            "winnerRule": rule,
            "winner": None,
            "winnerChosenAt": None,
        }
        assert client.get(f"{CAMPAIGNS}/{campaign['id']}", headers=auth_headers).json == campaign

    def test_a_draft_takes_a_test_and_drops_it(self, client, tenant, auth_headers):
        campaign = create(client, auth_headers, {"name": "n", "targets": ["1001"], "message": {"text": "hi"}})
        url = f"{CAMPAIGNS}/{campaign['id']}"

        changed = client.patch(url, json={"abTest": ab_body([])["abTest"]}, headers=auth_headers)
        assert changed.status_code == 200, changed.json
        assert [v["name"] for v in changed.json["abTest"]["variants"]] == ["A", "B"]
        assert changed.json["message"]["text"] == "hi"

        dropped = client.patch(url, json={"abTest": None}, headers=auth_headers)
        assert dropped.status_code == 200 and dropped.json["abTest"] is None

    def test_a_sent_campaigns_test_cannot_change(self, client, tenant, auth_headers, sender):
        campaign_id = sent(client, auth_headers, ab_body(chats(4), telegramAccountId=sender[0]))
        response = client.patch(
            f"{CAMPAIGNS}/{campaign_id}",
            json={"abTest": ab_body([], names=("A", "C"))["abTest"]},
            headers=auth_headers,
        )
        assert error_of(response, 409)["code"] == "conflict"


class TestPlanGating:
    def test_a_plan_without_ab_testing_is_refused_on_create_and_edit(
        self, client, other_tenant, other_headers
    ):
        response = client.post(CAMPAIGNS, json=ab_body(["1001"]), headers=other_headers)  # starter
        error = error_of(response, 403)
        assert error["code"] == "feature_not_available" and error["details"] == {"feature": "abTesting"}

        draft = create(client, other_headers, {"name": "n", "targets": ["1001"], "message": {"text": "hi"}})
        response = client.patch(
            f"{CAMPAIGNS}/{draft['id']}", json={"abTest": ab_body([])["abTest"]}, headers=other_headers
        )
        assert error_of(response, 403)["code"] == "feature_not_available"
        with tenant_scope(other_tenant):
            assert Campaign.objects.get(id=draft["id"]).ab_test is None
        # Dropping a test is no use of the feature.
        assert (
            client.patch(
                f"{CAMPAIGNS}/{draft['id']}", json={"abTest": None}, headers=other_headers
            ).status_code
            == 200
        )

    def test_a_test_under_way_when_the_plan_changes_still_gets_its_winner(
        self, client, tenant, auth_headers, sender
    ):
        campaign_id = sent(client, auth_headers, ab_body(chats(4), telegramAccountId=sender[0]))
        update_tenant(tenant, set__plan="starter")

        assert choose(client, auth_headers, campaign_id).status_code == 200
        assert {m.status for m in stored_messages(tenant, campaign_id)} == {"queued"}

    def test_a_draft_made_before_a_downgrade_is_not_sent(self, client, tenant, auth_headers, sender):
        campaign = create(client, auth_headers, ab_body(chats(3), telegramAccountId=sender[0]))
        update_tenant(tenant, set__features={"abTesting": False})

        response = client.post(f"{CAMPAIGNS}/{campaign['id']}/send", headers=auth_headers)

        assert error_of(response, 403)["details"] == {"feature": "abTesting"}
        assert stored_messages(tenant, campaign["id"]) == []
        assert messages_used(tenant) == 0


# -- the split ---------------------------------------------------------------------------------------


class TestSplit:
    def test_each_target_gets_one_variant_the_same_every_time(self, client, tenant, auth_headers, sender):
        targets = chats(200)
        campaign_id = sent(
            client,
            auth_headers,
            ab_body(targets, percent=30, names=("A", "B", "C"), telegramAccountId=sender[0]),
        )

        messages = stored_messages(tenant, campaign_id)
        assert [m.chat for m in messages] == targets  # one message per target, in the campaign's order
        tested = [m for m in messages if not m.held_out]
        held = [m for m in messages if m.held_out]
        assert len(tested) == 60 and len(held) == 140
        assert Counter(m.variant for m in tested) == {"A": 20, "B": 20, "C": 20}
        for message in tested:
            assert message.status == "queued" and message.text == TEXTS[message.variant]
        for message in held:
            assert (message.status, message.variant, message.text) == ("held", None, None)

        with tenant_scope(tenant):
            campaign = Campaign.objects.get(id=campaign_id)
        assignment = split(campaign.id, targets, campaign.ab_test)
        assert {m.chat: m.variant for m in messages} == assignment
        shuffled = random.sample(targets, len(targets))
        assert split(campaign.id, shuffled, campaign.ab_test) == assignment  # not the list's order
        assert split(ObjectId(), targets, campaign.ab_test) != assignment  # but the campaign's

    @pytest.mark.parametrize(
        ("targets", "percent", "tested"),
        [(1, 10, 1), (2, 60, 1), (3, 99, 2), (10, 50, 5), (7, 100, 7), (1000, 1, 10)],
    )
    def test_the_test_share_holds_out_at_least_one_target_below_100(self, targets, percent, tested):
        assert count_tested(targets, percent) == tested

    def test_sending_reserves_every_target_at_once(self, client, tenant, auth_headers, sender):
        sent(client, auth_headers, ab_body(chats(50), percent=10, telegramAccountId=sender[0]))
        assert messages_used(tenant) == 50

    def test_a_scheduled_tests_rule_counts_from_the_scheduled_time(
        self, client, tenant, auth_headers, sender
    ):
        starts = (utcnow() + timedelta(days=1)).replace(microsecond=0)
        rule = {"metric": "deliveryRate", "afterMinutes": 30}
        body = ab_body(chats(4), rule=rule, telegramAccountId=sender[0], scheduledAt=starts.isoformat())
        campaign_id = sent(client, auth_headers, body)

        campaign = stored_document(Campaign, tenant, campaign_id)
        assert campaign.status == "scheduled"
        assert campaign.ab_test.winner_due_at.replace(tzinfo=starts.tzinfo) == starts + timedelta(minutes=30)
        assert ab_winners.run(starts + timedelta(minutes=31)) == {"chosen": 0, "released": 0}  # not started


# -- delivery and the winner ----------------------------------------------------------------------------


def subscribe(client, headers) -> None:
    response = client.post(
        f"{API}/webhooks",
        json={
            "url": "https://hooks.example.com/in",
            "events": ["campaign.winner_chosen", "campaign.completed"],
        },
        headers=headers,
    )
    assert response.status_code == 201, response.json


def events(tenant, event) -> list[dict]:
    with tenant_scope(tenant):
        return [delivery.payload["data"] for delivery in WebhookDelivery.objects(event=event)]


class TestDelivery:
    def test_the_test_goes_out_the_rest_waits_for_the_owners_choice(
        self, client, tenant, auth_headers, sender, fake_telegram, dispatcher
    ):
        account, bot_id = sender
        subscribe(client, auth_headers)
        targets = chats(40)
        campaign_id = sent(client, auth_headers, ab_body(targets, percent=50, telegramAccountId=account))

        dispatcher.run_until_idle()

        got = received(fake_telegram, bot_id)
        tested = {m.chat: m.variant for m in stored_messages(tenant, campaign_id) if not m.held_out}
        assert got == {chat: TEXTS[variant] for chat, variant in tested.items()}
        body = stats(client, auth_headers, campaign_id)
        assert body["status"] == "sending"  # the held targets wait
        assert body["messages"]["held"] == 20 and body["messages"]["sent"] == 20
        assert body["variants"] == [
            {
                "name": name,
                "targets": 10,
                "queued": 0,
                "sent": 10,
                "failed": 0,
                "cancelled": 0,
                "deliveryRate": 1.0,
            }
            for name in ("A", "B")
        ]
        assert body["holdout"] == {
            "targets": 20,
            "held": 20,
            "queued": 20,
            "sent": 0,
            "failed": 0,
            "cancelled": 0,
            "deliveryRate": None,
        }
        assert "languages" not in body
        listed = client.get(
            f"{API}/messages",
            query_string={"campaignId": campaign_id, "status": "held"},
            headers=auth_headers,
        ).json
        assert listed["total"] == 20
        assert {(m["text"], m["variant"], m["heldOut"]) for m in listed["items"]} == {(None, None, True)}

        response = choose(client, auth_headers, campaign_id, "B")
        assert response.status_code == 200, response.json
        assert response.json["abTest"]["winner"] == "B"
        assert response.json["abTest"]["winnerChosenAt"] is not None
        assert response.json["message"]["text"] == TEXTS["B"]  # what the held targets get

        dispatcher.run_until_idle()

        got = received(fake_telegram, bot_id)
        assert sorted(got) == sorted(targets)  # everyone, once
        messages = stored_messages(tenant, campaign_id)
        for message in messages:
            assert message.status == "sent"
            if message.held_out:
                assert (message.variant, message.text, got[message.chat]) == ("B", TEXTS["B"], TEXTS["B"])
        body = stats(client, auth_headers, campaign_id)
        assert body["status"] == "completed"
        assert [v["sent"] for v in body["variants"]] == [10, 10]  # the test's figures stay the test's
        assert body["holdout"]["sent"] == 20
        assert [entry.summary for entry in audit_entries(tenant, "campaign.winner_chosen")] == [
            {"campaignId": campaign_id, "variant": "B", "chosenBy": "manual"}
        ]
        assert events(tenant, "campaign.winner_chosen") == [
            {"campaignId": campaign_id, "variant": "B", "chosenBy": "manual"}
        ]
        assert messages_used(tenant) == 40

    def test_with_testpercent_100_everyone_is_in_the_test_and_the_campaign_completes(
        self, client, tenant, auth_headers, sender, fake_telegram, dispatcher
    ):
        campaign_id = sent(client, auth_headers, ab_body(chats(10), percent=100, telegramAccountId=sender[0]))
        dispatcher.run_until_idle()

        assert len(received(fake_telegram, sender[1])) == 10
        body = stats(client, auth_headers, campaign_id)
        assert body["status"] == "completed" and body["holdout"]["targets"] == 0
        assert error_of(choose(client, auth_headers, campaign_id), 409)["code"] == "conflict"

    def test_the_rule_chooses_the_best_delivery_rate_once_its_time_has_come(
        self, app, client, tenant, auth_headers, sender, fake_telegram, dispatcher
    ):
        account, bot_id = sender
        targets = chats(30)
        rule = {"metric": "deliveryRate", "afterMinutes": 60}
        campaign_id = sent(
            client, auth_headers, ab_body(targets, percent=40, rule=rule, telegramAccountId=account)
        )
        tested = {m.chat: m.variant for m in stored_messages(tenant, campaign_id) if not m.held_out}
        fake_telegram.missing_chats = {next(chat for chat, name in tested.items() if name == "A")}
        dispatcher.run_until_idle()
        assert [v["deliveryRate"] for v in stats(client, auth_headers, campaign_id)["variants"]] == [
            0.8333,
            1.0,
        ]

        assert ab_winners.run(utcnow() + timedelta(minutes=59)) == {"chosen": 0, "released": 0}
        assert ab_winners.run(utcnow() + timedelta(minutes=61)) == {"chosen": 1, "released": 18}
        assert ab_winners.run(utcnow() + timedelta(minutes=62)) == {"chosen": 0, "released": 0}

        dispatcher.run_until_idle()
        campaign = client.get(f"{CAMPAIGNS}/{campaign_id}", headers=auth_headers).json
        assert campaign["abTest"]["winner"] == "B" and campaign["status"] == "completed"
        got = received(fake_telegram, bot_id)
        assert [got[m.chat] for m in stored_messages(tenant, campaign_id) if m.held_out] == [TEXTS["B"]] * 18
        [entry] = audit_entries(tenant, "campaign.winner_chosen")
        assert entry.summary["chosenBy"] == "rule" and entry.actor.kind == "system"
        assert error_of(choose(client, auth_headers, campaign_id, "A"), 409)["code"] == "conflict"

    def test_the_job_runs_from_the_schedule_and_a_tie_goes_to_the_first_variant(
        self, app, client, tenant, auth_headers, sender
    ):
        rule = {"metric": "deliveryRate", "afterMinutes": 1}
        campaign_id = sent(client, auth_headers, ab_body(chats(10), rule=rule, telegramAccountId=sender[0]))
        with tenant_scope(tenant):
            Campaign.objects(id=campaign_id).update_one(set__ab_test__winner_due_at=utcnow())

        assert run_job(app, job_named("ab-test-winners")) == {
            "chosen": 1,
            "released": 5,
        }  # nothing finished yet

        campaign = stored_document(Campaign, tenant, campaign_id)
        assert campaign.ab_test.winner == "A" and campaign.ab_test.winner_due_at is None
        assert campaign.message.text == TEXTS["A"]

    def test_a_choice_that_stopped_before_the_release_is_finished_by_the_job(
        self, client, tenant, auth_headers, sender, fake_telegram, dispatcher, monkeypatch
    ):
        campaign_id = sent(client, auth_headers, ab_body(chats(8), telegramAccountId=sender[0]))

        def crash(campaign):
            raise RuntimeError("the worker died")

        monkeypatch.setattr(ab_tests, "_release", crash)
        with pytest.raises(RuntimeError):
            choose(client, auth_headers, campaign_id, "A")
        monkeypatch.undo()
        assert Counter(m.status for m in stored_messages(tenant, campaign_id))["held"] == 4

        assert ab_winners.run() == {"chosen": 0, "released": 4}

        dispatcher.run_until_idle()
        assert len(received(fake_telegram, sender[1])) == 8
        assert len(audit_entries(tenant, "campaign.winner_chosen")) == 1

    def test_cancelling_gives_the_held_targets_units_back(
        self, client, tenant, auth_headers, sender, dispatcher
    ):
        rule = {"metric": "deliveryRate", "afterMinutes": 5}
        campaign_id = sent(
            client, auth_headers, ab_body(chats(20), percent=25, rule=rule, telegramAccountId=sender[0])
        )
        dispatcher.run_until_idle()
        assert messages_used(tenant) == 20

        response = client.patch(
            f"{CAMPAIGNS}/{campaign_id}", json={"status": "cancelled"}, headers=auth_headers
        )

        assert response.status_code == 200, response.json
        assert Counter(m.status for m in stored_messages(tenant, campaign_id)) == {"sent": 5, "cancelled": 15}
        assert messages_used(tenant) == 5
        assert ab_winners.run(utcnow() + timedelta(minutes=10)) == {"chosen": 0, "released": 0}
        assert error_of(choose(client, auth_headers, campaign_id), 409)["code"] == "conflict"

    def test_deleting_gives_the_held_targets_units_back(self, client, tenant, auth_headers, sender):
        campaign_id = sent(client, auth_headers, ab_body(chats(10), percent=10, telegramAccountId=sender[0]))
        assert client.delete(f"{CAMPAIGNS}/{campaign_id}", headers=auth_headers).status_code == 204
        assert messages_used(tenant) == 0
        assert stored_messages(tenant, campaign_id) == []


class TestChoosingTheWinner:
    @pytest.fixture
    def running(self, client, auth_headers, sender) -> str:
        return sent(client, auth_headers, ab_body(chats(6), telegramAccountId=sender[0]))

    @pytest.mark.parametrize(
        ("body", "field"), [({"variant": "Z"}, "variant"), ({}, "variant"), ({"variant": ""}, "variant")]
    )
    def test_a_name_that_is_no_variant_is_422(self, client, tenant, auth_headers, running, body, field):
        response = client.post(f"{CAMPAIGNS}/{running}/winner", json=body, headers=auth_headers)
        error = error_of(response, 422)
        assert field in error["details"]
        assert stored_document(Campaign, tenant, running).ab_test.winner is None

    def test_only_owners_and_admins_choose(
        self, client, tenant, member_headers, make_user, headers_for, running
    ):
        assert error_of(choose(client, member_headers, running), 403)["code"] == "forbidden"
        admin = headers_for(make_user(tenant, "admin"))
        assert choose(client, admin, running).status_code == 200

    def test_another_tenants_campaign_is_404(self, client, tenant, other_headers, running):
        assert error_of(choose(client, other_headers, running), 404)["code"] == "not_found"
        assert error_of(choose(client, other_headers, random_id()), 404)["code"] == "not_found"
        assert stored_document(Campaign, tenant, running).ab_test.winner is None

    def test_a_second_choice_is_409_and_changes_nothing(self, client, tenant, auth_headers, running):
        assert choose(client, auth_headers, running, "A").status_code == 200
        response = choose(client, auth_headers, running, "B")
        assert error_of(response, 409)["code"] == "conflict"
        assert stored_document(Campaign, tenant, running).ab_test.winner == "A"

    def test_only_a_test_under_way_or_done_has_a_winner(self, client, tenant, auth_headers, sender):
        draft = create(client, auth_headers, ab_body(chats(4), telegramAccountId=sender[0]))
        assert error_of(choose(client, auth_headers, draft["id"]), 409)["code"] == "conflict"
        plain = create(client, auth_headers, {"name": "n", "targets": ["1001"], "message": {"text": "hi"}})
        assert error_of(choose(client, auth_headers, plain["id"]), 409)["code"] == "conflict"

    def test_of_concurrent_choices_one_wins(
        self, client, tenant, auth_headers, sender, frequent_thread_switches
    ):
        for round_ in range(5):
            body = ab_body(chats(6, start=9_000_000 + 100 * round_), telegramAccountId=sender[0])
            campaign_id = sent(client, auth_headers, body)

            results = run_together(
                6,
                lambda i, campaign_id=campaign_id: (
                    choose(client, auth_headers, campaign_id, "AB"[i % 2]).status_code
                ),
            )

            assert sorted(results) == [200] + [409] * 5
            winner = stored_document(Campaign, tenant, campaign_id).ab_test.winner
            held_out = [m for m in stored_messages(tenant, campaign_id) if m.held_out]
            assert {(m.status, m.variant) for m in held_out} == {("queued", winner)}
        assert len(audit_entries(tenant, "campaign.winner_chosen")) == 5

    def test_a_choice_and_a_cancel_at_once_leave_nothing_to_send_and_no_units_held(
        self, client, tenant, auth_headers, sender, frequent_thread_switches
    ):
        for round_ in range(5):
            body = ab_body(chats(20, start=8_000_000 + 100 * round_), percent=25, telegramAccountId=sender[0])
            campaign_id = sent(client, auth_headers, body)
            cancel = {"status": "cancelled"}

            def act(i, campaign_id=campaign_id, cancel=cancel):
                if i == 0:
                    return choose(client, auth_headers, campaign_id).status_code
                return client.patch(
                    f"{CAMPAIGNS}/{campaign_id}", json=cancel, headers=auth_headers
                ).status_code

            results = run_together(2, act)

            assert results[1] == 200 and results[0] in (200, 409)
            assert {m.status for m in stored_messages(tenant, campaign_id)} == {"cancelled"}
        assert messages_used(tenant) == 0

    def test_the_rule_and_an_owner_at_once_choose_one_winner_and_release_each_target_once(
        self, client, tenant, auth_headers, sender, frequent_thread_switches
    ):
        rule = {"metric": "deliveryRate", "afterMinutes": 1}
        campaign_id = sent(
            client, auth_headers, ab_body(chats(40), percent=10, rule=rule, telegramAccountId=sender[0])
        )
        due = utcnow() + timedelta(minutes=2)

        results = run_together(
            2, lambda i: choose(client, auth_headers, campaign_id).status_code if i else ab_winners.run(due)
        )

        assert results[1] in (200, 409)
        assert len(audit_entries(tenant, "campaign.winner_chosen")) == 1
        winner = stored_document(Campaign, tenant, campaign_id).ab_test.winner
        held_out = [m for m in stored_messages(tenant, campaign_id) if m.held_out]
        assert len(held_out) == 36 and {(m.status, m.variant) for m in held_out} == {("queued", winner)}
        assert ab_winners.run(due) == {"chosen": 0, "released": 0}
