"""The JSON log lines as the service writes them to stderr (app.logs): the W3C trace context of a
request next to its request id, and TENANT_DEBUG's tenant filters at the default LOG_LEVEL."""

from __future__ import annotations

import io
import json
import logging
from contextlib import contextmanager

import pytest

from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.service import create_tenant

from .support import Note, register_probe

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


@contextmanager
def written_lines():
    """The JSON lines the app's log handler writes within the block."""
    handler = next(h for h in logging.getLogger("app").handlers if h.get_name() == "app-json")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        handler.setStream(previous)
        lines.extend(json.loads(line) for line in buffer.getvalue().splitlines())


def test_a_valid_traceparent_is_logged_with_the_request_id(client):
    with written_lines() as lines:
        response = client.get(
            "/healthz", headers={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "X-Request-Id": "req-7"}
        )
    assert response.status_code == 200
    access = [line for line in lines if line["logger"] == "app.access"]
    assert len(access) == 1
    assert access[0]["requestId"] == "req-7"
    assert access[0]["traceId"] == TRACE_ID
    assert access[0]["spanId"] == SPAN_ID
    assert access[0]["message"] == "request" and access[0]["status"] == 200


def test_every_line_of_the_request_carries_the_trace(app_factory):
    app = app_factory(TENANT_DEBUG=True)
    register_probe(app)
    with app.app_context():
        create_tenant("Acme Corp", "acme")
    headers = {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00", "X-Tenant-Id": "acme"}
    with written_lines() as lines:
        response = app.test_client().get("/api/v1/probe/tenant", headers=headers)
    assert response.json == {"slug": "acme"}
    assert {line["message"] for line in lines} == {"tenant resolved", "request"}
    assert all(line["traceId"] == TRACE_ID and line["spanId"] == SPAN_ID for line in lines)


@pytest.mark.parametrize(
    "header",
    [
        f"00-{'0' * 32}-{SPAN_ID}-01",  # an all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # an all-zero parent id
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",  # upper case
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # the version that never is one
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",  # a short trace id
        f"00-{TRACE_ID}-{SPAN_ID}-1",  # short flags
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 has exactly four fields
        "not a trace context",
    ],
)
def test_an_invalid_traceparent_is_ignored(client, header):
    with written_lines() as lines:
        response = client.get("/healthz", headers={"traceparent": header})
    assert response.status_code == 200
    assert lines and all("traceId" not in line and "spanId" not in line for line in lines)
    assert all(line["requestId"] == response.headers["X-Request-Id"] for line in lines)


def test_the_trace_does_not_outlive_its_request(client):
    with written_lines() as lines:
        client.get("/healthz", headers={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"})
        client.get("/healthz")
    assert [line.get("traceId") for line in lines] == [TRACE_ID, None]


@pytest.mark.parametrize("tenant_debug", [True, False])
def test_tenant_debug_writes_every_tenant_filter_at_the_default_log_level(app_factory, tenant_debug):
    app = app_factory(TENANT_DEBUG=tenant_debug)
    assert app.config["LOG_LEVEL"] == "INFO"
    with app.app_context():
        tenant = create_tenant("Acme Corp", "acme")
        with written_lines() as lines, tenant_scope(Tenant.objects.get(id=tenant.id)):
            Note.objects.count()
    filters = [line for line in lines if line["message"] == "tenant filter"]
    if tenant_debug:
        assert len(filters) == 1
        assert filters[0]["level"] == "debug"
        assert filters[0]["collection"] == Note._get_collection().name
        assert filters[0]["tenantId"] == str(tenant.id)
        assert str(tenant.id) in filters[0]["filter"]
    else:
        assert filters == []


def test_tenant_debug_is_the_setting_of_the_app_in_context(app_factory):
    """Building an app with TENANT_DEBUG does not turn it on for another app of the process."""
    quiet = app_factory(TENANT_DEBUG=False)
    app_factory(TENANT_DEBUG=True)
    with quiet.app_context():
        tenant = create_tenant("Acme Corp", "acme")
        with written_lines() as lines, tenant_scope(Tenant.objects.get(id=tenant.id)):
            Note.objects.count()
    assert [line for line in lines if line["message"] == "tenant filter"] == []
