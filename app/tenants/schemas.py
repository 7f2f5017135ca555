"""How tenants and plans look on the wire (camelCase keys, mapped here with data_key)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app import validators, wire
from app.fields import ManagersOnly, SecretUrl, UtcDateTime
from app.pagination import PageArgs
from app.wire import Computed

from .billing import SUMMARY_READS, billing_summary
from .models import BILLING_STATUSES, SSO_ROLES, STATUSES, Settings, sso_configured
from .plans import (
    FEATURE_NAMES,
    LIMIT_NAMES,
    PLAN_NAMES,
    effective_features,
    effective_limits,
)

LIMITS_DOC = {"type": "object", "additionalProperties": {"type": "integer", "nullable": True}}
FEATURES_DOC = {"type": "object", "additionalProperties": {"type": "boolean"}}


class UsageSchema(Schema):
    users = fields.Integer()
    campaigns = fields.Integer()
    telegram_accounts = fields.Integer(data_key="telegramAccounts")
    webhooks = fields.Integer()
    storage = fields.Integer()


class GeneralSettingsSchema(Schema):
    timezone = fields.String(metadata={"example": "Europe/Berlin"})
    language = fields.String(metadata={"example": "de-DE"})
    currency = fields.String(metadata={"example": "EUR"})


class SsoSettingsSchema(Schema):
    """The tenant's OpenID Connect provider as clients see it: never the client secret, and to members
    neither the client nor more of the issuer than its host."""

    configured = Computed(
        sso_configured,
        "issuer",
        "client_id",
        "client_secret_encrypted",
        "allowed_domains",
        metadata={"type": "boolean", "description": "provider, client and allowed domains are set"},
    )
    issuer = SecretUrl(allow_none=True)
    client_id = ManagersOnly(data_key="clientId")
    allowed_domains = fields.List(fields.String(), data_key="allowedDomains")
    default_role = fields.String(data_key="defaultRole")
    password_login_allowed = fields.Boolean(data_key="passwordLoginAllowed")


class SecuritySettingsSchema(Schema):
    require_2fa = fields.Boolean(data_key="require2fa")
    sso_enabled = fields.Boolean(data_key="ssoEnabled")
    ip_whitelist = fields.List(fields.String(), data_key="ipWhitelist")
    sso = fields.Nested(SsoSettingsSchema)


class NotificationSettingsSchema(Schema):
    usage_alert_thresholds = fields.List(fields.Integer(), data_key="usageAlertThresholds")


class ComplianceSchema(Schema):
    gdpr_enabled = fields.Boolean(data_key="gdprEnabled")
    data_retention_days = fields.Integer(data_key="dataRetentionDays", allow_none=True)


class SettingsSchema(Schema):
    general = fields.Nested(GeneralSettingsSchema)
    security = fields.Nested(SecuritySettingsSchema)
    notifications = fields.Nested(NotificationSettingsSchema)
    compliance = fields.Nested(ComplianceSchema)


class BrandingSchema(Schema):
    logo_url = fields.String(
        data_key="logoUrl", allow_none=True, metadata={"example": "https://cdn.initech.example.com/logo.png"}
    )
    primary_color = fields.String(data_key="primaryColor", allow_none=True, metadata={"example": "#1a2b3c"})
    secondary_color = fields.String(
        data_key="secondaryColor", allow_none=True, metadata={"example": "#f5f5f5"}
    )
    custom_css = fields.String(data_key="customCss", allow_none=True)
    hide_powered_by = fields.Boolean(data_key="hidePoweredBy")


class BillingSchema(Schema):
    status = fields.String()
    email = fields.String(allow_none=True)
    trial_ends_at = UtcDateTime(data_key="trialEndsAt", allow_none=True)
    current_period_end = UtcDateTime(data_key="currentPeriodEnd", allow_none=True)
    price_cents = fields.Integer(
        data_key="priceCents", allow_none=True, metadata={"description": "per month"}
    )
    currency = fields.String()
    balance_cents = fields.Integer(data_key="balanceCents", metadata={"description": "open invoices"})
    next_period_start = UtcDateTime(data_key="nextPeriodStart")
    last_invoice_number = fields.Integer(data_key="lastInvoiceNumber")


BILLING = wire.mapping_dumper(BillingSchema())


def _billing(plan: str, *billing: Any) -> dict[str, Any]:
    return BILLING(billing_summary(plan, dict(zip(SUMMARY_READS, billing, strict=True))))


class TenantSchema(Schema):
    """A tenant with its effective limits and features (plan values overridden by its own)."""

    id = fields.String(metadata={"example": "665f1c2ab4e0c9a1d2e3f401"})
    name = fields.String(metadata={"example": "Initech"})
    slug = fields.String(metadata={"example": "initech"})
    domain = fields.String(allow_none=True, metadata={"example": "marketing.initech.example.com"})
    status = fields.String(metadata={"example": "active"})
    suspended_reason = fields.String(data_key="suspendedReason", allow_none=True)
    plan = fields.String(metadata={"example": "starter"})
    limits = Computed(effective_limits, "plan", "limits", metadata=LIMITS_DOC)
    features = Computed(effective_features, "plan", "features", metadata=FEATURES_DOC)
    limit_overrides = fields.Dict(attribute="limits", data_key="limitOverrides", metadata=LIMITS_DOC)
    feature_overrides = fields.Dict(attribute="features", data_key="featureOverrides", metadata=FEATURES_DOC)
    usage = fields.Nested(UsageSchema)
    settings = fields.Nested(SettingsSchema)
    branding = fields.Nested(BrandingSchema)
    compliance = fields.Nested(ComplianceSchema, attribute="settings.compliance")
    billing = Computed(
        _billing,
        "plan",
        *(f"billing.{name}" for name in SUMMARY_READS),
        metadata={"type": "object", "description": "BillingSchema"},
    )
    created_at = UtcDateTime(data_key="createdAt")
    updated_at = UtcDateTime(data_key="updatedAt")


class PublicBrandingValuesSchema(BrandingSchema):
    class Meta:
        exclude = ("custom_css",)


def _sso_offered(plan: str, features: dict[str, Any], settings: Settings) -> bool:
    security = settings.security
    return bool(
        security.sso_enabled and security.sso.configured and effective_features(plan, features).get("sso")
    )


class PublicTenantSchema(Schema):
    """What anyone may see of a tenant: its name and branding (its custom CSS is /dashboard/tenant.css)."""

    name = fields.String()
    slug = fields.String()
    branding = fields.Nested(PublicBrandingValuesSchema)
    sso = Computed(
        _sso_offered,
        "plan",
        "features",
        "settings",
        metadata={
            "type": "boolean",
            "description": "single sign-on is set up, switched on and in the plan: login pages offer it "
            "(GET /auth/sso/start)",
        },
    )


class PublicBrandingSchema(Schema):
    tenant = fields.Nested(PublicTenantSchema, allow_none=True, required=True)


class PriceSchema(Schema):
    amount = fields.Integer()
    currency = fields.String()
    interval = fields.String()


class PlanSchema(Schema):
    id = fields.String()
    name = fields.String()
    price = fields.Nested(PriceSchema, allow_none=True, metadata={"description": "null: custom"})
    support = fields.String(metadata={"description": "a service level, not a switch", "example": "priority"})
    sla = fields.String(
        allow_none=True,
        metadata={"description": "a service level, not a switch; null: none beyond best effort"},
    )
    limits = fields.Dict(metadata=LIMITS_DOC)
    features = fields.Dict(metadata=FEATURES_DOC)
    self_service = fields.Boolean(
        data_key="selfService", metadata={"description": "a signup may choose it (else a superadmin sets it)"}
    )
    trial_days = fields.Integer(
        data_key="trialDays", allow_none=True, metadata={"description": "a signup's trial; null: none"}
    )


class PlanListSchema(Schema):
    items = fields.List(fields.Nested(PlanSchema))


# -- request bodies --------------------------------------------------------------------------------


class GeneralPatchSchema(Schema):
    timezone = fields.String(validate=validators.time_zone, metadata={"example": "Europe/Berlin"})
    language = fields.String(validate=validators.language_tag, metadata={"example": "de-DE"})
    currency = fields.String(validate=validators.currency, metadata={"example": "EUR"})


class SsoPatchSchema(Schema):
    """Merged into the stored configuration; the client secret is write-only (never dumped, not even
    into the audit entry of the change)."""

    issuer = fields.String(
        validate=[validate.Length(max=2048), validators.oidc_issuer],
        metadata={"example": "https://login.initech.example.com"},
    )
    client_id = fields.String(
        data_key="clientId",
        validate=validate.Length(min=1, max=255),
        metadata={"example": "telegram-marketing"},
    )
    client_secret = fields.String(
        data_key="clientSecret",
        load_only=True,
        validate=validate.Length(min=1, max=1024),
        metadata={"example": "s3cr3t-from-the-provider"},
    )
    allowed_domains = fields.List(
        fields.String(validate=validators.host_name),
        data_key="allowedDomains",
        validate=validate.Length(min=1, max=50),
        metadata={"example": ["initech.example.com"]},
    )
    default_role = fields.String(data_key="defaultRole", validate=validate.OneOf(SSO_ROLES))
    password_login_allowed = fields.Boolean(data_key="passwordLoginAllowed")


class SecurityPatchSchema(Schema):
    require_2fa = fields.Boolean(data_key="require2fa", metadata={"example": False})
    sso_enabled = fields.Boolean(data_key="ssoEnabled")
    ip_whitelist = fields.List(
        fields.String(),
        data_key="ipWhitelist",
        validate=validators.cidr_list,
        metadata={"example": ["203.0.113.0/24", "2001:db8::/32"]},
    )
    sso = fields.Nested(
        SsoPatchSchema, allow_none=True, metadata={"description": "owners only; null removes single sign-on"}
    )


class CompliancePatchSchema(Schema):
    gdpr_enabled = fields.Boolean(data_key="gdprEnabled")
    data_retention_days = fields.Integer(
        data_key="dataRetentionDays",
        allow_none=True,
        strict=True,
        validate=validate.Range(min=1, max=3650),
        metadata={"example": 365},
    )


class NotificationsPatchSchema(Schema):
    usage_alert_thresholds = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1, max=100)),
        data_key="usageAlertThresholds",
        validate=validate.Length(min=0, max=5),
        metadata={"example": [80, 100]},
    )


class SettingsPatchSchema(Schema):
    """Only these groups and fields; anything else (plan, limits, status, ...) is a 422."""

    general = fields.Nested(GeneralPatchSchema)
    security = fields.Nested(SecurityPatchSchema)
    compliance = fields.Nested(CompliancePatchSchema)
    notifications = fields.Nested(NotificationsPatchSchema)


class BrandingPatchSchema(Schema):
    logo_url = validators.URL(
        data_key="logoUrl",
        allow_none=True,
        schemes={"https"},
        metadata={"example": "https://cdn.initech.example.com/logo.png"},
    )
    primary_color = fields.String(
        data_key="primaryColor", allow_none=True, validate=validators.color, metadata={"example": "#1a2b3c"}
    )
    secondary_color = fields.String(
        data_key="secondaryColor", allow_none=True, validate=validators.color, metadata={"example": "#f5f5f5"}
    )
    custom_css = fields.String(
        data_key="customCss",
        allow_none=True,
        validate=validators.safe_css,
        metadata={"example": ".header { border-radius: 4px; }"},
    )
    hide_powered_by = fields.Boolean(data_key="hidePoweredBy")


# -- superadmin ---------------------------------------------------------------------------------------


class TenantListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    plan = fields.String(validate=validate.OneOf(PLAN_NAMES))
    q = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={
            "description": "The beginning of a tenant's name, slug or domain, or of one of their words, "
            "in any case",
            "example": "acme",
        },
    )


class BillingPatchSchema(Schema):
    status = fields.String(validate=validate.OneOf(BILLING_STATUSES))
    price_cents = fields.Integer(
        data_key="priceCents",
        allow_none=True,
        strict=True,
        validate=validate.Range(min=0, max=10**9),
        metadata={"example": 49900},
    )
    email = validators.Email(allow_none=True, metadata={"example": "billing@initech.example.com"})
    trial_ends_at = UtcDateTime(data_key="trialEndsAt", allow_none=True)
    current_period_end = UtcDateTime(data_key="currentPeriodEnd", allow_none=True)


class TenantPatchSchema(Schema):
    """`limits` and `features` replace the tenant's overrides as a whole ({} removes them all)."""

    name = fields.String(validate=validators.NAME, metadata={"example": "Initech"})
    domain = fields.String(
        allow_none=True, validate=validators.host_name, metadata={"example": "marketing.initech.example.com"}
    )
    plan = fields.String(validate=validate.OneOf(PLAN_NAMES))
    limits = fields.Dict(
        keys=fields.String(validate=validate.OneOf(LIMIT_NAMES)),
        values=fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0, max=10**15)),
    )
    features = fields.Dict(
        keys=fields.String(validate=validate.OneOf(FEATURE_NAMES)), values=fields.Boolean()
    )
    billing = fields.Nested(BillingPatchSchema)


class ReasonSchema(Schema):
    reason = fields.String(
        required=True, validate=validate.Length(min=3, max=500), metadata={"example": "support ticket 4711"}
    )


class CountsSchema(Schema):
    total = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), data_key="byStatus")
    by_plan = fields.Dict(keys=fields.String(), values=fields.Integer(), data_key="byPlan")


class TenantStatsSchema(Schema):
    tenants = fields.Nested(CountsSchema)
    usage = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "sums of gauges"}
    )
