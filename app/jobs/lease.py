"""A lease in MongoDB that makes one scheduler process, on any host, the leader that runs jobs.

The leader renews the lease well before it expires; a copy that finds the lease held waits and polls,
and takes over once the holder has stopped renewing (it died, or lost the database) and the lease has
expired. Jobs check the lease again before they start (fencing), so a leader that lost its lease
without noticing runs nothing more.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

import mongoengine as me

from app.clock import utcnow

LEASE_NAME = "scheduler"


class SchedulerLease(me.Document):
    """Who leads the scheduler. Global on purpose: it is the platform's, not any tenant's."""

    name = me.StringField(primary_key=True)
    holder = me.StringField(required=True)
    expires_at = me.DateTimeField(db_field="expiresAt", required=True)

    meta = {"collection": "scheduler_leases", "auto_create_index": False}


def new_holder_id() -> str:
    """Name this process: host, pid and a random part (a restarted process is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(holder: str, ttl_seconds: float, name: str = LEASE_NAME) -> bool:
    """Take or renew the lease for `holder`; return whether `holder` now holds it."""
    now = utcnow()
    # A flat filter: the upsert takes _id from it (mongomock ignores fields nested in $and).
    mine_or_expired = {"_id": name, "$or": [{"holder": holder}, {"expiresAt": {"$lte": now}}]}
    try:
        SchedulerLease.objects(__raw__=mine_or_expired).modify(
            upsert=True, set__holder=holder, set__expires_at=now + timedelta(seconds=ttl_seconds)
        )
    except me.NotUniqueError:
        return False  # held by another holder and unexpired: the upsert's insert collided with it
    return True


def holds(holder: str, name: str = LEASE_NAME) -> bool:
    """Tell whether `holder` holds an unexpired lease now."""
    lease = SchedulerLease.objects(name=name).first()
    return lease is not None and lease.holder == holder and lease.expires_at > utcnow()


def release(holder: str, name: str = LEASE_NAME) -> None:
    """Give the lease up at once (a clean shutdown), so that a waiting copy takes over quickly."""
    SchedulerLease.objects(name=name, holder=holder).delete()
