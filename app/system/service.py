"""The state of the platform's background processes, as MongoDB records it: the scheduler's lease, each
job's last runs, the dispatchers alive and the lanes they hold, the queue."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from app import clock, leases, metrics
from app.jobs import SCHEDULE
from app.jobs.runs import last_runs
from app.leases import Lease


def _scheduler(now: datetime) -> dict[str, Any]:
    lease = Lease.objects(name=leases.SCHEDULER).first()
    if lease is None:
        return {"holder": None, "held": False, "expires_at": None, "renewed_at": None}
    return {
        "holder": lease.holder,
        "held": lease.expires_at > now,
        "expires_at": lease.expires_at,
        "renewed_at": lease.renewed_at,
    }


def _jobs() -> list[dict[str, Any]]:
    recorded = last_runs()
    jobs = []
    for job in SCHEDULE:
        runs = recorded.get(job.name)
        jobs.append(
            {
                "name": job.name,
                "description": job.description,
                "running_since": runs.running_since if runs else None,
                "holder": runs.holder if runs else None,
                "last_started_at": runs.last_started_at if runs else None,
                "last_finished_at": runs.last_finished_at if runs else None,
                "last_outcome": runs.last_outcome if runs else None,
                "last_seconds": runs.last_seconds if runs else None,
                "last_error": runs.last_error if runs else None,
                "last_success_at": runs.last_success_at if runs else None,
            }
        )
    return jobs


def _dispatchers(now: datetime) -> tuple[list[dict[str, Any]], int]:
    """Every dispatcher process with a lease of its own (a stopped one's stays, no longer alive, until a
    dispatcher starting an hour later removes it) or a lane held now, with the lanes it holds; and how
    many lanes have work due but no dispatcher."""
    own_prefix = f"{leases.DISPATCHER}:"
    dispatchers: dict[str, dict[str, Any]] = {}
    lanes: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for lease in Lease.objects(expires_at__gt=now).only("name", "holder"):
        if (
            lease.holder is not None
            and lease.name != leases.SCHEDULER
            and not lease.name.startswith(own_prefix)
        ):
            lanes[lease.holder][lease.name.split(":", 1)[0]] += 1
    own = Lease.objects(name__startswith=own_prefix)  # a few: ordered here, not by an index
    for lease in sorted(own, key=lambda lease: lease.renewed_at or leases.FREE, reverse=True):
        dispatchers[lease.holder] = {
            "holder": lease.holder,
            "alive": lease.expires_at > now,
            "renewed_at": lease.renewed_at,
            "expires_at": lease.expires_at,
        }
    for holder in lanes.keys() - dispatchers.keys():  # a lane whose holder has no lease of its own
        dispatchers[holder] = {"holder": holder, "alive": True, "renewed_at": None, "expires_at": None}
    for holder, dispatcher in dispatchers.items():
        dispatcher["lanes"] = dict(lanes.get(holder, {}))
    waiting = Lease.objects(due_at__lte=now, expires_at__lte=now).count()
    return list(dispatchers.values()), waiting


def system_status() -> dict[str, Any]:
    """Tell who leads the scheduler, what each job did last, which dispatchers are alive with which
    lanes, and how many messages wait."""
    now = clock.utcnow()
    dispatchers, waiting = _dispatchers(now)
    return {
        "checked_at": now,
        "scheduler": _scheduler(now),
        "jobs": _jobs(),
        "dispatchers": dispatchers,
        "lanes_waiting": waiting,
        "queue": metrics.queue_depth(),
    }
