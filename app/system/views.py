"""/api/v1/platform/system: the scheduler, the jobs and the dispatchers (superadmin)."""

from __future__ import annotations

from flask.views import MethodView

from app.extensions import Blueprint
from app.tenancy.access import platform

from . import service
from .schemas import SystemStatusSchema

blp = Blueprint(
    "platform-system",
    __name__,
    url_prefix="/api/v1/platform/system",
    description="The background processes: the scheduler's leader, the jobs' last runs, the dispatchers",
)


@blp.route("")
class SystemStatus(MethodView):
    @platform
    @blp.response(200, SystemStatusSchema)
    def get(self):
        """Show who leads the scheduler, each job's last run and success, the dispatchers alive with
        the lanes they hold, and the queue."""
        return service.system_status()
