"""The project's commands, as an operator runs them: `tgm` (the console script), `python -m app` and
`flask --app wsgi` list every command whatever the configuration, and a configuration error ends a
command with one line on stderr, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import COMMANDS, cli
from app.jobs import SCHEDULE

from .support import ROOT

BIN = Path(sys.executable).parent
LAUNCHERS = {
    "tgm": [str(BIN / "tgm")],
    "python -m app": [sys.executable, "-m", "app"],
    "flask --app wsgi": [str(BIN / "flask"), "--app", "wsgi"],
}
UNCONFIGURED = {
    "APP_ENV unset": {},
    "production without secrets": {"APP_ENV": "production"},
}


def run(launcher: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run a command in a process of its own, with no setting but `settings` in its environment."""
    environment = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run(
        [*LAUNCHERS[launcher], *args],
        cwd=ROOT,
        env={**environment, **settings},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def listed(help_text: str) -> set[str]:
    """The command names of a help text's Commands section."""
    section = help_text.partition("\nCommands:\n")[2]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.strip()}


def test_the_group_holds_every_project_command():
    assert {command.name for command in COMMANDS} == {
        "users",
        "tenants",
        "jobs",
        "dispatcher",
        "migrate-to-multitenant",
        "seed-demo",
    }
    assert set(cli.commands) >= {command.name for command in COMMANDS}


@pytest.mark.parametrize("settings", UNCONFIGURED.values(), ids=UNCONFIGURED)
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_help_lists_every_command_whatever_the_configuration(launcher, settings):
    done = run(launcher, "--help", **settings)
    assert done.returncode == 0, done.stderr
    assert listed(done.stdout) >= {command.name for command in COMMANDS}, done.stdout
    assert "Traceback" not in done.stderr
    # Flask's own command line tries to create the app and says why it cannot, in one line.
    assert len(done.stderr.strip().splitlines()) == (launcher == "flask --app wsgi"), done.stderr


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_group_lists_its_commands_whatever_the_configuration(launcher):
    done = run(launcher, "users", "--help")
    assert done.returncode == 0, done.stderr
    assert listed(done.stdout) == {"create-superadmin", "key-recovery-codes"}


@pytest.mark.parametrize(
    "args",
    [("users", "create-superadmin"), ("jobs", "list"), ("seed-demo",)],
    ids=lambda args: " ".join(args),
)
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_configuration_error_is_one_line_and_a_failure(launcher, args):
    """Before any prompt: create-superadmin would otherwise ask for an email and a password first."""
    done = run(launcher, *args)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "Configuration error: missing required settings for APP_ENV=production: SECRET_KEY, "
        "JWT_SECRET_KEY, ENCRYPTION_KEYS, MONGODB_URI. Set them in the environment (see README.md, "
        "'Settings'), or use APP_ENV=development for a local run."
    ]


def test_a_malformed_setting_is_named_in_the_line():
    done = run("tgm", "jobs", "list", APP_ENV="development", TRIAL_DAYS="fourteen")
    assert done.returncode == 1
    assert done.stderr == "Configuration error: TRIAL_DAYS must be an integer, not 'fourteen'\n"


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_runs_the_commands(launcher):
    done = run(launcher, "jobs", "list", APP_ENV="development", LOG_LEVEL="WARNING")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == [job.name for job in SCHEDULE]


def test_the_entry_point_creates_a_superadmin():
    done = run(
        "tgm",
        "users",
        "create-superadmin",
        "--email",
        "root@example.com",
        "--password",
        "a long passphrase",
        APP_ENV="development",
        LOG_LEVEL="WARNING",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Created superadmin root@example.com (")


def test_a_command_error_is_one_line_too():
    done = run("tgm", "jobs", "run-once", "nightly-backup", APP_ENV="development", LOG_LEVEL="WARNING")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: no job named 'nightly-backup'; the jobs are: monthly-close, ")
    assert len(done.stderr.splitlines()) == 1
