"""Tenant services: the registry, and what a tenant changes about itself."""

from __future__ import annotations

from typing import Any

import mongoengine as me
from flask import current_app

from app import crypto, egress, signals, wire
from app.audit.service import record
from app.errors import Conflict, FeatureNotAvailable, Forbidden, NotFound, ValidationFailed
from app.tenancy.access import Principal
from app.tenancy.collection import TENANT_FIELD
from app.tenancy.context import current_tenant_id, tenant_scope
from app.tenancy.middleware import address_allowed
from app.tenancy.registry import removed_with_tenant, tenant_document_classes
from app.validators import normalize_cidrs

from .models import Billing, SsoSettings, Tenant
from .plans import DEFAULT_PLAN, PLANS, SELF_SERVICE_PLANS, effective_features, has_trial
from .schemas import BrandingPatchSchema, SettingsPatchSchema
from .slugs import slug_problem, slugify


def _reserved_allowed() -> frozenset[str]:
    """The configured default tenant may use a reserved word (`default` is one)."""
    return frozenset({current_app.config["DEFAULT_TENANT_SLUG"]})


def check_slug(slug: str) -> str:
    """Return `slug` if it can name a new tenant; raise 422 or 409 otherwise."""
    problem = slug_problem(slug, allow_reserved=_reserved_allowed())
    if problem:
        raise ValidationFailed(details={"slug": [problem]})
    if Tenant.objects(slug=slug).only("id").first() is not None:
        raise Conflict("This slug is taken", code="slug_taken", details={"slug": slug})
    return slug


def create_tenant(
    name: str,
    slug: str | None = None,
    *,
    plan: str = DEFAULT_PLAN,
    domain: str | None = None,
    billing: Billing | None = None,
) -> Tenant:
    """Create a tenant; derive the slug from the name when none is given."""
    if plan not in PLANS:
        raise ValidationFailed(details={"plan": [f"Unknown plan {plan!r}."]})
    slug = check_slug(slug if slug is not None else slugify(name))
    tenant = Tenant(
        name=name.strip(), slug=slug, plan=plan, domain=domain or None, billing=billing or Billing()
    )
    try:
        return tenant.save(force_insert=True)
    except me.NotUniqueError:
        # Two signups raced for the same slug (or domain): the unique index decided.
        raise Conflict("This slug or domain is taken", code="slug_taken") from None


def plan_catalog() -> dict:
    """Return the plan catalog as the API lists it: which plans a signup may choose, with their trial."""
    trial_days = current_app.config["TRIAL_DAYS"]
    return {
        "items": [
            {
                "id": plan_id,
                **plan,
                "self_service": plan_id in SELF_SERVICE_PLANS,
                "trial_days": trial_days if has_trial(plan_id) else None,
            }
            for plan_id, plan in PLANS.items()
        ]
    }


def require_feature(tenant: Tenant, feature: str) -> None:
    """Raise 403 feature_not_available unless the tenant's plan (or its overrides) include `feature`."""
    if not effective_features(tenant.plan, tenant.features).get(feature):
        raise FeatureNotAvailable(f"Your plan does not include {feature}", details={"feature": feature})


def erase_tenant(tenant: Tenant) -> dict[str, int]:
    """Delete every document the tenant owns, and the global documents declared to go with it (the
    registry, app/models.py), then the tenant; return what was removed per collection.

    Each collection goes in one delete by filter, which the server runs without sending a document
    back: the ODM's delete loads and deletes one by one the documents of classes with delete signals
    (users, API keys), as many as the tenant has. Those signals clear this process's credential
    cache, which is cleared here once instead."""
    removed = {}
    with tenant_scope(tenant):
        for document_class in tenant_document_classes():
            deleted = document_class._get_collection().delete_many({TENANT_FIELD: tenant.id})
            removed[document_class._get_collection_name()] = deleted.deleted_count
    signals.credentials_changed.send()
    for entry in removed_with_tenant():
        removed[entry.document._get_collection_name()] = entry.naming(tenant.id).delete()
    tenant.delete()
    return removed


def fresh_current_tenant() -> Tenant:
    """Load the tenant in context from the database (the cached copy is shared and read-only)."""
    return Tenant.objects.get(id=current_tenant_id())


def current_tenant_to_show() -> wire.Stored:
    """The tenant in context as stored now, to show (app.wire dumps it without building it): read from
    the database every time, one find_one without a query set."""
    stored = wire.stored(Tenant, Tenant._get_collection().find_one({"_id": current_tenant_id()}))
    if stored is None:
        raise NotFound("No such tenant")
    return stored


# The single sign-on settings that must all be set, with their names on the wire.
SSO_REQUIRED = (
    ("issuer", "issuer"),
    ("client_id", "clientId"),
    ("client_secret_encrypted", "clientSecret"),
    ("allowed_domains", "allowedDomains"),
)


def _sso_invalid(problems: dict[str, list[str]]) -> ValidationFailed:
    """A 422 whose details point into the sso group."""
    return ValidationFailed(details={"security": {"sso": problems}})


def _update_sso(tenant: Tenant, values: dict[str, Any] | None, principal: Principal) -> None:
    """Set or change the tenant's OpenID Connect provider, or remove it (None): owners only, and setting
    one needs the `sso` feature. Whoever controls the provider signs in as any user of the allowed
    domains, owners included: hence an owner acting as themselves, not a superadmin nor an impersonator."""
    if principal.role != "owner" or principal.impersonator:
        raise Forbidden("Only an owner, signed in as themselves, may change single sign-on")
    if values is None:
        tenant.settings.security.sso = SsoSettings()
        return
    require_feature(tenant, "sso")
    if values.get("issuer") is not None:
        try:
            egress.Policy.for_tenants(current_app.config).check(values["issuer"])
        except egress.Refused as exc:
            raise _sso_invalid({"issuer": [str(exc)]}) from None
    sso = tenant.settings.security.sso
    moved = any(name in values and values[name] != getattr(sso, name) for name in ("issuer", "client_id"))
    if moved and "client_secret" not in values:
        # The code exchange sends the secret to the provider: never to one it was not issued by.
        raise _sso_invalid({"clientSecret": ["Send the client secret with a new issuer or client id."]})
    for name, value in values.items():
        if name == "client_secret":
            sso.client_secret_encrypted = crypto.encrypt(value)
        else:
            setattr(sso, name, value)
    sso.allowed_domains = list(dict.fromkeys(sso.allowed_domains))
    missing = {
        field: ["Missing data for required field."] for name, field in SSO_REQUIRED if not getattr(sso, name)
    }
    if missing:
        raise _sso_invalid(missing)


def update_settings(changes: dict[str, dict[str, Any]], principal: Principal, address: str | None) -> Tenant:
    """Change settings group by group; refuse an IP whitelist that would lock out the caller, requiring
    2FA by a user without it, and a single sign-on change by anyone but an owner."""
    tenant = fresh_current_tenant()
    security = changes.get("security", {})
    if "ip_whitelist" in security:
        security["ip_whitelist"] = normalize_cidrs(security["ip_whitelist"])
        if not principal.is_superadmin and not address_allowed(address, security["ip_whitelist"]):
            raise ValidationFailed(
                "This whitelist would lock you out",
                details={"security": {"ipWhitelist": [f"Your address ({address}) is not on the list."]}},
            )
    requiring_2fa = security.get("require_2fa") and not tenant.settings.security.require_2fa
    if requiring_2fa:
        signals.requiring_second_factor.send(principal=principal)
    thresholds = changes.get("notifications", {}).get("usage_alert_thresholds")
    if thresholds is not None:
        changes["notifications"]["usage_alert_thresholds"] = sorted(set(thresholds))
    summary = SettingsPatchSchema().dump(changes)
    condition = {}
    if "sso" in security:
        stored = tenant.settings.security.sso
        # Whether the client secret must come along was decided on the provider read here: the change
        # applies only if no other one moved the provider meanwhile.
        condition = {
            "settings__security__sso__issuer": stored.issuer,
            "settings__security__sso__client_id": stored.client_id,
        }
        sso = security.pop("sso")
        _update_sso(tenant, sso, principal)
        if sso and "client_secret" in sso:
            summary["security"]["sso"]["clientSecretChanged"] = True
    for group, values in changes.items():
        section = getattr(tenant.settings, group)
        for name, value in values.items():
            setattr(section, name, value)
    tenant.save(save_condition=condition)
    if requiring_2fa:
        signals.second_factor_required.send()
    record("tenant.settings_updated", target_type="tenant", target_id=tenant.id, summary=summary)
    return tenant


def update_branding(changes: dict[str, Any]) -> Tenant:
    """Change the branding; custom CSS and hiding 'powered by' need the whiteLabel feature."""
    tenant = fresh_current_tenant()
    if changes.get("custom_css") or changes.get("hide_powered_by"):
        require_feature(tenant, "whiteLabel")
    for name, value in changes.items():
        setattr(tenant.branding, name, value)
    tenant.save()
    summary = BrandingPatchSchema().dump({k: v for k, v in changes.items() if k != "custom_css"})
    if "custom_css" in changes:
        summary["customCssLength"] = len(changes["custom_css"] or "")
    record("tenant.branding_updated", target_type="tenant", target_id=tenant.id, summary=summary)
    return tenant


def ensure_default_tenant() -> Tenant:
    """Return the default tenant (DEFAULT_TENANT_SLUG), creating it if missing (single-tenant mode)."""
    slug = current_app.config["DEFAULT_TENANT_SLUG"]
    tenant = Tenant.objects(slug=slug).first()
    if tenant is not None:
        return tenant
    try:
        return create_tenant("Default", slug, plan="enterprise")
    except Conflict:  # another process created it a moment ago
        return Tenant.objects.get(slug=slug)
