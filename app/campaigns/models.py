"""Campaigns: a message for a list of Telegram chats, sent through one of the tenant's bots."""

from __future__ import annotations

import mongoengine as me

from app.clock import utcnow
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.documents import TenantDocument, TenantReferenceField

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "completed", "failed", "cancelled")
EDITABLE_STATUSES = ("draft",)
SENDABLE_STATUSES = ("draft",)
TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024


class CampaignMessage(me.EmbeddedDocument):
    text = me.StringField(required=True, min_length=1, max_length=TELEGRAM_TEXT_LIMIT)
    parse_mode = me.StringField(db_field="parseMode", choices=("HTML", "MarkdownV2"))
    media_id = me.ObjectIdField(db_field="mediaId")


class Campaign(TenantDocument):
    name = me.StringField(required=True, min_length=1, max_length=200)
    description = me.StringField(max_length=2000)
    message = me.EmbeddedDocumentField(CampaignMessage, required=True)
    targets = me.ListField(me.StringField(max_length=64), required=True)
    telegram_account = TenantReferenceField(
        TelegramAccount, db_field="telegramAccountId", reverse_delete_rule=me.NULLIFY
    )
    scheduled_at = me.DateTimeField(db_field="scheduledAt")
    status = me.StringField(required=True, choices=CAMPAIGN_STATUSES, default="draft")
    created_by = me.StringField(db_field="createdBy")
    send_requested_at = me.DateTimeField(db_field="sendRequestedAt")
    completed_at = me.DateTimeField(db_field="completedAt")
    created_at = me.DateTimeField(db_field="createdAt", default=utcnow)
    updated_at = me.DateTimeField(db_field="updatedAt", default=utcnow)

    meta = {
        "collection": "campaigns",
        "indexes": [
            {"fields": ["tenant_id", "-created_at", "-id"]},
            {"fields": ["tenant_id", "status", "-created_at", "-id"]},
            # A bot's deletion unsets it in the campaigns that name it.
            {"fields": ["tenant_id", "telegram_account"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }

    def clean(self) -> None:
        self.updated_at = utcnow()
