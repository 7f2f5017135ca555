"""A tenant's Telegram bots. The token is encrypted at rest and never returned, only its last four."""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.documents import TenantDocument


class TelegramAccount(TenantDocument):
    name = me.StringField(required=True, min_length=1, max_length=100)
    bot_id = me.LongField(db_field="botId", required=True)
    token_encrypted = me.StringField(db_field="tokenEncrypted", required=True)
    token_last4 = me.StringField(db_field="tokenLast4", required=True, max_length=4)
    bot_username = me.StringField(db_field="botUsername", max_length=64)
    api_base_url = me.StringField(db_field="apiBaseUrl", max_length=2048)
    active = me.BooleanField(default=True)
    # Telegram's paid broadcasts (allow_paid_broadcast): a higher rate, paid per message in Stars.
    paid_broadcast = me.BooleanField(db_field="paidBroadcast", default=False)
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)
    updated_at = me.DateTimeField(db_field="updatedAt", default=clock.utcnow)

    # Left out of GDPR exports.
    export_exclude = ("token_encrypted",)

    meta = {
        "collection": "telegram_accounts",
        "indexes": [
            {"fields": ["tenant_id", "bot_id"], "unique": True},
            {"fields": ["tenant_id", "-created_at", "-id"]},
            {"fields": ["tenant_id", "active", "-created_at", "-id"]},
            # The GDPR export reads a tenant's documents in _id order.
            {"fields": ["tenant_id", "id"]},
        ],
    }

    def clean(self) -> None:
        self.updated_at = clock.utcnow()
