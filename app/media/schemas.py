"""Media on the wire."""

from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema, fields

from app.fields import UtcDateTime


class MediaSchema(Schema):
    id = fields.String()
    filename = fields.String()
    content_type = fields.String(data_key="contentType")
    size = fields.Integer()
    sha256 = fields.String()
    created_by = fields.String(data_key="createdBy", allow_none=True)
    created_at = UtcDateTime(data_key="createdAt")


class UploadSchema(Schema):
    file = Upload(required=True)
