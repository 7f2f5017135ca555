"""One policy of security headers for every answer: the API's JSON, its errors, the API docs, the
dashboard's pages, static files, health checks.

Every answer: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`
and `Cross-Origin-Opener-Policy: same-origin`. The pages the service renders (the dashboard's, the API
docs) get a Content-Security-Policy without inline code or styles: every script and stylesheet is a
file served by the service. Every other answer, an uploaded HTML file included, gets
`default-src 'none'`: opened in a browser, it runs and loads nothing. API answers are
`Cache-Control: no-store` (they hold tokens, accounts and tenant data) unless the view set a policy of
its own, and in production an answer over HTTPS carries HSTS (with TRUSTED_PROXIES, the proxy's
X-Forwarded-Proto says whether the client used HTTPS). A header a view set itself is kept.

A small after_request hook rather than flask-talisman: talisman's last release is 1.1.0 of August 2023,
and the policy is a handful of headers.
"""

from __future__ import annotations

from flask import Flask, Response, request

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
NOTHING_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000"  # a year; no includeSubDomains: a tenant's own domain has subdomains not ours
# The endpoints that render HTML pages: the dashboard's blueprint, and flask-smorest's Swagger UI page.
PAGE_ENDPOINTS = ("dashboard.", "api-docs.openapi_swagger_ui")
EVERY_ANSWER = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    """Add the security headers to every answer."""
    production = app.config["APP_ENV"] == "production"

    @app.after_request
    def secure_headers(response: Response) -> Response:
        headers = response.headers
        # The names the view set, read once (werkzeug looks each name up by a scan of the headers).
        present = {name.lower() for name, _value in headers.items()}
        page = (request.endpoint or "").startswith(PAGE_ENDPOINTS) and response.mimetype == "text/html"
        added = [*EVERY_ANSWER.items(), ("Content-Security-Policy", PAGE_CSP if page else NOTHING_CSP)]
        if request.path.startswith("/api/"):
            added.append(("Cache-Control", "no-store"))
        if production and request.is_secure:
            added.append(("Strict-Transport-Security", HSTS))
        headers.extend([(name, value) for name, value in added if name.lower() not in present])
        return response
