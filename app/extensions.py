"""Extension objects, created unbound here and attached to the app in create_app.

flask-smorest's Api holds one app's OpenAPI spec, so create_app makes one Api per app."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import flask_smorest
import marshmallow as ma
from flask_jwt_extended import JWTManager
from webargs.flaskparser import FlaskParser


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
    """flask-smorest's Blueprint with the parser above; every view module uses this one."""

    ARGUMENTS_PARSER = ArgumentsParser()


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
