"""Who may call a view, declared on the view, and who is calling (the Principal).

Every endpoint is TENANT (a credential of a tenant, any role) unless a decorator says otherwise, so a
view that forgets to declare its access is closed, not open. Decorators combine: `@roles("owner")`
and `@not_while_impersonating` on the same view give both restrictions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bson import ObjectId
from flask import Flask

TENANT_ROLES = ("owner", "admin", "member")
SUPERADMIN = "superadmin"
# Why an impersonation token is refused a change of credentials or of who may sign in: whatever it left
# behind would outlast the impersonation.
NOT_WHILE_IMPERSONATING = (
    "Not while impersonating: credentials, and who may sign in with which role, "
    "are the tenant's own to change"
)
NOT_WITH_AN_API_KEY = "This takes a person's own login, not an API key"


class Access(Enum):
    INFRA = "infra"  # no tenancy at all: health checks, API docs, static files
    PUBLIC = "public"  # no credential needed; hints may select a tenant (signup, login, plans)
    TENANT = "tenant"  # a credential of the tenant, or a superadmin naming one
    AUTHENTICATED = "authenticated"  # any valid credential; a superadmin need not name a tenant
    PLATFORM = "platform"  # superadmins only


@dataclass(frozen=True)
class Rule:
    access: Access = Access.TENANT
    roles: frozenset[str] | None = None
    token_type: str = "access"  # the kind of bearer token the route takes
    while_impersonating: bool = True  # False: credential changes, refused to impersonators
    enrollment: bool = False  # True: a 2FA enrollment token is accepted here
    api_keys: bool = True  # False: a person's own login only, API keys are refused


DEFAULT_RULE = Rule()
_ATTRIBUTE = "_access_rule"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of this request."""

    subject: str
    role: str
    tenant_id: ObjectId | None
    via: str  # access_token | refresh_token | api_key
    account: Any = None  # the User, PlatformUser or ApiKey behind the credential
    impersonator: str | None = None
    claims: dict[str, Any] | None = None

    @property
    def is_superadmin(self) -> bool:
        """A superadmin acting as themselves (an impersonation token is not)."""
        return self.role == SUPERADMIN and self.tenant_id is None and self.impersonator is None


def _mark(**changes: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        setattr(view, _ATTRIBUTE, dataclasses.replace(getattr(view, _ATTRIBUTE, DEFAULT_RULE), **changes))
        return view

    return decorate


infra = _mark(access=Access.INFRA)
public = _mark(access=Access.PUBLIC)
platform = _mark(access=Access.PLATFORM)
authenticated = _mark(access=Access.AUTHENTICATED)
not_while_impersonating = _mark(while_impersonating=False)
enrollment_allowed = _mark(enrollment=True)
people_only = _mark(api_keys=False)


def refresh_token_route(view: Callable[..., Any]) -> Callable[..., Any]:
    """The route takes a refresh token instead of an access token."""
    return _mark(access=Access.PUBLIC, token_type="refresh")(view)


def roles(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Allow only these tenant roles (superadmins naming the tenant are allowed too)."""
    unknown = set(names) - set(TENANT_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return _mark(access=Access.TENANT, roles=frozenset(names))


def rule_for(app: Flask, endpoint: str | None, method: str) -> Rule:
    """Return the access rule of an endpoint and method (cached per app)."""
    cache: dict[tuple[str | None, str], Rule] = app.extensions.setdefault("access_rules", {})
    key = (endpoint, method)
    if key not in cache:
        cache[key] = _find_rule(app, endpoint, method)
    return cache[key]


def _find_rule(app: Flask, endpoint: str | None, method: str) -> Rule:
    if (
        endpoint is None
        or endpoint == "static"
        or endpoint.endswith(".static")
        or endpoint.startswith("api-docs.")
    ):
        return Rule(Access.INFRA)
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        handler = getattr(view_class, method.lower(), None)
        if handler is None and method == "HEAD":
            handler = getattr(view_class, "get", None)
        rule = getattr(handler, _ATTRIBUTE, None) or getattr(view_class, _ATTRIBUTE, None)
    else:
        rule = getattr(view, _ATTRIBUTE, None)
    return rule or DEFAULT_RULE
