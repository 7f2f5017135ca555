"""Throughput of the service against the framework's own floor, measured in one run (make bench).

A bare Flask app and this service run under the same gunicorn settings (gthread, 1 worker: the
embedded store allows one, so both get one; 8 threads) on loopback, and wrk loads each endpoint for
the same time with the same connections. The machine is shared and its speed drifts, so the load comes
in rounds: each round loads the bare endpoint and then every endpoint of the service, each endpoint's
ratio is to the bare endpoint of its own round, and the table gives the median over the rounds (and the
lowest and highest ratio). The reads' rounds come first, then the creates' (which add campaigns to the
list the reads page through).

    .venv/bin/python bench/throughput.py [--rounds 3] [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
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


def cases(
    bare: str, service: str, secrets: dict, post_script: Path
) -> list[tuple[str, str, dict, str | None]]:
    """(name, URL, headers, wrk script) of each endpoint, the bare one first."""
    bearer = {"Authorization": f"Bearer {secrets['token']}"}
    key = {"X-API-Key": secrets["apiKey"]}
    return [
        ("bare GET /ping", f"{bare}/ping", {}, None),
        ("GET /api/v1/tenants/current (bearer)", f"{service}/api/v1/tenants/current", bearer, None),
        ("GET /api/v1/auth/me (bearer)", f"{service}/api/v1/auth/me", bearer, None),
        (
            "GET /api/v1/campaigns/<id> (bearer)",
            f"{service}/api/v1/campaigns/{secrets['campaignId']}",
            bearer,
            None,
        ),
        ("GET /api/v1/users/<id> (bearer)", f"{service}/api/v1/users/{secrets['userId']}", bearer, None),
        ("GET /api/v1/campaigns?perPage=20 (bearer)", f"{service}/api/v1/campaigns?perPage=20", bearer, None),
        ("GET /api/v1/campaigns?perPage=20 (API key)", f"{service}/api/v1/campaigns?perPage=20", key, None),
        ("POST /api/v1/campaigns (bearer)", f"{service}/api/v1/campaigns", bearer, str(post_script)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="load per endpoint and round")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    require_wrk()
    workdir, empty = workspace()
    post_script = workdir / "post.lua"
    post_script.write_text(POST_SCRIPT)
    bare_port = free_port()
    processes = [serve("bare_app:app", bare_port, {}, empty)]
    samples: dict[str, list[tuple[dict, float]]] = {}
    try:
        service_process, service, secrets = serve_service(workdir, empty, {})
        processes.append(service_process)
        endpoints = cases(f"http://127.0.0.1:{bare_port}", service, secrets, post_script)
        bare, reads, writes = endpoints[0], endpoints[1:-1], endpoints[-1:]
        samples = {name: [] for name, *_ in endpoints}
        for group in (reads, writes):
            for _ in range(args.rounds):
                floor = load(bare[1], args.seconds, args.connections, bare[2])
                samples[bare[0]].append((floor, 1.0))
                for name, url, headers, script in group:
                    result = load(url, args.seconds, args.connections, headers, script)
                    samples[name].append((result, result["rps"] / floor["rps"]))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    setup = f"wrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds"
    setup += "; gunicorn gthread, 1 worker x 8 threads"
    print(f"{setup}; {os.cpu_count()} cores")
    print(
        f"{'endpoint':<44} {'req/s':>9} {'p50':>9} {'p99':>9} {'ratio':>7} {'min':>6} {'max':>6}",
        f"{'non-2xx':>8}",
    )
    for name, measured in samples.items():
        ratios = [ratio for _, ratio in measured]
        middle = sorted((result for result, _ in measured), key=lambda result: result["rps"])[
            len(measured) // 2
        ]
        print(
            f"{name:<44} {middle['rps']:>9.0f} {middle['p50']:>9} {middle['p99']:>9} "
            f"{statistics.median(ratios):>7.2f} {min(ratios):>6.2f} {max(ratios):>6.2f} "
            f"{sum(result['non2xx'] for result, _ in measured):>8}"
        )


if __name__ == "__main__":
    sys.exit(main())
