"""The application factory."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import FunctionType
from typing import Any

from flask import Flask, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path
from werkzeug.middleware.proxy_fix import ProxyFix

import config
from app import (
    cli,
    converters,
    cross_origin,
    crypto,
    db,
    demo,
    health,
    logs,
    metrics,
    models,  # noqa: F401  (declares every document class in the registry before any app is built)
    request_hooks,
    security_headers,
    validators,
)
from app.audit import service as audit_service
from app.audit.views import blp as audit_blp
from app.audit.views import platform_blp as platform_audit_blp
from app.auth import cache as auth_credentials_cache
from app.auth import credentials, impersonation, oidc, tokens
from app.auth.views import blp as auth_blp
from app.auth.views import keys_blp
from app.billing.views import admin_blp as tenant_invoices_blp
from app.billing.views import blp as billing_blp
from app.campaigns.views import blp as campaigns_blp
from app.dashboard.views import blp as dashboard_blp
from app.errors import register_error_handlers
from app.extensions import Api, jwt, jwt_settings
from app.json_provider import OrjsonProvider
from app.media.views import blp as media_blp
from app.messages.views import blp as messages_blp
from app.openapi import DESCRIPTION, OpenApiPlugin
from app.reports.views import blp as reports_blp
from app.reports.views import platform_blp as platform_reports_blp
from app.reports.views import suggestions_blp
from app.system.views import blp as system_blp
from app.telegram import sandbox
from app.telegram_accounts.views import blp as telegram_accounts_blp
from app.tenancy import cache as tenants_cache
from app.tenancy import middleware
from app.tenancy.documents import tenancy_problems
from app.tenancy.registry import global_document_classes, tenant_document_classes
from app.tenants.blueprint import blp as tenants_blp
from app.tenants.directory import DIRECTORY
from app.tenants.service import ensure_default_tenant
from app.tenants.views import plans_blp
from app.usage import rate_limits
from app.usage import views as usage_views  # noqa: F401  (adds its route to the tenants blueprint)
from app.users import passwords
from app.users import service as users_service
from app.users.views import blp as users_blp
from app.webhooks import events as webhook_events
from app.webhooks.views import blp as webhooks_blp

API_DOCS = {
    "API_TITLE": "Telegram Marketing Platform API",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": "/api/v1/docs/assets/",
    # Swagger UI keeps what was entered under Authorize across reloads.
    "OPENAPI_SWAGGER_UI_CONFIG": {"persistAuthorization": True},
    "API_SPEC_OPTIONS": {"info": {"description": DESCRIPTION}},
}


class App(Flask):
    """Flask, recognising each plain function it runs (a view, a hook, an error handler) as synchronous
    once: Flask asks `inspect` on every call, a dozen times a request, and a function's answer never
    changes. Anything else (a bound method, a partial) is asked every time, as Flask does."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._synchronous: dict[FunctionType, Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) is not FunctionType:
            return super().ensure_sync(func)
        try:
            return self._synchronous[func]
        except KeyError:
            synchronous = self._synchronous[func] = super().ensure_sync(func)
            return synchronous


class TenancyConfigurationError(RuntimeError):
    """A document class breaks the tenancy rules; the app does not start."""


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config -> db -> extensions -> tenancy -> blueprints -> errors -> commands."""
    settings = config.load(os.environ)
    settings.update(overrides or {})
    config.validate(settings)

    app = App(__name__)
    app.json = OrjsonProvider(app)
    app.config.from_mapping(settings)
    app.config.from_mapping(API_DOCS)
    app.config.from_mapping(jwt_settings(settings))
    logs.configure(app.config["LOG_LEVEL"], tenant_debug=app.config["TENANT_DEBUG"])
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    passwords.init_app(app)
    crypto.init_app(app)

    db.connect(app.config["MONGODB_URI"])
    check_tenancy_rules()
    if app.config["CREATE_INDEXES"]:
        for document_class in tenant_document_classes() + global_document_classes():
            document_class.ensure_indexes()

    tenants_cache.init_app(app)
    auth_credentials_cache.init_app(app)
    oidc.provider_documents.clear()

    jwt.init_app(app)
    tokens.init_app(app)
    api = Api()
    api.init_app(app, spec_kwargs={"extra_plugins": [OpenApiPlugin(app)]})
    api.ma_plugin.converter.add_attribute_function(validators.openapi_properties)
    converters.init_app(app, api)
    request_hooks.init_app(app)
    security_headers.init_app(app)
    cross_origin.init_app(app)
    middleware.init_app(app, rate_limits.counting_anonymous(credentials.authenticate), DIRECTORY)
    rate_limits.init_app(app)
    impersonation.init_app(app)
    auth_credentials_cache.connect()
    audit_service.connect()
    users_service.connect()
    webhook_events.connect()

    app.register_blueprint(health.blp)
    app.register_blueprint(metrics.blp)
    app.register_blueprint(dashboard_blp)
    if app.config["TELEGRAM_SANDBOX"]:  # development only: config refuses it in production
        app.extensions["telegram_sandbox"] = sandbox.Sandbox()
        app.register_blueprint(sandbox.blueprint(app.extensions["telegram_sandbox"]))
    for blueprint in (
        tenants_blp,
        plans_blp,
        auth_blp,
        keys_blp,
        users_blp,
        campaigns_blp,
        messages_blp,
        reports_blp,
        suggestions_blp,
        platform_reports_blp,
        telegram_accounts_blp,
        webhooks_blp,
        media_blp,
        audit_blp,
        platform_audit_blp,
        system_blp,
        billing_blp,
        tenant_invoices_blp,
    ):
        api.register_blueprint(blueprint)
    app.add_url_rule("/api/v1/docs/assets/<path:filename>", "api-docs.assets", _docs_asset)

    register_error_handlers(app)
    cli.register(app)

    if not app.config["ENABLE_MULTI_TENANT"]:
        with app.app_context():
            ensure_default_tenant()
    if app.config["SEED_DEMO"]:
        with app.app_context():
            demo.print_accounts(demo.seed_demo(app))
    return app


def check_tenancy_rules() -> None:
    """Refuse to start when a tenant document class breaks a rule of the tenancy core."""
    problems = tenancy_problems()
    if problems:
        raise TenancyConfigurationError("tenancy rules broken:\n  " + "\n  ".join(problems))


def _docs_asset(filename: str) -> Response:
    """Serve Swagger UI's files from the installed package (no CDN)."""
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
