"""The heartbeat of the scheduler and the dispatchers, and the healthcheck of their containers that
reads it (`python -m app.probe`, app/probe.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, start_http_server

from app import leases, probe
from app.dispatcher.runner import Dispatcher
from app.jobs import run_scheduler, wait_for_lease

from .servers import free_port
from .support import ROOT


def heartbeat(process: str) -> float:
    return REGISTRY.get_sample_value(probe.HEARTBEAT, {"process": process}) or 0.0


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def served():
    """A metrics endpoint on a free port with a heartbeat gauge of its own: (port, gauge)."""
    registry = CollectorRegistry()
    gauge = Gauge(probe.HEARTBEAT, "heartbeat", ["process"], registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port, gauge
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_the_probe_passes_while_the_loop_went_round_lately(served, capsys):
    port, gauge = served
    gauge.labels("scheduler").set(time.time() - 5)
    assert probe.main(["scheduler", "--port", str(port)]) == 0
    assert probe.main(["scheduler", "--port", str(port), "--max-age", "2"]) == 1
    assert capsys.readouterr().err.startswith("the scheduler last went round its loop 5 s ago")


def test_the_probe_fails_for_a_process_that_never_went_round_or_went_quiet(served, capsys):
    port, gauge = served
    gauge.labels("scheduler").set_to_current_time()
    assert probe.main(["dispatcher", "--port", str(port)]) == 1
    assert capsys.readouterr().err == "the dispatcher has not gone round its loop yet\n"
    gauge.labels("dispatcher").set(time.time() - 300)
    assert probe.main(["dispatcher", "--port", str(port)]) == 1
    assert "300 s ago (more than 60 s)" in capsys.readouterr().err


def test_the_probe_fails_when_nothing_serves_metrics(capsys):
    port = free_port()
    assert probe.main(["scheduler", "--port", str(port)]) == 1
    assert capsys.readouterr().err.startswith(f"no metrics on port {port}: ")


def test_the_probe_runs_as_a_module_with_the_port_from_the_environment(served):
    port, gauge = served
    gauge.labels("dispatcher").set_to_current_time()
    done = subprocess.run(
        [sys.executable, "-m", "app.probe", "dispatcher"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "METRICS_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_the_scheduler_beats_while_it_waits_for_the_lease_and_while_it_leads(app_factory):
    app = app_factory(SCHEDULER_POLL_SECONDS=1)
    with app.app_context():
        assert leases.acquire(leases.SCHEDULER, "another-host", 60)
    before = heartbeat("scheduler")
    stop = threading.Event()
    waiting = threading.Thread(target=wait_for_lease, args=(app, "this-host", stop), daemon=True)
    waiting.start()
    wait_until(lambda: heartbeat("scheduler") > before)
    stop.set()
    waiting.join(10)
    with app.app_context():
        leases.release(leases.SCHEDULER, "another-host")

    stop = threading.Event()
    leading = threading.Thread(target=run_scheduler, args=(app, stop), daemon=True)
    leading.start()
    with app.app_context():
        wait_until(lambda: leases.Lease.objects(name=leases.SCHEDULER).first() is not None)
    since = time.time()
    wait_until(lambda: heartbeat("scheduler") > since)  # the scheduler's look at its stop, each second
    stop.set()
    leading.join(10)
    assert not leading.is_alive()


def test_the_dispatcher_beats_each_time_round_its_loop(app, senders):
    dispatcher = Dispatcher(app, senders, holder="beating")
    since = time.time()
    running = threading.Thread(target=dispatcher.run, daemon=True)
    running.start()
    try:
        wait_until(lambda: heartbeat("dispatcher") > since)
    finally:
        dispatcher.stop()
        running.join(10)


@pytest.mark.parametrize("service", probe.PROCESSES)
def test_the_compose_services_of_the_background_processes_check_their_heartbeat(service):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    definition = compose["services"][service]
    assert definition["healthcheck"]["test"] == ["CMD", "python", "-m", "app.probe", service]
    assert definition["environment"]["METRICS_PORT"] == 9100
