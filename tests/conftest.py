"""Fixtures shared by the suite: an app on a clean database per test, and two tenants.

The suite runs on the embedded store (mongomock). Set MONGODB_TEST_URI=mongodb://... to run the same
tests against a real MongoDB; each test then gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid

import pytest

os.environ["APP_ENV"] = "testing"

from app import create_app  # noqa: E402
from app.db import database  # noqa: E402
from app.tenancy import context  # noqa: E402
from app.tenants.service import create_tenant  # noqa: E402


def _test_uri(name: str) -> str:
    """A URI for database `name` on MONGODB_TEST_URI's server (no database path), or on mongomock."""
    base = os.environ.get("MONGODB_TEST_URI")
    if not base:
        return f"mongomock://localhost/{name}"
    server, _, options = base.partition("?")
    return f"{server.rstrip('/')}/{name}" + (f"?{options}" if options else "")


@pytest.fixture
def app_factory():
    """Build apps on a fresh database with extra settings; drop the databases afterwards."""
    names = []

    def build(**overrides):
        names.append(f"test_{uuid.uuid4().hex[:12]}")
        return create_app({"MONGODB_URI": _test_uri(names[-1]), **overrides})

    yield build
    client = database().client
    for name in names:
        client.drop_database(name)
    context.clear()


@pytest.fixture
def app(app_factory):
    app = app_factory()
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tenant(app):
    return create_tenant("Acme Corp", "acme", plan="professional")


@pytest.fixture
def other_tenant(app):
    return create_tenant("Globex", "globex", plan="starter")
