"""Named leases in MongoDB: which process does a piece of work now, and for the dispatcher's lanes,
when their work is next due.

A lease has one holder (a process: host, pid and a random part) until it expires; the holder renews
it well before. A copy that finds it held waits, and takes over once the holder stopped renewing (it
died, or lost the database) and the lease expired.

- The scheduler's lease ("scheduler") makes one process the leader that runs the jobs.
- Each dispatcher process renews a lease of its own ("dispatcher:<holder>") with its lanes': it shows
  the dispatcher alive even while it holds no lane.
- Each bot and each webhook is a lane of the dispatcher: the lease "bot:<account id>" or
  "webhook:<webhook id>" of the tenant that owns it. Work queued for a lane wakes it (`wake`: the
  lane is due at the earliest time any of its work is, and its wake count goes up); a dispatcher
  takes due lanes whose lease is free (`due`, `acquire`), renews the ones it holds together
  (`renew`), and gives a lane up with the time its work is next due (`park`), unless it was woken
  since the dispatcher last looked, so that work queued meanwhile is never missed. A lane without
  work is removed.

Global on purpose: leases belong to the platform's processes, not to a tenant (a lane names its
tenant so that the tenant's deletion removes its lanes).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import mongoengine as me
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from app import clock
from app.db import DUPLICATE_KEY

SCHEDULER = "scheduler"
DISPATCHER = "dispatcher"  # the prefix of a dispatcher process's own lease
# The expiry of a lane nobody holds: long past (not "now", which another host's clock may put ahead).
FREE = datetime(1970, 1, 1, tzinfo=UTC)


class Lease(me.Document):
    name = me.StringField(primary_key=True)
    holder = me.StringField()
    expires_at = me.DateTimeField(db_field="expiresAt", required=True)
    renewed_at = me.DateTimeField(db_field="renewedAt")  # when its holder last took or renewed it
    # Lanes only: their tenant, when their work is due, how often they were woken.
    tenant_id = me.ObjectIdField(db_field="tenantId")
    due_at = me.DateTimeField(db_field="dueAt")
    wakes = me.IntField(default=0)

    meta = {
        "collection": "leases",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["due_at", "expires_at", "id"]},
            {"fields": ["tenant_id"]},
            # The leases held now (system status) and the dispatchers' own leases that expired.
            {"fields": ["expires_at", "id"]},
        ],
    }


def lane_name(kind: str, key: Any) -> str:
    """The lease of a lane: its kind ("bot", "webhook") and the id of what it sends for."""
    return f"{kind}:{key}"


def new_holder_id() -> str:
    """Name this process: host, pid and a random part (a restarted process is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(name: str, holder: str, ttl_seconds: float, create: bool = True) -> Lease | None:
    """Take or renew the lease for `holder`; return it when `holder` now holds it, else None.
    Without `create`, only a lease that exists (a lane with work) is taken."""
    now = clock.utcnow()
    # A flat filter: the upsert takes _id from it (mongomock ignores fields nested in $and).
    mine_or_expired = {"_id": name, "$or": [{"holder": holder}, {"expiresAt": {"$lte": now}}]}
    try:
        return Lease.objects(__raw__=mine_or_expired).modify(
            upsert=create,
            new=True,
            set__holder=holder,
            set__expires_at=now + timedelta(seconds=ttl_seconds),
            set__renewed_at=now,
        )
    except me.NotUniqueError:
        return None  # held by another holder and unexpired: the upsert's insert collided with it


def holds(name: str, holder: str) -> bool:
    """Tell whether `holder` holds the unexpired lease `name` now."""
    lease = Lease.objects(name=name).first()
    return lease is not None and lease.holder == holder and lease.expires_at > clock.utcnow()


def release(name: str, holder: str) -> None:
    """Give the lease up at once (a clean shutdown), so that a waiting copy takes over quickly."""
    Lease.objects(name=name, holder=holder).delete()


def renew(names: Collection[str], holder: str, ttl_seconds: float) -> set[str]:
    """Renew the unexpired leases of `holder` among `names`; return those it still holds."""
    if not names:
        return set()
    now = clock.utcnow()
    mine = Lease.objects(name__in=list(names), holder=holder, expires_at__gt=now)
    if mine.update(set__expires_at=now + timedelta(seconds=ttl_seconds), set__renewed_at=now) == len(names):
        return set(names)
    return set(Lease.objects(name__in=list(names), holder=holder, expires_at__gt=now).scalar("name"))


def wake(name: str, tenant_id: Any, at: datetime | None = None) -> None:
    """Say that the lane `name` of a tenant has work due at `at` (now by default)."""
    wake_many({name: tenant_id}, at or clock.utcnow())


def _wakes(lanes: Mapping[str, Any], at: datetime, upsert: bool) -> list[UpdateOne]:
    return [
        UpdateOne(
            {"_id": name},
            {
                "$min": {"dueAt": at},
                "$inc": {"wakes": 1},
                "$setOnInsert": {"tenantId": tenant_id, "expiresAt": FREE},
            },
            upsert=upsert,
        )
        for name, tenant_id in lanes.items()
    ]


def wake_many(lanes: Mapping[str, Any], at: datetime) -> None:
    """Say that each lane of `lanes` (its name: its tenant's id) has work due at `at`: one bulk write."""
    requests = _wakes(lanes, at, upsert=True)
    try:
        Lease._get_collection().bulk_write(requests, ordered=False)
    except BulkWriteError as exc:
        if any(error["code"] != DUPLICATE_KEY for error in exc.details["writeErrors"]):
            raise
        # Another wake inserted these lanes first: wake them without inserting.
        lost = [requests[error["index"]]._filter["_id"] for error in exc.details["writeErrors"]]
        Lease._get_collection().bulk_write(_wakes(dict.fromkeys(lost), at, upsert=False), ordered=False)


def wake_tenant(tenant_id: Any) -> None:
    """Make every lane of a tenant due now (it was suspended and is active again)."""
    Lease.objects(tenant_id=tenant_id).update(set__due_at=clock.utcnow(), inc__wakes=1)


def due(now: datetime, limit: int, kinds: Collection[str]) -> list[Lease]:
    """Lanes of `kinds` whose work is due and whose lease is free, the longest waiting first."""
    lanes = Lease.objects(due_at__lte=now, expires_at__lte=now, name__regex=f"^({'|'.join(kinds)}):")
    return list(lanes.order_by("due_at").limit(limit))


def park(name: str, holder: str, wakes: int | None, due_at: datetime | None) -> bool:
    """Give a lane up, due again at `due_at` (None: it has no work left and goes), unless it was woken
    since `wakes` was read (None: whatever the count). Return whether it was given up."""
    mine = Lease.objects(name=name, holder=holder)
    if wakes is not None:
        mine = mine.filter(wakes=wakes)
    if due_at is None:
        return mine.delete() == 1
    return mine.update_one(set__due_at=due_at, set__expires_at=FREE) == 1


def dispatcher_lease(holder: str) -> str:
    """The lease a dispatcher process renews while it runs."""
    return f"{DISPATCHER}:{holder}"


def forget_expired_dispatchers(before: datetime) -> int:
    """Remove the leases of dispatcher processes that stopped renewing them before `before`."""
    return Lease.objects(name__startswith=f"{DISPATCHER}:", expires_at__lt=before).delete()


def force_release(name: str) -> Lease | None:
    """Take the lease `name` from whoever holds it (an operator's last resort); return what it was."""
    return Lease.objects(name=name).modify(remove=True)
