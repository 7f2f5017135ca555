"""Every error source answers in the one error envelope (docs/design.md "Errors")."""

from __future__ import annotations

import json
from functools import partial

import pytest

from . import support
from .support import register_probe

# Every error source answers in JSON, so the media type is checked as well.
error_of = partial(support.error_of, mimetype="application/json")


@pytest.fixture
def probe(app_factory):
    app = app_factory(PROPAGATE_EXCEPTIONS=False, MAX_CONTENT_LENGTH=2048)
    register_probe(app)
    return app.test_client()


def test_not_found(probe):
    assert error_of(probe.get("/api/v1/nothing-here"), 404)["code"] == "not_found"


def test_method_not_allowed_keeps_allow(probe):
    response = probe.delete("/api/v1/plans")
    assert error_of(response, 405)["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_malformed_json_is_400(probe):
    response = probe.post(
        "/api/v1/probe/echo", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert error_of(response, 400)["code"] == "bad_request"


def test_validation_errors_are_422_with_field_details(probe):
    error = error_of(probe.post("/api/v1/probe/echo", json={"name": "", "count": "many"}), 422)
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"name", "count"}


def test_unknown_fields_are_rejected(probe):
    error = error_of(probe.post("/api/v1/probe/echo", json={"name": "ok", "tenantId": "x"}), 422)
    assert error["details"] == {"tenantId": ["Unknown field."]}


def test_missing_body_is_422(probe):
    error = error_of(probe.post("/api/v1/probe/echo"), 422)
    assert "name" in error["details"]


def test_valid_body_passes(probe):
    response = probe.post("/api/v1/probe/echo", json={"name": "ok", "count": 2})
    assert response.status_code == 201
    assert response.json == {"name": "ok", "count": 2}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_non_json_body_is_415(probe, content_type):
    response = probe.post(
        "/api/v1/probe/echo", data=json.dumps({"name": "ok"}), headers={"Content-Type": content_type}
    )
    assert error_of(response, 415)["code"] == "unsupported_media_type"


def test_body_over_max_content_length_is_413(probe):
    response = probe.post("/api/v1/probe/echo", json={"name": "x" * 4096})
    assert error_of(response, 413)["code"] == "payload_too_large"


def test_unexpected_error_is_500_without_its_text(probe):
    response = probe.get("/api/v1/probe/crash")
    error = error_of(response, 500)
    assert error["code"] == "internal_error"
    assert "hunter2" not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)


def test_error_envelope_is_documented_in_openapi(probe):
    spec = probe.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    assert "ErrorEnvelope" in schemas
    assert schemas["ErrorEnvelope"]["properties"]["error"]["$ref"].endswith("ErrorBody")
