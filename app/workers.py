"""The service's background work: the scheduler (app.jobs) and the dispatcher (app.dispatcher).

On a MongoDB server each runs as processes of its own (`flask --app wsgi jobs run`, `flask --app wsgi
dispatcher run`), sharing the work through leases. The embedded store lives inside the serving
process, where no other process can see it, so there both run in threads of the one gunicorn worker
instead (gunicorn.conf.py starts them), and the commands refuse it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from flask import Flask

from app.campaigns.delivery import BotSender
from app.dispatcher.runner import Dispatcher, SenderFactory
from app.jobs import run_scheduler
from app.messages.models import LANE as BOT_LANE
from app.webhooks.delivery import WebhookSender
from app.webhooks.events import LANE as WEBHOOK_LANE

SENDERS: dict[str, SenderFactory] = {BOT_LANE: BotSender, WEBHOOK_LANE: WebhookSender}


def dispatcher(app: Flask, holder: str | None = None) -> Dispatcher:
    """A dispatcher for every kind of lane: bots (campaigns) and webhooks (tenant events)."""
    return Dispatcher(app, SENDERS, holder)


def until_signalled(run: Callable[[], None], stop: Callable[[], None]) -> None:
    """Call `run()`; SIGTERM or SIGINT calls `stop()`, which must make `run()` return."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop())
    run()


class InProcess:
    """The scheduler and a dispatcher in daemon threads of this process (the embedded store)."""

    def __init__(self, app: Flask):
        self.app = app
        self.stopping = threading.Event()
        self.dispatcher = dispatcher(app)
        self.threads = [
            threading.Thread(target=run_scheduler, args=(app, self.stopping), name="scheduler", daemon=True),
            threading.Thread(target=self.dispatcher.run, name="dispatcher", daemon=True),
        ]

    def start(self) -> InProcess:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is in flight and give the leases up."""
        self.stopping.set()
        self.dispatcher.stop(timeout)
        for thread in self.threads:
            thread.join(timeout)
