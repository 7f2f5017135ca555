"""Rate limits: `apiCallsPerHour` per tenant (read from its plan on each request), anonymous requests per
client address, and logins, single sign-ons and signups.

A tenant's budget is spent only by requests that carry a valid credential of that tenant: a request
that merely names a tenant (a hint) spends nothing of it, so that no stranger can exhaust it. Requests
without a valid credential count per client address instead (ANONYMOUS_RATE_LIMIT_PER_IP, the address
as TRUSTED_PROXIES lets the service read it), before any tenant they name is looked up.

The windows are counted by app.rate_windows (the `limits` library, in RATELIMIT_STORAGE_URI). A metered
request's answer carries X-RateLimit-Limit/Remaining/Reset; over a limit, the answer is 429
rate_limited with Retry-After as well.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItemPerHour, parse

from app import metrics, rate_windows
from app.errors import AppError, RateLimited
from app.rate_windows import limiter, window_headers, within
from app.tenancy.access import Principal, Rule
from app.tenancy.context import current_tenant
from app.tenants.models import Tenant
from app.tenants.plans import effective_limits

API = "api"
# Where a counted request keeps its limit and key for the headers of its answer (this request's only).
METERED = "app.rate_limits.metered"


def _metered_tenant() -> Tenant | None:
    """The tenant whose budget this request spends: the tenant of its credential. A hint alone spends
    nothing, nor does a platform superadmin naming a tenant."""
    tenant = current_tenant()
    principal = g.get("principal")
    if tenant is None or principal is None or principal.tenant_id != tenant.id:
        return None
    return tenant


def _hourly_limit(tenant: Tenant) -> int | None:
    return effective_limits(tenant.plan, tenant.limits)["apiCallsPerHour"]


def init_app(app: Flask) -> None:
    """Count every request against its tenant's apiCallsPerHour; call after the tenancy middleware,
    whose tenant it counts against."""
    rate_windows.init_app(app)
    app.before_request(_meter)
    app.after_request(_metered_headers)


def _meter() -> None:
    """Count the request against its tenant's apiCallsPerHour (requests without a credential of the
    tenant in context, and those of an unlimited plan, are not counted); 429 past it."""
    tenant = _metered_tenant()
    limit = _hourly_limit(tenant) if tenant is not None else None
    if tenant is None or limit is None:
        return
    item, key = RateLimitItemPerHour(limit), str(tenant.id)
    request.environ[METERED] = item, key
    if not limiter().hit(item, API, key):
        metrics.RATE_LIMIT_REFUSALS.labels(API).inc()
        raise RateLimited(
            f"Too many requests: this tenant's plan allows {limit} API calls per hour",
            headers=window_headers(item, API, key, refused=True),
        )


def _metered_headers(response: Response) -> Response:
    """The rate-limit headers of a counted request (a refusal has them already)."""
    metered = request.environ.get(METERED)
    if metered is not None and "X-RateLimit-Limit" not in response.headers:
        response.headers.update(window_headers(metered[0], API, metered[1]))
    return response


def api_calls_this_hour(tenant: Tenant) -> int:
    """Return how many API calls the tenant made in the current hourly window."""
    limit = _hourly_limit(tenant)
    if limit is None:
        return 0
    _reset, remaining = limiter().get_window_stats(RateLimitItemPerHour(limit), API, str(tenant.id))
    return limit - remaining


def _count(limit: str, namespace: str, key: str, message: str) -> None:
    """Count one attempt of `key` against `limit`; raise 429 with Retry-After past it."""
    if within(limit, namespace, key):
        return
    metrics.RATE_LIMIT_REFUSALS.labels(namespace).inc()
    raise RateLimited(message, headers=window_headers(parse(limit), namespace, key, refused=True))


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
