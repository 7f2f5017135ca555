"""Cross-origin requests to the API (flask-cors), from the origins CORS_ORIGINS lists.

Clients authenticate with a header (Authorization or X-API-Key), never a cookie, so no credentials
mode is offered. A preflight (OPTIONS with Access-Control-Request-Method) to a route of the service is
answered here, before the tenancy hooks: it carries no credential, names no tenant, spends no rate
limit and leaves no audit entry. Its answer has CORS headers only when its Origin is listed.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors import CORS

# What clients send besides the simple headers: credentials, the tenant hint, tracing.
ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "X-API-Key",
    "X-Request-Id",
    "X-Tenant-Id",
    "traceparent",
    "tracestate",
]
# What clients read from answers: the request id, rate limits, impersonation, a download's file name.
EXPOSED_HEADERS = [
    "Content-Disposition",
    "Retry-After",
    "X-Impersonating",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Request-Id",
]
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight's answer


def init_app(app: Flask) -> None:
    """Answer preflights and add CORS headers to the API's answers; call before the tenancy hooks.
    Without origins to allow (the default), no answer has CORS headers, and flask-cors, which would
    add none, is not installed."""
    if app.config["CORS_ORIGINS"]:
        CORS(
            app,
            resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}},
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            supports_credentials=False,
            max_age=PREFLIGHT_MAX_AGE,
            vary_header=True,
        )

    @app.before_request
    def answer_preflight() -> Response | None:
        if (
            request.method == "OPTIONS"
            and request.endpoint is not None
            and "Access-Control-Request-Method" in request.headers
        ):
            return app.make_default_options_response()
        return None
