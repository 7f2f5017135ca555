"""The background processes as a superadmin sees them (GET /api/v1/platform/system, `flask jobs status`):
the scheduler's lease, each job's recorded runs, the dispatchers alive and their lanes; and the forced
release of the scheduler's lease."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
from bson import ObjectId

from app import leases
from app.clock import utcnow
from app.jobs import SCHEDULE, job_named, run_job
from app.jobs.runs import RUNS_KEPT, JobRuns
from app.leases import SCHEDULER, Lease

from .support import connect_bot, error_of, sent_campaign

# Bots' account ids, as the lanes of bots are named.
BOTS = [str(ObjectId()) for _ in range(3)]

SYSTEM = "/api/v1/platform/system"


def status(client, headers) -> dict:
    response = client.get(SYSTEM, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def parsed(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def test_nothing_ran_yet(client, superadmin_headers):
    body = status(client, superadmin_headers)
    assert body["scheduler"] == {"holder": None, "held": False, "expiresAt": None, "renewedAt": None}
    assert [job["name"] for job in body["jobs"]] == [job.name for job in SCHEDULE]
    assert all(job["lastOutcome"] is None and job["lastSuccessAt"] is None for job in body["jobs"])
    assert body["dispatchers"] == []
    assert body["lanesWaiting"] == 0
    assert body["queue"] == {"queued": 0, "sending": 0}


def test_the_scheduler_holder_and_each_jobs_last_run_and_success(app, client, superadmin_headers):
    assert leases.acquire(SCHEDULER, "host-a", 60)
    job = job_named("usage-reconcile")
    assert run_job(app, job, "host-a") == {"tenants": 0, "repaired": 0}
    succeeded = status(client, superadmin_headers)

    def boom():
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        run_job(app, dataclasses.replace(job, func=boom), "host-a")
    failed = status(client, superadmin_headers)

    scheduler = failed["scheduler"]
    assert scheduler["holder"] == "host-a" and scheduler["held"] is True
    assert parsed(scheduler["expiresAt"]) - parsed(scheduler["renewedAt"]) == timedelta(seconds=60)
    [first] = [entry for entry in succeeded["jobs"] if entry["name"] == "usage-reconcile"]
    assert first["lastOutcome"] == "ok" and first["holder"] == "host-a" and first["runningSince"] is None
    assert first["lastSuccessAt"] == first["lastFinishedAt"]
    [then] = [entry for entry in failed["jobs"] if entry["name"] == "usage-reconcile"]
    assert then["lastOutcome"] == "failed"
    assert then["lastError"] == "RuntimeError: the database went away"
    assert then["lastSuccessAt"] == first["lastSuccessAt"]  # the last success is still the first run
    assert parsed(then["lastFinishedAt"]) >= parsed(first["lastFinishedAt"])
    others = [entry for entry in failed["jobs"] if entry["name"] != "usage-reconcile"]
    assert all(entry["lastOutcome"] is None for entry in others)


def test_a_job_keeps_its_last_runs_only(app):
    job = dataclasses.replace(job_named("trial-end"), func=lambda: "done")
    for _ in range(RUNS_KEPT + 5):
        run_job(app, job)
    runs = JobRuns.objects.get(name="trial-end").runs
    assert len(runs) == RUNS_KEPT
    assert all(run["outcome"] == "ok" for run in runs)
    assert runs[-1]["startedAt"] >= runs[0]["startedAt"]


def test_the_dispatchers_alive_and_the_lanes_they_hold(app, client, superadmin_headers):
    now = utcnow()
    for holder in ("d1", "d2"):
        assert leases.acquire(leases.dispatcher_lease(holder), holder, 15)
    for kind, key, holder in (("bot", BOTS[0], "d1"), ("bot", BOTS[1], "d1"), ("webhook", "w1", "d1")):
        assert leases.acquire(leases.lane_name(kind, key), holder, 15)
    leases.wake(leases.lane_name("bot", BOTS[2]), None, now - timedelta(seconds=5))  # due, nobody holds it
    assert leases.acquire(leases.dispatcher_lease("d3"), "d3", 15)
    Lease.objects(name=leases.dispatcher_lease("d3")).update(set__expires_at=now - timedelta(minutes=1))

    body = status(client, superadmin_headers)

    found = {entry["holder"]: entry for entry in body["dispatchers"]}
    assert set(found) == {"d1", "d2", "d3"}
    assert found["d1"]["alive"] and found["d1"]["lanes"] == {"bot": 2, "webhook": 1}
    assert found["d2"]["alive"] and found["d2"]["lanes"] == {}
    assert not found["d3"]["alive"] and found["d3"]["lanes"] == {}
    assert parsed(found["d1"]["renewedAt"]) >= now
    assert body["lanesWaiting"] == 1


def test_a_running_dispatcher_shows_itself_until_it_stops(
    app, client, superadmin_headers, auth_headers, fake_telegram, dispatcher
):
    account, _bot = connect_bot(client, auth_headers)
    sent_campaign(client, auth_headers, account, ["7001", "7002"])
    assert status(client, superadmin_headers)["queue"] == {"queued": 2, "sending": 0}

    dispatcher.run_until_idle()
    running = status(client, superadmin_headers)
    dispatcher.stop()
    stopped = status(client, superadmin_headers)

    assert [entry["holder"] for entry in running["dispatchers"]] == [dispatcher.holder]
    assert running["dispatchers"][0]["alive"] is True
    assert running["queue"] == {"queued": 0, "sending": 0}
    assert stopped["dispatchers"] == []  # a clean stop gives its lease up


def test_dispatchers_stopped_long_ago_are_forgotten_when_one_starts(app, dispatcher):
    assert leases.acquire(leases.dispatcher_lease("old"), "old", 15)
    assert leases.acquire(leases.dispatcher_lease("recent"), "recent", 15)
    Lease.objects(name=leases.dispatcher_lease("old")).update(set__expires_at=utcnow() - timedelta(hours=2))
    dispatcher.stopping.set()  # run() returns after its start

    dispatcher.run()

    assert set(Lease.objects(name__startswith="dispatcher:").scalar("holder")) == {"recent"}


def test_tenant_credentials_are_refused(client, auth_headers):
    assert error_of(client.get(SYSTEM, headers=auth_headers), 403)["code"] == "forbidden"


def test_the_status_command(app):
    assert leases.acquire(SCHEDULER, "host-a", 60)
    run_job(app, job_named("usage-reconcile"))
    assert leases.acquire(leases.dispatcher_lease("d1"), "d1", 15)
    assert leases.acquire(leases.lane_name("bot", BOTS[0]), "d1", 15)

    result = app.test_cli_runner().invoke(args=["jobs", "status"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("scheduler: host-a leads;")
    [reconcile] = [line for line in lines if "usage-reconcile" in line]
    assert "last ok" in reconcile and "never run" not in reconcile
    [trial_end] = [line for line in lines if "trial-end" in line]
    assert "never run" in trial_end
    assert any(line.strip().startswith("d1 alive") and line.endswith(": bot 1") for line in lines)
    assert lines[-1].startswith("queue: 0 queued, 0 sending")


def test_release_lease_takes_the_scheduler_lease_from_its_holder(app):
    assert leases.acquire(SCHEDULER, "stuck-host", 60)
    assert not leases.acquire(SCHEDULER, "waiting-host", 60)

    result = app.test_cli_runner().invoke(args=["jobs", "release-lease", "--yes"])

    assert result.exit_code == 0, result.output
    assert "stuck-host" in result.output
    assert leases.acquire(SCHEDULER, "waiting-host", 60)
    assert not leases.holds(SCHEDULER, "stuck-host")


def test_release_lease_without_a_holder_says_so(app):
    result = app.test_cli_runner().invoke(args=["jobs", "release-lease", "--yes"])
    assert result.exit_code == 0
    assert "Nobody holds" in result.output
