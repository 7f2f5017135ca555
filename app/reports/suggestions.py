"""Suggestions (plan feature aiSuggestions), drawn from the tenant's own delivery history by aggregation:
no external service. Each has a stable kind, a sentence, and the figures behind it.

- `best_send_hours`: the hours of the day (the tenant's timezone) whose messages went out best, by
  delivery rate, then latency, among the hours with enough messages to compare.
- `prune_failing_targets`: chats that failed repeatedly for a reason that says the chat will not take
  the bot's messages (blocked, not found, deactivated, no rights), with no delivery since.
- `monthly_quota_near`: the month's messages at 80% of `messagesPerMonth` or more, or heading past it.
- `drafts_over_quota`: draft campaigns with more targets than the month has messages left.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app import clock
from app.campaigns.models import Campaign
from app.messages.models import Message
from app.tenancy.context import current_tenant
from app.tenants.models import Tenant
from app.tenants.plans import period_bounds, period_of
from app.tenants.service import require_feature
from app.usage import service as usage

from .figures import DEAD_CHAT_REASONS, REASON_EXPRESSION, Figures, compute

LOOKBACK = timedelta(days=30)
MIN_PER_HOUR = 20  # messages sent or failed in an hour of the day before it is compared with others
BEST_HOURS = 3
PRUNE_AFTER = 2  # failures of a chat, for a reason of DEAD_CHAT_REASONS, with no delivery since
LISTED = 50  # chats or campaigns a suggestion lists at most
QUOTA_NEAR = 80.0  # percent of messagesPerMonth
# The share of the month that must have passed before its pace says where it ends (one campaign on
# its first day would otherwise project a month of campaigns).
PROJECT_AFTER = 0.1


def suggest() -> dict[str, Any]:
    """Return the tenant's suggestions from the last 30 days of its deliveries and this month's quota."""
    tenant = current_tenant()
    require_feature(tenant, "aiSuggestions")
    until = clock.utcnow()
    since = until - LOOKBACK
    items = [
        *_best_hours(tenant, since, until),
        *_failing_targets(since, until),
        *_quota(tenant, until),
    ]
    return {"since": since, "until": until, "items": items}


def _finished(since: datetime, until: datetime) -> Any:
    """The messages queued in the period that were sent or failed."""
    return Message.objects(status__in=("sent", "failed"), queued_at__gte=since, queued_at__lt=until)


def _hour_figures(hour: int, figures: Figures) -> dict[str, Any]:
    return {
        "hour": hour,
        "messages": figures.sent + figures.failed,
        "sent": figures.sent,
        "failed": figures.failed,
        "delivery_rate": figures.delivery_rate,
        "average_latency_seconds": figures.average_latency,
    }


def _best_hours(tenant: Tenant, since: datetime, until: datetime) -> list[dict[str, Any]]:
    timezone = tenant.settings.general.timezone
    # The hour a message went out (a scheduled campaign's are queued hours before).
    went_out = {"$ifNull": ["$sentAt", "$failedAt"]}
    hour_of_day = {"$hour": {"date": went_out, "timezone": timezone}}
    by_hour = compute(_finished(since, until), {"hours": hour_of_day})
    hours = {hour: f for hour, f in by_hour["hours"].items() if f.sent + f.failed >= MIN_PER_HOUR}
    if len(hours) < 2:
        return []
    ranked = sorted(
        hours.items(), key=lambda item: (-(item[1].delivery_rate or 0), item[1].average_latency or 0, item[0])
    )
    overall = Figures()
    for figures in hours.values():
        overall.add(figures)
    best = [_hour_figures(hour, figures) for hour, figures in ranked[:BEST_HOURS]]
    listed = ", ".join(f"{row['hour']:02d}:00" for row in best)
    return [
        {
            "kind": "best_send_hours",
            "message": f"Send at {listed} ({timezone}): the hours whose messages were delivered best.",
            "figures": {
                "timezone": timezone,
                "hours_compared": len(hours),
                "min_messages_per_hour": MIN_PER_HOUR,
                "best": best,
                "overall": {
                    "delivery_rate": overall.delivery_rate,
                    "average_latency_seconds": overall.average_latency,
                },
            },
        }
    ]


def _failing_targets(since: datetime, until: datetime) -> list[dict[str, Any]]:
    dead = {"$in": ["$_id.r", list(DEAD_CHAT_REASONS)]}
    pipeline = [
        {
            "$group": {
                "_id": {"c": "$chat", "r": REASON_EXPRESSION},
                "n": {"$sum": 1},
                "at": {"$max": {"$ifNull": ["$sentAt", "$failedAt"]}},
            }
        },
        {
            "$group": {
                "_id": "$_id.c",
                "failures": {"$sum": {"$cond": [dead, "$n", 0]}},
                "lastFailedAt": {"$max": {"$cond": [dead, "$at", None]}},
                "lastSentAt": {"$max": {"$cond": [{"$eq": ["$_id.r", None]}, "$at", None]}},
                "reasons": {"$push": {"reason": "$_id.r", "n": "$n"}},
            }
        },
        {"$match": {"failures": {"$gte": PRUNE_AFTER}}},
        {"$addFields": {"recovered": {"$gt": ["$lastSentAt", "$lastFailedAt"]}}},
        {"$match": {"recovered": False}},
        {
            "$facet": {
                "targets": [{"$sort": {"failures": -1, "_id": 1}}, {"$limit": LISTED}],
                "count": [{"$count": "n"}],
            }
        },
    ]
    result: dict[str, Any] = next(iter(_finished(since, until).aggregate(pipeline)), {})
    count = result["count"][0]["n"] if result.get("count") else 0
    if not count:
        return []
    targets = [
        {
            "chat": row["_id"],
            "failures": row["failures"],
            "reasons": {r["reason"]: r["n"] for r in row["reasons"] if r["reason"] in DEAD_CHAT_REASONS},
            "last_failed_at": row["lastFailedAt"],
        }
        for row in result["targets"]
    ]
    return [
        {
            "kind": "prune_failing_targets",
            "message": (
                f"{count} {'chat' if count == 1 else 'chats'} failed {PRUNE_AFTER} times or more (blocked, "
                "not found, deactivated or no rights) with no delivery since: remove them from your "
                "campaigns' targets."
            ),
            "figures": {"threshold": PRUNE_AFTER, "count": count, "targets": targets},
        }
    ]


def _quota(tenant: Tenant, now: datetime) -> list[dict[str, Any]]:
    limit = usage.limit_of(tenant, "messagesPerMonth")
    if limit is None:
        return []
    period = period_of(now)
    start, end = period_bounds(period)
    used = usage.used(tenant, "messagesPerMonth", period)
    percent = usage.percent_of(used, limit) or 0.0
    elapsed = (now - start) / (end - start)
    projected = round(used / elapsed) if elapsed > 0 else used
    found = []
    if percent >= QUOTA_NEAR or (elapsed >= PROJECT_AFTER and projected > limit):
        found.append(
            {
                "kind": "monthly_quota_near",
                "message": (
                    f"{used} of this month's {limit} messages are used ({percent}%); at this pace the "
                    f"month ends near {projected}. The count starts again on {end:%Y-%m-%d}."
                ),
                "figures": {
                    "period": period,
                    "used": used,
                    "limit": limit,
                    "percent": percent,
                    "projected": projected,
                    "resets_at": end,
                },
            }
        )
    left = max(limit - used, 0)
    sizes = [
        {"$project": {"name": 1, "targets": {"$size": "$targets"}}},
        {"$match": {"targets": {"$gt": left}}},
    ]
    drafts = sorted(
        Campaign.objects(status="draft").aggregate(sizes), key=lambda row: (-row["targets"], str(row["_id"]))
    )
    if drafts:
        these = "draft campaign has" if len(drafts) == 1 else "draft campaigns have"
        found.append(
            {
                "kind": "drafts_over_quota",
                "message": (
                    f"{len(drafts)} {these} more targets than the {left} messages this month has left: "
                    "a send is refused until the count starts again."
                ),
                "figures": {
                    "period": period,
                    "left": left,
                    "campaigns": [
                        {"campaign_id": str(row["_id"]), "name": row.get("name"), "targets": row["targets"]}
                        for row in drafts[:LISTED]
                    ],
                },
            }
        )
    return found
