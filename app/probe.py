"""The healthcheck of the scheduler's and the dispatchers' containers.

`python -m app.probe scheduler` (or `dispatcher`) reads the metrics the process serves on this host
(METRICS_PORT) and exits 0 while its main loop went round within `--max-age` seconds, leading or
waiting, else 1 with one line saying why. It needs no settings and no database: whether MongoDB
answers is its own container's healthcheck.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

HEARTBEAT = "process_heartbeat_timestamp_seconds"
PROCESSES = ("scheduler", "dispatcher")


def last_beat(exposition: str, process: str) -> float | None:
    """When `process` last went round, from a metrics exposition (None: it never said)."""
    beats = [
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == HEARTBEAT and sample.labels.get("process") == process
    ]
    return max(beats, default=None)


def check(process: str, port: int, max_age: float, timeout: float = 5.0) -> str | None:
    """What is wrong with `process` (None: it is alive)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as answer:
            exposition = answer.read().decode()
    except (OSError, urllib.error.URLError) as exc:
        return f"no metrics on port {port}: {exc}"
    beat = last_beat(exposition, process)
    if beat is None:
        return f"the {process} has not gone round its loop yet"
    age = time.time() - beat
    if age > max_age:
        return f"the {process} last went round its loop {age:.0f} s ago (more than {max_age:g} s)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.probe", description=__doc__.splitlines()[0])
    parser.add_argument("process", choices=PROCESSES)
    parser.add_argument("--port", type=int, default=int(os.environ.get("METRICS_PORT") or 9100))
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds (default: 60)")
    options = parser.parse_args(argv)
    problem = check(options.process, options.port, options.max_age)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
