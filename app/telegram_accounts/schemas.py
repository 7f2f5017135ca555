"""Telegram accounts on the wire: the token goes in, never out (only its last four characters)."""

from __future__ import annotations

from marshmallow import Schema, fields

from app import validators
from app.fields import SecretUrl, UtcDateTime
from app.pagination import PageArgs

BOT_TOKEN = validators.whole(
    "[0-9]{5,15}:[A-Za-z0-9_-]{30,64}", "Use the bot token BotFather gave, such as 123456789:AAE..."
)


class TelegramAccountSchema(Schema):
    id = fields.String()
    name = fields.String()
    bot_id = fields.Integer(data_key="botId")
    bot_username = fields.String(data_key="botUsername", allow_none=True)
    token_last4 = fields.String(data_key="tokenLast4")
    api_base_url = SecretUrl(data_key="apiBaseUrl", allow_none=True)
    active = fields.Boolean()
    paid_broadcast = fields.Boolean(data_key="paidBroadcast")
    created_at = UtcDateTime(data_key="createdAt")
    updated_at = UtcDateTime(data_key="updatedAt")


class TelegramAccountCreateSchema(Schema):
    name = fields.String(required=True, validate=validators.NAME, metadata={"example": "News bot"})
    token = fields.String(
        required=True,
        validate=BOT_TOKEN,
        load_only=True,
        metadata={"example": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"},
    )
    api_base_url = validators.URL(
        data_key="apiBaseUrl",
        schemes={"http", "https"},
        require_tld=False,
        metadata={"example": "https://bot-api.initech.example.com"},
    )
    paid_broadcast = fields.Boolean(data_key="paidBroadcast")


class TelegramAccountPatchSchema(Schema):
    name = fields.String(validate=validators.NAME, metadata={"example": "News bot"})
    token = fields.String(
        validate=BOT_TOKEN,
        load_only=True,
        metadata={"example": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"},
    )
    api_base_url = validators.URL(
        data_key="apiBaseUrl",
        allow_none=True,
        schemes={"http", "https"},
        require_tld=False,
        metadata={"example": "https://bot-api.initech.example.com"},
    )
    active = fields.Boolean()
    paid_broadcast = fields.Boolean(data_key="paidBroadcast")


class TelegramAccountListArgs(PageArgs):
    active = fields.Boolean()
