"""/api/v1/tenants/current/usage, on the tenants blueprint (app.tenants.blueprint)."""

from __future__ import annotations

from flask.views import MethodView

from app.tenancy.context import current_tenant
from app.tenants.blueprint import blp

from .schemas import UsageReportSchema
from .service import snapshot


@blp.route("/current/usage")
class CurrentUsage(MethodView):
    @blp.response(200, UsageReportSchema)
    def get(self):
        """Show every limit with what the tenant uses of it, and the current period."""
        return snapshot(current_tenant())
