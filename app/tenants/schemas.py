"""How tenants and plans look on the wire (camelCase keys, mapped here with data_key)."""

from __future__ import annotations

from marshmallow import Schema, fields

from .plans import effective_features, effective_limits

LIMITS_DOC = {"type": "object", "additionalProperties": {"type": "integer", "nullable": True}}
FEATURES_DOC = {"type": "object", "additionalProperties": {"type": "boolean"}}


class UsageSchema(Schema):
    users = fields.Integer()
    campaigns = fields.Integer()
    telegram_accounts = fields.Integer(data_key="telegramAccounts")
    webhooks = fields.Integer()
    storage = fields.Integer()


class GeneralSettingsSchema(Schema):
    timezone = fields.String()
    language = fields.String()
    currency = fields.String()


class SecuritySettingsSchema(Schema):
    require_2fa = fields.Boolean(data_key="require2fa")
    sso_enabled = fields.Boolean(data_key="ssoEnabled")
    ip_whitelist = fields.List(fields.String(), data_key="ipWhitelist")


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
    logo_url = fields.String(data_key="logoUrl", allow_none=True)
    primary_color = fields.String(data_key="primaryColor", allow_none=True)
    secondary_color = fields.String(data_key="secondaryColor", allow_none=True)
    custom_css = fields.String(data_key="customCss", allow_none=True)
    hide_powered_by = fields.Boolean(data_key="hidePoweredBy")


class BillingSchema(Schema):
    status = fields.String()
    email = fields.String(allow_none=True)
    trial_ends_at = fields.AwareDateTime(data_key="trialEndsAt", allow_none=True)
    current_period_end = fields.AwareDateTime(data_key="currentPeriodEnd", allow_none=True)


class TenantSchema(Schema):
    """A tenant with its effective limits and features (plan values overridden by its own)."""

    id = fields.String()
    name = fields.String()
    slug = fields.String()
    domain = fields.String(allow_none=True)
    status = fields.String()
    suspended_reason = fields.String(data_key="suspendedReason", allow_none=True)
    plan = fields.String()
    limits = fields.Method("_limits", metadata=LIMITS_DOC)
    features = fields.Method("_features", metadata=FEATURES_DOC)
    limit_overrides = fields.Dict(attribute="limits", data_key="limitOverrides", metadata=LIMITS_DOC)
    feature_overrides = fields.Dict(attribute="features", data_key="featureOverrides", metadata=FEATURES_DOC)
    usage = fields.Nested(UsageSchema)
    settings = fields.Nested(SettingsSchema)
    branding = fields.Nested(BrandingSchema)
    compliance = fields.Nested(ComplianceSchema, attribute="settings.compliance")
    billing = fields.Nested(BillingSchema)
    created_at = fields.AwareDateTime(data_key="createdAt")
    updated_at = fields.AwareDateTime(data_key="updatedAt")

    def _limits(self, tenant) -> dict:
        return effective_limits(tenant.plan, tenant.limits)

    def _features(self, tenant) -> dict:
        return effective_features(tenant.plan, tenant.features)


class PriceSchema(Schema):
    amount = fields.Integer()
    currency = fields.String()
    interval = fields.String()


class PlanSchema(Schema):
    id = fields.String()
    name = fields.String()
    price = fields.Nested(PriceSchema, allow_none=True, metadata={"description": "null: custom"})
    support = fields.String()
    limits = fields.Dict(metadata=LIMITS_DOC)
    features = fields.Dict(metadata=FEATURES_DOC)


class PlanListSchema(Schema):
    items = fields.List(fields.Nested(PlanSchema))
