"""The one error envelope of the API, and the handlers that put every error source into it.

`{"error": {"code": "...", "message": "...", "details": {...}}}`. Services raise AppError subclasses;
werkzeug, webargs/marshmallow (through flask-smorest) and Flask's own 500 are mapped here. There is no
handler for bare Exception: an unexpected error becomes Flask's InternalServerError, whose handler
logs it and answers without its text.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from mongoengine.errors import SaveConditionError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

log = logging.getLogger("app.errors")


class AppError(Exception):
    """An error the client should see, with its HTTP status and machine-readable code."""

    status = 400
    code = "bad_request"
    message = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.details = details
        self.headers = headers or {}


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status, code, message = 401, "unauthorized", "Authentication required"


class InvalidCredentials(AppError):
    status, code, message = 401, "invalid_credentials", "The email or password is not correct"


class TokenExpired(AppError):
    status, code, message = 401, "token_expired", "The token has expired"


class TokenRevoked(AppError):
    status, code, message = 401, "token_revoked", "The token has been revoked"


class Forbidden(AppError):
    status, code, message = 403, "forbidden", "You are not allowed to do this"


class NotFound(AppError):
    status, code, message = 404, "not_found", "Not found"


def found(document: Any, what: str) -> Any:
    """Return `document`, or raise 404 for a `what` that does not exist (or is another tenant's)."""
    if document is None:
        raise NotFound(f"No such {what}")
    return document


class Conflict(AppError):
    status, code, message = 409, "conflict", "Conflict"


class ValidationFailed(AppError):
    status, code, message = 422, "validation_error", "The request is not valid"


class TenantNotFound(AppError):
    status, code, message = 404, "tenant_not_found", "Tenant not found"


class TenantMismatch(AppError):
    status, code, message = 403, "tenant_mismatch", "The credential belongs to another tenant"


class TenantSuspended(AppError):
    status, code, message = 403, "tenant_suspended", "This tenant is suspended"


class TenantRequired(AppError):
    status, code, message = 409, "tenant_required", "Say which tenant (X-Tenant-Id or ?tenant=)"


class LimitExceeded(AppError):
    status, code, message = 403, "limit_exceeded", "Plan limit exceeded"


class FeatureNotAvailable(AppError):
    status, code, message = 403, "feature_not_available", "Your plan does not include this feature"


class IpNotAllowed(AppError):
    status, code, message = 403, "ip_not_allowed", "Your address is not on this tenant's IP whitelist"


class RateLimited(AppError):
    status, code, message = 429, "rate_limited", "Too many requests"


class ServiceUnavailable(AppError):
    status, code, message = 503, "unavailable", "The service is not ready"


# Codes and messages for errors that werkzeug raises (routing, body limits, aborts).
HTTP_CODES = {
    400: ("bad_request", "The request could not be understood"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "You are not allowed to do this"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "This method is not allowed here"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "The request body is too large"),
    415: ("unsupported_media_type", "Send the body as application/json"),
    422: ("validation_error", "The request is not valid"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Something went wrong on our side"),
    503: ("unavailable", "The service is not ready"),
}


def envelope(status: int, code: str, message: str, details: Any = None, headers: Any = None) -> Response:
    """Build the error response that every failure of the API returns."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _string_keys(messages: Any) -> Any:
    """Key every level by strings, as JSON does: list items' errors come keyed by int index, next to
    "_schema", and keys of both kinds cannot be sorted for the response."""
    if isinstance(messages, dict):
        return {str(key): _string_keys(value) for key, value in messages.items()}
    return messages


def _webargs_details(messages: Any) -> Any:
    """Flatten webargs' {location: {field: [msg]}} into {field: [msg]}."""
    if not isinstance(messages, dict):
        return {"_schema": messages}
    details: dict[str, Any] = {}
    for location_messages in messages.values():
        if isinstance(location_messages, dict):
            details.update(_string_keys(location_messages))
        else:
            details.setdefault("_schema", []).extend(location_messages)
    return details


def http_error_response(error: HTTPException) -> Response:
    """Turn any werkzeug HTTPException (flask-smorest and webargs abort with these) into the envelope."""
    status = error.code or 500
    code, message = HTTP_CODES.get(status, (HTTP_CODES[500] if status >= 500 else HTTP_CODES[400]))
    details = None
    data = getattr(error, "data", None) or {}
    if status in (400, 422) and "messages" in data:
        details = _webargs_details(data["messages"])
        if status == 400:
            message = "The request body is not valid JSON"
    headers = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    for name, value in (data.get("headers") or {}).items():
        headers[name] = value
    return envelope(status, code, message, details, headers)


def register_error_handlers(app: Flask) -> None:
    """Attach the envelope to our errors and to werkzeug's; log unexpected errors."""

    @app.errorhandler(AppError)
    def handle_app_error(error: AppError) -> Response:
        return envelope(error.status, error.code, error.message, error.details, error.headers)

    @app.errorhandler(SaveConditionError)
    def handle_lost_race(error: SaveConditionError) -> Response:
        # A conditional save found the document changed or removed by a concurrent request.
        return envelope(409, "conflict", "This changed or was removed meanwhile; reload it and try again")

    @app.errorhandler(InternalServerError)
    def handle_internal_error(error: InternalServerError) -> Response:
        original = getattr(error, "original_exception", None)
        if original is not None:
            log.error("unhandled error", exc_info=original)
        code, message = HTTP_CODES[500]
        return envelope(500, code, message)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> Response:
        return http_error_response(error)
