"""Extension objects, created unbound here and attached to the app in create_app."""

from __future__ import annotations

import flask_smorest
import marshmallow as ma


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "Machine-readable error code"})
    message = ma.fields.String(required=True)
    details = ma.fields.Dict(metadata={"description": "Field errors, limits, ... (when relevant)"})


class ErrorEnvelopeSchema(ma.Schema):
    """The one error envelope of the API (documentation only)."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


class Api(flask_smorest.Api):
    """flask-smorest's Api, documenting our error envelope and leaving error handling to app.errors."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def _register_error_handlers(self) -> None:
        """Leave HTTPException to app.errors, which renders the envelope."""


api = Api()
