"""/api/v1/campaigns."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from app.extensions import Blueprint
from app.pagination import page_schema
from app.tenancy.access import roles

from . import ab_tests, service, stats
from .content_schemas import WinnerChoiceSchema
from .schemas import (
    CampaignCreateSchema,
    CampaignListArgs,
    CampaignPatchSchema,
    CampaignSchema,
    CampaignStatsSchema,
)

blp = Blueprint("campaigns", __name__, url_prefix="/api/v1/campaigns", description="Campaigns")


@blp.route("")
class Campaigns(MethodView):
    @blp.arguments(CampaignListArgs, location="query")
    @blp.response(200, page_schema(CampaignSchema))
    def get(self, args):
        """List the tenant's campaigns, newest first."""
        return service.list_campaigns(args, args.get("status"))

    @roles("owner", "admin")
    @blp.arguments(CampaignCreateSchema)
    @blp.response(201, CampaignSchema)
    def post(self, body):
        """Create a draft campaign (within the plan's campaigns limit)."""
        return service.create_campaign(body, g.principal)


@blp.route("/<objectid:campaign_id>")
class CampaignById(MethodView):
    @blp.response(200, CampaignSchema)
    def get(self, campaign_id):
        """Show one campaign."""
        return service.show_campaign(campaign_id)

    @roles("owner", "admin")
    @blp.arguments(CampaignPatchSchema)
    @blp.response(200, CampaignSchema)
    def patch(self, body, campaign_id):
        """Change a draft, or cancel a campaign (status: cancelled)."""
        return service.update_campaign(campaign_id, body)

    @roles("owner", "admin")
    @blp.response(204)
    def delete(self, campaign_id):
        """Delete a campaign and its messages."""
        service.delete_campaign(campaign_id)


@blp.route("/<objectid:campaign_id>/send")
class SendCampaign(MethodView):
    @roles("owner", "admin")
    @blp.response(202, CampaignSchema)
    def post(self, campaign_id):
        """Queue one message per target, reserving messagesPerMonth for all of them or refusing."""
        return service.send_campaign(campaign_id)


@blp.route("/<objectid:campaign_id>/winner")
class ChooseCampaignWinner(MethodView):
    @roles("owner", "admin")
    @blp.arguments(WinnerChoiceSchema)
    @blp.response(200, CampaignSchema)
    def post(self, body, campaign_id):
        """Choose the A/B test's winner: the targets held out of the test get its message."""
        return ab_tests.choose_winner(campaign_id, body["variant"])


@blp.route("/<objectid:campaign_id>/stats")
class CampaignStats(MethodView):
    @blp.response(200, CampaignStatsSchema)
    def get(self, campaign_id):
        """Count the campaign's messages by status, and per variant and language where it has them."""
        return stats.campaign_stats(campaign_id)
