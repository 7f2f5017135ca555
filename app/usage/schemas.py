"""A tenant's usage on the wire."""

from __future__ import annotations

from marshmallow import Schema, fields

from app.fields import UtcDateTime


class PeriodSchema(Schema):
    key = fields.String(metadata={"description": "The monthly period, such as 2026-11"})
    start = UtcDateTime()
    end = UtcDateTime()


class ResourceUsageSchema(Schema):
    used = fields.Integer()
    limit = fields.Integer(allow_none=True, metadata={"description": "null: unlimited"})
    percent = fields.Float(allow_none=True)


class UsageReportSchema(Schema):
    period = fields.Nested(PeriodSchema)
    resources = fields.Dict(keys=fields.String(), values=fields.Nested(ResourceUsageSchema))
