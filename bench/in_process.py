"""What a request costs inside the worker, without gunicorn and the network: microseconds per request
of the bare Flask app and of each endpoint bench/throughput.py loads, called through their WSGI
callables in this process (the service seeded as service_app seeds it), and each as a multiple of the
bare app's request measured in the same run.

Under gunicorn a request costs its server's work on top (parsing, the socket, the thread pool), the
same for both apps: the ratio bench/throughput.py measures is (server + bare) / (server + endpoint).

    .venv/bin/python bench/in_process.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import timeit
from pathlib import Path
from urllib.parse import urlsplit

from werkzeug.test import EnvironBuilder

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from throughput import cases  # noqa: E402

REQUESTS = {"lists": 200, "reads": 1000}
CAMPAIGN = b'{"name": "in process", "message": {"text": "hi"}, "targets": ["@channel1"]}'


def per_request(
    app, path: str, query: str, headers: dict[str, str], body: bytes | None, repeat: int
) -> float:
    """Microseconds per request of `app` for one request, the best of `repeat` rounds."""
    method = "POST" if body else "GET"
    content_type = "application/json" if body else None
    environ = EnvironBuilder(
        path=path, query_string=query, method=method, headers=headers, data=body, content_type=content_type
    ).get_environ()
    raw = environ["wsgi.input"].read() if body else b""

    def start_response(status, response_headers, exc_info=None):
        return None

    def call():
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(raw)
        b"".join(app(env, start_response))

    number = REQUESTS["lists"] if "perPage" in query or body else REQUESTS["reads"]
    for _ in range(number // 10):
        call()
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    credentials = Path(tempfile.mkdtemp()) / "credentials.json"
    os.environ.update(APP_ENV="development", BENCH_CREDENTIALS=str(credentials), LOG_LEVEL="WARNING")
    import bare_app
    import service_app

    secrets = json.loads(credentials.read_text())
    rows = []
    for index, (name, url, headers, script) in enumerate(
        cases("http://bare", "http://service", secrets, Path())
    ):
        parts = urlsplit(url)
        app = bare_app.app if parts.netloc == "bare" else service_app.app
        body = (
            b'{"name": "in process", "message": {"text": "hi"}, "targets": ["@channel1"]}' if script else None
        )
        rows.append((name, per_request(app, parts.path, parts.query, headers, body, args.repeat)))
        if index == 0:
            healthz = per_request(service_app.app, "/healthz", "", {}, None, args.repeat)
            rows.append(("GET /healthz (no tenancy, no database)", healthz))
    floor = rows[0][1]
    print(f"{'endpoint':<44} {'us/request':>11} {'x bare':>7}")
    for name, micros in rows:
        print(f"{name:<44} {micros:>11.0f} {micros / floor:>7.1f}")


if __name__ == "__main__":
    main()
