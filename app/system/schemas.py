"""The platform's background processes on the wire."""

from __future__ import annotations

from marshmallow import Schema, fields

from app.fields import UtcDateTime


class SchedulerSchema(Schema):
    holder = fields.String(allow_none=True, metadata={"description": "The process that holds the lease"})
    held = fields.Boolean(metadata={"description": "The lease is unexpired: a scheduler leads"})
    expires_at = UtcDateTime(data_key="expiresAt", allow_none=True)
    renewed_at = UtcDateTime(data_key="renewedAt", allow_none=True)


class JobStatusSchema(Schema):
    name = fields.String()
    description = fields.String()
    running_since = UtcDateTime(data_key="runningSince", allow_none=True)
    holder = fields.String(allow_none=True, metadata={"description": "The scheduler of the last start"})
    last_started_at = UtcDateTime(data_key="lastStartedAt", allow_none=True)
    last_finished_at = UtcDateTime(data_key="lastFinishedAt", allow_none=True)
    last_outcome = fields.String(data_key="lastOutcome", allow_none=True, metadata={"enum": ["ok", "failed"]})
    last_seconds = fields.Float(data_key="lastSeconds", allow_none=True)
    last_error = fields.String(data_key="lastError", allow_none=True)
    last_success_at = UtcDateTime(data_key="lastSuccessAt", allow_none=True)


class DispatcherSchema(Schema):
    holder = fields.String()
    alive = fields.Boolean(metadata={"description": "Its own lease is unexpired"})
    renewed_at = UtcDateTime(data_key="renewedAt", allow_none=True)
    expires_at = UtcDateTime(data_key="expiresAt", allow_none=True)
    lanes = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "Lanes it holds now, by kind (bot, webhook)"},
    )


class QueueSchema(Schema):
    queued = fields.Integer()
    sending = fields.Integer()


class SystemStatusSchema(Schema):
    checked_at = UtcDateTime(data_key="checkedAt")
    scheduler = fields.Nested(SchedulerSchema)
    jobs = fields.List(fields.Nested(JobStatusSchema))
    dispatchers = fields.List(fields.Nested(DispatcherSchema))
    lanes_waiting = fields.Integer(
        data_key="lanesWaiting", metadata={"description": "Lanes with work due that no dispatcher holds"}
    )
    queue = fields.Nested(QueueSchema, metadata={"description": "Campaign messages by status"})
