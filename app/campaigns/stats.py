"""A campaign's figures: its messages counted by status, per A/B test variant, for the targets held out
of the test, and per language; one aggregation, served by the messages' campaign index."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from app.messages.models import MESSAGE_STATUSES, Message
from app.tenancy.context import current_tenant
from app.tenants.service import require_feature

from .models import Campaign
from .service import get_campaign

Tally = dict[str, Any]  # a count of a campaign's messages of one status, variant, language, held out or not


def tallies(campaign_id: ObjectId) -> list[Tally]:
    """Count the campaign's messages by status, variant, language and whether they were held out."""
    keys = {"status": "$status", "variant": "$variant", "language": "$language", "heldOut": "$heldOut"}
    pipeline = [{"$group": {"_id": keys, "n": {"$sum": 1}}}]
    return [
        {**row["_id"], "n": row["n"]} for row in Message.objects(campaign_id=campaign_id).aggregate(pipeline)
    ]


def _counts(rows: list[Tally]) -> dict[str, int]:
    counts = dict.fromkeys(MESSAGE_STATUSES, 0)
    for row in rows:
        counts[row["status"]] += row["n"]
    return counts


def group_stats(rows: list[Tally]) -> dict[str, Any]:
    """The figures of a group of messages: how many, waiting, sent, failed, cancelled, delivery rate."""
    counts = _counts(rows)
    finished = counts["sent"] + counts["failed"]
    return {
        "targets": sum(counts.values()),
        "held": counts["held"],
        "queued": counts["held"] + counts["queued"] + counts["sending"],
        "sent": counts["sent"],
        "failed": counts["failed"],
        "cancelled": counts["cancelled"],
        "delivery_rate": round(counts["sent"] / finished, 4) if finished else None,
    }


def variant_stats(campaign: Campaign, rows: list[Tally]) -> list[dict[str, Any]]:
    """Each variant's figures over its test targets (the held-out targets given the winner apart)."""
    tested = [row for row in rows if not row.get("heldOut")]
    return [
        {"name": variant.name, **group_stats([row for row in tested if row.get("variant") == variant.name])}
        for variant in campaign.ab_test.variants
    ]


def campaign_stats(campaign_id: ObjectId) -> dict[str, Any]:
    """Count the campaign's messages by status (the plan's basicAnalytics feature); per variant and
    for the held-out targets with an A/B test, per language with several."""
    require_feature(current_tenant(), "basicAnalytics")
    campaign = get_campaign(campaign_id)
    rows = tallies(campaign.id)
    stats = {
        "campaign_id": str(campaign.id),
        "status": campaign.status,
        "targets": len(campaign.targets),
        "messages": _counts(rows),
        "delivery_rate": group_stats(rows)["delivery_rate"],
    }
    if campaign.ab_test is not None:
        stats["variants"] = variant_stats(campaign, rows)
        stats["holdout"] = group_stats([row for row in rows if row.get("heldOut")])
    if campaign.uses_languages:
        languages = sorted({row["language"] for row in rows if row.get("language")})
        stats["languages"] = [
            {"language": language, **group_stats([row for row in rows if row.get("language") == language])}
            for language in languages
        ]
    return stats
