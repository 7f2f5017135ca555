"""Soak the service with a mix of reads, writes, sends and logins for a set time, and watch its memory.

    .venv/bin/python bench/soak.py [--seconds 60] [--concurrency 8]

The service runs as in bench/throughput.py (gunicorn gthread, 1 worker x 8 threads, embedded store,
an enterprise tenant: no plan limit or hourly API rate). Before the load, the soak connects a bot
(checked with getMe against the fake Telegram of the tests, which TELEGRAM_API_BASE points at) and adds
a member to log in as; the login rate limits are raised out of the way. wrk then keeps `concurrency`
connections busy, one per thread, each repeating this cycle of 20 requests:

    6 x GET /api/v1/tenants/current               (bearer)
    6 x GET /api/v1/campaigns?perPage=20          (bearer)
    4 x POST /api/v1/campaigns                    (bearer; a draft for the bot)
    3 x POST /api/v1/campaigns/{id}/send          (bearer; a draft this connection created)
    1 x POST /api/v1/auth/login                   (the member's email and password)

A send only queues the campaign's message: the scheduler's dispatch job, not a web request, talks to
Telegram, and it cannot reach the embedded store, which lives in the gunicorn worker.
Answers 402 and 429 (plan quota, rate limit) are counted apart from errors; an error is any other
unexpected status or a connection error. The RSS of the gunicorn worker is read before the load, right
after it, and SETTLE_SECONDS later, once the requests wrk left in flight are done: a login hashes with
argon2id's defaults (64 MiB each), so the RSS right after the load swings with the logins in flight.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests
from throughput import ROOT, require_wrk, serve_service, workspace

sys.path.insert(0, str(ROOT))

from tests.fake_telegram import FakeTelegram  # noqa: E402

KINDS = {
    "tenant": ("GET /api/v1/tenants/current", 200),
    "campaigns": ("GET /api/v1/campaigns?perPage=20", 200),
    "create": ("POST /api/v1/campaigns", 201),
    "send": ("POST /api/v1/campaigns/{id}/send", 202),
    "login": ("POST /api/v1/auth/login", 200),
}
REFUSALS = (402, 429)
NO_LIMIT = "1000000/minute"
SETTLE_SECONDS = 5
BOT_TOKEN = "123456789:" + "A" * 35
MEMBER = {"email": "soak@bench.example.com", "name": "Soak", "password": "soak password 1", "role": "member"}
# wrk makes one connection per thread (-t N -c N), so every response answers the request made just
# before it on the same thread: the thread's globals hold the kind and start of the request in flight.
# A request whose connection is lost gets no response; wrk counts it as a socket error.
# init() gets the bearer token, the body of a new campaign and the body of a login.
MIX_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
struct soak_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clock, struct soak_timespec *now);
]]
local clock = ffi.new("struct soak_timespec")

local function now_us()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

local CYCLE = {
  "tenant", "campaigns", "create", "tenant", "campaigns", "send", "tenant", "campaigns", "create", "login",
  "tenant", "campaigns", "create", "tenant", "campaigns", "send", "tenant", "campaigns", "create", "send",
}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  reader = {["Authorization"] = "Bearer " .. args[1]}
  writer = {["Authorization"] = "Bearer " .. args[1], ["Content-Type"] = "application/json"}
  anonymous = {["Content-Type"] = "application/json"}
  campaign_body, login_body = args[2], args[3]
  drafts, kinds, statuses, latencies = {}, {}, {}, {}
  turn, pending, started = 0, nil, 0
end

function request()
  turn = turn % #CYCLE + 1
  pending = CYCLE[turn]
  if pending == "send" and #drafts == 0 then
    pending = "create" -- the creates before it failed: nothing to send
  end
  started = now_us()
  if pending == "tenant" then
    return wrk.format("GET", "/api/v1/tenants/current", reader)
  elseif pending == "campaigns" then
    return wrk.format("GET", "/api/v1/campaigns?perPage=20", reader)
  elseif pending == "create" then
    return wrk.format("POST", "/api/v1/campaigns", writer, campaign_body)
  elseif pending == "send" then
    return wrk.format("POST", "/api/v1/campaigns/" .. table.remove(drafts) .. "/send", reader, "")
  end
  return wrk.format("POST", "/api/v1/auth/login", anonymous, login_body)
end

function response(status, headers, body)
  if pending == "create" and status == 201 then
    table.insert(drafts, body:match('"id":%s*"(%x+)"'))
  end
  table.insert(kinds, pending)
  table.insert(statuses, status)
  table.insert(latencies, now_us() - started)
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local kinds, statuses, latencies = thread:get("kinds"), thread:get("statuses"), thread:get("latencies")
    for i = 1, #kinds do
      io.write(string.format("sample %s %d %d\\n", kinds[i], statuses[i], latencies[i]))
    end
  end
  local errors = summary.errors
  io.write(string.format("socket connect %d read %d write %d timeout %d\\n",
    errors.connect, errors.read, errors.write, errors.timeout))
end
"""


def worker_rss(master: int) -> dict[int, int]:
    """VmRSS in kB of each child process of the gunicorn master, by pid."""
    rss = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue  # the process ended meanwhile
        if int(re.search(r"^PPid:\s+(\d+)", text, re.MULTILINE).group(1)) == master:
            rss[int(status.parent.name)] = int(re.search(r"^VmRSS:\s+(\d+)", text, re.MULTILINE).group(1))
    return rss


def provision(service: str, token: str) -> str:
    """Connect a bot and add the member who logs in; return the bot's id."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        session.post(f"{service}/api/v1/users", json=MEMBER, timeout=30).raise_for_status()
        bot = session.post(
            f"{service}/api/v1/telegram-accounts", json={"name": "soak", "token": BOT_TOKEN}, timeout=30
        )
        bot.raise_for_status()
        return bot.json()["id"]


def percentile(ordered: list[int], share: float) -> str:
    """The nearest-rank percentile of sorted microseconds, in milliseconds."""
    if not ordered:
        return "-"
    return f"{ordered[max(0, math.ceil(share * len(ordered)) - 1)] / 1000:.1f}"


def print_row(name: str, row: Counter, seconds: int, ordered: list[int]) -> None:
    print(
        f"{name:<36} {row['count']:>7} {row['count'] / seconds:>6.0f} {row['ok']:>7} {row['refused']:>7} "
        f"{row['errors']:>6} {percentile(ordered, 0.50):>7} {percentile(ordered, 0.99):>7}"
    )


def mib(kilobytes: int | None) -> str:
    return "-" if kilobytes is None else f"{kilobytes / 1024:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    require_wrk()
    workdir, empty = workspace()
    script = workdir / "mix.lua"
    script.write_text(MIX_SCRIPT)
    telegram = FakeTelegram().start()
    env = {
        "TELEGRAM_API_BASE": telegram.url,
        "LOGIN_RATE_LIMIT_PER_IP": NO_LIMIT,
        "LOGIN_RATE_LIMIT_PER_EMAIL": NO_LIMIT,
        "ANONYMOUS_RATE_LIMIT_PER_IP": NO_LIMIT,
    }
    process, service, secrets = serve_service(workdir, empty, env)
    try:
        bot_id = provision(service, secrets["token"])
        campaign = {
            "name": "soak",
            "message": {"text": "hi"},
            "targets": ["@channel1"],
            "telegramAccountId": bot_id,
        }
        login = {"email": MEMBER["email"], "password": MEMBER["password"]}
        rss_start = worker_rss(process.pid)
        concurrency = args.concurrency
        output = subprocess.run(
            ["wrk", f"-t{concurrency}", f"-c{concurrency}", f"-d{args.seconds}s", "--timeout", "30s"]
            + ["-s", str(script), service, "--", secrets["token"], json.dumps(campaign), json.dumps(login)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rss_end = worker_rss(process.pid)
        time.sleep(SETTLE_SECONDS)
        rss_settled = worker_rss(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
        telegram.stop()
    latencies: dict[str, list[int]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    for kind, status, latency in re.findall(r"^sample (\w+) (\d+) (\d+)$", output, re.MULTILINE):
        statuses[kind][int(status)] += 1
        latencies[kind].append(int(latency))
    print(
        f"wrk -t{concurrency} -c{concurrency} -d{args.seconds}s with the mix script; "
        f"gunicorn gthread, 1 worker x 8 threads; {os.cpu_count()} cores"
    )
    print(
        f"{'request':<36} {'count':>7} {'req/s':>6} {'ok':>7} {'402/429':>7} {'errors':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7}"
    )
    totals: Counter = Counter()
    errors = []
    for kind, (name, expected) in KINDS.items():
        counts = statuses[kind]
        row = Counter(
            count=counts.total(),
            ok=counts[expected],
            refused=sum(counts[status] for status in REFUSALS),
        )
        row["errors"] = row["count"] - row["ok"] - row["refused"]
        totals += row
        errors += [
            (name, status, n) for status, n in sorted(counts.items()) if status not in (expected, *REFUSALS)
        ]
        print_row(name, row, args.seconds, sorted(latencies[kind]))
    print_row("all", totals, args.seconds, sorted(value for values in latencies.values() for value in values))
    for name, status, n in errors:
        print(f"error: {name}: {n} x {status}")
    print("connection errors (wrk):", re.search(r"^socket (.*)$", output, re.MULTILINE).group(1))
    for pid in sorted(rss_start.keys() | rss_end.keys() | rss_settled.keys()):
        print(
            f"gunicorn worker {pid} VmRSS: start {mib(rss_start.get(pid))}, end {mib(rss_end.get(pid))}, "
            f"{SETTLE_SECONDS} s later {mib(rss_settled.get(pid))}"
        )


if __name__ == "__main__":
    sys.exit(main())
