"""Connect, list, change and remove the tenant's Telegram bots (limit `telegramAccounts`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mongoengine as me
from bson import ObjectId
from flask import current_app

from app import crypto, egress, wire
from app.audit.service import record
from app.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed, found
from app.pagination import paginate
from app.telegram.client import PermanentError, ServerRefused, TelegramError, bot_client
from app.tenancy.context import current_tenant
from app.tenants.service import require_feature
from app.usage import service as usage

from .models import TelegramAccount


def _check_api_base_url(url: str | None) -> None:
    """A self-hosted Bot API server is a customIntegrations feature; https outside development, and a
    URL the egress policy allows."""
    if not url:
        return
    require_feature(current_tenant(), "customIntegrations")
    config = current_app.config
    if not url.startswith("https://") and config["APP_ENV"] == "production":
        raise ValidationFailed(details={"apiBaseUrl": ["Use an https:// URL."]})
    try:
        egress.Policy.for_tenants(config).check(url)
    except egress.Refused as exc:
        raise ValidationFailed(details={"apiBaseUrl": [str(exc)]}) from None


def _check_paid_broadcast(paid: bool | None) -> None:
    """Telegram's paid broadcasts are the plan's paidBroadcasts feature."""
    if paid:
        require_feature(current_tenant(), "paidBroadcasts")


def _check_with_telegram(token: str, api_base_url: str | None) -> dict:
    """Ask the bot's Bot API server (getMe) whether the token is a bot's; return the bot, or raise 422 /
    503. A bot's own server is a tenant's choice: what it answered is not repeated (the client says
    only its status)."""
    client = bot_client(token, api_base_url, current_app.config, max_retries=1)
    try:
        return client.get_me()
    except ServerRefused as exc:
        raise ValidationFailed(details={"apiBaseUrl": [exc.reason]}) from None
    except PermanentError as exc:
        raise ValidationFailed(
            details={"token": [f"The Bot API server refused this token: {exc.description}"]}
        ) from None
    except TelegramError:
        raise ServiceUnavailable("Telegram did not answer; try again in a moment") from None
    finally:
        client.close()


def _set_token(account: TelegramAccount, token: str) -> None:
    bot = _check_with_telegram(token, account.api_base_url)
    account.bot_id = int(token.split(":", 1)[0])
    account.bot_username = bot.get("username")
    account.token_encrypted = crypto.encrypt(token)
    account.token_last4 = token[-4:]


def _save(account: TelegramAccount, **kwargs: Any) -> TelegramAccount:
    try:
        return account.save(**kwargs)
    except me.NotUniqueError:
        raise Conflict("This bot is already connected to this tenant") from None


def create_account(
    name: str, token: str, api_base_url: str | None = None, paid_broadcast: bool = False
) -> TelegramAccount:
    """Connect a bot, checked with Telegram's getMe (within the plan's `telegramAccounts` limit)."""
    _check_api_base_url(api_base_url)
    _check_paid_broadcast(paid_broadcast)
    account = TelegramAccount(
        name=name.strip(), api_base_url=api_base_url or None, paid_broadcast=paid_broadcast
    )
    _set_token(account, token)
    with usage.reserved("telegramAccounts"):
        _save(account, force_insert=True)
    record(
        "telegram_account.created",
        target_type="telegram_account",
        target_id=account.id,
        summary={"name": name},
    )
    return account


def list_accounts(paging: Mapping[str, Any], active: bool | None = None) -> dict:
    accounts = TelegramAccount.objects
    if active is not None:
        accounts = accounts.filter(active=active)
    return paginate(accounts, ("-created_at", "-id"), paging)


def show_account(account_id: ObjectId) -> wire.Stored:
    """A bot as stored, for its response (not built into a document)."""
    return found(wire.stored(TelegramAccount, TelegramAccount.find_stored(id=account_id)), "Telegram account")


def get_account(account_id: ObjectId) -> TelegramAccount:
    return found(TelegramAccount.objects(id=account_id).first(), "Telegram account")


def update_account(account_id: ObjectId, changes: dict[str, Any]) -> TelegramAccount:
    """Rename, replace the token, point to another Bot API server, switch paid broadcasts, or
    (de)activate a bot."""
    account = get_account(account_id)
    if "api_base_url" in changes:
        _check_api_base_url(changes["api_base_url"])
        account.api_base_url = changes["api_base_url"] or None
    if "token" in changes:
        _set_token(account, changes["token"])
    if "paid_broadcast" in changes:
        _check_paid_broadcast(changes["paid_broadcast"])
    for name in ("name", "active", "paid_broadcast"):
        if name in changes:
            setattr(account, name, changes[name])
    _save(account)
    fields = sorted(changes)
    record(
        "telegram_account.updated",
        target_type="telegram_account",
        target_id=account.id,
        summary={"fields": fields},
    )
    return account


def delete_account(account_id: ObjectId) -> None:
    """Remove a bot; campaigns that used it keep their history but need another bot to send."""
    account = get_account(account_id)
    # The delete's own count decides the refund: of two concurrent deletes, one gives the seat back.
    if not TelegramAccount.objects(id=account.id).delete():
        raise NotFound("No such Telegram account")
    usage.refund("telegramAccounts")
    record("telegram_account.deleted", target_type="telegram_account", target_id=account_id)
