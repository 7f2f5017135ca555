"""The dashboard: pages served by the service itself, which do everything through /api/v1.

The pages are shells: the browser holds the user's token (sessionStorage) and calls the public API
with it, so a page can do nothing the API would not let its user do. Every script and stylesheet is
served from here, and the Content-Security-Policy of every page (app/security_headers.py) forbids
inline scripts and styles.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, abort, render_template, request

from app.tenancy.access import infra, public
from app.tenancy.context import current_tenant
from app.tenants.stylesheet import tenant_stylesheet

blp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


@blp.get("/")
@blp.get("/login")
@infra
def login_page():
    """The login page (branded when reached through a tenant's subdomain or domain)."""
    return render_template("dashboard/login.html", page="login")


@blp.get("/tenant/settings")
@infra
def settings_page():
    """The tenant settings page."""
    return render_template("dashboard/settings.html", page="settings")


@blp.get("/sso")
@infra
def sso_page():
    """Where an identity provider sends the browser back after a single sign-on from the login page."""
    return render_template("dashboard/sso.html", page="sso")


@blp.get("/tenants")
@infra
def tenants_page():
    """The superadmin's tenant management page."""
    return render_template("dashboard/tenants.html", page="tenants")


# The product's pages: (page, path). Each is a shell of templates/dashboard/<page>.html and
# static/dashboard/<page>.js, and every one of them is the navigation's.
PRODUCT_PAGES = (
    ("campaigns", "/campaigns"),
    ("bots", "/bots"),
    ("users", "/users"),
    ("api_keys", "/api-keys"),
    ("webhooks", "/webhooks"),
    ("audit", "/audit-log"),
    ("invoices", "/invoices"),
    ("reports", "/reports"),
)


def _shell(page: str) -> Callable[[], str]:
    def view() -> str:
        return render_template(f"dashboard/{page}.html", page=page)

    view.__doc__ = f"The {page.replace('_', ' ')} page."
    return infra(view)


for _page, _path in PRODUCT_PAGES:
    blp.add_url_rule(_path, endpoint=f"{_page}_page", view_func=_shell(_page))


@blp.get("/tenant.css")
@public
def tenant_css():
    """The custom CSS of the tenant the request names (white-label plans only), checked when saved."""
    tenant = current_tenant()
    if tenant is None:
        abort(404)
    css, etag = tenant_stylesheet(tenant)
    response = Response(css, mimetype="text/css")
    response.set_etag(etag)
    # Kept by browsers and proxies, and asked for again each time with its ETag: a saved change shows on
    # the next page, and an unchanged stylesheet costs a 304.
    response.cache_control.public = True
    response.cache_control.no_cache = True
    # The tenant is named by the host, a header or the query string.
    response.vary.update(("Host", "X-Tenant-Id"))
    return response.make_conditional(request)
