"""Campaigns: a message for a list of Telegram chats, sent through one of the tenant's bots."""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.documents import TenantDocument, TenantReferenceField

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "completed", "failed", "cancelled")
EDITABLE_STATUSES = ("draft",)
SENDABLE_STATUSES = ("draft",)
TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024
# A message's translations besides its own text (in the tenant's general.language): 21 languages per
# message, and a campaign of MAX_TARGETS, each given a language, with five variants in every language
# at their longest stays below half of MongoDB's 16 MiB (tests/test_document_sizes.py).
MAX_TRANSLATIONS = 20
MIN_VARIANTS, MAX_VARIANTS = 2, 5
VARIANT_NAME_LIMIT = 32
WINNER_METRICS = ("deliveryRate",)
MAX_WINNER_MINUTES = 7 * 24 * 60


class MessageBody(me.EmbeddedDocument):
    """What a chat gets: a text, or a media file with the text as its caption."""

    meta = {"abstract": True}

    text = me.StringField(required=True, min_length=1, max_length=TELEGRAM_TEXT_LIMIT)
    parse_mode = me.StringField(db_field="parseMode", choices=("HTML", "MarkdownV2"))
    media_id = me.ObjectIdField(db_field="mediaId")


class Translation(MessageBody):
    """The message in one more language: a whole body of its own (its media and parse mode too)."""


class CampaignMessage(MessageBody):
    # Language tag -> the message in that language; the body itself is in the tenant's language.
    translations = me.MapField(me.EmbeddedDocumentField(Translation))

    def in_language(self, language: str, fallback: str) -> tuple[MessageBody, str]:
        """The body to send to a chat that reads `language`, and the language it is in: the
        translation when there is one, else this body, in the tenant's language `fallback`."""
        translation = (self.translations or {}).get(language)
        return (translation, language) if translation is not None else (self, fallback)


class Variant(me.EmbeddedDocument):
    name = me.StringField(required=True, min_length=1, max_length=VARIANT_NAME_LIMIT)
    message = me.EmbeddedDocumentField(CampaignMessage, required=True)


class WinnerRule(me.EmbeddedDocument):
    metric = me.StringField(required=True, choices=WINNER_METRICS)
    after_minutes = me.IntField(
        db_field="afterMinutes", required=True, min_value=1, max_value=MAX_WINNER_MINUTES
    )


class ABTest(me.EmbeddedDocument):
    """Variants of the message, each sent to its part of the test share of the targets; the others
    wait (held) until a winner is chosen, and then get the winner's message."""

    variants = me.EmbeddedDocumentListField(Variant, required=True)
    test_percent = me.IntField(db_field="testPercent", required=True, min_value=1, max_value=100)
    winner_rule = me.EmbeddedDocumentField(WinnerRule, db_field="winnerRule")
    winner = me.StringField(max_length=VARIANT_NAME_LIMIT)
    winner_chosen_at = me.DateTimeField(db_field="winnerChosenAt")
    # When the ab-test-winners job next looks at the campaign: when its winner rule applies, or, once
    # a winner is chosen, until the held targets were given the winner's message (a choice that
    # stopped halfway is finished by the job).
    winner_due_at = me.DateTimeField(db_field="winnerDueAt")

    @property
    def holds_out(self) -> bool:
        """Whether part of the targets waits for a winner (testPercent below 100)."""
        return self.test_percent < 100

    def variant(self, name: str) -> Variant | None:
        return next((variant for variant in self.variants if variant.name == name), None)


class Campaign(TenantDocument):
    name = me.StringField(required=True, min_length=1, max_length=200)
    description = me.StringField(max_length=2000)
    # Without an A/B test, what every target gets; with one, the winner's message once chosen.
    message = me.EmbeddedDocumentField(CampaignMessage)
    targets = me.ListField(me.StringField(max_length=64), required=True)
    # Target -> the language it reads (else the tenant's general.language).
    target_languages = me.MapField(me.StringField(max_length=16), db_field="targetLanguages")
    ab_test = me.EmbeddedDocumentField(ABTest, db_field="abTest")
    telegram_account = TenantReferenceField(
        TelegramAccount, db_field="telegramAccountId", reverse_delete_rule=me.NULLIFY
    )
    scheduled_at = me.DateTimeField(db_field="scheduledAt")
    status = me.StringField(required=True, choices=CAMPAIGN_STATUSES, default="draft")
    created_by = me.StringField(db_field="createdBy")
    send_requested_at = me.DateTimeField(db_field="sendRequestedAt")
    completed_at = me.DateTimeField(db_field="completedAt")
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)
    updated_at = me.DateTimeField(db_field="updatedAt", default=clock.utcnow)

    meta = {
        "collection": "campaigns",
        "indexes": [
            {"fields": ["tenant_id", "-created_at", "-id"]},
            {"fields": ["tenant_id", "status", "-created_at", "-id"]},
            # A bot's deletion unsets it in the campaigns that name it.
            {"fields": ["tenant_id", "telegram_account"]},
            # The ab-test-winners job: campaigns whose winner rule applies, or whose choice is unfinished.
            {"fields": ["tenant_id", "ab_test.winner_due_at"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }

    def clean(self) -> None:
        self.updated_at = clock.utcnow()

    @property
    def uses_languages(self) -> bool:
        """Whether the campaign speaks more than the tenant's language (the plan's multiLanguage)."""
        variants = self.ab_test.variants if self.ab_test else []
        messages = [self.message, *(variant.message for variant in variants)]
        return bool(self.target_languages) or any(message and message.translations for message in messages)
