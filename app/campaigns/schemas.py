"""Campaigns on the wire."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from app import validators
from app.fields import UtcDateTime
from app.pagination import PageArgs
from app.wire import ReferenceId

from .content_schemas import (
    VARIANTS_EXAMPLE,
    ABTestSchema,
    CampaignABTestSchema,
    MessageBodySchema,
    at_most,
)
from .models import CAMPAIGN_STATUSES

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


class TargetLanguages(fields.Dict):
    """Target -> language tag; targets spelled as in `targets` and normalised the same way."""

    def __init__(self, **kwargs: Any):
        super().__init__(
            keys=ChatTarget(),
            values=fields.String(validate=validators.language_tag),
            allow_none=True,
            validate=at_most(MAX_TARGETS, "targets"),
            metadata={
                "description": "Target -> the language it reads (plan feature multiLanguage); every "
                "other target reads the tenant's general.language",
                "example": {"@initech_news": "de"},
            },
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        languages = super()._deserialize(value, attr, data, **kwargs)
        if len(languages) < len(value):  # two spellings of one chat
            raise ValidationError("Each chat may appear once.")
        return languages


class CampaignSchema(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    message = fields.Nested(
        MessageBodySchema,
        allow_none=True,
        metadata={"description": "With an A/B test: null until the winner is chosen, then the winner's"},
    )
    targets = fields.List(fields.String())
    target_languages = fields.Dict(keys=fields.String(), values=fields.String(), data_key="targetLanguages")
    ab_test = fields.Nested(CampaignABTestSchema, data_key="abTest", allow_none=True)
    telegram_account_id = ReferenceId(attribute="telegram_account", data_key="telegramAccountId")
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
    target_languages = TargetLanguages(data_key="targetLanguages")
    ab_test = fields.Nested(
        ABTestSchema,
        data_key="abTest",
        allow_none=True,
        metadata={
            "description": "An A/B test of 2 to 5 variants (plan feature abTesting); null: none",
            "example": {
                "variants": VARIANTS_EXAMPLE,
                "testPercent": 20,
                "winnerRule": {"metric": "deliveryRate", "afterMinutes": 120},
            },
        },
    )

    @validates("targets")
    def _unique_targets(self, value: list[str], **kwargs: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("Each chat may appear once.")


class CampaignCreateSchema(_CampaignFields):
    name = fields.String(
        required=True, validate=validate.Length(min=1, max=200), metadata={"example": "Spring launch"}
    )
    message = fields.Nested(
        MessageBodySchema,
        metadata={"description": "Required, unless abTest gives the variants' messages"},
    )
    targets = fields.List(
        ChatTarget(),
        required=True,
        validate=validate.Length(min=1, max=MAX_TARGETS),
        metadata={"example": ["1001", "-1001234567890", "@initech_news"]},
    )

    @validates_schema
    def _message_or_variants(self, data: dict[str, Any], partial: Any = False, **kwargs: Any) -> None:
        if partial is True or (partial and "message" in partial):
            return
        if "message" not in data and not data.get("ab_test"):
            raise ValidationError("Missing data for required field.", "message")


class CampaignPatchSchema(_CampaignFields):
    """Drafts change freely; a campaign being sent can only be cancelled (status: cancelled)."""

    status = fields.String(validate=validate.OneOf(("cancelled",)))


class CampaignListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(CAMPAIGN_STATUSES))


class MessageCountsSchema(Schema):
    held = fields.Integer(metadata={"description": "Waiting for the A/B test's winner"})
    queued = fields.Integer()
    sending = fields.Integer()
    sent = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()


class _GroupStatsSchema(Schema):
    targets = fields.Integer(metadata={"description": "Messages of the group"})
    queued = fields.Integer(metadata={"description": "Waiting or being sent"})
    sent = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()
    delivery_rate = fields.Float(
        data_key="deliveryRate", allow_none=True, metadata={"description": "sent / finished"}
    )


class VariantStatsSchema(_GroupStatsSchema):
    name = fields.String(metadata={"example": "A"})


class HoldoutStatsSchema(_GroupStatsSchema):
    held = fields.Integer(metadata={"description": "Waiting for the winner"})


class LanguageStatsSchema(_GroupStatsSchema):
    language = fields.String(
        metadata={"example": "de", "description": "Of what was sent (what a held target reads)"}
    )


class CampaignStatsSchema(Schema):
    campaign_id = fields.String(data_key="campaignId")
    status = fields.String()
    targets = fields.Integer()
    messages = fields.Nested(MessageCountsSchema)
    delivery_rate = fields.Float(
        data_key="deliveryRate", allow_none=True, metadata={"description": "sent / finished"}
    )
    variants = fields.List(
        fields.Nested(VariantStatsSchema),
        metadata={"description": "With an A/B test: each variant's test targets (the held-out ones apart)"},
    )
    holdout = fields.Nested(
        HoldoutStatsSchema,
        metadata={"description": "With an A/B test: the targets held out of it, given the winner"},
    )
    languages = fields.List(
        fields.Nested(LanguageStatsSchema),
        metadata={"description": "With several languages: the messages per language"},
    )
