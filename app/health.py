"""Liveness and readiness probes, outside /api/v1 and outside tenancy."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from pymongo.errors import PyMongoError

from app import db
from app.errors import ServiceUnavailable
from app.tenancy.access import infra

log = logging.getLogger("app.health")

blp = Blueprint("health", __name__)


@blp.get("/healthz")
@infra
def healthz():
    """Answer while the process serves requests."""
    return jsonify(status="ok")


@blp.get("/readyz")
@infra
def readyz():
    """Answer 200 when the database answers, 503 otherwise."""
    try:
        db.ping()
    except PyMongoError as exc:
        log.warning("database not ready", extra={"error": type(exc).__name__})
        raise ServiceUnavailable("The database does not answer") from None
    return jsonify(status="ready")
