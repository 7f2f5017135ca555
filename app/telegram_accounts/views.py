"""/api/v1/telegram-accounts."""

from __future__ import annotations

from flask.views import MethodView

from app.extensions import Blueprint
from app.pagination import page_schema
from app.tenancy.access import roles

from . import service
from .schemas import (
    TelegramAccountCreateSchema,
    TelegramAccountListArgs,
    TelegramAccountPatchSchema,
    TelegramAccountSchema,
)

blp = Blueprint(
    "telegram-accounts",
    __name__,
    url_prefix="/api/v1/telegram-accounts",
    description="The tenant's Telegram bots",
)


@blp.route("")
class TelegramAccounts(MethodView):
    @blp.arguments(TelegramAccountListArgs, location="query")
    @blp.response(200, page_schema(TelegramAccountSchema))
    def get(self, args):
        """List the tenant's bots."""
        return service.list_accounts(args, args.get("active"))

    @roles("owner", "admin")
    @blp.arguments(TelegramAccountCreateSchema)
    @blp.response(201, TelegramAccountSchema)
    def post(self, body):
        """Connect a bot by its token (within the plan's telegramAccounts limit)."""
        return service.create_account(
            body["name"], body["token"], body.get("api_base_url"), body.get("paid_broadcast", False)
        )


@blp.route("/<objectid:account_id>")
class TelegramAccountById(MethodView):
    @blp.response(200, TelegramAccountSchema)
    def get(self, account_id):
        """Show one bot (never its token)."""
        return service.show_account(account_id)

    @roles("owner", "admin")
    @blp.arguments(TelegramAccountPatchSchema)
    @blp.response(200, TelegramAccountSchema)
    def patch(self, body, account_id):
        """Rename a bot, replace its token, change its Bot API server, or (de)activate it."""
        return service.update_account(account_id, body)

    @roles("owner", "admin")
    @blp.response(204)
    def delete(self, account_id):
        """Remove a bot."""
        service.delete_account(account_id)
