"""What the dashboard's browser test modules share: a headless Chromium (Debian's package, driven by
Playwright) and pages of it (the fixtures `chromium`, one per module, and `page`, a fresh context per
test, are in tests/conftest.py), the live service they drive, screenshots and logging in.

Without Chromium or Playwright a module's tests are skipped and say why; `make test` installs Chromium
where it can (root with apt-get), so CI always runs them. `make screenshots` runs them with
SCREENSHOTS=1, which saves a picture of each page into docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from .conftest import PASSWORD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
expect = sync_api.expect
MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)"),
]


def launch(playwright):
    """A headless Chromium for the browser tests."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )


def open_page(browser):
    """A page in a context of its own (no storage shared with other tests), which records the errors
    the browser reports in page.console_errors."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.set_default_timeout(10_000)
    page.console_errors = errors
    return page


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread of this process; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def shoot(page, name: str) -> None:
    if os.environ.get("SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page, base: str, email: str, then: str | None = None) -> None:
    """Log in on the login page; with `then`, wait for the landing page and go to the page `then`
    (a path under /dashboard) once it is ready."""
    page.goto(f"{base}/dashboard/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    if then is not None:
        page.wait_for_selector("body[data-ready=true]")
        page.goto(f"{base}/dashboard{then}")
        page.wait_for_selector("body[data-ready=true]")
