"""Access and refresh tokens (JWT, HS256 pinned) and their revocation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
from flask import Flask, current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException

from app.errors import TokenExpired, TokenRevoked, Unauthorized
from app.tenancy.cache import TTLCache

from .cache import auth_cache, forget
from .models import RevokedToken

ACCESS = "access"
REFRESH = "refresh"
IMPERSONATION_MAX = timedelta(minutes=15)
# Tokens whose signature was checked, with their claims: a client sends the same token many times. The
# most recently used are kept, each at most an access token's lifetime (its expiry is checked anyway).
VERIFIED_TOKENS_MAX = 10_000


# How the person signed in (the `amr` claim, RFC 8176): with a password, or through the tenant's
# identity provider ("fed", federated), and "otp" when a one-time code of their second factor was
# checked too. A token without the claim counts as a password's.
PASSWORD = "pwd"
FEDERATED = "fed"
ONE_TIME_CODE = "otp"


def _claims(tenant_id: Any, role: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"tenantId": str(tenant_id) if tenant_id else None, "role": role, **(extra or {})}


def issue(account: Any, methods: list[str]) -> dict[str, str]:
    """Return a new access token and refresh token for a tenant user or superadmin who signed in by
    `methods`; they work while the account's token version stays the one `account` holds."""
    extra = {"amr": methods, "ver": account.token_version}
    claims = _claims(getattr(account, "tenant_id", None), account.role, extra)
    subject = str(account.id)
    return {
        "access_token": create_access_token(identity=subject, additional_claims=claims),
        "refresh_token": create_refresh_token(identity=subject, additional_claims=claims),
    }


def issue_access(refresh_claims: dict[str, Any], role: str) -> str:
    """Return a new access token for the account of a refresh token, with its current role."""
    extra = {"amr": signed_in_by(refresh_claims), "ver": version_of(refresh_claims)}
    claims = _claims(refresh_claims.get("tenantId"), role, extra)
    return create_access_token(identity=refresh_claims["sub"], additional_claims=claims)


def signed_in_by(claims: dict[str, Any]) -> list[str]:
    """How the person behind a token signed in (a password, when the token does not say)."""
    amr = claims.get("amr")
    return amr if isinstance(amr, list) and amr else [PASSWORD]


def version_of(claims: dict[str, Any]) -> int:
    """The token version of the account a token (or the `act` claim of one) was issued for; tokens
    issued before versions existed have none, which counts as the first."""
    return claims.get("ver", 0)


def issue_impersonation(user: Any, superadmin: Any) -> tuple[str, dict[str, Any]]:
    """Return an access token acting as `user` for at most 15 minutes, and its claims."""
    ttl = min(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"], IMPERSONATION_MAX)
    act = {"sub": str(superadmin.id), "email": superadmin.email, "ver": superadmin.token_version}
    token = create_access_token(
        identity=str(user.id),
        additional_claims=_claims(user.tenant_id, user.role, {"act": act, "ver": user.token_version}),
        expires_delta=ttl,
    )
    return token, decode_token(token)


def init_app(app: Flask) -> None:
    """Give the app its own tokens verified so far (another app, with another key, checks them again)."""
    app.extensions["verified_tokens"] = TTLCache(
        ttl=app.config["ACCESS_TOKEN_TTL"], max_entries=VERIFIED_TOKENS_MAX
    )


def _verify(token: str) -> dict[str, Any]:
    try:
        return decode_token(token)
    except pyjwt.ExpiredSignatureError:
        raise TokenExpired() from None
    except (pyjwt.PyJWTError, JWTExtendedException, ValueError, TypeError):
        raise Unauthorized("The token is not valid") from None


def decode(token: str) -> dict[str, Any]:
    """Verify signature, algorithm and expiry; raise 401 token_expired / unauthorized.

    A token verified before (by this app, in this process) is not verified again, only its expiry: the
    whole token is the key, signature included. The claims returned are shared: read them only."""
    claims = current_app.extensions["verified_tokens"].get(token, lambda: _verify(token))
    if claims["exp"] <= time.time() - current_app.config["JWT_DECODE_LEEWAY"]:
        raise TokenExpired()
    return claims


def expires_at(claims: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(claims["exp"], UTC)


def revoke(claims: dict[str, Any]) -> None:
    """Revoke a token until it expires (idempotent)."""
    RevokedToken.objects(jti=claims["jti"]).update_one(
        set_on_insert__tenant_id=claims.get("tenantId"),
        set_on_insert__expires_at=expires_at(claims),
        upsert=True,
    )
    forget()


def check_not_revoked(claims: dict[str, Any]) -> None:
    jti = claims["jti"]
    if auth_cache().get(
        ("revoked", jti), lambda: RevokedToken.objects(jti=jti).only("id").first() is not None
    ):
        raise TokenRevoked()
