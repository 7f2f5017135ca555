"""Where a route's time goes under load: py-spy samples the gunicorn worker while wrk loads the route.

The service runs as bench/throughput.py runs it. py-spy samples only the thread holding the GIL, so
each function's share is its share of the worker's CPU, and waiting threads do not count. Each line
is one function with everything it calls (a share of all samples).

    .venv/bin/python bench/profile.py [--path /api/v1/campaigns/{campaignId}] [--api-key] [--seconds 8]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import ROOT, load, require_wrk, serve_service, workspace  # noqa: E402

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"


def shares(raw: Path) -> tuple[int, Counter[str]]:
    """Read py-spy's raw output (one stack and its sample count per line): samples per function."""
    total = 0
    inclusive: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        names = set()
        for frame in stack.split(";"):
            function, _, where = frame.partition(" (")
            names.add(f"{function} ({where.rsplit('/', 1)[-1].split(':')[0]})")
        for name in names:
            inclusive[name] += int(count)
    return total, inclusive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--path",
        default="/api/v1/tenants/current",
        help="may name the seeded {campaignId} and {userId}: /api/v1/campaigns/{campaignId}",
    )
    parser.add_argument("--api-key", action="store_true", help="authenticate with the API key")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    require_wrk()
    if not PY_SPY.exists():
        raise SystemExit("py-spy is missing: make install (requirements-dev.txt)")
    workdir, empty = workspace()
    raw = workdir / "samples.txt"
    process, service, secrets = serve_service(workdir, empty, {})
    try:
        worker = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        if args.api_key:
            headers = {"X-API-Key": secrets["apiKey"]}
        else:
            headers = {"Authorization": f"Bearer {secrets['token']}"}
        path = args.path.format(**secrets)
        url = service + path
        load(url, 2, args.connections, headers)  # warm the caches
        command = [str(PY_SPY), "record", "--pid", worker, "--gil", "--nonblocking", "--rate", "250"]
        sampler = subprocess.Popen(
            [*command, "--format", "raw", "--duration", str(args.seconds), "--output", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        result = load(url, args.seconds, args.connections, headers)
        sampler.wait(timeout=args.seconds + 30)
    finally:
        process.terminate()
        process.wait(timeout=30)
    total, inclusive = shares(raw)
    if not total:
        raise SystemExit("py-spy took no samples (it needs ptrace: run as root or with CAP_SYS_PTRACE)")
    print(f"GET {path}: {result['rps']:.0f} req/s while sampled; {total} samples of the GIL holder")
    for name, count in inclusive.most_common(args.top):
        print(f"{count / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
