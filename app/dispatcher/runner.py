"""The dispatcher: sends for every lane (a bot, a webhook) whose work is due, each lane on its own.

Any number of dispatcher processes share the lanes through their leases in MongoDB (app.leases):
- each process polls for due lanes whose lease is free, takes as many as it has room for
  (DISPATCH_LANES) and runs each lane's sender in a thread of its own, so a slow, failing or hanging
  endpoint holds up nothing but its own lane;
- it renews the leases of the lanes it holds together, in one operation, every third of
  DISPATCH_LEASE_TTL; a sender stops as soon as its lease may have lapsed, and a dead process's lanes
  are taken over by the others once their leases expire;
- when more lanes are due than there is room for, a lane that held its place DISPATCH_TURN_SECONDS
  gives it up after its current batch and goes to the back of the queue, so a huge campaign does
  not starve the others;
- a sender returns when its lane has no work due; the lane is then given up with the time its next
  work is due, or taken again at once when work was queued meanwhile (the lane's wake count).

A lane's sender object is kept between its turns in this process (kept-alive connections, rate
windows) and dropped after SENDER_IDLE of disuse.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from flask import Flask

from app import clock, leases, metrics

log = logging.getLogger("app.dispatcher")

AFTER_ERROR = timedelta(seconds=30)  # a lane whose sender failed unexpectedly is due again after this
FORGET_STOPPED = timedelta(hours=1)  # the leases of dispatchers stopped this long ago are removed
SENDER_IDLE = 300.0  # seconds a lane's sender is kept without a turn


@dataclass(frozen=True)
class Lane:
    name: str
    tenant_id: Any

    @property
    def kind(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def key(self) -> str:
        return self.name.split(":", 1)[1]


class Turn:
    """One hold of a lane, as its sender sees it."""

    def __init__(self, dispatcher: Dispatcher, lane: Lane):
        self.dispatcher = dispatcher
        self.lane = lane
        self.holder = dispatcher.holder
        self.started = clock.monotonic()

    def ending(self) -> bool:
        """Tell the sender to finish what is in flight and return: the process is stopping, the lease
        may have lapsed, or other lanes wait and this one had its time."""
        dispatcher = self.dispatcher
        return (
            dispatcher.stopping.is_set()
            or not dispatcher.still_held(self.lane.name)
            or (dispatcher.contended and clock.monotonic() - self.started > dispatcher.turn_seconds)
        )


class Sender(Protocol):
    def run(self, turn: Turn) -> datetime | None:
        """Send what is due while `turn` lasts; return when the lane's next work is due (None: none)."""

    def close(self) -> None:
        """Let go of connections."""


SenderFactory = Callable[[Flask, Lane], Sender]


class Dispatcher:
    def __init__(self, app: Flask, senders: Mapping[str, SenderFactory], holder: str | None = None):
        config = app.config
        self.app = app
        self.factories = senders
        self.holder = holder or leases.new_holder_id()
        self.own_lease = leases.dispatcher_lease(self.holder)
        self.capacity = config["DISPATCH_LANES"]
        self.ttl = config["DISPATCH_LEASE_TTL"]
        self.interval = config["DISPATCH_INTERVAL_SECONDS"]
        self.turn_seconds = config["DISPATCH_TURN_SECONDS"]
        self.stopping = threading.Event()
        self.contended = False
        self._lock = threading.Lock()
        self._turns: dict[str, threading.Thread] = {}
        self._held_until: dict[str, float] = {}
        self._senders: dict[str, tuple[float, Sender]] = {}
        self._renewed_at = 0.0

    # -- leases -----------------------------------------------------------------------------------

    def still_held(self, name: str) -> bool:
        """Tell whether this process surely still holds the lease of lane `name`."""
        return self._held_until.get(name, 0.0) > clock.monotonic()

    def _valid_until(self, since: float) -> float:
        return since + self.ttl * 0.8  # renewed every third of the TTL; stop well before it lapses

    def _renew(self) -> None:
        started = clock.monotonic()
        if started - self._renewed_at < self.ttl / 3:
            return
        with self._lock:
            names = list(self._turns)
        kept = leases.renew(names, self.holder, self.ttl)
        leases.acquire(self.own_lease, self.holder, self.ttl)
        with self._lock:
            for name in names:
                if name in self._turns:
                    self._held_until[name] = self._valid_until(started) if name in kept else 0.0
        lost = set(names) - kept
        if lost:
            log.warning("lanes lost to another dispatcher", extra={"lanes": sorted(lost)})
        self._renewed_at = started

    def _take(self) -> None:
        with self._lock:
            room = self.capacity - len(self._turns)
        waiting = leases.due(clock.utcnow(), max(room, 0) + 1, self.factories)
        self.contended = len(waiting) > room
        for lease in waiting[: max(room, 0)]:
            if lease.name in self._turns:
                continue
            started = clock.monotonic()
            taken = leases.acquire(lease.name, self.holder, self.ttl, create=False)
            if taken is None:
                continue  # another dispatcher was quicker
            thread = threading.Thread(
                target=self._run_turns, args=(taken,), name=f"lane-{lease.name}", daemon=True
            )
            with self._lock:
                self._turns[lease.name] = thread
                self._held_until[lease.name] = self._valid_until(started)
                metrics.LANES_HELD.labels(Lane(lease.name, lease.tenant_id).kind).inc()
                thread.start()

    # -- turns ------------------------------------------------------------------------------------

    def _sender(self, lane: Lane) -> Sender:
        with self._lock:
            kept = self._senders.pop(lane.name, None)
        return kept[1] if kept else self.factories[lane.kind](self.app, lane)

    def _run_turns(self, lease: leases.Lease) -> None:
        """Hold a lane: run its sender, then give the lane up, or run again when it was woken."""
        lane = Lane(lease.name, lease.tenant_id)
        wakes = lease.wakes
        sender = self._sender(lane)
        try:
            with self.app.app_context():
                while True:
                    turn = Turn(self, lane)
                    try:
                        next_due = sender.run(turn)
                    except Exception:
                        log.exception("lane failed", extra={"lane": lane.name})
                        next_due = clock.utcnow() + AFTER_ERROR
                    if not self.still_held(lane.name):
                        return  # another dispatcher takes it over when the lease lapses
                    if leases.park(lane.name, self.holder, wakes, next_due):
                        return
                    if turn.ending():
                        leases.park(lane.name, self.holder, None, clock.utcnow())  # woken: due at once
                        return
                    again = leases.Lease.objects(name=lane.name, holder=self.holder).first()
                    if again is None:
                        return
                    wakes = again.wakes
        except Exception:
            log.exception("lane given up", extra={"lane": lane.name})
        finally:
            metrics.LANES_HELD.labels(lane.kind).dec()
            with self._lock:
                self._turns.pop(lane.name, None)
                self._held_until.pop(lane.name, None)
                self._senders[lane.name] = (clock.monotonic(), sender)

    def _forget_idle_senders(self) -> None:
        now = clock.monotonic()
        with self._lock:
            idle = [name for name, (since, _) in self._senders.items() if now - since > SENDER_IDLE]
            dropped = [self._senders.pop(name)[1] for name in idle]
        for sender in dropped:
            sender.close()

    # -- the process --------------------------------------------------------------------------------

    @property
    def busy(self) -> int:
        """How many lanes this process holds now."""
        with self._lock:
            return len(self._turns)

    def step(self) -> None:
        """Renew the leases held (when due), take the due lanes there is room for, drop idle senders."""
        with self.app.app_context():
            self._renew()
            self._take()
        self._forget_idle_senders()

    def run(self) -> None:
        """Dispatch until stop() is called."""
        log.info("dispatcher started", extra={"holder": self.holder, "lanes": self.capacity})
        try:
            with self.app.app_context():
                leases.forget_expired_dispatchers(clock.utcnow() - FORGET_STOPPED)
        except Exception:
            log.exception("the leases of stopped dispatchers were not removed")
        while not self.stopping.is_set():
            metrics.beat("dispatcher")
            try:
                self.step()
            except Exception:
                log.exception("dispatcher step failed; trying again")
            self.stopping.wait(self.interval)

    def run_until_idle(self, timeout: float = 60.0, pause: float = 0.01) -> None:
        """Dispatch until no lane is held and none is due now (tests and benchmarks)."""
        deadline = clock.monotonic() + timeout
        while True:
            self.step()
            if not self.busy:
                with self.app.app_context():
                    if not leases.due(clock.utcnow(), 1, self.factories):
                        return
            if clock.monotonic() > deadline:
                raise TimeoutError(f"the dispatcher still had work after {timeout} s")
            time.sleep(pause)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is in flight, give every lane up, and let go of connections."""
        self.stopping.set()
        with self._lock:
            threads = list(self._turns.values())
        deadline = clock.monotonic() + timeout
        for thread in threads:
            thread.join(max(deadline - clock.monotonic(), 0.0))
        with self._lock:
            senders = [sender for _, sender in self._senders.values()]
            self._senders.clear()
        for sender in senders:
            sender.close()
        try:
            with self.app.app_context():
                leases.release(self.own_lease, self.holder)
        except Exception:
            log.exception("the dispatcher's own lease was not released; it expires by itself")
        log.info("dispatcher stopped", extra={"holder": self.holder})
