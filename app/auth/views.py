"""/api/v1/auth, /api/v1/api-keys, and signup and impersonation on the tenants blueprint
(app.tenants.blueprint)."""

from __future__ import annotations

from flask import g, redirect, request, url_for
from flask.views import MethodView

from app.errors import Unauthorized
from app.extensions import Blueprint
from app.pagination import PageArgs, page_schema
from app.tenancy.access import (
    authenticated,
    enrollment_allowed,
    not_while_impersonating,
    people_only,
    platform,
    public,
    refresh_token_route,
    roles,
)
from app.tenants.admin import get_tenant
from app.tenants.blueprint import blp as tenants_blp
from app.usage.rate_limits import check_login_attempt, check_signup_attempt, check_sso_attempt

from . import api_keys, service, sso, two_factor
from .credentials import fresh_account
from .impersonation import impersonate
from .schemas import (
    AccessTokenSchema,
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeySchema,
    ImpersonateSchema,
    ImpersonationSchema,
    LoginResponseSchema,
    LoginSchema,
    LogoutSchema,
    MeSchema,
    RecoveryCodesSchema,
    SignupResponseSchema,
    SignupSchema,
    SsoCallbackArgs,
    SsoStartArgs,
    TwoFactorCodeSchema,
    TwoFactorSetupSchema,
)
from .signup import signup

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Login, tokens, the caller")
keys_blp = Blueprint("api-keys", __name__, url_prefix="/api/v1/api-keys", description="API keys")


@blp.route("/login")
class Login(MethodView):
    @public
    @blp.arguments(LoginSchema)
    @blp.response(200, LoginResponseSchema)
    def post(self, body):
        """Log in with email and password (with a tenant hint, into that tenant)."""
        check_login_attempt(request.remote_addr, body["email"])
        return service.login(body["email"], body["password"], request.remote_addr, body.get("code"))


@blp.route("/refresh")
class Refresh(MethodView):
    @refresh_token_route
    @blp.doc(operationId="refreshAccessToken")
    @blp.response(200, AccessTokenSchema)
    def post(self):
        """Exchange the refresh token sent as bearer for a new access token."""
        if g.principal is None:
            raise Unauthorized("Send the refresh token as 'Authorization: Bearer <token>'")
        return service.refresh(g.principal)


@blp.route("/logout")
class Logout(MethodView):
    @authenticated
    @blp.arguments(LogoutSchema, required=False)
    @blp.response(204)
    def post(self, body):
        """Revoke the presented access token (and the refresh token in the body, if any)."""
        service.logout(g.principal, body.get("refresh_token"))


@blp.route("/me")
class Me(MethodView):
    @authenticated
    @blp.response(200, MeSchema)
    def get(self):
        """Show the caller: user, tenant, and the superadmin behind an impersonation."""
        return service.me(g.principal)


@blp.route("/sso/start")
class SsoStart(MethodView):
    @public
    @blp.doc(operationId="startSso")
    @blp.arguments(SsoStartArgs, location="query")
    @blp.response(302, description="A redirect to the tenant's identity provider")
    def get(self, args):
        """Start a single sign-on login into the tenant the hint names: go to its identity provider."""
        check_sso_attempt(request.remote_addr)
        back = "dashboard.sso_page" if args.get("landing") == "dashboard" else "auth.SsoCallback"
        response = redirect(sso.start_login(url_for(back, _external=True)))
        response.headers["Cache-Control"] = "no-store"
        return response


@blp.route("/sso/callback")
class SsoCallback(MethodView):
    @public
    @blp.doc(operationId="finishSso")
    @blp.arguments(SsoCallbackArgs, location="query")
    @blp.response(200, LoginResponseSchema)
    def get(self, args):
        """Finish a single sign-on login from the provider's redirect; answer like POST /auth/login."""
        check_sso_attempt(request.remote_addr)
        return sso.finish_login(args, request.remote_addr)


@blp.route("/2fa/setup")
class TwoFactorSetup(MethodView):
    @authenticated
    @people_only
    @enrollment_allowed
    @not_while_impersonating
    @blp.doc(operationId="setupTwoFactor")
    @blp.response(200, TwoFactorSetupSchema)
    def post(self):
        """Start two-factor enrolment: a TOTP secret, its otpauth:// URI and a QR code of it."""
        return two_factor.setup(fresh_account(g.principal))


@blp.route("/2fa/enable")
class TwoFactorEnable(MethodView):
    @authenticated
    @people_only
    @enrollment_allowed
    @not_while_impersonating
    @blp.doc(operationId="enableTwoFactor")
    @blp.arguments(TwoFactorCodeSchema)
    @blp.response(200, RecoveryCodesSchema)
    def post(self, body):
        """Confirm enrolment with a code; the answer holds the recovery codes, shown only now. It ends
        the caller's sessions; with an enrollment token it holds the tokens of the login it completes."""
        return service.enable_two_factor(g.principal, fresh_account(g.principal), body["code"])


@blp.route("/2fa/disable")
class TwoFactorDisable(MethodView):
    @authenticated
    @people_only
    @not_while_impersonating
    @blp.doc(operationId="disableTwoFactor")
    @blp.arguments(TwoFactorCodeSchema)
    @blp.response(204)
    def post(self, body):
        """Turn two-factor authentication off with a current or a recovery code; this ends the caller's
        sessions."""
        two_factor.disable(fresh_account(g.principal), body["code"])


@keys_blp.route("")
class ApiKeys(MethodView):
    @roles("owner", "admin")
    @keys_blp.arguments(PageArgs, location="query")
    @keys_blp.response(200, page_schema(ApiKeySchema))
    def get(self, args):
        """List the tenant's API keys, newest first (never the keys themselves)."""
        return api_keys.list_api_keys(args)

    @roles("owner", "admin")
    @not_while_impersonating
    @people_only
    @keys_blp.arguments(ApiKeyCreateSchema)
    @keys_blp.response(201, ApiKeyCreatedSchema)
    def post(self, body):
        """Create an API key; the response is the only time the key is shown."""
        return api_keys.create_api_key(body["name"], body["role"], g.principal)


@keys_blp.route("/<objectid:key_id>")
class ApiKeyById(MethodView):
    @roles("owner", "admin")
    @not_while_impersonating
    @keys_blp.response(204)
    def delete(self, key_id):
        """Revoke an API key at once."""
        api_keys.revoke_api_key(key_id)


@tenants_blp.route("/signup")
class Signup(MethodView):
    @public
    @tenants_blp.arguments(SignupSchema)
    @tenants_blp.response(201, SignupResponseSchema)
    def post(self, body):
        """Create a tenant and its owner; paid plans start with a trial."""
        check_signup_attempt(request.remote_addr)
        return signup(body["tenant"], body["user"], body["plan"])


@tenants_blp.route("/<objectid:tenant_id>/impersonate")
class ImpersonateTenant(MethodView):
    @platform
    @tenants_blp.arguments(ImpersonateSchema)
    @tenants_blp.response(201, ImpersonationSchema)
    def post(self, body, tenant_id):
        """Log in as a user of the tenant (default: its owner) for at most 15 minutes."""
        return impersonate(get_tenant(tenant_id), g.principal, body["reason"], body.get("user_id"))
