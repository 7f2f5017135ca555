"""Scheduled jobs: the SCHEDULE table and the scheduler process that runs it under one leader.

`flask --app wsgi jobs run` starts the scheduler (never a web worker: every worker would run every
job). Copies on other hosts wait for the MongoDB lease (lease.py) and take over when the leader dies.
Each job runs in an app context, loops over tenants itself and is idempotent, so running one twice,
late, or from two processes at once does no harm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from . import (
    billing_overdue,
    deletion_sweep,
    deliver_webhooks,
    dispatch,
    lease,
    monthly_close,
    reconcile,
    retention,
)

log = logging.getLogger("app.jobs")


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[], Any]
    trigger: Callable[[Mapping[str, Any]], dict[str, Any]]  # the APScheduler trigger, from the settings
    description: str


SCHEDULE = (
    Job(
        "monthly-close",
        monthly_close.run,
        lambda config: {"trigger": "cron", "day": 1, "hour": 0, "minute": 5},
        "Snapshot every tenant's usage of the month that ended (the new month starts at zero by itself).",
    ),
    Job(
        "retention-purge",
        retention.run,
        lambda config: {"trigger": "cron", "hour": 3, "minute": 0},
        "Delete finished messages, webhook deliveries and audit entries past each tenant's retention.",
    ),
    Job(
        "usage-reconcile",
        reconcile.run,
        lambda config: {"trigger": "cron", "minute": 17},
        "Recount users, campaigns, bots, webhooks and storage per tenant and repair drifting gauges.",
    ),
    Job(
        "deletion-sweep",
        deletion_sweep.run,
        lambda config: {"trigger": "cron", "minute": 41},
        "Finish tenant deletions that stopped halfway; remove documents written for deleted tenants.",
    ),
    Job(
        "billing-overdue",
        billing_overdue.run,
        lambda config: {"trigger": "cron", "hour": 4, "minute": 0},
        "Suspend tenants whose invoices stay unpaid past the grace period (payment reactivates them).",
    ),
    Job(
        "message-dispatch",
        dispatch.run,
        lambda config: {"trigger": "interval", "seconds": config["DISPATCH_INTERVAL_SECONDS"]},
        "Send queued messages through the Telegram Bot API, tenants taking turns, within Telegram's rates.",
    ),
    Job(
        "webhook-delivery",
        deliver_webhooks.run,
        lambda config: {"trigger": "interval", "seconds": 5},
        "POST queued tenant events to their webhooks, signed, with retries and backoff.",
    ),
)


def job_named(name: str) -> Job:
    for job in SCHEDULE:
        if job.name == name:
            return job
    raise KeyError(name)


def run_job(app: Flask, job: Job, holder: str | None = None) -> Any:
    """Run one job in an app context; with a holder, only while it still holds the lease."""
    with app.app_context():
        if holder is not None and not lease.holds(holder):
            log.warning("job skipped: lease lost", extra={"job": job.name})
            return None
        started = time.perf_counter()
        result = job.func()
        log.info(
            "job finished",
            extra={"job": job.name, "result": result, "seconds": round(time.perf_counter() - started, 3)},
        )
        return result


def build_scheduler(app: Flask, holder: str) -> BlockingScheduler:
    """Return a scheduler with every job of SCHEDULE, and a renewal of the lease that stops it when lost."""
    ttl = app.config["SCHEDULER_LEASE_TTL"]
    scheduler = BlockingScheduler(timezone="UTC")
    for job in SCHEDULE:
        scheduler.add_job(
            run_job,
            args=(app, job, holder),
            id=job.name,
            name=job.description,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
            **job.trigger(app.config),
        )

    def renew() -> None:
        with app.app_context():
            if not lease.acquire(holder, ttl):
                log.error("scheduler lease lost; stopping until it is ours again", extra={"holder": holder})
                scheduler.shutdown(wait=False)

    scheduler.add_job(renew, "interval", seconds=max(1, ttl // 3), id="lease-renewal", max_instances=1)
    return scheduler


def wait_for_lease(app: Flask, holder: str, should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Poll until `holder` holds the lease (True) or `should_stop()` says to give up (False)."""
    ttl, poll = app.config["SCHEDULER_LEASE_TTL"], app.config["SCHEDULER_POLL_SECONDS"]
    while not should_stop():
        with app.app_context():
            if lease.acquire(holder, ttl):
                return True
        log.info("another scheduler leads; waiting", extra={"holder": holder})
        time.sleep(poll)
    return False


def run_scheduler(app: Flask) -> None:
    """Lead the scheduler whenever this process holds the lease; wait for it otherwise."""
    holder = lease.new_holder_id()
    try:
        while wait_for_lease(app, holder):
            log.info("scheduler leading", extra={"holder": holder, "jobs": [job.name for job in SCHEDULE]})
            build_scheduler(app, holder).start()
    finally:
        with app.app_context():
            lease.release(holder)
