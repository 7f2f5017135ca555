"""/api/v1/messages."""

from __future__ import annotations

from flask.views import MethodView

from app.extensions import Blueprint
from app.pagination import page_schema

from . import service
from .schemas import MessageListArgs, MessageSchema

blp = Blueprint(
    "messages", __name__, url_prefix="/api/v1/messages", description="Queued, sent and failed messages"
)


@blp.route("")
class Messages(MethodView):
    @blp.arguments(MessageListArgs, location="query")
    @blp.response(200, page_schema(MessageSchema))
    def get(self, args):
        """List messages, filtered by campaign and status."""
        return service.list_messages(args, args.get("campaign_id"), args.get("status"))
