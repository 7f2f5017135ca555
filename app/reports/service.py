"""Delivery reports (plan feature customReports): the tenant's, its CSV, and the platform's across tenants.

A message counts in the day and hour it was queued (its campaign's send), in the tenant's timezone;
the period filters on that time too, and its latency is from then until Telegram accepted it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app import clock
from app.audit.service import record_platform
from app.campaigns.models import Campaign
from app.errors import ValidationFailed
from app.messages.models import Message
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.context import current_tenant, unscoped
from app.tenants.models import Tenant
from app.tenants.service import require_feature

from .figures import REASON_NAMES, Figures, compute, key_of, local_parts

PLATFORM_REASON = "reports: a superadmin's delivery figures across tenants"
# A period left open ends now and starts this long before its end.
DEFAULT_SPAN = {"day": timedelta(days=30), "hour": timedelta(days=2)}
# The longest period a report covers, per interval (366 days, or 744 hours).
MAX_SPAN = {"day": timedelta(days=366), "hour": timedelta(days=31)}
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
OUTSIDE = "Give a date-time between 0001-01-02 and 9999-12-30."


def period(since: datetime | None, until: datetime | None, interval: str) -> tuple[datetime, datetime]:
    """Fill the open ends of a report's period; refuse (422) one that is empty or too long, or that
    reaches a day of the calendar's ends (its days in any timezone must exist)."""
    until = until or clock.utcnow()
    if not EARLIEST < until <= LATEST:
        raise ValidationFailed(details={"until": [OUTSIDE]})
    if since is None:
        span = DEFAULT_SPAN[interval]
        since = until - span if until - EARLIEST > span else EARLIEST
    if since < EARLIEST:
        raise ValidationFailed(details={"from": [OUTSIDE]})
    if since >= until:
        raise ValidationFailed(details={"from": ["from must be before until"]})
    if until - since > MAX_SPAN[interval]:
        days = MAX_SPAN[interval].days
        raise ValidationFailed(
            details={"from": [f"A report by the {interval} covers at most {days} days: shorten the period."]}
        )
    return since, until


def _buckets(since: datetime, until: datetime, timezone: str, hourly: bool) -> list[tuple[Any, datetime]]:
    """Every day (or hour) of the period in `timezone`: its group key and its first instant. Hours
    step in UTC (a local hour repeated by a change of offset is one key); days by the calendar."""
    zone = ZoneInfo(timezone)
    local = since.astimezone(zone)
    found: dict[Any, datetime] = {}
    if hourly:
        moment = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        while moment < until:
            at = moment.astimezone(zone)
            found.setdefault(key_of({"y": at.year, "m": at.month, "d": at.day, "h": at.hour}), at)
            moment += timedelta(hours=1)
    else:
        day = local.date()
        while (start := datetime.combine(day, time(), zone)) < until:
            found[key_of({"y": day.year, "m": day.month, "d": day.day})] = start
            day += timedelta(days=1)
    return list(found.items())


def _series(figures: dict[Any, Figures], buckets: list[tuple[Any, datetime]]) -> list[dict[str, Any]]:
    return [{"start": start, **figures.get(key, Figures()).as_dict()} for key, start in buckets]


def _named(document: Any, figures: dict[Any, Figures], id_field: str) -> list[dict[str, Any]]:
    """Figures per id, most messages first, with the name of each (None once it is deleted)."""
    ids = [key for key in figures if key is not None]
    names = {row["_id"]: row.get("name") for row in document.objects(id__in=ids).only("name").as_pymongo()}
    ordered = sorted(figures.items(), key=lambda item: (-item[1].messages, str(item[0])))
    return [
        {id_field: str(key), "name": names.get(key), **found.as_dict()}
        for key, found in ordered
        if key is not None
    ]


def delivery_report(
    since: datetime | None,
    until: datetime | None,
    interval: str,
    campaign_id: str | None = None,
    telegram_account_id: str | None = None,
) -> dict[str, Any]:
    """Return the tenant's delivery figures of a period (by default the last 30 days, or 2 by the
    hour): totals, per day or hour, per campaign and per bot, each with failure reasons and latency."""
    tenant = current_tenant()
    require_feature(tenant, "customReports")
    since, until = period(since, until, interval)
    timezone = tenant.settings.general.timezone
    hourly = interval == "hour"
    filters: dict[str, Any] = {"queued_at__gte": since, "queued_at__lt": until}
    if campaign_id is not None:
        filters["campaign_id"] = campaign_id
    if telegram_account_id is not None:
        filters["telegram_account_id"] = telegram_account_id
    groupings = {
        "series": local_parts(timezone, hourly),
        "campaigns": "$campaignId",
        "bots": "$telegramAccountId",
    }
    found = compute(Message.objects(**filters), groupings)
    totals = Figures()
    for figures in found["campaigns"].values():
        totals.add(figures)
    return {
        "since": since,
        "until": until,
        "interval": interval,
        "timezone": timezone,
        "campaign_id": campaign_id,
        "telegram_account_id": telegram_account_id,
        "totals": totals.as_dict(),
        "series": _series(found["series"], _buckets(since, until, timezone, hourly)),
        "campaigns": _named(Campaign, found["campaigns"], "campaign_id"),
        "bots": _named(TelegramAccount, found["bots"], "telegram_account_id"),
    }


CSV_FIGURES = (
    "messages",
    "sent",
    "failed",
    "cancelled",
    "pending",
    "deliveryRate",
    "latencyCount",
    "latencyAverageSeconds",
    "latencyMaxSeconds",
)


def _csv_row(scope: str, key: str, name: str | None, figures: dict[str, Any]) -> list[Any]:
    latency = figures["latency"]
    values = [
        figures["messages"],
        figures["sent"],
        figures["failed"],
        figures["cancelled"],
        figures["pending"],
        figures["delivery_rate"],
        latency["count"],
        latency["average_seconds"],
        latency["max_seconds"],
    ]
    failures = [figures["failures"].get(reason, 0) for reason in REASON_NAMES]
    return [scope, key, name or "", *("" if value is None else value for value in values), *failures]


def report_csv(report: dict[str, Any]) -> tuple[str, Iterator[str]]:
    """Return a report as a CSV download: its file name and its lines (the totals, every day or hour,
    every campaign, every bot; one column per failure reason)."""
    rows = [["scope", "key", "name", *CSV_FIGURES, *(f"failed:{reason}" for reason in REASON_NAMES)]]
    rows.append(_csv_row("total", "", None, report["totals"]))
    rows += [_csv_row(report["interval"], row["start"].isoformat(), None, row) for row in report["series"]]
    rows += [_csv_row("campaign", row["campaign_id"], row["name"], row) for row in report["campaigns"]]
    rows += [_csv_row("bot", row["telegram_account_id"], row["name"], row) for row in report["bots"]]
    filename = f"delivery-report-{report['since']:%Y%m%dT%H%M}-{report['until']:%Y%m%dT%H%M}.csv"

    def lines() -> Iterator[str]:
        for row in rows:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\r\n").writerow(row)
            yield buffer.getvalue()

    return filename, lines()


def platform_report(
    since: datetime | None, until: datetime | None, interval: str, limit: int
) -> dict[str, Any]:
    """Return the delivery figures of a period across tenants (UTC): totals, per day or hour, and per
    tenant (the `limit` with the most messages). Read unscoped and recorded in the platform trail."""
    since, until = period(since, until, interval)
    hourly = interval == "hour"
    # Every tenant, read in the order of the createdAt index, which serves the read.
    tenants = {
        row["_id"]: row
        for row in Tenant.objects.order_by("-created_at", "-id").only("slug", "name", "plan").as_pymongo()
    }
    with unscoped(reason=PLATFORM_REASON):
        found = compute(
            Message.objects(tenant_id__in=list(tenants), queued_at__gte=since, queued_at__lt=until),
            {"series": local_parts("UTC", hourly), "tenants": "$tenantId"},
        )
    totals = Figures()
    for figures in found["tenants"].values():
        totals.add(figures)
    ordered = sorted(found["tenants"].items(), key=lambda item: (-item[1].messages, str(item[0])))
    record_platform(
        "reports.viewed",
        target_type="report",
        target_id="delivery",
        summary={"since": since.isoformat(), "until": until.isoformat(), "interval": interval},
    )
    return {
        "since": since,
        "until": until,
        "interval": interval,
        "timezone": "UTC",
        "totals": totals.as_dict(),
        "series": _series(found["series"], _buckets(since, until, "UTC", hourly)),
        "tenant_count": len(ordered),
        "tenants": [
            {
                "tenant_id": str(key),
                "slug": tenants[key].get("slug"),
                "name": tenants[key].get("name"),
                "plan": tenants[key].get("plan"),
                **figures.as_dict(),
            }
            for key, figures in ordered[:limit]
        ],
    }
