"""Schemathesis fuzzes every operation of the service's OpenAPI document, in-process.

Each operation gets an app on a fresh database and the owner of a tenant on the professional plan; its
generated requests carry the owner's token (in place of the API key Schemathesis would make up), tenant
hints naming the owner's tenant (by slug in the header, by id in the query: a made-up tenant is only
ever 404), and every answer must pass the checks: no 5xx, a body that matches the documented schema, a
documented status code. The operations are read from the document,
so a new route is fuzzed without editing this file. `make fuzz` runs longer against gunicorn.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from app import create_app

from .support import operations

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def _operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation the document lists."""
    client = create_app({"MONGODB_URI": "mongomock://localhost/fuzz_spec"}).test_client()
    return [(method.upper(), path) for path, method in operations(client)]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_operation(app, tenant, auth_headers, method, path):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def fuzz(case):
        if case.headers:
            case.headers.pop("X-API-Key", None)
            if "X-Tenant-Id" in case.headers:
                case.headers["X-Tenant-Id"] = tenant.slug
        if case.query and "tenant" in case.query:
            case.query["tenant"] = str(tenant.id)
        case.call_and_validate(headers=auth_headers, checks=CHECKS)

    fuzz()
