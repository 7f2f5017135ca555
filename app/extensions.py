"""Extension objects, created unbound here and attached to the app in create_app.

flask-smorest's Api holds one app's OpenAPI spec, so create_app makes one Api per app."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cache, wraps
from typing import Any

import flask_smorest
import marshmallow as ma
from flask import current_app
from flask_jwt_extended import JWTManager
from flask_smorest.utils import resolve_schema_instance
from webargs.flaskparser import FlaskParser

from app import wire


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(
        required=True, metadata={"description": "Machine-readable error code", "example": "not_found"}
    )
    message = ma.fields.String(required=True, metadata={"example": "No such campaign"})
    details = ma.fields.Dict(metadata={"description": "Field errors, limits, ... (when relevant)"})


class ErrorEnvelopeSchema(ma.Schema):
    """The one error envelope of the API (documentation only)."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


class ArgumentsParser(FlaskParser):
    """webargs' parser, answering a body nested too deeply for the JSON parser as invalid JSON (400),
    where the RecursionError would otherwise be a 500."""

    def _raw_load_json(self, req: Any) -> Any:
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", "<body>", 0) from None


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the parser above, argument schemas built once, and responses dumped
    by app.wire where the view gives documents as stored (wire.Stored); every view module uses this one."""

    ARGUMENTS_PARSER = ArgumentsParser()

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        """flask-smorest's arguments, with the schema built once (given a class, webargs builds one for
        every request it parses; a schema keeps no state of a load)."""
        return super().arguments(resolve_schema_instance(schema), *args, **kwargs)

    def response(self, status_code: Any, schema: Any = None, **kwargs: Any) -> Any:
        documented = super().response(status_code, schema, **kwargs)
        instance = resolve_schema_instance(schema) if schema is not None else None

        def decorator(func: Any) -> Any:
            @wraps(func)
            def view(*args: Any, **view_kwargs: Any) -> Any:
                result = func(*args, **view_kwargs)
                dumped = _dumped(instance, result)
                return result if dumped is None else (current_app.json.response(dumped), status_code)

            return documented(view)

        return decorator


def _dumped(schema: ma.Schema | None, result: Any) -> Any:
    """The wire form of a view's result where app.wire dumps it (a document as stored, or a dict whose
    nested documents, or lists of them, are as stored: a page's items, the caller's account); None
    where marshmallow dumps the whole of it."""
    if not isinstance(schema, ma.Schema):
        return None
    if isinstance(result, wire.Stored):
        return wire.dump_stored(schema, result)
    if not isinstance(result, dict):
        return None
    stored = {name: value for name, value in result.items() if _is_stored(value)}
    nested = {name: inner for name in stored if (inner := _nested_schema(schema.fields.get(name)))}
    if not stored or len(nested) < len(stored):
        return None
    envelope = _envelope(schema, frozenset(stored))
    if envelope is not None:
        dumped = envelope(result)
    else:
        placeholders: dict[str, list[Any] | None] = {
            name: [] if isinstance(value, list) else None for name, value in stored.items()
        }
        dumped = schema.dump({**result, **placeholders})
    for name, value in stored.items():
        key = schema.fields[name].data_key or name
        inner = nested[name]
        dumped[key] = (
            wire.dump_many(inner, value) if isinstance(value, list) else wire.dump_stored(inner, value)
        )
    return dumped


@cache
def _envelope(schema: ma.Schema, leave: frozenset[str]) -> Any:
    """The dump of a result's fields other than its stored documents (a page's count and cursor, the
    caller's credential), without marshmallow's walk where it compiles (app.wire); None where not."""
    try:
        return wire.mapping_dumper(schema, leave)
    except wire.NotCompilable:
        return None


def _nested_schema(field: ma.fields.Field | None) -> ma.Schema | None:
    """The schema of a Nested field, or of a List of Nested (None for any other field)."""
    if isinstance(field, ma.fields.List):
        field = field.inner
    if isinstance(field, ma.fields.Nested) and isinstance(field.schema, ma.Schema):
        return field.schema
    return None


def _is_stored(value: Any) -> bool:
    """A document as stored, or a non-empty list of them."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(item, wire.Stored) for item in value)
    return isinstance(value, wire.Stored)


class Api(flask_smorest.Api):
    """flask-smorest's Api, documenting our error envelope and leaving error handling to app.errors."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def _register_error_handlers(self) -> None:
        """Leave HTTPException to app.errors, which renders the envelope."""


jwt = JWTManager()


def jwt_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """flask-jwt-extended's settings: HS256 pinned for signing and for verifying, headers only."""
    return {
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        "JWT_TOKEN_LOCATION": ["headers"],
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(seconds=settings["ACCESS_TOKEN_TTL"]),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(seconds=settings["REFRESH_TOKEN_TTL"]),
    }
