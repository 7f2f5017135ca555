"""Fuzz the service under gunicorn with Schemathesis, longer than the in-process run of `make test`.

    .venv/bin/python bench/fuzz.py [--max-examples 300] [--seconds 1800]

The service runs as in bench/throughput.py (gunicorn gthread, 1 worker x 8 threads, embedded store,
an enterprise tenant), with the fake Telegram of the tests. `schemathesis run` reads the service's
OpenAPI document and sends every operation with the tenant's admin API key and the checks of
tests/test_fuzz.py. A key, not the owner's token: the run spends minutes in one tenant, and a fuzzed
logout would revoke a token for the rest of it (the in-process run gives every operation a fresh
tenant and uses a token). It exits with Schemathesis' status.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from throughput import ROOT, serve_service, workspace

sys.path.insert(0, str(ROOT))

from tests.fake_telegram import FakeTelegram  # noqa: E402

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=1800, help="stop Schemathesis after this long")
    args = parser.parse_args()
    workdir, empty = workspace()
    telegram = FakeTelegram().start()
    process, service, secrets = serve_service(workdir, empty, {"TELEGRAM_API_BASE": telegram.url})
    try:
        command = [
            str(ROOT / ".venv" / "bin" / "schemathesis"),
            "run",
            f"{service}/api/v1/openapi.json",
            "--header",
            f"X-API-Key: {secrets['apiKey']}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(args.max_examples),
        ]
        result = subprocess.run(command, timeout=args.seconds, check=False)
    finally:
        process.terminate()
        process.wait()
        telegram.stop()
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
