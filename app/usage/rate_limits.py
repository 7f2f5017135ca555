"""Rate limits: `apiCallsPerHour` per tenant (read from its plan on each request) and login attempts.

Flask-Limiter counts in RATELIMIT_STORAGE_URI: `memory://` counts per process (development, tests),
a shared store (`mongodb://...`) counts across workers and hosts. Over the limit, the answer is
429 rate_limited with Retry-After and X-RateLimit-Limit/Remaining/Reset.
"""

from __future__ import annotations

import time

from flask import Flask, current_app, g
from flask_limiter import ApplicationLimit, Limiter
from limits import parse

from app.errors import RateLimited
from app.tenancy.context import current_tenant
from app.tenants.models import Tenant
from app.tenants.plans import effective_limits

API_SCOPE = "global"


def _tenant_key() -> str:
    tenant = current_tenant()
    return str(tenant.id) if tenant is not None else ""


def _hourly_limit(tenant: Tenant) -> int | None:
    return effective_limits(tenant.plan, tenant.limits)["apiCallsPerHour"]


def _tenant_limit() -> str:
    tenant = current_tenant()
    limit = _hourly_limit(tenant) if tenant is not None else None
    # Flask-Limiter reads the limit before asking _unmetered(); an unmetered request is exempt anyway.
    return f"{limit if limit is not None else 1}/hour"


def _unmetered() -> bool:
    """Requests without a tenant, by a platform superadmin, or of an unlimited plan are not counted."""
    tenant = current_tenant()
    if tenant is None or _hourly_limit(tenant) is None:
        return True
    principal = g.get("principal")
    return principal is not None and principal.is_superadmin


limiter = Limiter(
    key_func=_tenant_key,
    application_limits=[ApplicationLimit(_tenant_limit, scope=API_SCOPE, exempt_when=_unmetered)],
    headers_enabled=True,
    strategy="fixed-window",
)


def init_app(app: Flask) -> None:
    """Attach the limiter; call after the tenancy middleware, whose tenant it counts against."""
    limiter.init_app(app)


def api_calls_this_hour(tenant: Tenant) -> int:
    """Return how many API calls the tenant made in the current hourly window."""
    limit = _hourly_limit(tenant)
    if limit is None:
        return 0
    item = parse(f"{limit}/hour")
    _reset, remaining = limiter.limiter.get_window_stats(item, str(tenant.id), API_SCOPE)
    return limit - remaining


def _count(limit: str, namespace: str, key: str, message: str) -> None:
    """Count one attempt of `key` against `limit`; raise 429 with Retry-After past it."""
    item = parse(limit)
    if not limiter.limiter.hit(item, namespace, key):
        reset_at, _remaining = limiter.limiter.get_window_stats(item, namespace, key)
        retry_after = max(1, int(reset_at - time.time()))
        raise RateLimited(
            message,
            headers={
                "Retry-After": str(retry_after),
                "X-RateLimit-Limit": str(item.amount),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(reset_at)),
            },
        )


def check_login_attempt(address: str | None, email: str) -> None:
    """Count a login attempt per client address and per email; raise 429 past either limit."""
    config = current_app.config
    for limit, key in (
        (config["LOGIN_RATE_LIMIT_PER_IP"], f"ip:{address}"),
        (config["LOGIN_RATE_LIMIT_PER_EMAIL"], f"email:{email.strip().lower()}"),
    ):
        _count(limit, "login", key, "Too many login attempts; try again later")


def check_sso_attempt(address: str | None) -> None:
    """Count a single sign-on start or callback per client address (LOGIN_RATE_LIMIT_PER_IP): each one
    makes the service call the tenant's identity provider."""
    limit = current_app.config["LOGIN_RATE_LIMIT_PER_IP"]
    _count(limit, "sso", f"ip:{address}", "Too many single sign-on attempts; try again later")
