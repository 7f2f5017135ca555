"""/api/v1/audit-logs (the tenant's trail) and /api/v1/platform/audit-logs (the superadmin's)."""

from __future__ import annotations

from flask.views import MethodView

from app.extensions import Blueprint
from app.pagination import page_schema
from app.tenancy.access import platform, roles

from . import service
from .schemas import AuditLogArgs, AuditLogSchema, PlatformAuditLogArgs, PlatformAuditLogSchema

blp = Blueprint(
    "audit-logs", __name__, url_prefix="/api/v1/audit-logs", description="The tenant's audit trail"
)
platform_blp = Blueprint(
    "platform-audit-logs",
    __name__,
    url_prefix="/api/v1/platform/audit-logs",
    description="Superadmin actions, kept after a tenant is deleted",
)


@blp.route("")
class AuditLogs(MethodView):
    @roles("owner", "admin")
    @blp.arguments(AuditLogArgs, location="query")
    @blp.response(200, page_schema(AuditLogSchema))
    def get(self, args):
        """List the tenant's audit entries, newest first, filtered by action, actor and time."""
        return service.list_entries(args)


@platform_blp.route("")
class PlatformAuditLogs(MethodView):
    @platform
    @platform_blp.arguments(PlatformAuditLogArgs, location="query")
    @platform_blp.response(200, page_schema(PlatformAuditLogSchema))
    def get(self, args):
        """List the platform trail, newest first, filtered by action, actor, tenant and time."""
        return service.list_platform_entries(args)
