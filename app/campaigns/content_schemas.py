"""What a campaign sends, on the wire: message bodies and their translations, A/B tests and their
winner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from app import validators
from app.fields import UtcDateTime

from .models import (
    MAX_TRANSLATIONS,
    MAX_VARIANTS,
    MAX_WINNER_MINUTES,
    MIN_VARIANTS,
    TELEGRAM_CAPTION_LIMIT,
    TELEGRAM_TEXT_LIMIT,
    VARIANT_NAME_LIMIT,
    WINNER_METRICS,
)


def at_most(limit: int, what: str) -> Callable[[Mapping[str, Any]], None]:
    """A validator of an object's number of entries, published as maxProperties."""

    @validators.publishes({"maxProperties": limit})
    def check(value: Mapping[str, Any]) -> None:
        if len(value) > limit:
            raise ValidationError(f"At most {limit} {what}.")

    return check


class _BodySchema(Schema):
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


class TranslationSchema(_BodySchema):
    """The message in one more language: a whole body (a media file or parse mode left out is none)."""


class MessageBodySchema(_BodySchema):
    translations = fields.Dict(
        keys=fields.String(validate=validators.language_tag),
        values=fields.Nested(TranslationSchema),
        validate=at_most(MAX_TRANSLATIONS, "translations"),
        metadata={
            "description": "Language tag -> the message in that language (plan feature multiLanguage). "
            "A chat whose language has none gets the message itself, in the tenant's general.language.",
            "example": {"de": {"text": "TPS-Berichte kommen jetzt mit Deckblatt"}},
        },
    )


class VariantSchema(Schema):
    name = fields.String(
        required=True,
        validate=(validate.Length(min=1, max=VARIANT_NAME_LIMIT), validators.not_blank),
        metadata={"example": "A"},
    )
    message = fields.Nested(MessageBodySchema, required=True)


class WinnerRuleSchema(Schema):
    metric = fields.String(
        required=True,
        validate=validate.OneOf(WINNER_METRICS),
        metadata={"description": "deliveryRate: the variant with the most sent of its finished messages"},
    )
    after_minutes = fields.Integer(
        data_key="afterMinutes",
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=MAX_WINNER_MINUTES),
        metadata={"example": 120, "description": "Minutes after the send starts"},
    )


VARIANTS_EXAMPLE = [
    {"name": "A", "message": {"text": "TPS reports now come with a cover sheet"}},
    {"name": "B", "message": {"text": "Cover sheets for every TPS report, from today"}},
]


class ABTestSchema(Schema):
    """An A/B test (plan feature abTesting): each variant goes to its share of the test targets."""

    variants = fields.List(
        fields.Nested(VariantSchema),
        required=True,
        validate=validate.Length(min=MIN_VARIANTS, max=MAX_VARIANTS),
        metadata={"example": VARIANTS_EXAMPLE},
    )
    test_percent = fields.Integer(
        data_key="testPercent",
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=100),
        metadata={
            "example": 20,
            "description": "The share of the targets in the test; the others wait for the winner "
            "(100: every target is in the test, and there is no winner to choose)",
        },
    )
    winner_rule = fields.Nested(
        WinnerRuleSchema,
        data_key="winnerRule",
        allow_none=True,
        load_default=None,
        metadata={"description": "How the winner is chosen; null: the owner or an admin picks it"},
    )

    @validates("variants")
    def _unique_names(self, value: list[dict[str, Any]], **kwargs: Any) -> None:
        # Variants that failed their own checks may come without a name.
        names = [variant["name"] for variant in value if "name" in variant]
        if len(set(names)) != len(names):
            raise ValidationError("Give each variant a name of its own.")

    @validates_schema
    def _rule_needs_a_holdout(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("winner_rule") and data.get("test_percent") == 100:
            raise ValidationError(
                "With testPercent 100 every target is in the test: there is no winner to choose.",
                "winnerRule",
            )


class CampaignABTestSchema(ABTestSchema):
    """A campaign's A/B test, with its winner once chosen."""

    winner = fields.String(allow_none=True, metadata={"example": "B"})
    winner_chosen_at = UtcDateTime(data_key="winnerChosenAt", allow_none=True)


class WinnerChoiceSchema(Schema):
    # Checked by the service, after the campaign was found (a missing one is 422 there).
    variant = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=VARIANT_NAME_LIMIT),
        metadata={"example": "B", "description": "The name of the winning variant (required)"},
    )
