"""The plan catalog (GET /api/v1/plans), the effective limits and features of a tenant, and the
monthly periods its monthly limits count in.

Every feature flag switches behaviour on or off (tests/test_plan_features.py holds each to a request it
gates); `support` and `sla` are service levels, catalog text that no code reads. A limit of None means
unlimited. A tenant's own overrides (`tenant.limits`, `tenant.features`) win over
its plan's values; an override of None makes that limit unlimited for the tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MB = 1024 * 1024
GB = 1024 * MB

LIMIT_NAMES = (
    "users",
    "campaigns",
    "messagesPerMonth",
    "telegramAccounts",
    "storage",
    "apiCallsPerHour",
    "webhooks",
)
FEATURE_NAMES = (
    "basicAnalytics",
    "automation",
    "apiAccess",
    "abTesting",
    "customReports",
    "multiLanguage",
    "customIntegrations",
    "sso",
    "whiteLabel",
    "aiSuggestions",
    "paidBroadcasts",
)


def _features(*enabled: str) -> dict[str, bool]:
    return {name: name in enabled for name in FEATURE_NAMES}


_STARTER = ("basicAnalytics", "automation", "apiAccess")
_PROFESSIONAL = (*_STARTER, "abTesting", "customReports", "multiLanguage", "customIntegrations", "sso")
# paidBroadcasts: bots may use Telegram's paid broadcasts (up to 1,000 messages a second, for a fee
# Telegram charges the bot's owner in Stars).
_ENTERPRISE = (*_PROFESSIONAL, "whiteLabel", "aiSuggestions", "paidBroadcasts")

PLANS: dict[str, dict[str, Any]] = {
    "free": {
        "name": "Free",
        "price": {"amount": 0, "currency": "USD", "interval": "month"},
        "support": "community",
        "sla": None,
        "limits": {
            "users": 5,
            "campaigns": 10,
            "messagesPerMonth": 1_000,
            "telegramAccounts": 1,
            "storage": 100 * MB,
            "apiCallsPerHour": 1_000,
            "webhooks": 0,
        },
        "features": _features("basicAnalytics"),
    },
    "starter": {
        "name": "Starter",
        "price": {"amount": 29, "currency": "USD", "interval": "month"},
        "support": "email",
        "sla": None,
        "limits": {
            "users": 20,
            "campaigns": 50,
            "messagesPerMonth": 10_000,
            "telegramAccounts": 3,
            "storage": 1 * GB,
            "apiCallsPerHour": 5_000,
            "webhooks": 5,
        },
        "features": _features(*_STARTER),
    },
    "professional": {
        "name": "Professional",
        "price": {"amount": 99, "currency": "USD", "interval": "month"},
        "support": "priority",
        "sla": None,
        "limits": {
            "users": 100,
            "campaigns": 200,
            "messagesPerMonth": 50_000,
            "telegramAccounts": 10,
            "storage": 10 * GB,
            "apiCallsPerHour": 20_000,
            "webhooks": 20,
        },
        "features": _features(*_PROFESSIONAL),
    },
    "enterprise": {
        "name": "Enterprise",
        "price": None,
        "support": "dedicated",
        "sla": "uptime and response times agreed in the contract",
        "limits": dict.fromkeys(LIMIT_NAMES),
        "features": _features(*_ENTERPRISE),
    },
}
PLAN_NAMES = tuple(PLANS)
DEFAULT_PLAN = "free"
# What a signup may choose; enterprise (unlimited, priced per tenant) is set by a superadmin only.
SELF_SERVICE_PLANS = ("free", "starter", "professional")
SELF_SERVICE_ONLY = "Choose one of {choices}: other plans are set up by the platform, not signed up for."


def has_trial(plan: str) -> bool:
    """Tell whether a signup for `plan` starts as a trial: a self-service plan with a price."""
    return plan in SELF_SERVICE_PLANS and bool(PLANS[plan]["price"]["amount"])


def effective_limits(plan: str, overrides: dict[str, Any] | None) -> dict[str, int | None]:
    """Return every limit of `plan` with the tenant's overrides applied (None is unlimited)."""
    limits = dict(PLANS[plan]["limits"])
    for name, value in (overrides or {}).items():
        if name in limits:
            limits[name] = value
    return limits


def effective_features(plan: str, overrides: dict[str, Any] | None) -> dict[str, bool]:
    """Return every feature flag of `plan` with the tenant's overrides applied."""
    features = dict(PLANS[plan]["features"])
    for name, value in (overrides or {}).items():
        if name in features:
            features[name] = bool(value)
    return features


def period_of(moment: datetime) -> str:
    """Return the monthly period ("2026-11") a moment falls in (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """Return the first instant of a period and the first instant of the next one."""
    year, month = (int(part) for part in period.split("-"))
    return datetime(year, month, 1, tzinfo=UTC), _month_after(year, month)


def bounds_of(moment: datetime) -> tuple[datetime, datetime]:
    """Return the bounds of the period a moment falls in (period_bounds(period_of(moment)), without
    writing the period out)."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC), _month_after(moment.year, moment.month)


def _month_after(year: int, month: int) -> datetime:
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
