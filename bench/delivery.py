"""Campaign delivery against Telegram's own rate (make bench).

A fake Bot API (the development sandbox, keeping Telegram's limits) runs in a process of its own and
answers every send after 50 ms; the dispatcher runs in this process on the embedded store, as
`flask dispatcher run` would. Each bot has more queued than it can send in the measurement, and
the rate is what the fake received in a steady window (after a warm-up), next to Telegram's
ceiling of 30 messages a second per bot.

    .venv/bin/python bench/delivery.py [--bots 1,5,20,50] [--seconds 10] [--memory 100000]

Rows: each bot count; the same bots with one more whose Bot API answers in 2 s (the others' rate
must not drop); two dispatchers (separate lease holders) in one process sharing the bots; the
database operations per message in the window; and the memory the process grows by while the
dispatcher sends from 1,000 and from --memory queued messages, next to the most messages it held.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("APP_ENV", "testing")

from app import create_app  # noqa: E402
from app.campaigns.service import create_campaign, send_campaign  # noqa: E402
from app.db import counted_operations, database  # noqa: E402
from app.dispatcher.runner import Dispatcher  # noqa: E402
from app.messages.models import Message  # noqa: E402
from app.telegram.sandbox import SEND_METHODS, Answer, Sandbox, SandboxServer  # noqa: E402
from app.telegram_accounts.service import create_account  # noqa: E402
from app.tenancy.access import Principal  # noqa: E402
from app.tenancy.context import tenant_scope, unscoped  # noqa: E402
from app.tenants.service import create_tenant  # noqa: E402
from app.workers import SENDERS  # noqa: E402

CEILING = 30  # Telegram's messages a second per bot for broadcasts
LATENCY = 0.05
SLOW_LATENCY = 2.0
SLOW_BOT = 990000001
WARM_UP = 2.0
SECRET = "A" * 35


# -- the fake Bot API, in a process of its own ------------------------------------------------------


class CountingSandbox(Sandbox):
    """The sandbox, counting what each bot sent and any chat a bot reached twice."""

    def reset(self) -> None:
        super().reset()
        self.counts: dict[str, int] = {}
        self.seen: set[tuple[str, str]] = set()
        self.twice = 0

    def answer(self, token: str, method: str, params: dict[str, Any]) -> Answer:
        status, body = super().answer(token, method, params)
        if status == 200 and method in SEND_METHODS:
            bot, chat = token.split(":", 1)[0], str(params.get("chat_id"))
            with self.lock:
                self.counts[bot] = self.counts.get(bot, 0) + 1
                self.twice += (bot, chat) in self.seen
                self.seen.add((bot, chat))
        return status, body


def serve_fake() -> None:
    """Serve the fake Bot API; answer 'stats' and 'reset' on stdin, one JSON line each."""
    sandbox = CountingSandbox(keep=100)
    server = SandboxServer(sandbox, lambda bot: SLOW_LATENCY if bot == str(SLOW_BOT) else LATENCY).start()
    print(server.url, flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            sandbox.reset()
        with sandbox.lock:
            stats = {
                "sent": dict(sandbox.counts),
                "twice": sandbox.twice,
                "violations": len(sandbox.violations),
            }
        print(json.dumps(stats), flush=True)


class Fake:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-fake"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.process.stdout.readline().strip()

    def ask(self, command: str) -> dict[str, Any]:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


# -- the service side -------------------------------------------------------------------------------


def fresh(app) -> None:
    database().client.drop_database(database().name)


def queue(app, bots: list[int], per_bot: int) -> None:
    """One tenant per bot, each with one campaign of `per_bot` private chats, sent."""
    with app.app_context():
        for bot in bots:
            tenant = create_tenant(f"Bench {bot}", f"bench-{bot}", plan="enterprise")
            with tenant_scope(tenant):
                account = create_account(f"bot {bot}", f"{bot}:{SECRET}")
                author = Principal(subject="bench", role="owner", tenant_id=tenant.id, via="access_token")
                fields = {
                    "name": "Bench",
                    "message": {"text": "Hello from the bench"},
                    "targets": [str(bot * 1_000_000 + n) for n in range(per_bot)],
                    "telegram_account_id": str(account.id),
                }
                send_campaign(create_campaign(fields, author).id)


def measure(app, fake: Fake, bots: list[int], seconds: float, dispatchers: int = 1) -> dict[str, Any]:
    """Rate per bot in a steady window, database operations per message, and what the fake saw."""
    fresh(app)
    fake.ask("reset")
    queue(app, bots, round(CEILING * (WARM_UP + seconds + 3)))
    running = [Dispatcher(app, SENDERS, holder=f"bench-{n}") for n in range(dispatchers)]
    threads = [threading.Thread(target=d.run, daemon=True) for d in running]
    for thread in threads:
        thread.start()
    time.sleep(WARM_UP)
    with counted_operations() as ops:
        before = fake.ask("stats")
        started = time.monotonic()
        time.sleep(seconds)
        after = fake.ask("stats")
        elapsed = time.monotonic() - started
    for dispatcher in running:
        dispatcher.stop()
    sent = {bot: after["sent"].get(bot, 0) - before["sent"].get(bot, 0) for bot in after["sent"]}
    return {"sent": sent, "seconds": elapsed, "ops": ops["total"], "twice": after["twice"], "fake": after}


def rate_of(result: dict[str, Any], bots: list[int]) -> float:
    return sum(result["sent"].get(str(bot), 0) for bot in bots) / result["seconds"]


def rss() -> int:
    """This process's resident memory, in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def memory(app, fake: Fake, queued: int, seconds: float) -> tuple[float, int, int]:
    """How much this process grows while the dispatcher sends from `queued` messages over ten bots
    (the embedded store's own copies of what it reads included), the most messages claimed at once
    (all a dispatcher holds: the rest stay in the database), and how many were sent."""
    fresh(app)
    fake.ask("reset")
    bots = [800000001 + n for n in range(10)]
    queue(app, bots, queued // len(bots))
    gc.collect()
    baseline = grown = rss()
    claimed = 0
    dispatcher = Dispatcher(app, SENDERS, holder="bench-memory")
    threading.Thread(target=dispatcher.run, daemon=True).start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(2.0)  # counting reads every message on the embedded store: not too often
        grown = max(grown, rss())
        with app.app_context(), unscoped("bench: messages a dispatcher holds"):
            claimed = max(claimed, Message.objects(status="sending").count())
    dispatcher.stop()
    return (grown - baseline) / 2**20, claimed, sum(fake.ask("stats")["sent"].values())


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=numbers, default=[1, 5, 20, 50])
    parser.add_argument("--seconds", type=float, default=10.0, help="the measurement window")
    parser.add_argument("--memory", type=int, default=100_000, help="messages queued for the memory row")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake()
        return
    fake = Fake()
    app = create_app(
        {
            "MONGODB_URI": "mongomock://localhost/bench_delivery",
            "TELEGRAM_API_BASE": fake.url,
            "LOG_LEVEL": "WARNING",
            "DISPATCH_INTERVAL_SECONDS": 1,
        }
    )
    try:
        window = f"{args.seconds:g} s windows"
        print(f"Fake Bot API answering in {LATENCY * 1000:.0f} ms; {window}; ceiling {CEILING}/s per bot")
        print(
            f"{'case':<42} {'msg/s':>8} {'ceiling':>8} {'ratio':>6} {'ops/msg':>8} {'twice':>6} {'429s':>5}"
        )

        def row(name: str, result: dict[str, Any], bots: list[int]) -> float:
            rate = rate_of(result, bots)
            sent = sum(result["sent"].values())
            ops = result["ops"] / max(sent, 1)
            ceiling = CEILING * len(bots)
            print(
                f"{name:<42} {rate:>8.1f} {ceiling:>8} {rate / ceiling:>6.2f} {ops:>8.3f} "
                f"{result['twice']:>6} {result['fake']['violations']:>5}",
                flush=True,
            )
            return rate

        rates = {}
        for count in args.bots:
            bots = [900000001 + n for n in range(count)]
            rates[count] = row(f"{count} bots, one dispatcher", measure(app, fake, bots, args.seconds), bots)
            slow = measure(app, fake, [*bots, SLOW_BOT], args.seconds)
            with_slow = row(f"{count} bots + one answering in {SLOW_LATENCY:g} s", slow, bots)
            print(f"{'':<42} the others' rate: {with_slow / rates[count]:.2f} of the row above", flush=True)
        bots = [900000001 + n for n in range(20)]
        row(
            "20 bots, two dispatchers in one process",
            measure(app, fake, bots, args.seconds, dispatchers=2),
            bots,
        )
        for queued in (1_000, args.memory):
            grown, claimed, sent = memory(app, fake, queued, args.seconds)
            print(
                f"{queued:,} queued over 10 bots: memory +{grown:.1f} MiB while sending, "
                f"at most {claimed} messages claimed at once, {sent:,} sent"
            )
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
