"""What the OpenAPI document says about every operation beyond its own decorators, derived from the
rules the service enforces, so that the document cannot say otherwise:

- security: the route's access rule (app.tenancy.access), the one the middleware applies;
- the tenant hints (`X-Tenant-Id`, `?tenant=`): where the middleware reads them to choose a tenant;
- the error answers: the failures the request's path takes (the middleware's 401/403/404/409/429,
  the body and argument checks' 400/413/415/422, the path ids' 404), each with the error envelope;
- the operation id: the view's name and method (`listCampaigns`, `getCampaign`, `sendCampaign`),
  unless the view names its own with `@blp.doc(operationId=...)`.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec, BasePlugin
from flask import Flask
from werkzeug.routing import Rule as UrlRule

from app.extensions import ErrorEnvelopeSchema
from app.tenancy.access import Access, Rule, rule_for

BEARER = "bearerAuth"
API_KEY = "apiKeyAuth"
TENANT_HEADER = "TenantHeader"
TENANT_QUERY = "TenantQuery"

DESCRIPTION = """\
One deployment serves many tenants (organizations); each sees only its own users, campaigns, bots,
messages and settings.

**Credentials.** `Authorization: Bearer <access token>` (from `POST /api/v1/auth/login`; access
tokens last 15 minutes, `POST /api/v1/auth/refresh` exchanges the refresh token for a new one) or
`X-API-Key: <key>` (from `POST /api/v1/api-keys`, plan feature `apiAccess`). Each operation lists the
ones it takes; operations with an empty list need none.

**Which tenant.** The credential fixes the tenant. Without one (signup, login, branding), hints name
it, in this order: the `X-Tenant-Id` header (id or slug), the `tenant` query parameter (slug or id), a
custom domain (a `Host` equal to a tenant's domain), a subdomain (`<slug>.<base domain>`). A hint that
names no tenant is `404 tenant_not_found`; a hint naming another tenant than the credential's is
`403 tenant_mismatch`; a superadmin's hint selects the tenant to act on.

**Errors.** Every failure answers `{"error": {"code": "...", "message": "...", "details": {...}}}`
(`ErrorEnvelope`), the `code` being machine-readable (`validation_error`, `not_found`,
`limit_exceeded`, ...). `429 rate_limited` comes with `Retry-After` and `X-RateLimit-*` headers.
"""

SECURITY_SCHEMES = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /api/v1/auth/login (a refresh token on "
        "POST /api/v1/auth/refresh).",
    },
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key of the tenant (POST /api/v1/api-keys), acting with at most its "
        "creator's rights.",
    },
}

TENANT_PARAMETERS = {
    TENANT_HEADER: (
        "header",
        {
            "name": "X-Tenant-Id",
            "description": "The tenant to act on, by id or slug: needed without a credential (login) "
            "and by a superadmin; with a tenant's credential it must name that tenant "
            "(403 tenant_mismatch). Unknown: 404 tenant_not_found.",
            "schema": {"type": "string"},
            "example": "acme",
        },
    ),
    TENANT_QUERY: (
        "query",
        {
            "name": "tenant",
            "description": "The tenant to act on, by slug or id, as X-Tenant-Id (which comes first).",
            "schema": {"type": "string"},
            "example": "acme",
        },
    ),
}

RATE_LIMIT_HEADERS = {
    "Retry-After": ("Seconds to wait before trying again", "integer"),
    "X-RateLimit-Limit": ("Requests allowed in the window", "integer"),
    "X-RateLimit-Remaining": ("Requests left in the window", "integer"),
    "X-RateLimit-Reset": ("When the window ends (Unix time)", "integer"),
}

# Status -> (component name, description): the error answers an operation may declare.
ERRORS = {
    400: ("BadRequest", "The body is not valid JSON (`bad_request`)."),
    401: (
        "Unauthorized",
        "No credential where one is needed, or one that is not valid, expired or revoked "
        "(`unauthorized`, `invalid_credentials`, `token_expired`, `token_revoked`).",
    ),
    403: (
        "Forbidden",
        "The credential may not do this (`forbidden`), belongs to another tenant than the hint names "
        "(`tenant_mismatch`), or the tenant is suspended (`tenant_suspended`), the caller's address is "
        "not on its IP whitelist (`ip_not_allowed`), its plan lacks the feature or the room "
        "(`feature_not_available`, `limit_exceeded`).",
    ),
    404: (
        "NotFound",
        "No such resource in the tenant (`not_found`), or no tenant the hint names (`tenant_not_found`).",
    ),
    409: (
        "Conflict",
        "The resource changed meanwhile or is in a state that refuses this (`conflict`), or a "
        "superadmin must say which tenant (`tenant_required`).",
    ),
    413: ("PayloadTooLarge", "The body is larger than the service takes (`payload_too_large`)."),
    415: ("UnsupportedMediaType", "The body is not application/json (`unsupported_media_type`)."),
    422: (
        "UnprocessableEntity",
        "The body or the query arguments are not valid (`validation_error`); `details` maps each "
        "field to its messages.",
    ),
    429: ("TooManyRequests", "Too many requests (`rate_limited`): wait `Retry-After` seconds."),
}

WRITES = frozenset({"post", "put", "patch", "delete"})
VERBS = {"get": "get", "put": "replace", "patch": "update", "delete": "delete"}


def _error_response(status: int, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ErrorEnvelopeSchema}},
    }
    if status == 429:
        response["headers"] = {
            name: {"description": text, "schema": {"type": kind}}
            for name, (text, kind) in RATE_LIMIT_HEADERS.items()
        }
    return response


def security_of(rule: Rule) -> list[dict[str, list[str]]]:
    """The credentials a route takes, as an OpenAPI security requirement (alternatives)."""
    if rule.access is Access.PUBLIC:
        return [{BEARER: []}] if rule.token_type == "refresh" else []
    if rule.access is Access.PLATFORM or not rule.api_keys:
        return [{BEARER: []}]
    return [{BEARER: []}, {API_KEY: []}]


def access_note(rule: Rule) -> str:
    """Who may call a route, in a sentence for its description."""
    if rule.access is Access.PUBLIC:
        note = "Takes a refresh token." if rule.token_type == "refresh" else "No credential needed."
    elif rule.access is Access.PLATFORM:
        note = "Platform superadmins only."
    elif rule.access is Access.AUTHENTICATED:
        note = "Any valid credential."
    elif rule.roles:
        note = f"Roles: {', '.join(sorted(rule.roles, reverse=True))} (or a superadmin naming the tenant)."
    else:
        note = "Any role of the tenant (or a superadmin naming the tenant)."
    if not rule.api_keys:
        note += " Not with an API key."
    if not rule.while_impersonating:
        note += " Not while impersonating."
    return note


def _is_list(operation: dict[str, Any]) -> bool:
    """A GET whose answer is a page or an array."""
    responses = operation.get("responses", {})
    answer = responses.get(200) or responses.get("200") or {}
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("type") == "array" or str(schema.get("$ref", "")).endswith("Page")


def operation_id(view_name: str, method: str, operations: dict[str, Any]) -> str:
    """`list`, `create`, `get`, `update`, `delete` + the resource for resources (`CampaignById`,
    `Campaigns`), the view's own name for actions (`SendCampaign`: `sendCampaign`)."""
    resource = view_name.removesuffix("ById")
    if method == "get" and _is_list(operations[method]):
        return "list" + view_name
    if method == "post" and "get" in operations and _is_list(operations["get"]):
        return "create" + (resource[:-1] if resource.endswith("s") else resource)
    if method in VERBS:
        return VERBS[method] + resource
    return view_name[0].lower() + view_name[1:]


class OpenApiPlugin(BasePlugin):
    """apispec plugin completing every operation of `app` from its access rule and its shape."""

    def __init__(self, app: Flask):
        self.app = app
        self.multi_tenant = bool(app.config["ENABLE_MULTI_TENANT"])

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        for name, scheme in SECURITY_SCHEMES.items():
            spec.components.security_scheme(name, scheme)
        for name, (location, parameter) in TENANT_PARAMETERS.items():
            spec.components.parameter(name, location, parameter, lazy=True)
        for status, (name, description) in ERRORS.items():
            spec.components.response(name, _error_response(status, description), lazy=True)

    def operation_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        *,
        rule: UrlRule | None = None,
        **_kwargs: Any,
    ) -> None:
        if rule is None or not operations:
            return
        view_name = rule.endpoint.rsplit(".", 1)[-1]
        for method, operation in operations.items():
            access = rule_for(self.app, rule.endpoint, method.upper())
            operation.setdefault("operationId", operation_id(view_name, method, operations))
            operation["security"] = security_of(access)
            note = access_note(access)
            operation["description"] = (
                f"{operation['description']}\n\n{note}" if operation.get("description") else note
            )
            statuses = self._error_statuses(method, operation, access, bool(rule.arguments))
            if self._takes_hints(access):
                operation.setdefault("parameters", []).extend([TENANT_HEADER, TENANT_QUERY])
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses.pop(str(status), None)
                responses[status] = ERRORS[status][0]
            operation["responses"] = dict(sorted(responses.items(), key=lambda item: str(item[0])))

    def _takes_hints(self, rule: Rule) -> bool:
        """The middleware reads the hints to choose the tenant of every route but the superadmin's
        (which name tenants in their paths), in multi-tenant mode."""
        return self.multi_tenant and rule.access is not Access.PLATFORM

    def _error_statuses(self, method: str, operation: dict[str, Any], rule: Rule, path_ids: bool) -> set[int]:
        """The error statuses a request of this operation can get, from what it passes through."""
        statuses = {401, 403, 429}  # the middleware: credential, rule and tenant checks, rate limits
        if path_ids or self._takes_hints(rule):
            statuses.add(404)
        if rule.access is Access.TENANT or method in WRITES:
            statuses.add(409)
        if any(parameter.get("in") == "query" for parameter in operation.get("parameters", [])):
            statuses.add(422)
        if "requestBody" in operation:
            statuses |= {400, 413, 415, 422}
        return statuses
