"""What the scheduled jobs did: one document per job with its last run, its last success and its last
RUNS_KEPT runs, so that its size stays bounded however often it runs.

Global on purpose: the jobs belong to the platform and loop over every tenant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import mongoengine as me

from app import clock, metrics

RUNS_KEPT = 20
OUTCOMES = ("ok", "failed")


class JobRuns(me.Document):
    name = me.StringField(primary_key=True)
    holder = me.StringField()  # the scheduler process of the last start (None: run by hand)
    running_since = me.DateTimeField(db_field="runningSince")  # a start without its finish yet
    last_started_at = me.DateTimeField(db_field="lastStartedAt")
    last_finished_at = me.DateTimeField(db_field="lastFinishedAt")
    last_outcome = me.StringField(db_field="lastOutcome", choices=OUTCOMES)
    last_seconds = me.FloatField(db_field="lastSeconds")
    last_error = me.StringField(db_field="lastError")
    last_success_at = me.DateTimeField(db_field="lastSuccessAt")
    runs = me.ListField(me.DictField())  # the last RUNS_KEPT: startedAt, finishedAt, outcome, seconds, error

    meta = {"collection": "job_runs", "auto_create_index": False}


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def recorded(name: str, func: Callable[[], Any], holder: str | None) -> Any:
    """Run `func` as the job `name`: record its start and its finish (or failure) and count it."""
    collection = JobRuns._get_collection()
    started_at = clock.utcnow()
    collection.update_one(
        {"_id": name},
        {"$set": {"runningSince": started_at, "lastStartedAt": started_at, "holder": holder}},
        upsert=True,
    )
    started = time.perf_counter()
    outcome, error = "ok", None
    try:
        return func()
    except Exception as exc:
        outcome, error = "failed", _error(exc)
        raise
    finally:
        seconds = round(time.perf_counter() - started, 3)
        finished_at = clock.utcnow()
        changes: dict[str, Any] = {
            "lastFinishedAt": finished_at,
            "lastOutcome": outcome,
            "lastSeconds": seconds,
            "lastError": error,
        }
        if outcome == "ok":
            changes["lastSuccessAt"] = finished_at
        run = {"startedAt": started_at, "finishedAt": finished_at, "outcome": outcome, "seconds": seconds}
        if error is not None:
            run["error"] = error
        collection.update_one(
            {"_id": name},
            {
                "$set": changes,
                "$unset": {"runningSince": ""},
                "$push": {"runs": {"$each": [run], "$slice": -RUNS_KEPT}},
            },
        )
        metrics.JOB_RUNS.labels(name, outcome).inc()
        metrics.JOB_SECONDS.labels(name).observe(seconds)


def last_runs() -> dict[str, JobRuns]:
    """Every job's record, by job name."""
    return {runs.name: runs for runs in JobRuns.objects.order_by("name")}
