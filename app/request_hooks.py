"""Hooks every request passes through before tenancy: request id, JSON-only bodies, access log."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from app.errors import AppError
from app.logs import request_id_var

log = logging.getLogger("app.access")

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A Bot API path carries the bot's token (the development sandbox's routes): never log it.
BOT_TOKEN_IN_PATH = re.compile(r"/bot(\d++):[^/]++")


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


def _has_body() -> bool:
    return bool(request.content_length) or request.headers.get("Transfer-Encoding", "") == "chunked"


def init_app(app: Flask) -> None:
    @app.before_request
    def start_request() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else uuid.uuid4().hex
        g.request_id = request_id
        g.started_at = time.perf_counter()
        request_id_var.set(request_id)
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
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": BOT_TOKEN_IN_PATH.sub(r"/bot\1:[token]", request.path),
                "status": response.status_code,
                "durationMs": round((time.perf_counter() - started) * 1000, 2) if started else None,
            },
        )
        return response

    @app.teardown_request
    def forget_request_id(_error: BaseException | None) -> None:
        request_id_var.set(None)
