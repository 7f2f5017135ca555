"""Reports and suggestions on the wire."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app import validators
from app.fields import UtcDateTime

from .figures import REASON_NAMES

INTERVALS = ("day", "hour")


class PeriodArgs(Schema):
    since = UtcDateTime(
        data_key="from",
        metadata={
            "description": "the first instant of the period (default: 30 days, or 2 days by the hour, "
            "before its end)",
            "example": "2026-11-01T00:00:00Z",
        },
    )
    until = UtcDateTime(
        metadata={
            "description": "the end of the period, excluded (default: now)",
            "example": "2026-12-01T00:00:00Z",
        }
    )
    interval = fields.String(
        load_default="day",
        validate=validate.OneOf(INTERVALS),
        metadata={"description": "the series' step: day (up to 366 days) or hour (up to 31 days)"},
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError("from must be before until", field_name="from")


class ReportArgs(PeriodArgs):
    campaign_id = fields.String(data_key="campaignId", validate=validators.object_id)
    telegram_account_id = fields.String(
        data_key="telegramAccountId",
        validate=validators.object_id,
        metadata={"description": "a bot's id; not with campaignId (a campaign is sent by one bot)"},
    )

    @validates_schema
    def _one_filter(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("campaign_id") and data.get("telegram_account_id"):
            raise ValidationError(
                "Filter by a campaign or by a bot, not both: a campaign is sent by one bot.",
                field_name="telegramAccountId",
            )


class PlatformReportArgs(PeriodArgs):
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=500),
        metadata={"description": "how many tenants to list, those with the most messages first"},
    )


class LatencySchema(Schema):
    count = fields.Integer(metadata={"description": "sent messages measured", "example": 120})
    average_seconds = fields.Float(
        data_key="averageSeconds",
        allow_none=True,
        metadata={"description": "from queued to accepted by Telegram", "example": 4.25},
    )
    max_seconds = fields.Float(data_key="maxSeconds", allow_none=True, metadata={"example": 61.5})


class FiguresSchema(Schema):
    messages = fields.Integer(metadata={"example": 130})
    sent = fields.Integer(metadata={"example": 120})
    failed = fields.Integer(metadata={"example": 8})
    cancelled = fields.Integer(metadata={"example": 0})
    pending = fields.Integer(
        metadata={"description": "held for an A/B test's winner, queued or being sent", "example": 2}
    )
    delivery_rate = fields.Float(
        data_key="deliveryRate",
        allow_none=True,
        metadata={"description": "sent / (sent + failed)", "example": 0.9375},
    )
    latency = fields.Nested(LatencySchema)
    failures = fields.Dict(
        keys=fields.String(validate=validate.OneOf(REASON_NAMES)),
        values=fields.Integer(),
        metadata={
            "description": "failed messages by reason (only reasons that occurred): "
            + ", ".join(REASON_NAMES),
            "example": {"bot_blocked": 5, "chat_not_found": 3},
        },
    )


class BucketSchema(FiguresSchema):
    start = UtcDateTime(
        metadata={"description": "the day's or hour's first instant, in the report's timezone"}
    )


class CampaignFiguresSchema(FiguresSchema):
    campaign_id = fields.String(data_key="campaignId", metadata={"example": "65a1b2c3d4e5f60718293a4b"})
    name = fields.String(allow_none=True, metadata={"example": "Spring launch"})


class BotFiguresSchema(FiguresSchema):
    telegram_account_id = fields.String(
        data_key="telegramAccountId", metadata={"example": "65a1b2c3d4e5f60718293a4c"}
    )
    name = fields.String(allow_none=True, metadata={"example": "News bot"})


class PeriodFiguresSchema(Schema):
    """A period's figures: the totals and the series per day or hour."""

    since = UtcDateTime(data_key="from")
    until = UtcDateTime()
    interval = fields.String(metadata={"example": "day"})
    timezone = fields.String(metadata={"example": "Europe/Berlin"})
    totals = fields.Nested(FiguresSchema)
    series = fields.List(fields.Nested(BucketSchema))


class ReportSchema(PeriodFiguresSchema):
    campaign_id = fields.String(data_key="campaignId", allow_none=True)
    telegram_account_id = fields.String(data_key="telegramAccountId", allow_none=True)
    campaigns = fields.List(fields.Nested(CampaignFiguresSchema))
    bots = fields.List(fields.Nested(BotFiguresSchema))


class TenantFiguresSchema(FiguresSchema):
    tenant_id = fields.String(data_key="tenantId", metadata={"example": "65a1b2c3d4e5f60718293a4d"})
    slug = fields.String(allow_none=True, metadata={"example": "acme"})
    name = fields.String(allow_none=True, metadata={"example": "Acme Corp"})
    plan = fields.String(allow_none=True, metadata={"example": "professional"})


class PlatformReportSchema(PeriodFiguresSchema):
    tenant_count = fields.Integer(
        data_key="tenantCount", metadata={"description": "tenants with messages in the period", "example": 12}
    )
    tenants = fields.List(fields.Nested(TenantFiguresSchema))


class HourFiguresSchema(Schema):
    hour = fields.Integer(metadata={"description": "0 to 23, in the tenant's timezone", "example": 9})
    messages = fields.Integer(metadata={"description": "sent or failed", "example": 240})
    sent = fields.Integer(metadata={"example": 236})
    failed = fields.Integer(metadata={"example": 4})
    delivery_rate = fields.Float(data_key="deliveryRate", allow_none=True, metadata={"example": 0.9833})
    average_latency_seconds = fields.Float(
        data_key="averageLatencySeconds", allow_none=True, metadata={"example": 2.5}
    )


class OverallSchema(Schema):
    delivery_rate = fields.Float(data_key="deliveryRate", allow_none=True, metadata={"example": 0.95})
    average_latency_seconds = fields.Float(
        data_key="averageLatencySeconds", allow_none=True, metadata={"example": 6.1}
    )


class BestHoursSchema(Schema):
    timezone = fields.String(metadata={"example": "Europe/Berlin"})
    hours_compared = fields.Integer(data_key="hoursCompared", metadata={"example": 9})
    min_messages_per_hour = fields.Integer(data_key="minMessagesPerHour", metadata={"example": 20})
    best = fields.List(fields.Nested(HourFiguresSchema))
    overall = fields.Nested(OverallSchema)


class FailingTargetSchema(Schema):
    chat = fields.String(metadata={"example": "1001"})
    failures = fields.Integer(metadata={"example": 3})
    reasons = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"example": {"bot_blocked": 3}}
    )
    last_failed_at = UtcDateTime(data_key="lastFailedAt")


class FailingTargetsSchema(Schema):
    threshold = fields.Integer(metadata={"example": 2})
    count = fields.Integer(
        metadata={"description": "chats to prune (the list shows at most 50)", "example": 1}
    )
    targets = fields.List(fields.Nested(FailingTargetSchema))


class QuotaSchema(Schema):
    period = fields.String(metadata={"example": "2026-12"})
    used = fields.Integer(metadata={"example": 8200})
    limit = fields.Integer(metadata={"example": 10000})
    percent = fields.Float(metadata={"example": 82.0})
    projected = fields.Integer(metadata={"description": "the month's total at this pace", "example": 12700})
    resets_at = UtcDateTime(data_key="resetsAt")


class DraftSchema(Schema):
    campaign_id = fields.String(data_key="campaignId", metadata={"example": "65a1b2c3d4e5f60718293a4b"})
    name = fields.String(allow_none=True, metadata={"example": "Spring launch"})
    targets = fields.Integer(metadata={"example": 2500})


class DraftsOverQuotaSchema(Schema):
    period = fields.String(metadata={"example": "2026-12"})
    left = fields.Integer(metadata={"description": "messages this month has left", "example": 1800})
    campaigns = fields.List(fields.Nested(DraftSchema))


FIGURES_OF_KIND: dict[str, type[Schema]] = {
    "best_send_hours": BestHoursSchema,
    "prune_failing_targets": FailingTargetsSchema,
    "monthly_quota_near": QuotaSchema,
    "drafts_over_quota": DraftsOverQuotaSchema,
}


class SuggestionSchema(Schema):
    kind = fields.String(
        validate=validate.OneOf(tuple(FIGURES_OF_KIND)), metadata={"example": "prune_failing_targets"}
    )
    message = fields.String(
        metadata={"example": "1 chats failed 2 times or more (blocked, not found, deactivated or no rights)"}
    )
    figures = fields.Method(
        "_figures",
        metadata={
            "type": "object",
            "description": "the figures behind the suggestion; by kind: best_send_hours: timezone, "
            "hoursCompared, minMessagesPerHour, best (hour, messages, sent, failed, deliveryRate, "
            "averageLatencySeconds), overall; prune_failing_targets: threshold, count, targets (chat, "
            "failures, reasons, lastFailedAt); monthly_quota_near: period, used, limit, percent, "
            "projected, resetsAt; drafts_over_quota: period, left, campaigns (campaignId, name, targets)",
            "example": {"threshold": 2, "count": 1, "targets": [{"chat": "1001", "failures": 3}]},
        },
    )

    def _figures(self, suggestion: dict[str, Any]) -> dict[str, Any]:
        return FIGURES_OF_KIND[suggestion["kind"]]().dump(suggestion["figures"])


class SuggestionListSchema(Schema):
    since = UtcDateTime(data_key="from")
    until = UtcDateTime()
    items = fields.List(fields.Nested(SuggestionSchema))
