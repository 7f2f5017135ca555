"""Multi-language campaigns (plan feature multiLanguage): a message with translations, the tenant's
general.language as the fallback, a language per target; each message records the language of what
it sent. Delivered through the fake Bot API."""

from __future__ import annotations

import pytest
from bson import ObjectId

from app.campaigns.models import MAX_TRANSLATIONS, Campaign
from app.messages.models import Message
from app.tenancy.context import tenant_scope
from app.workers import SENDERS

from .support import (
    API,
    connect_bot,
    error_of,
    file_part,
    multipart,
    random_id,
    stored_document,
    update_tenant,
)

CAMPAIGNS = f"{API}/campaigns"
ENGLISH, GERMAN, FRENCH = "Cover sheets are here", "Deckblätter sind da", "Les pages de garde sont là"


def body(targets, languages=None, **changes) -> dict:
    message = {"text": ENGLISH, "translations": {"de": {"text": GERMAN}, "fr": {"text": FRENCH}}}
    return {
        "name": "Cover sheets",
        "message": message,
        "targets": list(targets),
        "targetLanguages": languages,
        **changes,
    }


def create(client, headers, campaign: dict) -> dict:
    response = client.post(CAMPAIGNS, json=campaign, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def send(client, headers, campaign_id: str) -> None:
    response = client.post(f"{CAMPAIGNS}/{campaign_id}/send", headers=headers)
    assert response.status_code == 202, response.json


def stored_messages(tenant, campaign_id) -> dict[str, Message]:
    with tenant_scope(tenant):
        return {m.chat: m for m in Message.objects(campaign_id=ObjectId(campaign_id))}


def received(fake, bot_id) -> dict[str, dict]:
    return {s["chat"]: s for s in fake.sent if s["bot"] == bot_id}


@pytest.fixture
def senders():
    return {"bot": SENDERS["bot"]}


@pytest.fixture
def sender(client, auth_headers) -> tuple[str, str]:
    return connect_bot(client, auth_headers)


class TestValidation:
    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"message": {"text": "t", "translations": {"german": {"text": "x"}}}}, "message"),
            ({"message": {"text": "t", "translations": {"de-de": {"text": "x"}}}}, "message"),
            ({"message": {"text": "t", "translations": {"de": {}}}}, "message"),
            ({"message": {"text": "t", "translations": {"de": {"text": ""}}}}, "message"),
            (
                {"message": {"text": "t", "translations": {"de": {"text": "x", "translations": {}}}}},
                "message",
            ),
            (
                {
                    "message": {
                        "text": "t",
                        "translations": {"de": {"text": "x" * 1025, "mediaId": random_id()}},
                    }
                },
                "message",
            ),
            (
                {
                    "message": {
                        "text": "t",
                        "translations": {f"x{n:02d}": {"text": "x"} for n in range(MAX_TRANSLATIONS + 1)},
                    }
                },
                "message",
            ),
            ({"targetLanguages": {"1001": "german"}}, "targetLanguages"),
            ({"targetLanguages": {"not a chat": "de"}}, "targetLanguages"),
            ({"targetLanguages": {"@Initech_News": "de", "@initech_news": "fr"}}, "targetLanguages"),
            ({"targetLanguages": {"1002": "de"}}, "targetLanguages"),
            ({"targetLanguages": ["1001", "de"]}, "targetLanguages"),
        ],
    )
    def test_a_bad_language_is_422_at_its_field_and_stores_nothing(
        self, client, tenant, auth_headers, changes, field
    ):
        response = client.post(
            CAMPAIGNS, json={**body(["1001", "@initech_news"]), **changes}, headers=auth_headers
        )

        error = error_of(response, 422)
        assert error["code"] == "validation_error" and field in error["details"], error
        with tenant_scope(tenant):
            assert Campaign.objects.count() == 0

    def test_targets_are_normalised_as_in_targets(self, client, tenant, auth_headers):
        languages = {"@Initech_News": "de", "1001": "fr"}
        campaign = create(client, auth_headers, body(["1001", "@INITECH_NEWS", "1003"], languages))
        assert campaign["targetLanguages"] == {"@initech_news": "de", "1001": "fr"}
        assert campaign["message"]["translations"] == {
            "de": {"text": GERMAN, "parseMode": None, "mediaId": None},
            "fr": {"text": FRENCH, "parseMode": None, "mediaId": None},
        }

    def test_dropping_a_target_that_has_a_language_is_422(self, client, tenant, auth_headers):
        campaign = create(client, auth_headers, body(["1001", "1002"], {"1002": "de"}))
        url = f"{CAMPAIGNS}/{campaign['id']}"

        response = client.patch(url, json={"targets": ["1001"]}, headers=auth_headers)

        assert error_of(response, 422)["details"] == {
            "targetLanguages": {"1002": ["Not among the campaign's targets."]}
        }
        assert stored_document(Campaign, tenant, campaign["id"]).targets == ["1001", "1002"]
        both = client.patch(url, json={"targets": ["1001"], "targetLanguages": None}, headers=auth_headers)
        assert both.status_code == 200 and both.json["targetLanguages"] == {}

    def test_a_translations_media_must_exist(self, client, tenant, auth_headers):
        campaign = body(["1001"])
        campaign["message"]["translations"]["de"]["mediaId"] = random_id()
        response = client.post(CAMPAIGNS, json=campaign, headers=auth_headers)
        assert error_of(response, 422)["details"] == {
            "message": {"translations": {"de": {"mediaId": ["No such media file."]}}}
        }


class TestPlanGating:
    @pytest.mark.parametrize(
        "campaign",
        [
            body(["1001"]),
            {"name": "n", "message": {"text": "hi"}, "targets": ["1001"], "targetLanguages": {"1001": "de"}},
        ],
        ids=["translations", "targetLanguages"],
    )
    def test_a_plan_without_multi_language_is_refused(self, client, other_tenant, other_headers, campaign):
        response = client.post(CAMPAIGNS, json=campaign, headers=other_headers)  # starter
        error = error_of(response, 403)
        assert error["code"] == "feature_not_available" and error["details"] == {"feature": "multiLanguage"}

    def test_a_variants_translations_need_multi_language_too(self, client, tenant, auth_headers):
        update_tenant(tenant, set__features={"multiLanguage": False})
        variants = [
            {"name": "A", "message": {"text": "a", "translations": {"de": {"text": "ä"}}}},
            {"name": "B", "message": {"text": "b"}},
        ]
        campaign = {"name": "n", "targets": ["1001"], "abTest": {"variants": variants, "testPercent": 50}}

        response = client.post(CAMPAIGNS, json=campaign, headers=auth_headers)

        assert error_of(response, 403)["details"] == {"feature": "multiLanguage"}
        variants[0]["message"].pop("translations")
        assert client.post(CAMPAIGNS, json=campaign, headers=auth_headers).status_code == 201

    def test_a_draft_made_before_a_downgrade_is_not_sent(self, client, tenant, auth_headers, sender):
        campaign = create(client, auth_headers, body(["1001"], telegramAccountId=sender[0]))
        update_tenant(tenant, set__plan="starter")
        response = client.post(f"{CAMPAIGNS}/{campaign['id']}/send", headers=auth_headers)
        assert error_of(response, 403)["details"] == {"feature": "multiLanguage"}
        assert stored_messages(tenant, campaign["id"]) == {}


class TestDelivery:
    def test_each_target_gets_its_language_or_the_tenants(
        self, client, tenant, auth_headers, sender, fake_telegram, dispatcher
    ):
        account, bot_id = sender
        languages = {"2001": "de", "2002": "fr", "2003": "es"}  # no Spanish translation
        campaign = create(
            client, auth_headers, body(["2001", "2002", "2003", "2004"], languages, telegramAccountId=account)
        )
        send(client, auth_headers, campaign["id"])

        dispatcher.run_until_idle()

        got = {chat: sent["text"] for chat, sent in received(fake_telegram, bot_id).items()}
        assert got == {"2001": GERMAN, "2002": FRENCH, "2003": ENGLISH, "2004": ENGLISH}
        messages = stored_messages(tenant, campaign["id"])
        assert {chat: (m.language, m.text) for chat, m in messages.items()} == {
            "2001": ("de", GERMAN),
            "2002": ("fr", FRENCH),
            "2003": ("en", ENGLISH),  # what was sent: the message itself, in the tenant's language
            "2004": ("en", ENGLISH),
        }
        stats = client.get(f"{CAMPAIGNS}/{campaign['id']}/stats", headers=auth_headers).json
        assert stats["languages"] == [
            {
                "language": language,
                "targets": n,
                "queued": 0,
                "sent": n,
                "failed": 0,
                "cancelled": 0,
                "deliveryRate": 1.0,
            }
            for language, n in (("de", 1), ("en", 2), ("fr", 1))
        ]
        assert "variants" not in stats

    def test_the_tenants_language_picks_its_translation(
        self, client, tenant, auth_headers, sender, fake_telegram, dispatcher
    ):
        settings = client.patch(
            f"{API}/tenants/current/settings", json={"general": {"language": "fr"}}, headers=auth_headers
        )
        assert settings.status_code == 200, settings.json
        account, bot_id = sender
        campaign = create(
            client, auth_headers, body(["3001", "3002"], {"3001": "de"}, telegramAccountId=account)
        )
        send(client, auth_headers, campaign["id"])

        dispatcher.run_until_idle()

        got = {chat: sent["text"] for chat, sent in received(fake_telegram, bot_id).items()}
        assert got == {"3001": GERMAN, "3002": FRENCH}
        assert stored_messages(tenant, campaign["id"])["3002"].language == "fr"

    def test_a_translation_is_a_whole_message_with_its_own_media(
        self, client, tenant, auth_headers, sender, fake_telegram, dispatcher
    ):
        picture = file_part(b"\x89PNG\r\n\x1a\n" + b"0" * 256, "deckblatt.png", "image/png")
        upload = client.post(f"{API}/media", headers=auth_headers, **multipart({"file": picture}))
        assert upload.status_code == 201, upload.json
        account, bot_id = sender
        campaign = body(["4001", "4002"], {"4001": "de"}, telegramAccountId=account)
        campaign["message"]["translations"]["de"] = {
            "text": GERMAN,
            "mediaId": upload.json["id"],
            "parseMode": "HTML",
        }
        campaign_id = create(client, auth_headers, campaign)["id"]
        send(client, auth_headers, campaign_id)

        dispatcher.run_until_idle()

        got = received(fake_telegram, bot_id)
        assert (got["4001"]["method"], got["4001"]["text"]) == ("sendPhoto", GERMAN)
        assert (got["4002"]["method"], got["4002"]["text"]) == ("sendMessage", ENGLISH)
        messages = stored_messages(tenant, campaign_id)
        assert (messages["4001"].parse_mode, messages["4002"].parse_mode) == ("HTML", None)

    def test_held_targets_get_the_winners_translation_where_it_has_one(
        self, client, tenant, auth_headers, sender, fake_telegram, dispatcher
    ):
        account, bot_id = sender
        targets = [str(5000 + n) for n in range(12)]
        languages = dict.fromkeys(targets[:6], "de") | dict.fromkeys(targets[6:9], "fr")
        variants = [
            {"name": "A", "message": {"text": "A en", "translations": {"de": {"text": "A de"}}}},
            {
                "name": "B",
                "message": {"text": "B en", "translations": {"de": {"text": "B de"}, "fr": {"text": "B fr"}}},
            },
        ]
        campaign = create(
            client,
            auth_headers,
            {
                "name": "n",
                "targets": targets,
                "targetLanguages": languages,
                "abTest": {"variants": variants, "testPercent": 50},
                "telegramAccountId": account,
            },
        )
        send(client, auth_headers, campaign["id"])
        held = {chat: m.language for chat, m in stored_messages(tenant, campaign["id"]).items() if m.held_out}
        assert len(held) == 6 and held == {
            chat: languages.get(chat) or "en" for chat in held
        }  # what they read

        response = client.post(
            f"{CAMPAIGNS}/{campaign['id']}/winner", json={"variant": "A"}, headers=auth_headers
        )
        assert response.status_code == 200, response.json
        dispatcher.run_until_idle()

        got = {chat: sent["text"] for chat, sent in received(fake_telegram, bot_id).items()}
        expected = {"de": ("de", "A de"), "fr": ("en", "A en"), "en": ("en", "A en")}  # A has no French
        messages = stored_messages(tenant, campaign["id"])
        for chat, reads in held.items():
            assert (messages[chat].language, got[chat]) == expected[reads]
            assert messages[chat].variant == "A"
        for chat, message in messages.items():
            if not message.held_out:
                wanted = {"de": "de", "fr": "fr"}.get(languages.get(chat, "en"), "en")
                if message.variant == "A" and wanted == "fr":
                    wanted = "en"
                assert got[chat] == f"{message.variant} {wanted}"
        stats = client.get(f"{CAMPAIGNS}/{campaign['id']}/stats", headers=auth_headers).json
        assert sum(entry["sent"] for entry in stats["languages"]) == 12
