"""Marshmallow fields shared by the schemas: date-times in UTC, and values only managers see whole."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import g, has_request_context
from marshmallow import fields

from app.tenancy.access import SUPERADMIN

# The roles that see a tenant's integrations as configured (they may change them, too).
MANAGERS = frozenset({"owner", "admin", SUPERADMIN})


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time with its offset, taken in as UTC. One whose UTC instant lies outside the
    years 1 to 9999 (`9999-12-31T23:59:59-12:00`, `0001-01-01T00:00:00+14:00`) is a 422 here rather
    than an overflow wherever it would first be converted."""

    default_error_messages = {"range": "Give a date-time that falls within the years 1 to 9999 in UTC."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("range") from None


def caller_manages() -> bool:
    """Tell whether the caller of this request is an owner, an admin or a superadmin."""
    principal = g.get("principal") if has_request_context() else None
    return principal is not None and principal.role in MANAGERS


def url_origin(url: str) -> str:
    """Return what a URL says of where it goes and nothing else: `scheme://host[:port]/…`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}/…"


class SecretUrl(fields.String):
    """A URL that may carry a secret (a token in its path or query, credentials before its host):
    whole for owners, admins and superadmins; for members, only its scheme and host."""

    def __init__(self, **kwargs: Any):
        metadata = {"description": "Members see only the scheme and host.", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None or caller_manages():
            return super()._serialize(value, attr, obj, **kwargs)
        return url_origin(value)


class ManagersOnly(fields.String):
    """A value of a tenant's integration shown to owners, admins and superadmins; null for members."""

    def __init__(self, **kwargs: Any):
        metadata = {"description": "Null for members.", **kwargs.pop("metadata", {})}
        super().__init__(allow_none=True, metadata=metadata, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return super()._serialize(value, attr, obj, **kwargs) if caller_manages() else None
