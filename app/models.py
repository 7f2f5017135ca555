"""Every document class of the app, declared in the registry of the tenancy core (app/tenancy/registry.py).

A class that is not listed here is not exported, purged, indexed, sharded or checked at start:
tests/test_models.py fails when a document class exists that this list lacks.
"""

from __future__ import annotations

from app.audit.models import AuditLog, PlatformAuditLog
from app.auth.models import ApiKey, ImpersonationSession, RevokedToken, SsoLoginState
from app.billing.models import Invoice, ProcessedEvent
from app.campaigns.models import Campaign
from app.jobs.runs import JobRuns
from app.leases import Lease
from app.media.models import MediaChunk, MediaFile
from app.messages.models import Message
from app.telegram_accounts.models import TelegramAccount
from app.tenancy import registry
from app.tenants.models import Tenant
from app.usage.models import UsageAlert, UsageCounter, UsageSnapshot
from app.users.models import EmailDirectory, PlatformUser, User
from app.webhooks.models import Webhook, WebhookDelivery

registry.declare_tenant_owned(
    ApiKey,
    AuditLog,
    Campaign,
    Invoice,
    MediaChunk,
    MediaFile,
    Message,
    TelegramAccount,
    UsageAlert,
    UsageCounter,
    UsageSnapshot,
    User,
    Webhook,
    WebhookDelivery,
)
# The tenants themselves, and the platform's own documents.
registry.declare_global(Tenant, PlatformUser, ProcessedEvent, JobRuns)
# Global documents that name a tenant and go with it: who may sign in where, half-done sign-ins and
# impersonations, the dispatcher's lanes.
registry.declare_global(
    EmailDirectory,
    ImpersonationSession,
    SsoLoginState,
    Lease,
    tenant_field="tenant_id",
    removed_with_tenant=True,
)
# Global documents that name a tenant and outlive it: the platform trail, and revocations, which
# expire by themselves.
registry.declare_global(PlatformAuditLog, RevokedToken, tenant_field="tenant_id")
