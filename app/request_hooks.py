"""Hooks every request passes through before tenancy: request id and trace context, JSON-only bodies,
access log and request metrics; and no cookie session."""

from __future__ import annotations

import logging
import os
import re
import time

from flask import Flask, Response, g, request
from flask.sessions import SessionInterface
from opentelemetry.trace import get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from werkzeug.datastructures import Headers

from app import metrics
from app.errors import AppError
from app.logs import request_id_var, trace_var

log = logging.getLogger("app.access")

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A Bot API path carries the bot's token (the development sandbox's routes): never log it.
BOT_TOKEN_IN_PATH = re.compile(r"/bot(\d++):[^/]++")
TRACE_CONTEXT = TraceContextTextMapPropagator()


class UnsupportedMediaType(AppError):
    status, code, message = 415, "unsupported_media_type", "Send the body as application/json"


MULTIPART_ATTRIBUTE = "_accepts_multipart"


def accepts_multipart(view):
    """Let this view take multipart/form-data bodies (uploads) instead of JSON."""
    setattr(view, MULTIPART_ATTRIBUTE, True)
    return view


def _accepts_multipart(app: Flask, endpoint: str) -> bool:
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    handler = getattr(view_class, request.method.lower(), None) if view_class is not None else view
    return request.mimetype == "multipart/form-data" and getattr(handler, MULTIPART_ATTRIBUTE, False)


def trace_of(headers: Headers) -> tuple[str, str] | None:
    """The trace id and parent span id of a valid W3C `traceparent` header; None without one, or when
    it is malformed (a wrong length, upper case, an all-zero id, version ff)."""
    value = headers.get("traceparent")
    if not value:
        return None
    span = get_current_span(TRACE_CONTEXT.extract({"traceparent": value})).get_span_context()
    if not span.is_valid:
        return None
    return format(span.trace_id, "032x"), format(span.span_id, "016x")


def _has_body() -> bool:
    return bool(request.content_length) or request.headers.get("Transfer-Encoding", "") == "chunked"


class NoSessions(SessionInterface):
    """The service keeps no cookie session (its callers present tokens and API keys; the dashboard
    keeps its tokens in the browser): none is read from a request or written to a response."""

    def open_session(self, app: Flask, request: object) -> None:
        return None

    def save_session(self, app: Flask, session: object, response: object) -> None:
        return None


def init_app(app: Flask) -> None:
    app.session_interface = NoSessions()

    @app.before_request
    def start_request() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        # 32 random hex digits, as a UUID4's hex, without building the UUID.
        request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else os.urandom(16).hex()
        g.request_id = request_id
        g.started_at = time.perf_counter()
        request_id_var.set(request_id)
        trace_var.set(trace_of(request.headers))
        if (
            request.method in BODY_METHODS
            and request.endpoint is not None
            and request.path.startswith("/api/")
            and _has_body()
            and not request.is_json
            and not _accepts_multipart(app, request.endpoint)
        ):
            raise UnsupportedMediaType()

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        started = g.get("started_at")
        seconds = time.perf_counter() - started if started else None
        rule = request.url_rule
        metrics.observe_request(
            request.method, rule.rule if rule is not None else None, response.status_code, seconds
        )
        if not log.isEnabledFor(logging.INFO):
            return response
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": BOT_TOKEN_IN_PATH.sub(r"/bot\1:[token]", request.path),
                "status": response.status_code,
                "durationMs": round(seconds * 1000, 2) if seconds is not None else None,
            },
        )
        return response

    @app.teardown_request
    def forget_request_id(_error: BaseException | None) -> None:
        request_id_var.set(None)
        trace_var.set(None)
