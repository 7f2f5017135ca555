"""What each target of a campaign gets when it is sent: its language's message, and with an A/B test
its variant, or a place among the targets held out until the winner is chosen.

The split is deterministic: the targets are ranked by a hash of the campaign's id and the target, the
first testPercent of them are the test (at least one; with testPercent below 100, never all of two or
more), dealt to the variants in turn, so each variant gets an equal share (within one) and a target
always gets the same variant of the same campaign.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId

from app.messages.models import Message

from .models import ABTest, Campaign, MessageBody


def _rank(campaign_id: ObjectId, target: str) -> bytes:
    return hashlib.sha256(f"{campaign_id}:{target}".encode()).digest()


def count_tested(targets: int, test_percent: int) -> int:
    """How many of `targets` are in the test: testPercent of them, rounded down, at least one."""
    if test_percent >= 100:
        return targets
    return max(1, targets * test_percent // 100)


def split(campaign_id: ObjectId, targets: Sequence[str], ab_test: ABTest) -> dict[str, str | None]:
    """Target -> the name of the variant it gets in the test, or None when it is held out."""
    ranked = sorted(targets, key=lambda target: _rank(campaign_id, target))
    tested = count_tested(len(ranked), ab_test.test_percent)
    names = [variant.name for variant in ab_test.variants]
    return {target: names[i % len(names)] if i < tested else None for i, target in enumerate(ranked)}


def given(body: MessageBody) -> dict[str, Any]:
    """The fields of a message that say what it sends."""
    return {"text": body.text, "parse_mode": body.parse_mode, "media_id": body.media_id}


def messages_of(campaign: Campaign, account_id: ObjectId, due: datetime, fallback: str) -> list[Message]:
    """One message per target of `campaign`, to be sent by bot `account_id` from `due` on; `fallback`
    is the tenant's language, the language of the campaign's messages themselves."""
    languages = campaign.target_languages or {}
    variants = split(campaign.id, campaign.targets, campaign.ab_test) if campaign.ab_test else {}
    messages = []
    for position, chat in enumerate(campaign.targets):
        reads = languages.get(chat, fallback)
        common = {
            "campaign_id": campaign.id,
            "telegram_account_id": account_id,
            "chat": chat,
            "position": position,
            "not_before": due,
        }
        if campaign.ab_test is None:
            body, language = campaign.message.in_language(reads, fallback)
            messages.append(Message(**common, **given(body), language=language))
            continue
        name = variants[chat]
        if name is None:
            messages.append(Message(**common, status="held", held_out=True, language=reads))
            continue
        variant = campaign.ab_test.variant(name)
        assert variant is not None, "split() deals the campaign's own variants"
        body, language = variant.message.in_language(reads, fallback)
        messages.append(Message(**common, **given(body), variant=name, language=language))
    return messages
