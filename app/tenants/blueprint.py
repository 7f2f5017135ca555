"""The blueprint of /api/v1/tenants. The packages that own its routes add them: the tenant's own and
the superadmin's (app.tenants.views), signup and impersonation (app.auth.views), usage
(app.usage.views); create_app imports them all before registering it."""

from __future__ import annotations

from app.extensions import Blueprint

blp = Blueprint("tenants", __name__, url_prefix="/api/v1/tenants", description="Tenants")
