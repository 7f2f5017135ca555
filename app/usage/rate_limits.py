"""Rate limits: `apiCallsPerHour` per tenant (read from its plan on each request), anonymous requests per
client address, and logins, single sign-ons and signups.

A tenant's budget is spent only by requests that carry a valid credential of that tenant: a request
that merely names a tenant (a hint) spends nothing of it, so that no stranger can exhaust it. Requests
without a valid credential count per client address instead (ANONYMOUS_RATE_LIMIT_PER_IP, the address
as TRUSTED_PROXIES lets the service read it), before any tenant they name is looked up.

Flask-Limiter counts in RATELIMIT_STORAGE_URI: `memory://` counts per process (development, tests),
a shared store (`mongodb://...`) counts across workers and hosts. Over a limit, the answer is
429 rate_limited with Retry-After and X-RateLimit-Limit/Remaining/Reset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, current_app, g, request
from flask_limiter import ApplicationLimit, Limiter
from limits import parse, storage

from app import metrics
from app.errors import AppError, RateLimited
from app.tenancy.access import Principal, Rule
from app.tenancy.context import current_tenant
from app.tenants.models import Tenant
from app.tenants.plans import effective_limits

API_SCOPE = "global"


def _metered_tenant() -> Tenant | None:
    """The tenant whose budget this request spends: the tenant of its credential. A hint alone spends
    nothing, nor does a platform superadmin naming a tenant."""
    tenant = current_tenant()
    principal = g.get("principal")
    if tenant is None or principal is None or principal.tenant_id != tenant.id:
        return None
    return tenant


def _tenant_key() -> str:
    tenant = _metered_tenant()
    return str(tenant.id) if tenant is not None else ""


def _hourly_limit(tenant: Tenant) -> int | None:
    return effective_limits(tenant.plan, tenant.limits)["apiCallsPerHour"]


def _tenant_limit() -> str:
    tenant = _metered_tenant()
    limit = _hourly_limit(tenant) if tenant is not None else None
    # Flask-Limiter reads the limit before asking _unmetered(); an unmetered request is exempt anyway.
    return f"{limit if limit is not None else 1}/hour"


def _unmetered() -> bool:
    """Requests without a credential of the tenant in context, and those of an unlimited plan, are not
    counted against a tenant."""
    tenant = _metered_tenant()
    return tenant is None or _hourly_limit(tenant) is None


class MemoryStorage(storage.MemoryStorage):
    """limits' in-process storage (`memory://`), with its counters read, counted and expired under one
    lock, and its expiry timer restarted under another (limits 5.8.0). Without them, two requests at
    once could both restart the timer (the second `start()` raised "threads can only be started once",
    a 500), and a count could be lost: the first count of a window sets its expiry only after counting,
    and a read in between took the counter for expired and dropped it."""

    STORAGE_SCHEME = ["memory"]  # takes the scheme over from limits' own class

    def __init__(self, *args: Any, **kwargs: Any):
        self.restarting = threading.Lock()
        self.counting = threading.RLock()
        super().__init__(*args, **kwargs)

    def get(self, key: str) -> int:
        with self.counting:
            return super().get(key)

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        with self.counting:
            return super().incr(key, expiry, amount)

    def _MemoryStorage__expire_events(self) -> None:  # the name-mangled method the timer runs
        with self.counting:
            cast(Any, super())._MemoryStorage__expire_events()

    def _MemoryStorage__schedule_expiry(self) -> None:  # the name-mangled method it replaces
        with self.restarting:
            if not self.timer.is_alive():
                self.timer = threading.Timer(0.01, cast(Any, self)._MemoryStorage__expire_events)
                self.timer.start()


def _count_refusal(_limit: Any) -> None:
    """Count a request refused past its tenant's apiCallsPerHour (the answer stays Flask-Limiter's)."""
    metrics.RATE_LIMIT_REFUSALS.labels("api").inc()


limiter = Limiter(
    key_func=_tenant_key,
    application_limits=[ApplicationLimit(_tenant_limit, scope=API_SCOPE, exempt_when=_unmetered)],
    headers_enabled=True,
    strategy="fixed-window",
    on_breach=_count_refusal,
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


def within(limit: str, namespace: str, *keys: str) -> bool:
    """Count one event of `keys` against `limit`; tell whether it stayed within it."""
    return limiter.limiter.hit(parse(limit), namespace, *keys)


def _count(limit: str, namespace: str, key: str, message: str) -> None:
    """Count one attempt of `key` against `limit`; raise 429 with Retry-After past it."""
    if within(limit, namespace, key):
        return
    metrics.RATE_LIMIT_REFUSALS.labels(namespace).inc()
    item = parse(limit)
    reset_at, _remaining = limiter.limiter.get_window_stats(item, namespace, key)
    raise RateLimited(
        message,
        headers={
            "Retry-After": str(max(1, int(reset_at - time.time()))),
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(reset_at)),
        },
    )


def check_anonymous_request(address: str | None) -> None:
    """Count a request without a valid credential per client address; raise 429 past the limit."""
    limit = current_app.config["ANONYMOUS_RATE_LIMIT_PER_IP"]
    _count(limit, "anonymous", f"ip:{address}", "Too many requests from your address; try again later")


def counting_anonymous(
    authenticate: Callable[[Rule], Principal | None],
) -> Callable[[Rule], Principal | None]:
    """Wrap the tenancy core's authenticator so that a request without a valid credential (none, or one
    that is refused) counts against ANONYMOUS_RATE_LIMIT_PER_IP for its client address."""

    def authenticate_or_count(rule: Rule) -> Principal | None:
        try:
            principal = authenticate(rule)
        except AppError:
            check_anonymous_request(request.remote_addr)
            raise
        if principal is None:
            check_anonymous_request(request.remote_addr)
        return principal

    return authenticate_or_count


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


def check_signup_attempt(address: str | None) -> None:
    """Count a signup per client address (SIGNUP_RATE_LIMIT_PER_IP); raise 429 past the limit."""
    limit = current_app.config["SIGNUP_RATE_LIMIT_PER_IP"]
    _count(limit, "signup", f"ip:{address}", "Too many signups from your address; try again later")
