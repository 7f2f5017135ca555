"""The import contracts of pyproject.toml (docs/architecture.md): the code keeps them, and an import
that breaks one is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .support import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_root: Path, *contracts: str) -> subprocess.CompletedProcess:
    """Check the contracts (all of them by default) on the package `app` found under package_root."""
    selected = [option for contract in contracts for option in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", str(ROOT / "pyproject.toml"), *selected],
        cwd=package_root,
        env={**os.environ, "PYTHONPATH": str(package_root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_code_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # The tenancy core importing a domain, or the audit log.
        ("app/tenancy/middleware.py", "from app.tenants.models import Tenant", "layers"),
        ("app/tenancy/resolver.py", "from app.audit.service import record", "layers"),
        # A domain importing a process above it.
        ("app/campaigns/service.py", "from app.jobs import SCHEDULE", "layers"),
        # The tenant registry importing another domain.
        ("app/tenants/plans.py", "from app.usage import service", "tenant-registry"),
        # A domain importing the work over every domain's documents.
        ("app/usage/service.py", "from app.maintenance.reconcile import recount_all", "layers"),
        # The tenants importing a domain that builds on them: signup's tokens, the usage route, the
        # accounts whose sessions a 2FA requirement ends, the documents the retention purge deletes.
        ("app/tenants/service.py", "from app.auth import tokens", "tenants"),
        ("app/tenants/views.py", "from app.usage.service import snapshot", "tenants"),
        ("app/tenants/service.py", "from app.users.models import User", "tenants"),
        ("app/tenants/admin.py", "from app.messages.models import Message", "tenants"),
        ("app/tenants/admin.py", "from app.webhooks.models import WebhookDelivery", "tenants"),
        # Metering writing alerts itself.
        ("app/usage/service.py", "from app.webhooks.events import emit", "metering"),
        ("app/usage/rate_limits.py", "from app.audit.service import record", "metering"),
        # Metering counting a domain's documents itself.
        ("app/usage/service.py", "from app.campaigns.models import Campaign", "domains-over-metering"),
        ("app/usage/snapshots.py", "from app.users.models import User", "domains-over-metering"),
        # Messages moving their campaign's state, or counting themselves.
        ("app/messages/service.py", "from app.campaigns.models import Campaign", "messages"),
        ("app/messages/models.py", "from app import metrics", "messages"),
        # Accounts importing authentication.
        ("app/users/owners.py", "from app.auth import tokens", "accounts"),
        # A webhook event queued by import instead of a signal.
        ("app/billing/service.py", "from app.webhooks.events import emit", "events"),
        # Two independent resources.
        (
            "app/media/service.py",
            "from app.telegram_accounts.models import TelegramAccount",
            "independent-resources",
        ),
    ],
)
def test_an_import_that_breaks_a_contract_is_caught(tmp_path, module, line, contract):
    shutil.copytree(
        ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__", "static", "templates")
    )
    kept = lint_imports(tmp_path, contract)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    with open(tmp_path / module, "a") as source:
        source.write(f"\n{line}\n")
    broken = lint_imports(tmp_path, contract)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "1 broken" in broken.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> " in broken.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # The audit log counting its anonymous entries with metering's rate limits again: the tenants
        # record in the audit log, and metering reads the tenants' limits.
        ("app/audit/service.py", "from app.usage.rate_limits import within"),
        # The audit log reading the accounts, which record in it.
        ("app/audit/service.py", "from app.users.models import User"),
    ],
)
def test_a_cycle_through_several_packages_is_caught(tmp_path, module, line):
    shutil.copytree(
        ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__", "static", "templates")
    )
    assert lint_imports(tmp_path, "acyclic").returncode == 0
    with open(tmp_path / module, "a") as source:
        source.write(f"\n{line}\n")
    broken = lint_imports(tmp_path, "acyclic")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "No cycles are allowed in app." in broken.stdout


def test_the_app_reads_the_time_through_its_clock_module():
    """`clock.utcnow()` and `clock.monotonic()`, never a name imported from app.clock nor the time
    module's clock: a test moves the time by patching app.clock once."""
    readers = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        if path == ROOT / "app" / "clock.py":
            continue
        text = path.read_text()
        if "from app.clock import" in text or "time.monotonic" in text or "datetime.now(" in text:
            readers.append(str(path.relative_to(ROOT)))
    assert readers == []
