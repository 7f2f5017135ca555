"""One message to one chat: what a campaign queues and the dispatcher sends."""

from __future__ import annotations

import mongoengine as me

from app.clock import utcnow
from app.tenancy.documents import TenantDocument

MESSAGE_STATUSES = ("queued", "sending", "sent", "failed", "cancelled")


class Message(TenantDocument):
    campaign_id = me.ObjectIdField(db_field="campaignId", required=True)
    telegram_account_id = me.ObjectIdField(db_field="telegramAccountId", required=True)
    chat = me.StringField(required=True, max_length=64)
    text = me.StringField(required=True, max_length=4096)
    parse_mode = me.StringField(db_field="parseMode", choices=("HTML", "MarkdownV2"))
    media_id = me.ObjectIdField(db_field="mediaId")
    status = me.StringField(required=True, choices=MESSAGE_STATUSES, default="queued")
    not_before = me.DateTimeField(db_field="notBefore")
    attempts = me.IntField(default=0, min_value=0)
    telegram_message_id = me.LongField(db_field="telegramMessageId")
    error = me.StringField(max_length=500)
    queued_at = me.DateTimeField(db_field="queuedAt", default=utcnow)
    sending_at = me.DateTimeField(db_field="sendingAt")
    sent_at = me.DateTimeField(db_field="sentAt")
    failed_at = me.DateTimeField(db_field="failedAt")

    meta = {
        "collection": "messages",
        "indexes": [
            {"fields": ["tenant_id", "campaign_id", "status"]},
            {"fields": ["tenant_id", "status", "queued_at"]},
            {"fields": ["tenant_id", "-queued_at"]},
        ],
    }
