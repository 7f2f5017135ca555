"""Marshmallow fields shared by the schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import fields


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
