"""Documents stay far below MongoDB's 16 MiB limit whatever the API lets a tenant put in them.

The embedded store has no size limit; a server refuses a document over 16 MiB (BSON), so a campaign
whose target list the API accepts must fit, with room to spare, at the longest of every field.
"""

from __future__ import annotations

from datetime import UTC, datetime

import bson
from bson import ObjectId

from app.campaigns.models import (
    MAX_TRANSLATIONS,
    MAX_VARIANTS,
    ABTest,
    Campaign,
    CampaignMessage,
    Translation,
    Variant,
    WinnerRule,
)
from app.campaigns.schemas import MAX_TARGETS, CampaignCreateSchema

BSON_LIMIT = 16 * 1024 * 1024
# A character of four bytes in UTF-8: the longest a character of a string field can be.
WIDE = "\U0001f4e3"


def _longest(field, prefix: str = "") -> str:
    """The longest value of a string field, in four-byte characters after an ASCII prefix."""
    return prefix + WIDE * (field.max_length - len(prefix))


def _worst_message() -> CampaignMessage:
    """A message at its longest, in its most languages, each with media."""
    text = _longest(CampaignMessage._fields["text"])
    languages = [f"x{n:02d}-Abcd-419" for n in range(MAX_TRANSLATIONS)]  # the longest tag's shape
    return CampaignMessage(
        text=text,
        parse_mode="MarkdownV2",
        media_id=ObjectId(),
        translations={
            language: Translation(text=text, parse_mode="MarkdownV2", media_id=ObjectId())
            for language in languages
        },
    )


def _worst_campaign() -> Campaign:
    fields = Campaign._fields
    target_field = fields["targets"].field
    targets = [_longest(target_field, prefix=f"@{n}") for n in range(MAX_TARGETS)]
    now = datetime(9999, 12, 31, tzinfo=UTC)
    return Campaign(
        tenant_id=ObjectId(),
        name=_longest(fields["name"]),
        description=_longest(fields["description"]),
        message=_worst_message(),
        targets=targets,
        target_languages=dict.fromkeys(targets, "abc-Abcd-419"),
        ab_test=ABTest(
            variants=[
                Variant(name=_longest(Variant._fields["name"], prefix=str(n)), message=_worst_message())
                for n in range(MAX_VARIANTS)
            ],
            test_percent=99,
            winner_rule=WinnerRule(metric="deliveryRate", after_minutes=10080),
            winner=_longest(Variant._fields["name"], prefix="0"),
            winner_chosen_at=now,
            winner_due_at=now,
        ),
        telegram_account=ObjectId(),
        scheduled_at=now,
        status="cancelled",
        created_by=str(ObjectId()),
        send_requested_at=now,
        completed_at=now,
        created_at=now,
        updated_at=now,
    )


def test_the_api_takes_up_to_max_targets_and_no_more():
    body = {"name": "n", "message": {"text": "t"}}
    targets = [f"@chat{n:06d}" for n in range(MAX_TARGETS + 1)]
    schema = CampaignCreateSchema()
    assert not schema.validate({**body, "targets": targets[:MAX_TARGETS]})
    assert "targets" in schema.validate({**body, "targets": targets})


def test_a_campaign_at_every_limit_fits_in_half_of_a_document():
    campaign = _worst_campaign()
    assert len(campaign.targets) == MAX_TARGETS
    assert all(len(target) == Campaign._fields["targets"].field.max_length for target in campaign.targets)
    size = len(bson.encode(campaign.to_mongo()))
    assert size < BSON_LIMIT // 2, f"{size} bytes"
