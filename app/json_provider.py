"""Responses encoded by orjson, with what Flask's encoder does for what orjson leaves to it."""

from __future__ import annotations

from typing import Any, cast

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

# Dates and dataclasses go to Flask's `default` (an HTTP date, a dict) as Flask's own encoder does;
# keys are sorted, and non-string keys written as strings, as json.dumps does.
OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson's encoder. What orjson refuses (an integer beyond 64 bits,
    say) is encoded by json.dumps instead, which gives the same document or the same error; bodies
    are still read by json.loads."""

    def _encode(self, obj: Any, option: int = 0) -> bytes | None:
        try:
            return orjson.dumps(obj, default=self.default, option=OPTIONS | option)
        except orjson.JSONEncodeError:
            return None

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        encoded = None if kwargs else self._encode(obj)
        return super().dumps(obj, **kwargs) if encoded is None else encoded.decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        indented = (self.compact is None and self._app.debug) or self.compact is False
        encoded = self._encode(obj, orjson.OPT_INDENT_2 if indented else 0)
        if encoded is None:
            return cast(Response, super().response(obj))
        response_class = cast(type[Response], self._app.response_class)
        return response_class(encoded + b"\n", mimetype=self.mimetype)
