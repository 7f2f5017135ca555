"""The last active owner stays: every change of a user that adds or removes an active owner goes here.

"At least one user of the tenant is an active owner" spans several documents, which no single
conditional write on a user can check, so the tenant document keeps the count of its active owners
(`owners.active`). Removing an owner first takes one off the count, in an update conditional on the
count being at least two (of two owners demoting each other at once, one is refused), then writes the
user; adding one writes the user, then adds one. The count therefore never exceeds the owners there
are. Every change also moves `owners.version` as it begins, so that the reconciliation job can repair
a count that a crash between the two writes left too low without racing a change under way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne

from app.errors import Conflict
from app.tenants.models import Tenant

from .models import User

# A change of an owner takes a request's time; one seen under way this long ago has ended, or died.
SETTLE = timedelta(minutes=10)


def is_active_owner(user: User) -> bool:
    return user.role == "owner" and bool(user.active) and user.erased_at is None


def count_active_owners() -> int:
    """Count the active owners of the tenant in context."""
    return User.objects(role="owner", active=True, erased_at=None).count()


def _stored_count(tenant_id: ObjectId) -> dict[str, Any] | None:
    raw = Tenant.objects(id=tenant_id).only("owners").as_pymongo().first()
    return (raw or {}).get("owners")


def _ensure_count(tenant_id: ObjectId) -> None:
    """Count the owners of a tenant stored before the count was kept (the first change does it once)."""
    if "active" in (_stored_count(tenant_id) or {}):
        return
    Tenant.objects(id=tenant_id, owners__active__exists=False).update_one(
        set__owners__active=count_active_owners()
    )


def _count_one_more(tenant_id: ObjectId) -> None:
    Tenant.objects(id=tenant_id).update_one(inc__owners__active=1, inc__owners__version=1)


class OwnerChange:
    """Keep the count in step with one write of a user (`with owner_change(...) as change:`).

    Entering takes the user off the count when the write removes an active owner (409 when it is the
    last one), or marks a change as begun when it adds one. The block writes the user conditionally on
    the state it read and calls `written()` when that write applied; leaving puts a removed owner back
    when it did not, and counts an added owner when it did."""

    def __init__(self, tenant_id: ObjectId, user_id: Any, was_owner: bool, is_owner: bool):
        self.tenant_id = tenant_id
        self.user_id = user_id
        self.removes = was_owner and not is_owner
        self.adds = is_owner and not was_owner
        self.applied = False

    def __enter__(self) -> OwnerChange:
        if not (self.removes or self.adds):
            return self
        _ensure_count(self.tenant_id)
        if self.adds:
            Tenant.objects(id=self.tenant_id).update_one(inc__owners__version=1)
        elif not Tenant.objects(id=self.tenant_id, owners__active__gte=2).update_one(
            dec__owners__active=1, inc__owners__version=1
        ):
            raise Conflict(
                "The tenant must keep at least one active owner", details={"userId": str(self.user_id)}
            )
        return self

    def written(self) -> None:
        """Say that the user's conditional write applied."""
        self.applied = True

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if (self.removes and not self.applied) or (self.adds and self.applied):
            _count_one_more(self.tenant_id)


def owner_change(user: User, *, is_owner: bool, was_owner: bool | None = None) -> OwnerChange:
    """The change of `user` into a user who is (or is not) an active owner; `was_owner` defaults to
    what the loaded user is (a user not stored yet was none)."""
    before = is_active_owner(user) if was_owner is None else was_owner
    return OwnerChange(user.tenant_id, user.id, before, is_owner)


@dataclass(frozen=True)
class CountStep:
    """The conditional write that moves one tenant's stored count of owners on, and the repair it
    makes when it applies ({from, to}; None when it only notes or forgets a disagreement)."""

    write: UpdateOne
    repair: dict[str, int] | None = None


def count_step(
    tenant_id: ObjectId, stored: dict[str, Any] | None, actual: int, now: datetime
) -> CountStep | None:
    """Decide what the reconciliation writes of a tenant's count of active owners, from the count as
    stored (the tenant's raw `owners`, read before its users were counted) and the `actual` count:
    count a tenant stored before the count was kept; note a disagreement (with the version it was seen
    at) and forget one that went away; repair the count once it has disagreed since a look at least
    SETTLE ago with no change of an owner begun meanwhile. Every write is conditional on the version
    read, so a change of an owner begun since voids it. None: nothing to write."""
    stored = stored or {}
    if "active" not in stored:
        return CountStep(
            UpdateOne(
                {"_id": tenant_id, "owners.active": {"$exists": False}}, {"$set": {"owners.active": actual}}
            )
        )
    version = stored.get("version", 0)
    unchanged = {"_id": tenant_id, "owners.version": version if "version" in stored else {"$exists": False}}
    forget = {"owners.driftVersion": "", "owners.driftSeenAt": ""}
    if actual == stored["active"]:
        return CountStep(UpdateOne(unchanged, {"$unset": forget})) if "driftSeenAt" in stored else None
    seen_at = stored.get("driftSeenAt")
    if stored.get("driftVersion") != version or seen_at is None:
        return CountStep(
            UpdateOne(unchanged, {"$set": {"owners.driftVersion": version, "owners.driftSeenAt": now}})
        )
    if now - seen_at < SETTLE:
        return None
    # No change of an owner has begun since the disagreement was first seen, and any under way then has
    # ended: `actual` is exact, unless a change begins now, which moves the version and voids the repair.
    return CountStep(
        UpdateOne(
            unchanged, {"$set": {"owners.active": actual}, "$inc": {"owners.version": 1}, "$unset": forget}
        ),
        {"from": stored["active"], "to": actual},
    )
