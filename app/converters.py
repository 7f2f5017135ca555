"""The `objectid` URL converter: ids in paths are 24 hex digits, anything else is a 404 route miss."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from flask import Flask
from werkzeug.routing import BaseConverter

OBJECT_ID_PATTERN = "^[0-9a-fA-F]{24}$"


class ObjectIdConverter(BaseConverter):
    regex = "[0-9a-fA-F]{24}"

    def to_python(self, value: str) -> ObjectId:
        return ObjectId(value)

    def to_url(self, value: Any) -> str:
        return str(value)


def _schema(_converter: ObjectIdConverter) -> dict[str, str]:
    return {"type": "string", "pattern": OBJECT_ID_PATTERN}


def init_app(app: Flask, api: Any) -> None:
    app.url_map.converters["objectid"] = ObjectIdConverter
    api.register_converter(ObjectIdConverter, _schema)
