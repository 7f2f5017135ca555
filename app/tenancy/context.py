"""The current tenant of this request or job, held in a contextvar.

A contextvar, not a thread-local or `flask.g`, so that the same code works in requests, CLI commands and
scheduled jobs. It does not flow into new threads: code that starts a thread sets the context there.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from bson import ObjectId

log = logging.getLogger("app.tenancy")


class TenancyError(RuntimeError):
    """A tenancy rule was about to be broken; this is a bug in the caller, never a client error."""


class TenantContextMissing(TenancyError):
    """A tenant-owned collection was used with no tenant in context and outside `unscoped()`."""


class UnscopedLeak(TenancyError):
    """Code that did not enter `unscoped()` ran inside it: a generator yielded inside the block (its
    consumer's code would read across tenants), or the context was copied into another thread."""


@dataclass(frozen=True)
class TenantState:
    tenant_id: ObjectId | None = None
    tenant: Any = None
    unscoped_reason: str | None = None
    # The frame whose `with unscoped(...)` set this state: only code it calls may use the state.
    unscoped_by: FrameType | None = None


_EMPTY = TenantState()
_state: ContextVar[TenantState] = ContextVar("tenant_state", default=_EMPTY)


def _on_this_stack(frame: FrameType) -> bool:
    caller: FrameType | None = sys._getframe(1)
    while caller is not None:
        if caller is frame:
            return True
        caller = caller.f_back
    return False


def current_state() -> TenantState:
    """Return the tenancy state of this context; raise UnscopedLeak where unscoped access reached
    code that the block of `unscoped()` does not call."""
    state = _state.get()
    if state.unscoped_by is not None and not _on_this_stack(state.unscoped_by):
        raise UnscopedLeak(
            f"unscoped access ({state.unscoped_reason}) reached code outside its block: "
            "never yield inside unscoped(), nor carry its context into another thread"
        )
    return state


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


class _Unscoped:
    """The context manager of `unscoped()`; it notes the frame of the `with` statement that enters it."""

    def __init__(self, reason: str):
        self.reason = reason
        self.token: Token[TenantState] | None = None

    def __enter__(self) -> None:
        log.info("unscoped access", extra={"reason": self.reason})
        self.token = _state.set(TenantState(unscoped_reason=self.reason, unscoped_by=sys._getframe(1)))

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self.token is not None, "__exit__ without __enter__"
        _state.reset(self.token)


def unscoped(reason: str) -> _Unscoped:
    """Run the block without a tenant filter: explicit, greppable and logged cross-tenant work.

    Only the block and what it calls run unscoped: a generator that yields inside the block, or a
    thread given a copy of its context, raises UnscopedLeak at its first tenant-owned query."""
    if not reason or not reason.strip():
        raise TenancyError("unscoped() needs a reason")
    return _Unscoped(reason)
