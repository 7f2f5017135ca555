"""The tenant registry: one Tenant document per organization.

Tenant is a global document on purpose: it is what the tenancy core resolves, so it cannot itself be
filtered by tenant. Only the tenancy core, the tenant service and platform (superadmin) code use it.
"""

from __future__ import annotations

import mongoengine as me

from app import clock
from app.tenancy.cache import forget_tenants
from app.tenancy.documents import ExactWrites

from .plans import DEFAULT_PLAN, PLAN_NAMES

STATUSES = ("active", "suspended")
BILLING_STATUSES = ("trialing", "active", "past_due", "canceled")


class Usage(me.EmbeddedDocument):
    """Gauges of what the tenant holds now (monthly counters live in app.usage, keyed by period)."""

    users = me.IntField(default=0, min_value=0)
    campaigns = me.IntField(default=0, min_value=0)
    telegram_accounts = me.IntField(db_field="telegramAccounts", default=0, min_value=0)
    webhooks = me.IntField(default=0, min_value=0)
    storage = me.LongField(default=0, min_value=0)


# The limits counted by a gauge of Usage: {limit name: the gauge's field}.
GAUGES = {
    "users": "users",
    "campaigns": "campaigns",
    "telegramAccounts": "telegram_accounts",
    "webhooks": "webhooks",
    "storage": "storage",
}


class Owners(me.EmbeddedDocument):
    """The count of the tenant's active owners, which keeps the last one (app.users.owners). A tenant
    stored before it was kept has no count until the first change of an owner counts them."""

    active = me.IntField()
    # Moved as every change of an owner begins: a repair of the count applies only if none began.
    version = me.IntField(default=0)
    # The version at which the reconciliation first saw the count disagree with the users, and when.
    drift_version = me.IntField(db_field="driftVersion")
    drift_seen_at = me.DateTimeField(db_field="driftSeenAt")


class Billing(me.EmbeddedDocument):
    status = me.StringField(choices=BILLING_STATUSES, default="active")
    email = me.EmailField()
    trial_ends_at = me.DateTimeField(db_field="trialEndsAt")
    current_period_end = me.DateTimeField(db_field="currentPeriodEnd")
    customer_ref = me.StringField(db_field="customerRef", max_length=200)
    # A monthly price in cents that overrides the plan's (enterprise prices are set per tenant).
    price_cents = me.IntField(db_field="priceCents", min_value=0)
    # The invoice counter: numbers follow each other without gaps, one invoice per closed period.
    last_invoice_number = me.IntField(db_field="lastInvoiceNumber", default=0, min_value=0)
    last_invoiced_period = me.StringField(db_field="lastInvoicedPeriod", max_length=7)
    # What the open invoices add up to, kept with each invoice change so that lists need no query.
    balance_cents = me.IntField(db_field="balanceCents", default=0)


class GeneralSettings(me.EmbeddedDocument):
    timezone = me.StringField(default="UTC")
    language = me.StringField(default="en")
    currency = me.StringField(default="USD")


# The roles a user created by a first single sign-on gets (owners are made by owners, never by a provider).
SSO_ROLES = ("admin", "member")


def sso_configured(issuer: str | None, client_id: str | None, secret: str | None, domains: list[str]) -> bool:
    """Whether single sign-on can be used: provider, client and allowed domains are all set."""
    return bool(issuer and client_id and secret and domains)


class SsoSettings(me.EmbeddedDocument):
    """The tenant's OpenID Connect provider. The client secret is stored encrypted (app.crypto) and is
    never part of an answer, an export or an audit entry."""

    issuer = me.StringField(max_length=2048)
    client_id = me.StringField(db_field="clientId", max_length=255)
    client_secret_encrypted = me.StringField(db_field="clientSecretEncrypted")
    allowed_domains = me.ListField(me.StringField(max_length=253), db_field="allowedDomains", default=list)
    default_role = me.StringField(db_field="defaultRole", choices=SSO_ROLES, default="member")
    password_login_allowed = me.BooleanField(db_field="passwordLoginAllowed", default=True)

    @property
    def configured(self) -> bool:
        return sso_configured(self.issuer, self.client_id, self.client_secret_encrypted, self.allowed_domains)


class SecuritySettings(me.EmbeddedDocument):
    require_2fa = me.BooleanField(db_field="require2fa", default=False)
    sso_enabled = me.BooleanField(db_field="ssoEnabled", default=False)
    ip_whitelist = me.ListField(me.StringField(), db_field="ipWhitelist", default=list)
    sso = me.EmbeddedDocumentField(SsoSettings, default=SsoSettings)


class NotificationSettings(me.EmbeddedDocument):
    usage_alert_thresholds = me.ListField(
        me.IntField(min_value=1, max_value=100), db_field="usageAlertThresholds", default=lambda: [80, 100]
    )


class ComplianceSettings(me.EmbeddedDocument):
    gdpr_enabled = me.BooleanField(db_field="gdprEnabled", default=False)
    data_retention_days = me.IntField(db_field="dataRetentionDays", min_value=1, max_value=3650)


class Settings(me.EmbeddedDocument):
    general = me.EmbeddedDocumentField(GeneralSettings, default=GeneralSettings)
    security = me.EmbeddedDocumentField(SecuritySettings, default=SecuritySettings)
    notifications = me.EmbeddedDocumentField(NotificationSettings, default=NotificationSettings)
    compliance = me.EmbeddedDocumentField(ComplianceSettings, default=ComplianceSettings)


class Branding(me.EmbeddedDocument):
    logo_url = me.StringField(db_field="logoUrl", max_length=2048)
    primary_color = me.StringField(db_field="primaryColor", max_length=7)
    secondary_color = me.StringField(db_field="secondaryColor", max_length=7)
    custom_css = me.StringField(db_field="customCss", max_length=50_000)
    hide_powered_by = me.BooleanField(db_field="hidePoweredBy", default=False)


class Tenant(ExactWrites, me.Document):
    name = me.StringField(required=True, min_length=1, max_length=100)
    slug = me.StringField(required=True, max_length=63)
    domain = me.StringField(max_length=253)
    status = me.StringField(choices=STATUSES, default="active")
    suspended_reason = me.StringField(db_field="suspendedReason", max_length=500)
    suspended_at = me.DateTimeField(db_field="suspendedAt")
    plan = me.StringField(choices=PLAN_NAMES, default=DEFAULT_PLAN)
    limits = me.DictField(default=dict)
    features = me.DictField(default=dict)
    usage = me.EmbeddedDocumentField(Usage, default=Usage)
    owners = me.EmbeddedDocumentField(Owners, default=lambda: Owners(active=0))
    billing = me.EmbeddedDocumentField(Billing, default=Billing)
    settings = me.EmbeddedDocumentField(Settings, default=Settings)
    branding = me.EmbeddedDocumentField(Branding, default=Branding)
    created_at = me.DateTimeField(db_field="createdAt", default=clock.utcnow)
    updated_at = me.DateTimeField(db_field="updatedAt", default=clock.utcnow)
    # What the superadmin's search matches by prefix (search_terms), kept by clean().
    search_terms = me.ListField(me.StringField(), db_field="searchTerms")

    meta = {
        "collection": "tenants",
        "auto_create_index": False,
        # A tenant written by an older version (fields this one no longer has, such as the scheduler's
        # former "pending" flags) still loads: every request needs its tenant.
        "strict": False,
        "indexes": [
            {"fields": ["slug"], "unique": True},
            {"fields": ["domain"], "unique": True, "sparse": True},
            # The superadmin's list, filtered by status and plan or not, newest first, and searched:
            # the search term, a prefix (a range), comes after the sort.
            {"fields": ["status", "plan", "-created_at", "-id", "search_terms"]},
            {"fields": ["status", "created_at", "id", "search_terms"]},
            {"fields": ["plan", "-created_at", "-id", "search_terms"]},
            {"fields": ["-created_at", "-id", "search_terms"]},
            # The count of the search's matches (the page's total).
            {"fields": ["status", "plan", "search_terms"]},
            {"fields": ["status", "search_terms"]},
            {"fields": ["plan", "search_terms"]},
            {"fields": ["search_terms"]},
            # The deletion sweep: deletions that stopped halfway.
            {"fields": ["status", "suspended_reason", "updated_at"]},
            # The trial-end job's question: whose trial has run out?
            {"fields": ["billing.status", "billing.trial_ends_at"]},
            # The trial-end job: unconverted trials, oldest first, up to now.
            {
                "fields": [
                    "billing.customer_ref",
                    "billing.status",
                    "created_at",
                    "id",
                    "billing.trial_ends_at",
                ]
            },
        ],
    }

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def ip_whitelist(self) -> list[str]:
        """The networks (CIDRs) requests for this tenant may come from; empty: any."""
        return list(self.settings.security.ip_whitelist)

    def clean(self) -> None:
        self.updated_at = clock.utcnow()
        self.search_terms = search_terms(self.name, self.slug, self.domain)


def search_text(text: str) -> str:
    """Text as the search compares it: case folded, runs of white space made one space."""
    return " ".join(text.casefold().split())


def search_terms(name: str, slug: str, domain: str | None) -> list[str]:
    """What a search finds a tenant by, each matched by prefix: its name, slug and domain whole, and
    their words (the name's), parts (the slug's, between hyphens), and the domain's labels and the
    domains it is under (marketing.acme.io: acme.io, io)."""
    terms = [search_text(name), *search_text(name).split(" "), slug, *slug.split("-")]
    if domain:
        labels = domain.casefold().split(".")
        terms += [*(".".join(labels[i:]) for i in range(len(labels))), *labels]
    return list(dict.fromkeys(term for term in terms if term))


def _forget_cached_tenants(sender: type, document: Tenant, **kwargs: object) -> None:
    forget_tenants()


me.signals.post_save.connect(_forget_cached_tenants, sender=Tenant)
me.signals.post_delete.connect(_forget_cached_tenants, sender=Tenant)
