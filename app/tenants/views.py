"""/api/v1/tenants (the tenant's own routes and the superadmin's) and /api/v1/plans. Signup and
impersonation are added to the tenants blueprint by app.auth.views, usage by app.usage.views."""

from __future__ import annotations

from flask import Response, g, request
from flask.views import MethodView

from app.downloads import attachment
from app.extensions import Blueprint
from app.pagination import page_schema
from app.tenancy.access import platform, public, roles
from app.tenancy.context import current_tenant

from . import admin, service
from .blueprint import blp
from .export import export_tenant
from .schemas import (
    BrandingPatchSchema,
    PlanListSchema,
    PublicBrandingSchema,
    ReasonSchema,
    SettingsPatchSchema,
    TenantListArgs,
    TenantPatchSchema,
    TenantSchema,
    TenantStatsSchema,
)

plans_blp = Blueprint("plans", __name__, url_prefix="/api/v1/plans", description="Plan catalog")


@blp.route("/branding")
class PublicBranding(MethodView):
    @public
    @blp.response(200, PublicBrandingSchema)
    def get(self):
        """Show the name and branding of the tenant a hint names (login pages), or null without one."""
        return {"tenant": current_tenant()}


@blp.route("/current")
class CurrentTenant(MethodView):
    @blp.response(200, TenantSchema)
    def get(self):
        """Show the caller's tenant, with its effective limits, features, settings and usage."""
        return service.current_tenant_to_show()


@blp.route("/current/settings")
class CurrentSettings(MethodView):
    @roles("owner", "admin")
    @blp.arguments(SettingsPatchSchema)
    @blp.response(200, TenantSchema)
    def patch(self, body):
        """Change general, security, compliance or notification settings."""
        return service.update_settings(body, g.principal, request.remote_addr)


@blp.route("/current/branding")
class CurrentBranding(MethodView):
    @roles("owner", "admin")
    @blp.arguments(BrandingPatchSchema)
    @blp.response(200, TenantSchema)
    def patch(self, body):
        """Change logo and colours; custom CSS and hidePoweredBy need the whiteLabel feature."""
        return service.update_branding(body)


@blp.route("/current/export")
class CurrentExport(MethodView):
    @roles("owner")
    @blp.doc(operationId="exportCurrentTenant")
    @blp.response(200, description="Every document the tenant owns, secrets left out, as a JSON download")
    def get(self):
        """Download everything the tenant owns (GDPR export), streamed."""
        filename, chunks = export_tenant()
        return Response(
            chunks,
            mimetype="application/json",
            headers={
                "Content-Disposition": attachment(filename),
                "Cache-Control": "no-store",
            },
        )


@blp.route("")
class Tenants(MethodView):
    @platform
    @blp.arguments(TenantListArgs, location="query")
    @blp.response(200, page_schema(TenantSchema))
    def get(self, args):
        """List tenants, filtered by status, plan and a search of name, slug and domain."""
        return admin.list_tenants(args, args.get("status"), args.get("plan"), args.get("q"))


@blp.route("/stats")
class TenantStats(MethodView):
    @platform
    @blp.response(200, TenantStatsSchema)
    def get(self):
        """Count tenants by status and plan, and total their usage."""
        return admin.tenant_stats()


@blp.route("/<objectid:tenant_id>")
class TenantById(MethodView):
    @platform
    @blp.response(200, TenantSchema)
    def get(self, tenant_id):
        """Show one tenant."""
        return admin.get_tenant(tenant_id)

    @platform
    @blp.arguments(TenantPatchSchema)
    @blp.response(200, TenantSchema)
    def patch(self, body, tenant_id):
        """Change a tenant's name, domain, plan, overrides of limits and features, or billing."""
        return admin.update_tenant(tenant_id, body)

    @platform
    @blp.response(204)
    def delete(self, tenant_id):
        """Delete a tenant and every document it owns."""
        admin.delete_tenant(tenant_id)


@blp.route("/<objectid:tenant_id>/suspend")
class SuspendTenant(MethodView):
    @platform
    @blp.arguments(ReasonSchema)
    @blp.response(200, TenantSchema)
    def post(self, body, tenant_id):
        """Suspend a tenant (its credentials stop working at once)."""
        return admin.suspend_tenant(tenant_id, body["reason"])


@blp.route("/<objectid:tenant_id>/activate")
class ActivateTenant(MethodView):
    @platform
    @blp.response(200, TenantSchema)
    def post(self, tenant_id):
        """Lift a tenant's suspension."""
        return admin.activate_tenant(tenant_id)


@plans_blp.route("")
class Plans(MethodView):
    @public
    @plans_blp.doc(operationId="listPlans")
    @plans_blp.response(200, PlanListSchema)
    def get(self):
        """List the plans with their prices, limits (null: unlimited) and features."""
        return service.plan_catalog()
