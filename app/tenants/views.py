"""/api/v1/tenants and /api/v1/plans."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from app.tenancy.access import public
from app.tenancy.context import current_tenant

from . import service
from .schemas import PlanListSchema, TenantSchema

blp = Blueprint("tenants", __name__, url_prefix="/api/v1/tenants", description="Tenants")
plans_blp = Blueprint("plans", __name__, url_prefix="/api/v1/plans", description="Plan catalog")


@blp.route("/current")
class CurrentTenant(MethodView):
    @blp.response(200, TenantSchema)
    def get(self):
        """Show the tenant of the caller, with its effective limits, features and settings."""
        return current_tenant()


@plans_blp.route("")
class Plans(MethodView):
    @public
    @plans_blp.response(200, PlanListSchema)
    def get(self):
        """List the plans with their prices, limits (null: unlimited) and features."""
        return service.plan_catalog()
