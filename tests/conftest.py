"""Fixtures shared by the suite: an app on a clean database per test, and two tenants.

The suite runs on the embedded store (mongomock). Set MONGODB_TEST_URI=mongodb://... to run the same
tests against a real MongoDB; each test then gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
import sys
import uuid
from contextlib import nullcontext
from pathlib import Path

import pytest

os.environ["APP_ENV"] = "testing"

from app import create_app  # noqa: E402
from app.auth import tokens  # noqa: E402
from app.auth.cache import auth_cache  # noqa: E402
from app.db import database  # noqa: E402
from app.tenancy import context  # noqa: E402
from app.tenancy.cache import tenant_cache  # noqa: E402
from app.tenants.models import Tenant  # noqa: E402
from app.tenants.service import create_tenant  # noqa: E402
from app.users.service import create_superadmin, create_user  # noqa: E402

from . import query_shapes  # noqa: E402
from .servers import free_port  # noqa: E402
from .support import configure_sso, create_bot, sso_body  # noqa: E402

# -- query shapes: recorded on the embedded store by every process of the run, checked at its end ---

SHAPES = query_shapes.Recorder()
if not os.environ.get("MONGODB_TEST_URI"):
    query_shapes.install(SHAPES)


def pytest_sessionfinish(session, exitstatus):
    """Check every query shape of the run against the declared indexes and docs/query-shapes.md.

    An xdist worker hands its shapes to the controller, which checks those of all workers once they
    are down; a run without xdist checks its own. A run on a MongoDB server records nothing (the
    server's own planner is the judge there)."""
    config = session.config
    if os.environ.get("MONGODB_TEST_URI"):
        return
    if hasattr(config, "workeroutput"):
        config.workeroutput["query_shapes"] = query_shapes.dumps(SHAPES.shapes)
        return
    verdicts = query_shapes.judge(SHAPES.shapes)
    if os.environ.get("QUERY_SHAPES") == "write":
        if not _whole_suite_passed(session):
            raise pytest.UsageError("make query-shapes needs a whole run of the suite that passes")
        query_shapes.DOCUMENT.write_text(query_shapes.render(verdicts))
    found = query_shapes.problems(verdicts)
    config.query_shape_problems = found
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """Take the shapes an xdist worker recorded."""
    SHAPES.shapes.update(query_shapes.loads(node.workeroutput.get("query_shapes", [])))


def _whole_suite_passed(session) -> bool:
    """Whether the run was the whole suite (no selection) and passed: only then are its shapes all
    the app's."""
    option = session.config.option
    selected = option.keyword or option.markexpr or option.deselect or option.lf or option.ignore
    whole = [Path(arg).resolve() for arg in session.config.args] == [query_shapes.ROOT / "tests"]
    return whole and not selected and session.testsfailed == 0


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for problem in getattr(config, "query_shape_problems", []):
        terminalreporter.write_line(f"QUERY SHAPE: {problem}", red=True)


def _test_uri(name: str) -> str:
    """A URI for database `name` on MONGODB_TEST_URI's server (no database path), or on mongomock."""
    base = os.environ.get("MONGODB_TEST_URI")
    if not base:
        return f"mongomock://localhost/{name}"
    server, _, options = base.partition("?")
    return f"{server.rstrip('/')}/{name}" + (f"?{options}" if options else "")


@pytest.fixture(scope="session")
def telegram_server():
    """The fake Telegram Bot API every app of the suite talks to (no test reaches the internet)."""
    from .fake_telegram import FakeTelegram

    server = FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oidc_server():
    """The fake OpenID provider of this test run (its RSA keys are made once per run)."""
    from .fake_oidc import FakeProvider

    server = FakeProvider().start()
    yield server
    server.stop()


@pytest.fixture
def provider(oidc_server):
    """The fake provider, emptied for this test."""
    oidc_server.reset()
    return oidc_server


@pytest.fixture
def acme_sso(client, auth_headers, provider):
    """Single sign-on of acme, configured by its owner with the acme realm; returns the group sent."""
    body = sso_body(provider)
    response = configure_sso(client, auth_headers, body)
    assert response.status_code == 200, response.json
    return body


@pytest.fixture
def fake_telegram(telegram_server):
    """The fake Bot API, emptied for this test, with Telegram's limits."""
    from app.telegram.sandbox import Limits

    telegram_server.limits = Limits()
    telegram_server.reset()
    return telegram_server


@pytest.fixture
def senders():
    """The lanes a test's dispatcher sends for (a module may override this fixture)."""
    from app.workers import SENDERS

    return SENDERS


@pytest.fixture
def dispatcher(app, senders):
    """A dispatcher of this test's app, as `flask dispatcher run` makes it (stopped afterwards)."""
    from app.dispatcher.runner import Dispatcher

    running = Dispatcher(app, senders, holder="test-dispatcher")
    yield running
    running.stop()


@pytest.fixture
def count_operations():
    """app.db.counted_operations: count the embedded store's operations in a block."""
    from app.db import counted_operations

    return counted_operations


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for a browser test module's tests (launching one costs more than most
    tests); tests/browser.py."""
    from .browser import launch, sync_api

    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A page of a fresh browser context; the test fails if the browser reported a violation of the
    Content-Security-Policy."""
    from .browser import open_page

    page = open_page(chromium)
    yield page
    page.context.close()
    csp = [e for e in page.console_errors if "Content Security Policy" in e]
    assert not csp, csp


@pytest.fixture
def unused_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    return free_port()


@pytest.fixture
def app_factory(fake_telegram):
    """Build apps on a fresh database with extra settings; drop the databases afterwards."""
    names = []

    def build(**overrides):
        names.append(f"test_{uuid.uuid4().hex[:12]}")
        settings = {
            "MONGODB_URI": _test_uri(names[-1]),
            "TELEGRAM_API_BASE": fake_telegram.url,
            "TELEGRAM_RETRY_BACKOFF_MS": 0,
            # The fakes (Bot API, webhook receivers, identity provider) listen on 127.0.0.1.
            "EGRESS_ALLOW_PRIVATE_TARGETS": True,
        }
        return create_app({**settings, **overrides})

    yield build
    client = database().client
    for name in names:
        client.drop_database(name)
    context.clear()


@pytest.fixture
def settings() -> dict:
    """Extra settings of the app; a module or class overrides this fixture to change them."""
    return {}


@pytest.fixture
def app(app_factory, settings):
    """An app on a fresh database, built with `settings`, its context pushed."""
    app = app_factory(**settings)
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


PASSWORD = "correct horse battery"


@pytest.fixture
def make_user(app):
    """Create a user in a tenant: make_user(tenant, role="member", email=None)."""
    counter = iter(range(1, 10_000))

    def make(tenant, role="member", email=None, password=PASSWORD):
        email = email or f"{role}{next(counter)}@{tenant.slug}.example.com"
        with context.tenant_scope(tenant):
            return create_user(email, f"{role.title()} of {tenant.name}", password, role)

    return make


@pytest.fixture
def headers_for(app):
    """Return Authorization headers with a fresh access token for a User or PlatformUser as stored now
    (signed in with a password, and with a one-time code when `methods` say so)."""

    def headers(account, methods=(tokens.PASSWORD,)):
        tenant_id = getattr(account, "tenant_id", None)
        with context.tenant_scope(Tenant.objects.get(id=tenant_id)) if tenant_id else nullcontext():
            stored = type(account).objects.get(id=account.id)
        issued = tokens.issue(stored, list(methods))
        return {"Authorization": f"Bearer {issued['access_token']}"}

    return headers


@pytest.fixture
def owner(tenant, make_user):
    return make_user(tenant, "owner")


@pytest.fixture
def auth_headers(owner, headers_for):
    """The owner of `tenant`, authenticated."""
    return headers_for(owner)


@pytest.fixture
def member_headers(tenant, make_user, headers_for):
    """A member of `tenant`, authenticated."""
    return headers_for(make_user(tenant, "member"))


@pytest.fixture
def other_owner(other_tenant, make_user):
    return make_user(other_tenant, "owner")


@pytest.fixture
def other_headers(other_owner, headers_for):
    """The owner of `other_tenant`, authenticated."""
    return headers_for(other_owner)


@pytest.fixture
def free_tenant(app):
    return create_tenant("Small Shop", "small-shop")  # the free plan: 5 users


@pytest.fixture
def bot(client, auth_headers) -> str:
    """A bot connected to `tenant`: its account id."""
    return create_bot(client, auth_headers)


@pytest.fixture
def superadmin(app):
    return create_superadmin("root@platform.example.com", "Root", PASSWORD)


@pytest.fixture
def superadmin_headers(superadmin, headers_for):
    return headers_for(superadmin)


@pytest.fixture
def cache_clock(monkeypatch, app):
    """The clock of the app's caches (tenants, credentials) as a list of one number, which a test
    moves by hand (cache_clock[0] += seconds). Ask for it before anything that fills a cache."""
    now = [1000.0]
    for cache in (auth_cache(), tenant_cache()):
        monkeypatch.setattr(cache, "timer", lambda: now[0])
    return now


@pytest.fixture
def frequent_thread_switches():
    """Switch threads very often, so that the interleavings a check-then-write bug needs do happen.

    Each operation on the embedded store is atomic (app.db locks it, as a server applies a
    single-document write atomically), so concurrency tests fail for our sake, not mongomock's."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
