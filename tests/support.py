"""Test-only document classes and routes that exercise the tenancy core directly."""

from __future__ import annotations

import mongoengine as me
from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.tenancy.access import public
from app.tenancy.context import current_tenant
from app.tenancy.documents import TenantDocument, TenantReferenceField


class Note(TenantDocument):
    title = me.StringField(required=True, max_length=50)
    meta = {"collection": "test_notes", "indexes": [{"fields": ["tenant_id", "title"], "unique": True}]}


class Attachment(TenantDocument):
    note = TenantReferenceField(Note)
    label = me.StringField()
    meta = {"collection": "test_attachments", "indexes": [{"fields": ["tenant_id", "note"]}]}


class ProbeBody(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=20))
    count = fields.Integer()


def probe_blueprint() -> Blueprint:
    """Routes that show what the tenancy core decided, and that fail in the ways the API must handle."""
    blp = Blueprint("probe", __name__, url_prefix="/api/v1/probe")

    @blp.route("/tenant")
    class ProbeTenant(MethodView):
        @public
        def get(self):
            tenant = current_tenant()
            return jsonify(slug=tenant.slug if tenant else None)

    @blp.route("/private")
    class ProbePrivate(MethodView):
        def get(self):
            return jsonify(slug=current_tenant().slug)

    @blp.route("/echo")
    class ProbeEcho(MethodView):
        @public
        @blp.arguments(ProbeBody)
        @blp.response(201, ProbeBody)
        def post(self, body):
            return body

    @blp.route("/crash")
    class ProbeCrash(MethodView):
        @public
        def get(self):
            raise RuntimeError("database password is hunter2")

    return blp


def register_probe(app) -> None:
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    api.register_blueprint(probe_blueprint())
