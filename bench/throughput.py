"""Throughput of the service against the framework's own floor, measured in one run (make bench).

A bare Flask app and this service run under the same gunicorn settings (gthread, 1 worker: the
embedded store allows one, so both get one; 8 threads) on loopback, and wrk loads each endpoint for
the same time with the same connections. Every figure is also given as a ratio to the bare endpoint
of the same run.

    .venv/bin/python bench/throughput.py [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = [
    str(ROOT / ".venv" / "bin" / "gunicorn"),
    "--worker-class",
    "gthread",
    "--workers",
    "1",
    "--threads",
    "8",
]
POST_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  wrk.body = '{"name": "load ' .. counter .. '", "message": {"text": "hi"}, "targets": ["@channel1"]}'
  return wrk.format()
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (make bench does)")


def workspace() -> tuple[Path, Path]:
    """A scratch folder, and in it the empty gunicorn config that `serve` takes."""
    workdir = Path(tempfile.mkdtemp())
    empty = workdir / "gunicorn_empty.conf.py"
    empty.write_text("")
    return workdir, empty


def serve(module: str, port: int, env: dict[str, str], config: Path) -> subprocess.Popen:
    """Start gunicorn with GUNICORN's settings only (`config` is empty: gunicorn.conf.py stays out)."""
    process = subprocess.Popen(
        [
            *GUNICORN,
            "--config",
            str(config),
            "--chdir",
            str(ROOT / "bench"),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            module,
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{module} did not start")


def serve_service(workdir: Path, config: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, dict]:
    """Start service_app (development settings plus `env`) as `serve` does; wait for its worker to seed
    the store, and return gunicorn, the service's URL and the credentials the worker wrote."""
    port = free_port()
    credentials = workdir / "credentials.json"
    settings = {"APP_ENV": "development", "BENCH_CREDENTIALS": str(credentials), "LOG_LEVEL": "WARNING"}
    process = serve("service_app:app", port, {**settings, **env}, config)
    deadline = time.monotonic() + 60
    while not credentials.exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the worker seeds its store after gunicorn has bound the port
    if not credentials.exists():
        process.kill()
        raise SystemExit("service_app did not seed its store")
    return process, f"http://127.0.0.1:{port}", json.loads(credentials.read_text())


def load(
    url: str, seconds: int, connections: int, headers: dict[str, str], script: str | None = None
) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", script]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p50": latency.get("50"),
        "p99": latency.get("99"),
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    require_wrk()
    workdir, empty = workspace()
    post_script = workdir / "post.lua"
    post_script.write_text(POST_SCRIPT)
    bare_port = free_port()
    processes = [serve("bare_app:app", bare_port, {}, empty)]
    try:
        service_process, service, secrets = serve_service(workdir, empty, {})
        processes.append(service_process)
        bearer = {"Authorization": f"Bearer {secrets['token']}"}
        cases = [
            ("bare GET /ping", f"http://127.0.0.1:{bare_port}/ping", {}, None),
            ("GET /api/v1/tenants/current (bearer)", f"{service}/api/v1/tenants/current", bearer, None),
            (
                "GET /api/v1/campaigns?perPage=20 (bearer)",
                f"{service}/api/v1/campaigns?perPage=20",
                bearer,
                None,
            ),
            (
                "GET /api/v1/campaigns?perPage=20 (API key)",
                f"{service}/api/v1/campaigns?perPage=20",
                {"X-API-Key": secrets["apiKey"]},
                None,
            ),
            ("POST /api/v1/campaigns (bearer)", f"{service}/api/v1/campaigns", bearer, str(post_script)),
        ]
        results = [
            (name, load(url, args.seconds, args.connections, headers, script))
            for name, url, headers, script in cases
        ]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    floor = results[0][1]["rps"]
    setup = f"wrk -t2 -c{args.connections} -d{args.seconds}s; gunicorn gthread, 1 worker x 8 threads"
    print(f"{setup}; {os.cpu_count()} cores")
    print(f"{'endpoint':<44} {'req/s':>9} {'p50':>9} {'p99':>9} {'ratio':>7} {'non-2xx':>8}")
    for name, result in results:
        print(
            f"{name:<44} {result['rps']:>9.0f} {result['p50']:>9} {result['p99']:>9} "
            f"{result['rps'] / floor:>7.2f} {result['non2xx']:>8}"
        )


if __name__ == "__main__":
    sys.exit(main())
