"""The current tenant of this request or job, held in a contextvar.

A contextvar, not a thread-local or `flask.g`, so that the same code works in requests, CLI commands and
scheduled jobs. It does not flow into new threads: code that starts a thread sets the context there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

log = logging.getLogger("app.tenancy")


class TenancyError(RuntimeError):
    """A tenancy rule was about to be broken; this is a bug in the caller, never a client error."""


class TenantContextMissing(TenancyError):
    """A tenant-owned collection was used with no tenant in context and outside `unscoped()`."""


@dataclass(frozen=True)
class TenantState:
    tenant_id: ObjectId | None = None
    tenant: Any = None
    unscoped_reason: str | None = None


_EMPTY = TenantState()
_state: ContextVar[TenantState] = ContextVar("tenant_state", default=_EMPTY)


def current_state() -> TenantState:
    return _state.get()


def current_tenant_id() -> ObjectId | None:
    """Return the id of the tenant in context, or None."""
    return _state.get().tenant_id


def current_tenant() -> Any:
    """Return the Tenant document in context, or None (the document is shared: treat it as read-only)."""
    return _state.get().tenant


def set_tenant(tenant: Any) -> Token:
    """Bind `tenant` (a Tenant document, or None) to the current context."""
    state = TenantState(tenant.id, tenant) if tenant is not None else _EMPTY
    return _state.set(state)


def clear() -> None:
    """Forget any tenant in this context (the request teardown's safety net)."""
    _state.set(_EMPTY)


@contextmanager
def tenant_scope(tenant: Any) -> Iterator[Any]:
    """Run the block as `tenant` (a Tenant document); the previous context comes back afterwards."""
    if tenant is None or getattr(tenant, "id", None) is None:
        raise TenancyError("tenant_scope() needs a saved tenant")
    token = set_tenant(tenant)
    try:
        yield tenant
    finally:
        _state.reset(token)


@contextmanager
def unscoped(reason: str) -> Iterator[None]:
    """Run the block without a tenant filter: explicit, greppable and logged cross-tenant work."""
    if not reason or not reason.strip():
        raise TenancyError("unscoped() needs a reason")
    log.info("unscoped access", extra={"reason": reason})
    token = _state.set(TenantState(unscoped_reason=reason))
    try:
        yield
    finally:
        _state.reset(token)
