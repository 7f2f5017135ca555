"""Messages on the wire."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app import validators
from app.fields import UtcDateTime
from app.pagination import PageArgs

from .models import MESSAGE_STATUSES


class MessageSchema(Schema):
    id = fields.String()
    campaign_id = fields.String(data_key="campaignId")
    telegram_account_id = fields.String(data_key="telegramAccountId")
    chat = fields.String()
    text = fields.String(
        allow_none=True, metadata={"description": "Null while held for an A/B test's winner"}
    )
    status = fields.String()
    variant = fields.String(allow_none=True, metadata={"description": "The A/B test variant sent"})
    language = fields.String(
        allow_none=True,
        metadata={"description": "The language of what was sent (held: the language the chat reads)"},
    )
    held_out = fields.Boolean(
        data_key="heldOut",
        allow_none=True,
        metadata={"description": "Held out of the A/B test for its winner"},
    )
    attempts = fields.Integer()
    telegram_message_id = fields.Integer(data_key="telegramMessageId", allow_none=True)
    error = fields.String(allow_none=True)
    not_before = UtcDateTime(data_key="notBefore", allow_none=True)
    queued_at = UtcDateTime(data_key="queuedAt")
    sent_at = UtcDateTime(data_key="sentAt", allow_none=True)
    failed_at = UtcDateTime(data_key="failedAt", allow_none=True)


class MessageListArgs(PageArgs):
    campaign_id = fields.String(data_key="campaignId", validate=validators.object_id)
    status = fields.String(validate=validate.OneOf(MESSAGE_STATUSES))
