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


class UnsupportedMediaType(AppError):
    status, code, message = 415, "unsupported_media_type", "Send the body as application/json"


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
                "path": request.path,
                "status": response.status_code,
                "durationMs": round((time.perf_counter() - started) * 1000, 2) if started else None,
            },
        )
        return response

    @app.teardown_request
    def forget_request_id(_error: BaseException | None) -> None:
        request_id_var.set(None)
