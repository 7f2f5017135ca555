"""Delivery figures of messages, computed by aggregation pipelines and folded per group.

Each pipeline groups the matched messages by a key (a day, an hour, a campaign, a bot, a tenant)
and, within it, by status and failure reason, with the sum and maximum of the delivery
latency of the sent ones. What comes back is a few rows per key (at most one per status and reason),
which `fold` turns into figures: the messages are never read one by one here.

Only stages and operators that MongoDB 7.0 and the embedded store both know: `$group`,
`$switch`, `$regexMatch`, `$subtract` of two dates (milliseconds), and the date parts with a
timezone (`$year`, `$month`, `$dayOfMonth`, `$hour`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from app.messages.models import UNFINISHED as PENDING_STATUSES

# Telegram's descriptions, and the dispatcher's own errors, grouped into a bounded set of reasons.
# The first pattern that matches names the reason (the dispatcher's prefixes come first: their text
# goes on with Telegram's description); anything else is `other`.
FAILURE_REASONS: tuple[tuple[str, str], ...] = (
    ("outcome_unknown", "^" + re.escape("delivery outcome unknown")),
    ("gave_up", "^gave up after "),
    ("bot_unavailable", "^" + re.escape("the campaign's bot was removed or deactivated")),
    ("media_deleted", "^" + re.escape("the campaign's media file was deleted")),
    ("server_refused", "^" + re.escape("the bot's Bot API server is refused")),
    ("bot_blocked", "bot was blocked by the user"),
    ("chat_not_found", "chat not found"),
    ("user_deactivated", "user is deactivated"),
    (
        "no_rights",
        "bot was kicked|bot is not a member|not enough rights|need administrator rights"
        "|have no rights|can't initiate conversation|CHAT_WRITE_FORBIDDEN",
    ),
    ("bad_request", "^Bad Request"),
    ("forbidden", "^Forbidden"),
)
OTHER_REASON = "other"
REASON_NAMES = (*(name for name, _ in FAILURE_REASONS), OTHER_REASON)
# The reasons that say the chat itself will not take the bot's messages: sending again fails again.
DEAD_CHAT_REASONS = ("bot_blocked", "chat_not_found", "user_deactivated", "no_rights")


REASON_EXPRESSION: dict[str, Any] = {
    "$switch": {
        "branches": [
            {"case": {"$ne": ["$status", "failed"]}, "then": None},
            *(
                {
                    "case": {"$regexMatch": {"input": {"$ifNull": ["$error", ""]}, "regex": pattern}},
                    "then": name,
                }
                for name, pattern in FAILURE_REASONS
            ),
        ],
        "default": OTHER_REASON,
    }
}
LATENCY_MS: dict[str, Any] = {
    "$cond": [{"$eq": ["$status", "sent"]}, {"$subtract": ["$sentAt", "$queuedAt"]}, None]
}


def local_parts(timezone: str, hourly: bool) -> dict[str, Any]:
    """The group key of a message's day (or hour) in `timezone`, from when it was queued."""
    at = {"date": "$queuedAt", "timezone": timezone}
    parts = {"y": {"$year": at}, "m": {"$month": at}, "d": {"$dayOfMonth": at}}
    if hourly:
        parts["h"] = {"$hour": at}
    return parts


def grouped_by(key: Any) -> list[dict[str, Any]]:
    """The stages that group the messages grouped by `key`, status and failure reason, with their latency."""
    return [
        {
            "$group": {
                "_id": {"k": key, "s": "$status", "r": REASON_EXPRESSION},
                "n": {"$sum": 1},
                "latencyMs": {"$sum": LATENCY_MS},
                "maxLatencyMs": {"$max": LATENCY_MS},
            }
        }
    ]


@dataclass
class Figures:
    """What happened to a set of messages."""

    messages: int = 0
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    pending: int = 0
    latency_ms: int = 0
    max_latency_ms: int | None = None
    failures: dict[str, int] = field(default_factory=dict)

    def add_row(self, row: dict[str, Any]) -> None:
        """Count one row of a grouping (one status, and reason, of one key)."""
        status, n = row["_id"]["s"], row["n"]
        self.messages += n
        if status == "sent":
            self.sent += n
            self.latency_ms += int(row.get("latencyMs") or 0)
            self._max(row.get("maxLatencyMs"))
        elif status == "failed":
            self.failed += n
            reason = row["_id"]["r"] or OTHER_REASON
            self.failures[reason] = self.failures.get(reason, 0) + n
        elif status == "cancelled":
            self.cancelled += n
        elif status in PENDING_STATUSES:
            self.pending += n

    def add(self, other: Figures) -> None:
        """Add another set's figures to these."""
        self.messages += other.messages
        self.sent += other.sent
        self.failed += other.failed
        self.cancelled += other.cancelled
        self.pending += other.pending
        self.latency_ms += other.latency_ms
        self._max(other.max_latency_ms)
        for reason, n in other.failures.items():
            self.failures[reason] = self.failures.get(reason, 0) + n

    def _max(self, value: Any) -> None:
        if value is not None and (self.max_latency_ms is None or value > self.max_latency_ms):
            self.max_latency_ms = int(value)

    @property
    def delivery_rate(self) -> float | None:
        """Sent among the messages that are done being tried (sent or failed)."""
        finished = self.sent + self.failed
        return round(self.sent / finished, 4) if finished else None

    @property
    def average_latency(self) -> float | None:
        return round(self.latency_ms / self.sent / 1000, 3) if self.sent else None

    def as_dict(self) -> dict[str, Any]:
        """The figures as the API shows them (failure reasons in their fixed order, nonzero only)."""
        return {
            "messages": self.messages,
            "sent": self.sent,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "pending": self.pending,
            "delivery_rate": self.delivery_rate,
            "latency": {
                "count": self.sent,
                "average_seconds": self.average_latency,
                "max_seconds": None if self.max_latency_ms is None else round(self.max_latency_ms / 1000, 3),
            },
            "failures": {name: self.failures[name] for name in REASON_NAMES if self.failures.get(name)},
        }


def key_of(key: Any) -> Any:
    """A group key as a dictionary key (date parts, in any order, become a sorted tuple)."""
    return tuple(sorted(key.items())) if isinstance(key, dict) else key


def fold(rows: list[dict[str, Any]]) -> dict[Any, Figures]:
    """Turn a grouping's rows into figures per key."""
    found: dict[Any, Figures] = {}
    for row in rows:
        found.setdefault(key_of(row["_id"]["k"]), Figures()).add_row(row)
    return found


def compute(messages: Any, groupings: dict[str, Any]) -> dict[str, dict[Any, Figures]]:
    """Group `messages` (a Message query set: its filter is the first $match) by each key of
    `groupings`, one pipeline per key, and return each one's figures per key. One pipeline per key
    rather than one $facet: a $facet answers in a single document (16 MB), which a tenant with tens
    of thousands of campaigns in a period would fill."""
    return {name: fold(list(messages.aggregate(grouped_by(key)))) for name, key in groupings.items()}
