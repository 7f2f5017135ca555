"""Logs as JSON lines (python-json-logger), each carrying the request id and the tenant id of the context
it was written in, and the W3C trace context of the request when it came with one."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from app.tenancy.context import current_tenant_id

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# The trace id and parent span id of the request's valid `traceparent` header (None without one).
trace_var: ContextVar[tuple[str, str] | None] = ContextVar("trace", default=None)

_HANDLER_NAME = "app-json"
# The tenancy core's debug lines (every tenant filter) are written whatever LOG_LEVEL says when
# TENANT_DEBUG asks for them.
TENANCY_LOGGER = "app.tenancy"


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line: ts, level, logger, message, requestId, tenantId, traceId and spanId
    (when the request carried a trace context), whatever was passed with `extra=`, and exc."""

    def __init__(self) -> None:
        super().__init__("%(message)s", rename_fields={"exc_info": "exc"}, json_default=str)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data["requestId"] = request_id_var.get()
        log_data["tenantId"] = str(tid) if (tid := current_tenant_id()) else None
        trace = trace_var.get()
        if trace is not None:
            log_data["traceId"], log_data["spanId"] = trace
        super().add_fields(log_data, record, message_dict)


def configure(level: str, tenant_debug: bool = False) -> None:
    """Send the app's logs to stderr as JSON lines (idempotent: create_app may run more than once);
    with `tenant_debug`, the tenancy core's debug lines too, at any LOG_LEVEL."""
    logger = logging.getLogger("app")
    logger.setLevel(level)
    logger.propagate = False
    logging.getLogger(TENANCY_LOGGER).setLevel(logging.DEBUG if tenant_debug else logging.NOTSET)
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
