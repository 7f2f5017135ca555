"""One message to one chat: what a campaign queues and the dispatcher sends."""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.documents import TenantDocument

MESSAGE_STATUSES = ("held", "queued", "sending", "sent", "failed", "cancelled")
# Messages whose campaign is not done with them. "held": the target waits for its A/B test's winner
# (the dispatcher claims only "queued").
UNFINISHED = ("held", "queued", "sending")
# The dispatcher sends a bot's messages as one lane, "bot:<telegram account id>" (app.leases).
LANE = "bot"


class Message(TenantDocument):
    campaign_id = me.ObjectIdField(db_field="campaignId", required=True)
    telegram_account_id = me.ObjectIdField(db_field="telegramAccountId", required=True)
    chat = me.StringField(required=True, max_length=64)
    text = me.StringField(max_length=4096)  # None while held: the winner's text is not known yet
    parse_mode = me.StringField(db_field="parseMode", choices=("HTML", "MarkdownV2"))
    media_id = me.ObjectIdField(db_field="mediaId")
    status = me.StringField(required=True, choices=MESSAGE_STATUSES, default="queued")
    # The A/B test variant sent (the winner, for a target held out of the test), and the language of
    # what was sent (for a held target: the language it reads, until the winner's message is chosen).
    variant = me.StringField(max_length=32)
    language = me.StringField(max_length=16)
    held_out = me.BooleanField(db_field="heldOut")  # True: held out of the A/B test, not part of it
    # The target's place in its campaign: a bot's messages are sent in this order, so its campaigns
    # take turns (the first target of each, then the second...).
    position = me.IntField(default=0, min_value=0)
    not_before = me.DateTimeField(db_field="notBefore", required=True, default=clock.utcnow)
    attempts = me.IntField(default=0, min_value=0)
    telegram_message_id = me.LongField(db_field="telegramMessageId")
    error = me.StringField(max_length=500)
    queued_at = me.DateTimeField(db_field="queuedAt", default=clock.utcnow)
    sending_at = me.DateTimeField(db_field="sendingAt")
    claimed_by = me.StringField(db_field="claimedBy")  # the dispatcher that sends (or sent) it
    sent_at = me.DateTimeField(db_field="sentAt")
    failed_at = me.DateTimeField(db_field="failedAt")

    meta = {
        "collection": "messages",
        "indexes": [
            {"fields": ["tenant_id", "campaign_id", "status", "-queued_at", "-id"]},
            {"fields": ["tenant_id", "campaign_id", "-queued_at", "-id"]},
            # A winner's message given to the held targets, one language at a time: only held
            # messages are in this index.
            {
                "fields": ["tenant_id", "campaign_id", "status", "language"],
                "partialFilterExpression": {"status": "held"},
            },
            # A bot's claims (due messages in order) and its next due or stale message.
            {"fields": ["tenant_id", "telegram_account_id", "status", "position", "not_before"]},
            {"fields": ["tenant_id", "telegram_account_id", "status", "not_before"]},
            # A bot's messages left sending by a dispatcher that died.
            {"fields": ["tenant_id", "telegram_account_id", "status", "sending_at"]},
            # A bot's delivery report over a period.
            {"fields": ["tenant_id", "telegram_account_id", "queued_at"]},
            {"fields": ["tenant_id", "status", "queued_at", "id"]},
            {"fields": ["tenant_id", "-queued_at", "-id"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }
