"""The dependency files: requirements*.txt are the readable pins (and the project's metadata reads them),
the *.lock files pin their whole tree with hashes, and neither may drift from the other."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .support import ROOT

# Each lock, and the requirements files it is compiled from (`make lock`).
LOCKS = {
    "requirements.lock": ["requirements.txt"],
    "requirements-embedded.lock": ["requirements.txt", "requirements-embedded.txt"],
    "requirements-dev.lock": ["requirements.txt", "requirements-embedded.txt", "requirements-dev.txt"],
}
LOCKED = re.compile(r"^(?P<requirement>[A-Za-z0-9][^\s\\]*(?: ; [^\\]+)?)\s*\\?$")


def pins(text: str) -> dict[str, str]:
    """A requirements file's pins by normalized name. The file is read as setuptools reads it for the
    project's metadata: a requirement per line, whole-line comments, nothing else (no -r, no options)."""
    found = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"pin {requirement.name} with ==, not {specifier}"
        found[canonicalize_name(requirement.name)] = specifier.version
    return found


def locked(text: str) -> dict[str, str]:
    """A lock's pins by normalized name; every one carries hashes."""
    lines = text.splitlines()
    found = {}
    for index, line in enumerate(lines):
        match = LOCKED.match(line)
        if not match:
            continue
        requirement = Requirement(match["requirement"])
        (specifier,) = requirement.specifier
        assert lines[index + 1].strip().startswith("--hash=sha256:"), f"{line} has no hash"
        found[canonicalize_name(requirement.name)] = specifier.version
    return found


def drift(lock: str, sources: dict[str, str]) -> list[str]:
    """What the requirements files (name: text) pin that the lock (text) does not, or at another version."""
    held = locked(lock)
    return [
        f"{source} pins {name}=={version}, the lock {held.get(name) or 'does not hold it'}"
        for source, text in sources.items()
        for name, version in pins(text).items()
        if held.get(name) != version
    ]


def read(name: str) -> str:
    return (ROOT / name).read_text()


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_of_the_requirements_files_is_in_its_lock_at_that_version(lock):
    assert drift(read(lock), {source: read(source) for source in LOCKS[lock]}) == [], "run make lock"


def test_a_pin_the_lock_lacks_or_holds_at_another_version_is_drift():
    lock = read("requirements.lock")
    flask = pins(read("requirements.txt"))["flask"]
    bumped = read("requirements.txt").replace(f"Flask=={flask}", "Flask==0.1")
    assert drift(lock, {"requirements.txt": bumped}) == [
        "requirements.txt pins flask==0.1, the lock " + flask
    ]
    added = read("requirements.txt") + "left-pad-nowhere==1.0.0\n"
    assert drift(lock, {"requirements.txt": added}) == [
        "requirements.txt pins left-pad-nowhere==1.0.0, the lock does not hold it"
    ]


def test_each_lock_holds_the_one_before_it_at_the_same_versions():
    runtime, embedded, dev = (locked(read(lock)) for lock in LOCKS)
    assert embedded.items() >= runtime.items()
    assert dev.items() >= embedded.items()


def test_the_runtime_lock_holds_no_embedded_store_and_no_dev_tool():
    runtime = locked(read("requirements.lock"))
    assert "mongomock" in pins(read("requirements-embedded.txt"))
    for source in ("requirements-embedded.txt", "requirements-dev.txt"):
        assert not runtime.keys() & pins(read(source)).keys(), source


# Makes every import of mongomock fail, as it would where it is not installed.
BLOCK_MONGOMOCK = """
import sys

class NoMongomock:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "mongomock":
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, NoMongomock())
"""


def run_python(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_MONGOMOCK + textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_app_runs_against_a_mongodb_server_without_mongomock_installed():
    """Production installs requirements.lock, which has no mongomock: every module of the app imports,
    and the app is created and answers, with mongomock impossible to import."""
    done = run_python(
        """
        import importlib, os, pkgutil

        os.environ.update(
            APP_ENV="production",
            SECRET_KEY="a-production-secret",
            JWT_SECRET_KEY="a-production-jwt-secret-of-32-characters",
            ENCRYPTION_KEYS="cHJvZHVjdGlvbi1lbmNyeXB0aW9uLWtleS0wMDAwMDA=",
            MONGODB_URI="mongodb://127.0.0.1:9/telegram_marketing?serverSelectionTimeoutMS=200",
            CREATE_INDEXES="false",
        )
        import app
        for module in pkgutil.walk_packages(app.__path__, "app."):
            importlib.import_module(module.name)
        from wsgi import app as application

        answer = application.test_client().get("/healthz")
        assert answer.status_code == 200, answer.text
        assert not [name for name in sys.modules if name.startswith("mongomock")]
        print("served without mongomock")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "served without mongomock"


def test_the_block_of_mongomock_is_real():
    """The same guard makes the embedded store fail, so the test above proves what it says."""
    done = run_python(
        """
        from app import db

        db.connect("mongomock://localhost/blocked")
        """
    )
    assert done.returncode != 0
    assert "No module named 'mongomock'" in done.stderr
