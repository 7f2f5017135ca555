"""Campaigns on the wire."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from app import validators
from app.fields import UtcDateTime
from app.pagination import PageArgs

from .models import CAMPAIGN_STATUSES, TELEGRAM_CAPTION_LIMIT, TELEGRAM_TEXT_LIMIT

CHANNEL_RE = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}", re.ASCII)
CHAT_ID_RE = re.compile(r"-?\d{1,20}", re.ASCII)
MAX_TARGETS = 10_000


class ChatTarget(fields.Field):
    """A public chat's @username or a numeric chat id (sent as a number or a string)."""

    json_schema = {
        "anyOf": [
            {"type": "string", "pattern": f"^(?:{CHANNEL_RE.pattern}|{CHAT_ID_RE.pattern})$"},
            {"type": "integer", "minimum": -(10**20) + 1, "maximum": 10**20 - 1},
        ],
        "description": "A public chat's @username or a numeric chat id",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError("Use an @username or a numeric chat id.")
        text = str(value).strip()
        if not (CHANNEL_RE.fullmatch(text) or CHAT_ID_RE.fullmatch(text)):
            raise ValidationError("Use an @username (5 to 32 characters) or a numeric chat id.")
        return text.lower()  # Telegram usernames ignore case: @Channel and @channel are one chat

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class MessageBodySchema(Schema):
    text = fields.String(
        required=True,
        validate=validate.Length(min=1, max=TELEGRAM_TEXT_LIMIT),
        metadata={"example": "TPS reports now come with a cover sheet"},
    )
    parse_mode = fields.String(
        data_key="parseMode",
        allow_none=True,
        validate=validate.OneOf(("HTML", "MarkdownV2")),
        metadata={"example": "HTML"},
    )
    media_id = fields.String(
        data_key="mediaId",
        allow_none=True,
        validate=validators.object_id,
        metadata={
            "example": "665f1c2ab4e0c9a1d2e3f403",
            "description": "A media file sent as photo (images) or document, with the text as caption",
        },
    )

    @validates_schema
    def _caption_length(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("media_id") and len(data.get("text", "")) > TELEGRAM_CAPTION_LIMIT:
            raise ValidationError(
                f"With media, the text is a caption: at most {TELEGRAM_CAPTION_LIMIT} characters.", "text"
            )


class CampaignSchema(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    message = fields.Nested(MessageBodySchema)
    targets = fields.List(fields.String())
    telegram_account_id = fields.Function(
        lambda c: str(ref) if (ref := c.reference_id("telegram_account")) else None,
        data_key="telegramAccountId",
        metadata={"type": "string", "nullable": True},
    )
    scheduled_at = UtcDateTime(data_key="scheduledAt", allow_none=True)
    status = fields.String()
    created_by = fields.String(data_key="createdBy", allow_none=True)
    send_requested_at = UtcDateTime(data_key="sendRequestedAt", allow_none=True)
    completed_at = UtcDateTime(data_key="completedAt", allow_none=True)
    created_at = UtcDateTime(data_key="createdAt")
    updated_at = UtcDateTime(data_key="updatedAt")


class _CampaignFields(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200), metadata={"example": "Spring launch"})
    description = fields.String(
        allow_none=True,
        validate=validate.Length(max=2000),
        metadata={"example": "Announce the new cover sheets"},
    )
    message = fields.Nested(MessageBodySchema)
    targets = fields.List(
        ChatTarget(),
        validate=validate.Length(min=1, max=MAX_TARGETS),
        metadata={"example": ["1001", "-1001234567890", "@initech_news"]},
    )
    telegram_account_id = fields.String(
        data_key="telegramAccountId",
        allow_none=True,
        validate=validators.object_id,
        metadata={"example": "665f1c2ab4e0c9a1d2e3f402"},
    )
    scheduled_at = UtcDateTime(
        data_key="scheduledAt", allow_none=True, metadata={"example": "2026-05-04T09:00:00Z"}
    )

    @validates("targets")
    def _unique_targets(self, value: list[str], **kwargs: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("Each chat may appear once.")


class CampaignCreateSchema(_CampaignFields):
    name = fields.String(
        required=True, validate=validate.Length(min=1, max=200), metadata={"example": "Spring launch"}
    )
    message = fields.Nested(MessageBodySchema, required=True)
    targets = fields.List(
        ChatTarget(),
        required=True,
        validate=validate.Length(min=1, max=MAX_TARGETS),
        metadata={"example": ["1001", "-1001234567890", "@initech_news"]},
    )


class CampaignPatchSchema(_CampaignFields):
    """Drafts change freely; a campaign being sent can only be cancelled (status: cancelled)."""

    status = fields.String(validate=validate.OneOf(("cancelled",)))


class CampaignListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(CAMPAIGN_STATUSES))


class MessageCountsSchema(Schema):
    queued = fields.Integer()
    sending = fields.Integer()
    sent = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()


class CampaignStatsSchema(Schema):
    campaign_id = fields.String(data_key="campaignId")
    status = fields.String()
    targets = fields.Integer()
    messages = fields.Nested(MessageCountsSchema)
    delivery_rate = fields.Float(
        data_key="deliveryRate", allow_none=True, metadata={"description": "sent / finished"}
    )
