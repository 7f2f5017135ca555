"""The request hooks of the tenancy core: resolve, authenticate, authorize, check status, set context.

Order of a request:
1. the endpoint's access rule (INFRA endpoints skip tenancy entirely);
2. the credential, read by the authenticator the app was given (None when there is none), before any
   hint is resolved;
3. the tenant: the credential's own; a hint naming another one is 403 tenant_mismatch, except for a
   superadmin, whose hint selects the tenant; with no credential, hints select it on PUBLIC routes only;
4. the rule: PLATFORM needs a superadmin, TENANT a tenant and an allowed role; impersonation tokens
   and API keys only where the rule admits them;
5. a suspended tenant is 403 tenant_suspended, and an address outside the tenant's IP whitelist
   403 ip_not_allowed, for everyone but a superadmin;
6. the tenant goes into the context, and teardown empties the context after every request.

The app gives the core what it needs and the core does not know: the authenticator and the directory of
tenants (resolver.TenantDirectory). A refusal worth an audit entry is sent as a signal
(app.signals.tenant_mismatch), for whichever package records it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from flask import Flask, Request, current_app, g, request
from flask.globals import request_ctx

from app import signals
from app.errors import (
    Forbidden,
    IpNotAllowed,
    TenantMismatch,
    TenantRequired,
    TenantSuspended,
    Unauthorized,
)

from . import context
from .access import NOT_WHILE_IMPERSONATING, NOT_WITH_AN_API_KEY, Access, Principal, Rule, rule_for
from .resolver import Hint, TenantDirectory, TenantRecord, request_hints, resolve_hint

log = logging.getLogger("app.tenancy")

Authenticator = Callable[[Rule], Principal | None]


def init_app(app: Flask, authenticate: Authenticator, directory: TenantDirectory) -> None:
    """Install the tenancy hooks; `authenticate()` reads the request's credential, `directory` finds
    the tenants that credentials and hints name."""
    app.extensions["tenancy_authenticate"] = authenticate
    app.extensions["tenancy_directory"] = directory

    @app.before_request
    def resolve_tenant() -> None:
        _resolve(app, request_ctx.request)

    app.teardown_request(_teardown_request)


Named = list[tuple[Hint, TenantRecord]]


def _tenant_of_credential(principal: Principal, named: Named) -> TenantRecord:
    tenant = current_app.extensions["tenancy_directory"].by_id(principal.tenant_id)
    if tenant is None:
        raise Unauthorized("The tenant of this credential no longer exists")
    for hint, other in named:
        if other.id != tenant.id:
            log.warning(
                "tenant_mismatch",
                extra={"hint": hint.source, "named": str(other.id), "credential": str(tenant.id)},
            )
            signals.tenant_mismatch.send(
                tenant=tenant,
                hint=hint.source,
                named_tenant_id=str(other.id),
                path=request.path,
            )
            raise TenantMismatch(details={"source": hint.source})
    return tenant


def choose_tenant(rule: Rule, principal: Principal | None, named: Named) -> TenantRecord | None:
    """Apply the precedence and conflict rules to the credential and the tenants the hints name."""
    first_named = named[0][1] if named else None
    if principal is None:
        if rule.access is not Access.PUBLIC:
            raise Unauthorized()
        return first_named
    if principal.tenant_id is not None:
        if rule.access is Access.PLATFORM:
            raise Forbidden("Only a platform superadmin may do this")
        tenant = _tenant_of_credential(principal, named)
        if rule.access is Access.TENANT and rule.roles and principal.role not in rule.roles:
            raise Forbidden(f"Your role ({principal.role}) may not do this")
        return tenant
    if not principal.is_superadmin:
        raise Unauthorized()
    if first_named is None and rule.access is Access.TENANT:
        raise TenantRequired()
    return first_named


def address_allowed(address: str | None, whitelist: list[str]) -> bool:
    """Tell whether `address` is inside one of the CIDRs of `whitelist` (an empty list allows all)."""
    if not whitelist:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in whitelist)


def check_ip_whitelist(tenant: TenantRecord, address: str | None) -> None:
    """Refuse requests for `tenant` from outside its IP whitelist."""
    if not address_allowed(address, tenant.ip_whitelist):
        raise IpNotAllowed()


def _resolve(app: Flask, incoming: Request) -> None:
    """The tenancy steps of a request (the module's docstring), for `app` and its request `incoming`
    (passed in: read through Flask's context proxies, each use would look them up again)."""
    g.principal = None
    rule = rule_for(app, incoming.endpoint, incoming.method)
    if rule.access is Access.INFRA:
        return
    # The credential first: a request without a valid one is counted (per client address) before the
    # tenants its hints name are looked up.
    principal = app.extensions["tenancy_authenticate"](rule)
    g.principal = principal
    directory = app.extensions["tenancy_directory"]
    if app.config["ENABLE_MULTI_TENANT"]:
        hints = request_hints(
            incoming.headers, incoming.args, incoming.host, app.config["BASE_DOMAIN"], directory.reserved
        )
    else:
        # Single-tenant mode: hints are not read; every request names the default tenant.
        hints = [Hint("default", app.config["DEFAULT_TENANT_SLUG"])]
    # Every hint must name a tenant (404 otherwise), whoever asks and whatever the route.
    named = [(hint, tenant) for hint in hints if (tenant := resolve_hint(hint, directory)) is not None]
    tenant = choose_tenant(rule, principal, named)
    if principal is not None and principal.impersonator and not rule.while_impersonating:
        raise Forbidden(NOT_WHILE_IMPERSONATING)
    if principal is not None and principal.via == "api_key" and not rule.api_keys:
        raise Forbidden(NOT_WITH_AN_API_KEY)
    if tenant is None:
        return
    superadmin = principal is not None and principal.is_superadmin
    if not tenant.is_active and not superadmin:
        raise TenantSuspended()
    if not superadmin:
        check_ip_whitelist(tenant, incoming.remote_addr)
    context.set_tenant(tenant)
    if app.config["TENANT_DEBUG"]:
        log.info(
            "tenant resolved",
            extra={
                "slug": tenant.slug,
                "via": "credential" if principal and principal.tenant_id else "hint",
                "hints": [f"{h.source}={h.value}" for h in hints],
            },
        )


def _teardown_request(_error: BaseException | None) -> None:
    # The worker thread serves the next request with the same contextvars: never let a tenant leak.
    context.clear()
