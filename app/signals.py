"""Events that cross packages, as blinker signals: the package that has something to tell sends, the
packages that act on it connect receivers, and neither imports the other.

Each package that receives connects its receivers in its own `connect()`, which `create_app` calls.
A receiver is a module-level function, and blinker holds a receiver once however often it is
connected, so two apps in one process never deliver an event twice; until a receiver is connected,
its signal writes nothing. Events are sent with or without an app context (a job's threads, a test's),
as the code that wrote them directly did. Receivers run at once, in the sender's thread and context (the
request, the job, the dispatcher's lane), so an entry is written where it was before, after the same
conditional update; an error in a receiver reaches the sender as if the receiver had been called
directly. The receivers of one signal are independent: none relies on another having run first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blinker import Namespace

_signals = Namespace()

# The tenancy core refused a credential because a hint named another tenant: tenant (the credential's),
# hint (its source), named_tenant_id, path.
tenant_mismatch = _signals.signal("tenant-mismatch")
# A reservation crossed one of the tenant's usage alert thresholds, once per period: data (resource,
# threshold, used, limit, period), for the tenant in context.
usage_threshold_crossed = _signals.signal("usage-threshold-crossed")
# Tenant events for the webhooks subscribed to them: event, items (one payload's data each), for the
# tenant in context.
webhook_event = _signals.signal("webhook-event")
# The same, for many tenants at once (a cross-tenant job, inside unscoped()): event, items (each tenant
# id's data items).
webhook_events_of_tenants = _signals.signal("webhook-events-of-tenants")
# Credentials changed by a write that MongoEngine's save signals do not see (an update by filter, a
# bump of an account's token version, a tenant's purge): whatever this process cached of credentials is
# stale. No data.
credentials_changed = _signals.signal("credentials-changed")
# The tenant in context is about to require a second factor of its users, as principal asks (nothing is
# saved yet): a receiver refuses by raising, when the requirement would lock the principal out.
requiring_second_factor = _signals.signal("requiring-second-factor")
# The tenant in context now requires a second factor of its users (saved). No data.
second_factor_required = _signals.signal("second-factor-required")


def notify(event: str, data: dict[str, Any]) -> None:
    """Tell the tenant in context's webhooks that `event` happened."""
    notify_many(event, [data])


def notify_many(event: str, items: Sequence[dict[str, Any]]) -> None:
    """Tell the tenant in context's webhooks that `event` happened once per item of data."""
    if items:
        webhook_event.send(event=event, items=items)


def notify_tenants(event: str, items: Mapping[Any, Sequence[dict[str, Any]]]) -> None:
    """Tell each tenant's webhooks that `event` happened once per item of its data (`items`: by tenant
    id), from a cross-tenant job."""
    if items:
        webhook_events_of_tenants.send(event=event, items=items)
