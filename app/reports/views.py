"""/api/v1/reports (the tenant's delivery figures), /api/v1/platform/reports (across tenants) and
/api/v1/suggestions."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView

from app.downloads import attachment
from app.extensions import Blueprint
from app.tenancy.access import platform

from . import service, suggestions
from .schemas import (
    PlatformReportArgs,
    PlatformReportSchema,
    ReportArgs,
    ReportSchema,
    SuggestionListSchema,
)

blp = Blueprint(
    "reports",
    __name__,
    url_prefix="/api/v1/reports",
    description="Delivery reports: per day or hour, campaign and bot, failure reasons, latency",
)
platform_blp = Blueprint(
    "platform-reports",
    __name__,
    url_prefix="/api/v1/platform/reports",
    description="Delivery figures across tenants (superadmin)",
)
suggestions_blp = Blueprint(
    "suggestions",
    __name__,
    url_prefix="/api/v1/suggestions",
    description="Suggestions drawn from the tenant's own delivery history",
)


def _report(args: dict) -> dict:
    return service.delivery_report(
        args.get("since"),
        args.get("until"),
        args["interval"],
        args.get("campaign_id"),
        args.get("telegram_account_id"),
    )


@blp.route("/delivery")
class DeliveryReport(MethodView):
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, ReportSchema)
    def get(self, args):
        """Show the delivery figures of a period: totals, per day or hour, per campaign and per bot."""
        return _report(args)


@blp.route("/delivery/csv")
class DeliveryReportCsv(MethodView):
    @blp.doc(operationId="exportDeliveryReport")
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, {"type": "string"}, content_type="text/csv", description="The report as CSV")
    def get(self, args):
        """Download the delivery figures of a period as CSV: one row per total, day or hour, campaign
        and bot, one column per failure reason."""
        filename, lines = service.report_csv(_report(args))
        return Response(
            lines,
            mimetype="text/csv",
            headers={"Content-Disposition": attachment(filename), "Cache-Control": "no-store"},
        )


@platform_blp.route("/delivery")
class PlatformDeliveryReport(MethodView):
    @platform
    @platform_blp.arguments(PlatformReportArgs, location="query")
    @platform_blp.response(200, PlatformReportSchema)
    def get(self, args):
        """Show the delivery figures of a period across tenants: totals, per day or hour, per tenant."""
        return service.platform_report(args.get("since"), args.get("until"), args["interval"], args["limit"])


@suggestions_blp.route("")
class Suggestions(MethodView):
    @suggestions_blp.response(200, SuggestionListSchema)
    def get(self):
        """List suggestions drawn from the last 30 days of the tenant's deliveries, with their figures."""
        return suggestions.suggest()
