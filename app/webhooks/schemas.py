"""Webhooks on the wire: the signing secret is shown at creation (and rotation) only."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app import validators
from app.fields import SecretUrl, UtcDateTime
from app.pagination import PageArgs

from .models import DELIVERY_STATUSES, WEBHOOK_EVENTS

EVENTS = fields.List(
    fields.String(validate=validate.OneOf(WEBHOOK_EVENTS)),
    validate=validate.Length(min=1, max=len(WEBHOOK_EVENTS)),
)


class WebhookSchema(Schema):
    id = fields.String()
    url = SecretUrl()
    events = fields.List(fields.String())
    active = fields.Boolean()
    consecutive_failures = fields.Integer(data_key="consecutiveFailures")
    disabled_reason = fields.String(data_key="disabledReason", allow_none=True)
    created_at = UtcDateTime(data_key="createdAt")
    updated_at = UtcDateTime(data_key="updatedAt")


class WebhookWithSecretSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "HMAC-SHA256 signing secret; shown only now"})


class WebhookCreateSchema(Schema):
    url = validators.URL(
        required=True,
        schemes={"http", "https"},
        metadata={"example": "https://hooks.initech.example.com/telegram"},
    )
    events = fields.List(
        fields.String(validate=validate.OneOf(WEBHOOK_EVENTS)),
        required=True,
        validate=validate.Length(min=1, max=len(WEBHOOK_EVENTS)),
        metadata={"example": ["campaign.completed", "message.failed"]},
    )


class WebhookPatchSchema(Schema):
    url = validators.URL(
        schemes={"http", "https"}, metadata={"example": "https://hooks.initech.example.com/telegram"}
    )
    events = EVENTS
    active = fields.Boolean()
    rotate_secret = fields.Boolean(data_key="rotateSecret", load_only=True)


class WebhookListArgs(PageArgs):
    active = fields.Boolean()


class AttemptSchema(Schema):
    at = UtcDateTime()
    status = fields.Integer(allow_none=True, metadata={"description": "HTTP status of the answer"})
    error = fields.String(allow_none=True)
    ms = fields.Float()


class DeliverySchema(Schema):
    id = fields.String()
    webhook_id = fields.String(data_key="webhookId")
    event = fields.String()
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    attempts = fields.Integer()
    next_attempt_at = UtcDateTime(data_key="nextAttemptAt", allow_none=True)
    last_error = fields.String(data_key="lastError", allow_none=True)
    attempt_log = fields.List(fields.Nested(AttemptSchema), data_key="attemptLog")
    created_at = UtcDateTime(data_key="createdAt")
    delivered_at = UtcDateTime(data_key="deliveredAt", allow_none=True)
