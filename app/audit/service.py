"""Write audit entries: who, what, when, from where; never a secret."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from flask import g, has_request_context, request

from app import signals
from app.db import stored_like
from app.logs import request_id_var
from app.pagination import paginate
from app.rate_windows import within
from app.tenancy.context import tenant_scope

from .models import Actor, AuditLog, PlatformAuditLog

log = logging.getLogger("app.audit")

SECRET_KEY_RE = re.compile(r"password|secret|token|hash|apikey|api_key|^key$", re.IGNORECASE)
REDACTED = "[redacted]"
# Entries that a request without a credential causes (a failed login, a refused single sign-on) are
# anyone's to cause: a tenant's log takes one per action, subject and client address in this window,
# and at most ANONYMOUS_ENTRIES of them in all per window; the others are only logged.
ANONYMOUS_WINDOW = "hour"
ANONYMOUS_ENTRIES = 100


def redact(value: Any) -> Any:
    """Replace the text under secret-looking keys, at any depth (counts and flags stay)."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(v, str) and SECRET_KEY_RE.search(str(k)) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def current_actor() -> Actor:
    """Describe the caller of this request (system outside requests, anonymous without credential)."""
    principal = g.get("principal") if has_request_context() else None
    if principal is None:
        return Actor(kind="anonymous" if has_request_context() else "system")
    kind = "api_key" if principal.via == "api_key" else "user"
    if principal.is_superadmin:
        kind = "superadmin"
    account = principal.account
    actor = Actor(kind=kind, id=principal.subject, label=getattr(account, "email", None))
    if principal.impersonator:
        actor.impersonator_id = principal.impersonator
        actor.impersonator_label = (principal.claims or {}).get("act", {}).get("email")
    return actor


def _origin() -> dict[str, Any]:
    return {
        "ip": request.remote_addr if has_request_context() else None,
        "request_id": request_id_var.get(),
    }


def record(
    action: str,
    *,
    tenant: Any = None,
    target_type: str | None = None,
    target_id: Any = None,
    summary: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> AuditLog:
    """Append an entry to the audit log of `tenant` (default: the tenant in context)."""
    entry = _entry(action, actor or current_actor(), target_type, target_id, summary)
    if tenant is None:
        return entry.save()
    with tenant_scope(tenant):
        return entry.save()


def _entry(
    action: str, actor: Actor, target_type: str | None, target_id: Any, summary: dict[str, Any] | None
) -> AuditLog:
    return AuditLog(
        action=action,
        actor=actor,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        summary=redact(summary or {}),
        **_origin(),
    )


def record_for_tenants(
    action: str,
    entries: Iterable[tuple[Any, Any, dict[str, Any]]],
    *,
    target_type: str,
    actor: Actor,
) -> int:
    """Append one entry per (tenant id, target id, summary) to the audit log of its tenant, in one
    insert (cross-tenant work inside `unscoped()`: each entry names its tenant); return how many."""
    rows = [
        {
            "tenant_id": tenant_id,
            "target_id": str(target_id) if target_id is not None else None,
            "summary": redact(summary or {}),
        }
        for tenant_id, target_id, summary in entries
    ]
    if rows:
        template = _entry(action, actor, target_type, None, None)
        template.tenant_id = rows[0]["tenant_id"]
        AuditLog._get_collection().insert_many(stored_like(template, rows), ordered=False)
    return len(rows)


def record_anonymous(
    action: str,
    *,
    tenant: Any,
    subject: str,
    target_type: str | None = None,
    target_id: Any = None,
    summary: dict[str, Any] | None = None,
) -> AuditLog | None:
    """Append an entry caused without a credential to the audit log of `tenant` when it is the first of
    its action, subject and client address in the window and the tenant's log has room; else log it."""
    address = request.remote_addr if has_request_context() else None
    tenant_key = str(tenant.id)
    if within(f"1/{ANONYMOUS_WINDOW}", "audit", tenant_key, action, subject, str(address)) and within(
        f"{ANONYMOUS_ENTRIES}/{ANONYMOUS_WINDOW}", "audit", tenant_key
    ):
        return record(action, tenant=tenant, target_type=target_type, target_id=target_id, summary=summary)
    log.warning(
        action, extra={"auditedTenant": tenant_key, "auditSkipped": True, "summary": redact(summary or {})}
    )
    return None


def record_platform(
    action: str,
    *,
    tenant: Any = None,
    target_type: str | None = None,
    target_id: Any = None,
    summary: dict[str, Any] | None = None,
) -> PlatformAuditLog:
    """Append an entry to the platform trail (superadmin actions; it outlives deleted tenants)."""
    return PlatformAuditLog(
        action=action,
        actor=current_actor(),
        tenant_id=getattr(tenant, "id", None),
        tenant_slug=getattr(tenant, "slug", None),
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        summary=redact(summary or {}),
        **_origin(),
    ).save()


def connect() -> None:
    """Record the events of other packages that belong in a tenant's audit log."""
    signals.tenant_mismatch.connect(_tenant_mismatch)
    signals.usage_threshold_crossed.connect(_usage_threshold_crossed)


def _tenant_mismatch(_sender: object, *, tenant: Any, hint: str, named_tenant_id: str, path: str) -> None:
    record(
        "auth.tenant_mismatch",
        tenant=tenant,
        summary={"hint": hint, "namedTenant": named_tenant_id, "path": path},
    )


def _usage_threshold_crossed(_sender: object, *, data: dict[str, Any]) -> None:
    record("usage.threshold_crossed", target_type="usage", target_id=data["resource"], summary=data)


# Audit lists: the newest entry first.
NEWEST_FIRST = ("-created_at", "-id")


def _filtered(queryset: Any, args: dict[str, Any]) -> Any:
    if args.get("action"):
        queryset = queryset.filter(action=args["action"])
    if args.get("actor"):
        queryset = queryset.filter(actor__id=args["actor"])
    if args.get("since"):
        queryset = queryset.filter(created_at__gte=args["since"])
    if args.get("until"):
        queryset = queryset.filter(created_at__lte=args["until"])
    return queryset


def list_entries(args: dict[str, Any]) -> dict[str, Any]:
    """Return a page of the tenant in context's audit entries."""
    return paginate(_filtered(AuditLog.objects, args), NEWEST_FIRST, args)


def list_platform_entries(args: dict[str, Any]) -> dict[str, Any]:
    """Return a page of the platform trail, filtered by tenant id or slug (deleted tenants' too)."""
    entries = PlatformAuditLog.objects
    if args.get("tenant_id"):
        entries = entries.filter(tenant_id=args["tenant_id"])
    if args.get("tenant_slug"):
        entries = entries.filter(tenant_slug=args["tenant_slug"])
    return paginate(_filtered(entries, args), NEWEST_FIRST, args)
