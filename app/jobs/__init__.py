"""Scheduled jobs: the SCHEDULE table and the scheduler that runs it under one leader.

`flask --app wsgi jobs run` starts the scheduler as a process of its own (never a web worker: every
worker would run every job); on the embedded store it runs inside the serving process instead
(app.workers). Copies on other hosts wait for the MongoDB lease ("scheduler", app.leases) and take
over when the leader dies. Each job runs in an app context, loops over tenants itself and is
idempotent, so running one twice, late, or from two processes at once does no harm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from app import leases, metrics

from . import (
    ab_winners,
    billing_overdue,
    deletion_sweep,
    monthly_close,
    reconcile,
    retention,
    runs,
    trial_end,
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
        "trial-end",
        trial_end.run,
        lambda config: {"trigger": "cron", "minute": 29},
        "Move tenants whose trial ended without a payment method to the free plan (audited, trial.ended).",
    ),
    Job(
        "ab-test-winners",
        ab_winners.run,
        lambda config: {"trigger": "cron", "minute": "*"},
        "Choose the A/B test winners whose rule applies and give the held-out targets the winner's message.",
    ),
)


def job_named(name: str) -> Job:
    for job in SCHEDULE:
        if job.name == name:
            return job
    raise KeyError(name)


def run_job(app: Flask, job: Job, holder: str | None = None) -> Any:
    """Run one job in an app context; with a holder, only while it still holds the lease. Its start,
    finish and outcome are recorded (app.jobs.runs) and counted (app.metrics)."""
    with app.app_context():
        if holder is not None and not leases.holds(leases.SCHEDULER, holder):
            log.warning("job skipped: lease lost", extra={"job": job.name})
            return None
        started = time.perf_counter()
        result = runs.recorded(job.name, job.func, holder)
        log.info(
            "job finished",
            extra={"job": job.name, "result": result, "seconds": round(time.perf_counter() - started, 3)},
        )
        return result


def build_scheduler(app: Flask, holder: str, stop: threading.Event | None = None) -> BlockingScheduler:
    """Return a scheduler with every job of SCHEDULE, a renewal of the lease that stops it when lost,
    and a look at `stop` every second (the scheduler's heartbeat)."""
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
            if not leases.acquire(leases.SCHEDULER, holder, ttl):
                log.error("scheduler lease lost; stopping until it is ours again", extra={"holder": holder})
                scheduler.shutdown(wait=False)

    def stop_when_asked() -> None:
        metrics.beat("scheduler")
        if stop is not None and stop.is_set():
            scheduler.shutdown(wait=False)

    scheduler.add_job(renew, "interval", seconds=max(1, ttl // 3), id="lease-renewal", max_instances=1)
    scheduler.add_job(stop_when_asked, "interval", seconds=1, id="stop-check", max_instances=1)
    return scheduler


def wait_for_lease(app: Flask, holder: str, stop: threading.Event) -> bool:
    """Poll until `holder` holds the lease (True) or `stop` is set (False)."""
    ttl, poll = app.config["SCHEDULER_LEASE_TTL"], app.config["SCHEDULER_POLL_SECONDS"]
    while not stop.is_set():
        metrics.beat("scheduler")
        with app.app_context():
            if leases.acquire(leases.SCHEDULER, holder, ttl):
                return True
        log.info("another scheduler leads; waiting", extra={"holder": holder})
        stop.wait(poll)
    return False


def run_scheduler(app: Flask, stop: threading.Event) -> None:
    """Lead the scheduler whenever this process holds the lease, wait for it otherwise, until `stop`
    is set; then give the lease up, so that a waiting copy takes over at once."""
    holder = leases.new_holder_id()
    try:
        while wait_for_lease(app, holder, stop):
            log.info("scheduler leading", extra={"holder": holder, "jobs": [job.name for job in SCHEDULE]})
            metrics.SCHEDULER_LEADING.set(1)
            try:
                build_scheduler(app, holder, stop).start()
            finally:
                metrics.SCHEDULER_LEADING.set(0)
    finally:
        with app.app_context():
            leases.release(leases.SCHEDULER, holder)
