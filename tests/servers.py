"""The service and the Bot API sandbox in processes of their own, started as `make run` and
docker-compose.smoke.yml start them, for the tests of what those promise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from .support import ROOT

GUNICORN = Path(sys.executable).parent / "gunicorn"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(process: subprocess.Popen, url: str, timeout: float = 60) -> None:
    """Wait until `url` answers 200; fail with the process's output if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or still starting
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.1)


def start_service(port: int, **settings: str) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:`port` as `make run` starts it (development, embedded store, demo data,
    its own Bot API sandbox), with `settings` on top; returned once it answers /healthz."""
    base = f"http://127.0.0.1:{port}"
    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGODB_TEST_URI")},
        "APP_ENV": "development",
        "SEED_DEMO": "true",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "TELEGRAM_API_BASE": f"{base}/sandbox/bot-api",
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    process = subprocess.Popen(
        [str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(process, f"{base}/healthz")
    return process


def start_sandbox(port: int) -> subprocess.Popen:
    """The Bot API sandbox served alone (`python -m app.telegram.sandbox`), on 127.0.0.1:`port`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "app.telegram.sandbox", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(process, f"http://127.0.0.1:{port}/messages")
    return process


def stop(process: subprocess.Popen) -> None:
    """Kill the process if it still runs, and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    process.stdout.close()


def smoke(base_url: str, *args: str) -> subprocess.CompletedProcess:
    """scripts/smoke.py against `base_url`, in a process of its own."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "smoke.py"), base_url, "--timeout", "30", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
