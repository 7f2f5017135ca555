"""What the Dockerfile builds, read from it: the runtime lock installed alone, and only the service's
own files copied into the image, which are enough to start it. (No Docker engine runs the suite; the
image itself is built and smoke-tested in CI, .github/workflows/ci.yml.)"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from .support import ROOT


def instructions() -> list[tuple[str, list[str]]]:
    """The Dockerfile's instructions, as (keyword, arguments), continuation lines joined."""
    logical, current = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    parsed = []
    for text in logical:
        keyword, _, rest = text.partition(" ")
        parsed.append((keyword.upper(), shlex.split(rest)))
    return parsed


def final_stage() -> list[tuple[str, list[str]]]:
    found = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(found) if keyword == "FROM")
    return found[last_from:]


def copies(stage: list[tuple[str, list[str]]]) -> list[list[str]]:
    """The sources of the stage's COPY instructions from the build context."""
    return [
        [arg for arg in args[:-1] if not arg.startswith("--")]
        for keyword, args in stage
        if keyword == "COPY" and not any(arg.startswith("--from=") for arg in args)
    ]


def test_the_image_installs_the_runtime_lock_alone_with_hashes():
    found = instructions()
    installs = [args for keyword, args in found if keyword == "RUN" and "install" in args]
    assert len(installs) == 1
    command = installs[0]
    assert command[0].endswith("pip")
    assert {"--no-cache-dir", "--require-hashes", "--no-deps"} <= set(command)
    lock = command[command.index("-r") + 1]
    assert ["COPY", ["requirements.lock", lock]] in [[keyword, args] for keyword, args in found]
    text = (ROOT / "Dockerfile").read_text()
    for other in ("requirements.txt", "requirements-dev", "mongomock", "pytest"):
        assert other not in text


def test_the_final_stage_copies_the_service_and_its_scripts_only():
    stage = final_stage()
    sources = {source for sources in copies(stage) for source in sources}
    assert sources == {
        "app",
        "config.py",
        "wsgi.py",
        "gunicorn.conf.py",
        "scripts/migrate_to_multitenant.py",
        "scripts/shard_collections.py",
    }
    from_builder = [args for keyword, args in stage if keyword == "COPY" and "--from=builder" in args]
    assert from_builder == [["--from=builder", "/opt/venv", "/opt/venv"]]
    assert ("USER", ["app"]) in stage


def test_the_build_context_leaves_out_tests_tools_and_secrets():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests", "bench", "docs", ".env", "requirements-dev.txt"} <= ignored


def test_the_copied_files_are_enough_to_start_the_service_and_the_migration(tmp_path):
    """The image's files alone, in a directory of their own: the app is made, gunicorn's settings load,
    and the scripts the image runs start."""
    for sources in copies(final_stage()):
        for source in sources:
            target = tmp_path / source
            target.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / source, target)
    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "PYTHONPATH")},
        "APP_ENV": "development",
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert run("-c", "import wsgi; print(wsgi.app.name, wsgi.__file__)").split()[1].startswith(str(tmp_path))
    assert "control_socket" in run("-c", "import runpy; print(sorted(runpy.run_path('gunicorn.conf.py')))")
    assert "--dry-run" in run("scripts/migrate_to_multitenant.py", "--help")
    assert "--dry-run" in run("scripts/shard_collections.py", "--help")
