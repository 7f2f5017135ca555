"""Single sign-on with OpenID Connect: the authorization code flow with PKCE, one provider per tenant.

A tenant owner configures the provider in `settings.security.sso` (app.tenants.service). A login:
1. GET /auth/sso/start?tenant=<slug> reads the provider's discovery document, keeps state, nonce and the
   PKCE code verifier server-side (SsoLoginState) and sends the browser to the authorization endpoint;
2. GET /auth/sso/callback?code=&state= uses the state once, exchanges the code at the token endpoint
   (with the verifier and the client secret), verifies the ID token (signature against the provider's
   JWKS, issuer, audience, expiry, nonce) and logs in the tenant's user the token is about: the one bound
   to its subject, or at a first single sign-on the one with its email (then bound), creating it within
   the `users` limit.
Every refusal is audited as auth.sso_refused with its reason, in the tenant's log when one is known (the
tenant of the start, or of the server-side state of the callback), within the bounds of
app.audit.service.record_anonymous.
The conversation with the provider itself is app.auth.oidc.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import mongoengine as me
from authlib.common.security import generate_token

from app import clock
from app.audit.service import record, record_anonymous
from app.errors import AppError, NotFound, TenantRequired, TenantSuspended
from app.tenancy.context import current_tenant, tenant_scope
from app.tenancy.middleware import check_ip_whitelist
from app.tenants.directory import tenant_by_id
from app.tenants.models import SsoSettings, Tenant
from app.tenants.plans import effective_features
from app.tenants.service import require_feature
from app.users.models import User
from app.users.service import create_user, normalize_email

from . import oidc, tokens
from .models import SsoLoginState
from .oidc import refused

log = logging.getLogger("app.auth.sso")

STATE_TTL = timedelta(minutes=10)


class SsoRequired(AppError):
    status, code = 403, "sso_required"
    message = "This tenant signs in with single sign-on: use GET /api/v1/auth/sso/start?tenant=<slug>"


@contextmanager
def _audited(tenant: Tenant | None) -> Iterator[None]:
    """Record every refusal of the block as auth.sso_refused in the tenant's log, within the bounds of
    record_anonymous (anyone can cause one), or only log it when no tenant is known."""
    try:
        yield
    except AppError as error:
        summary = {"code": error.code, **(error.details or {})}
        summary.setdefault("reason", error.code)
        if tenant is None:
            log.warning("auth.sso_refused", extra=summary)
        else:
            record_anonymous("auth.sso_refused", tenant=tenant, subject=summary["reason"], summary=summary)
        raise


def password_login_allowed(tenant: Tenant, user: User) -> bool:
    """Tell whether `user` may log in with a password: yes unless the tenant's single sign-on is in use
    (configured and switched on with ssoEnabled) and says no. Owners always may, so that a broken
    provider cannot lock the tenant out (an owner can then fix or remove the configuration)."""
    security = tenant.settings.security
    sso = security.sso
    if user.role == "owner" or sso.password_login_allowed or not (security.sso_enabled and sso.configured):
        return True
    # A plan without single sign-on cannot use it: passwords work again rather than nothing at all.
    return not effective_features(tenant.plan, tenant.features).get("sso")


def _provider_of(tenant: Tenant) -> SsoSettings:
    """Return the tenant's provider settings: 404 without any (or with ssoEnabled off), 403 when its plan
    lacks the feature."""
    sso = tenant.settings.security.sso
    if not (sso.configured and tenant.settings.security.sso_enabled):
        raise NotFound(
            "This tenant has no single sign-on",
            code="sso_not_configured",
            details={"reason": "not_configured"},
        )
    require_feature(tenant, "sso")
    return sso


def start_login(redirect_uri: str) -> str:
    """Begin a login into the tenant in context: keep the login's secrets, return the provider's URL to
    send the browser to."""
    tenant = current_tenant()
    if tenant is None:
        raise TenantRequired("Say which tenant signs in (?tenant=<slug>)")
    with _audited(tenant):
        sso = _provider_of(tenant)
        flow = SsoLoginState(
            state=generate_token(48),
            tenant_id=tenant.id,
            nonce=generate_token(48),
            code_verifier=generate_token(64),
            redirect_uri=redirect_uri,
            expires_at=clock.utcnow() + STATE_TTL,
        )
        url = oidc.authorization_url(sso, redirect_uri, flow.state, flow.nonce, flow.code_verifier)
        flow.save(force_insert=True)
    return url


def _claim(state: str) -> tuple[SsoLoginState | None, str | None]:
    """Mark the login of `state` used, atomically and once; return it and what is wrong with it."""
    now = clock.utcnow()
    flow = SsoLoginState.objects(state=state, used_at=None).modify(set__used_at=now)
    if flow is None:
        flow = SsoLoginState.objects(state=state).first()
        return flow, "state_replayed" if flow is not None else "state_unknown"
    return flow, "state_expired" if flow.expires_at <= now else None


def _display_name(claims: dict[str, Any], email: str) -> str:
    """The token's `name`, or the email's local part, cut to what a user's name may hold."""
    name = claims.get("name")
    name = name.strip() if isinstance(name, str) else ""
    return (name or email.partition("@")[0])[: User.name.max_length]


def _user_of(sso: SsoSettings, claims: dict[str, Any]) -> tuple[User, bool]:
    """Return the user of the tenant in context the token is about, creating it on a first login, and
    whether it was created. The provider's subject decides once it is bound to a user; before that, the
    email does, and the login binds the subject to that user."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise refused("subject_missing", "The identity provider sent no subject")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise refused("email_missing", "The identity provider sent no email address")
    # An address the provider says is unverified could be anyone's. A missing claim is accepted: some
    # providers (Microsoft Entra ID) never send it, and the tenant chose to trust its provider.
    if claims.get("email_verified") in (False, "false"):
        raise refused("email_not_verified", "The identity provider has not verified this email address")
    email = normalize_email(email)
    domain = email.rpartition("@")[2]
    if domain not in sso.allowed_domains:
        raise refused(
            "email_domain_not_allowed", f"{domain} is not an email domain of this tenant", domain=domain
        )
    user = User.objects(sso_subject=subject, sso_issuer=sso.issuer).first()
    if user is None:
        user = User.objects(email=email).first()
        if user is not None and user.sso_issuer == sso.issuer and user.sso_subject not in (None, subject):
            raise refused(
                "subject_mismatch", "This email address belongs to another person at the identity provider"
            )
    created = user is None
    if created:
        # The password is random and never shown: the account signs in through its provider.
        password = secrets.token_urlsafe(32)
        try:
            user = create_user(email, _display_name(claims, email), password, sso.default_role)
        except me.ValidationError:
            raise refused("email_invalid", "The identity provider's email address is not valid") from None
    elif not user.active:
        raise refused("user_deactivated", "This account is deactivated")
    if (user.sso_issuer, user.sso_subject) != (sso.issuer, subject):
        # A first single sign-on, or one through a provider the owner configured since: bind the person,
        # unless a concurrent first sign-on bound someone else meanwhile.
        bind = User.objects(id=user.id, sso_issuer=user.sso_issuer, sso_subject=user.sso_subject)
        if not bind.update_one(set__sso_issuer=sso.issuer, set__sso_subject=subject):
            again = User.objects(id=user.id).only("sso_issuer", "sso_subject").first()
            if again is None or (again.sso_issuer, again.sso_subject) != (sso.issuer, subject):
                raise refused(
                    "subject_mismatch",
                    "This email address belongs to another person at the identity provider",
                )
    return user, created


def finish_login(callback: dict[str, Any], address: str | None) -> dict[str, Any]:
    """Complete a login from the provider's redirect; answer like POST /auth/login (tokens, user, tenant)."""
    flow, problem = _claim(callback["state"])
    tenant = tenant_by_id(flow.tenant_id) if flow is not None else None
    hinted = current_tenant()
    # Only a state this service issued names the tenant whose log takes a refusal: a hint is anyone's
    # to send, with any made-up state.
    with _audited(tenant):
        if problem is not None:
            raise refused(problem, "This sign-on is not valid (any more): start again")
        assert flow is not None, "_claim() names a problem wherever it finds no login"
        if tenant is None:
            raise refused("tenant_not_found", "The tenant of this sign-on no longer exists")
        if hinted is not None and hinted.id != tenant.id:
            raise refused("tenant_mismatch", "This sign-on was started for another tenant")
        if "error" in callback:
            raise refused(
                "provider_error",
                "The identity provider did not sign you in",
                error=callback["error"],
                description=callback.get("error_description"),
            )
        sso = _provider_of(tenant)
        # RFC 9207: a provider that names itself must be this tenant's (mix-up attacks).
        if "iss" in callback and callback["iss"] != sso.issuer:
            raise refused("issuer_mismatch", "The answer comes from another identity provider")
        if not callback.get("code"):
            raise refused("code_missing", "The identity provider sent no code")
        if not tenant.is_active:
            raise TenantSuspended()
        check_ip_whitelist(tenant, address)
        claims = oidc.verified_claims(
            sso, flow.redirect_uri, callback["code"], flow.code_verifier, flow.nonce
        )
        with tenant_scope(tenant):
            user, created = _user_of(sso, claims)
    # The provider authenticated the person, with its own second factors: the app's TOTP (and the
    # tenant's require2fa) apply to password logins.
    with tenant_scope(tenant):
        User.objects(id=user.id).update_one(set__last_login_at=clock.utcnow())
        user.reload()
    if created:
        record(
            "user.created",
            tenant=tenant,
            target_type="user",
            target_id=user.id,
            summary={"role": user.role, "via": "sso"},
        )
    record(
        "auth.sso_login",
        tenant=tenant,
        target_type="user",
        target_id=user.id,
        summary={"issuer": sso.issuer, "created": created},
    )
    issued = tokens.issue(user, [tokens.FEDERATED])
    return {**issued, "user": user, "tenant": tenant}
