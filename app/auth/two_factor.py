"""Two-factor authentication with TOTP (RFC 6238, via pyotp) and one-time recovery codes.

A tenant that requires 2FA refuses the password-only login of a user who has not enrolled, and hands
them a short enrollment token instead, good only for the two enrollment routes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from typing import Any

import pyotp
from flask_jwt_extended import create_access_token

from app import crypto
from app.audit.service import record
from app.errors import AppError, Conflict, InvalidCredentials, ValidationFailed
from app.tenancy.context import current_tenant
from app.users.models import User

ISSUER = "Telegram Marketing"
ENROLLMENT_SCOPE = "2fa_enrollment"
ENROLLMENT_TTL = timedelta(minutes=10)
RECOVERY_CODES = 10


class TwoFactorRequired(AppError):
    status, code, message = 401, "two_factor_required", "Send the one-time code of your authenticator app"


class TwoFactorEnrollmentRequired(AppError):
    status, code = 403, "two_factor_enrollment_required"
    message = "This tenant requires two-factor authentication: enrol with the token in details"


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()


def _matching_step(secret: str, code: str, after_step: int | None) -> int | None:
    """Return the time step whose code this is (the previous, current or next one), or None.

    A step at or before `after_step` was used already: refusing it stops a replayed code."""
    totp = pyotp.TOTP(secret)
    now_step = int(time.time()) // totp.interval
    for step in (now_step - 1, now_step, now_step + 1):
        if (after_step is None or step > after_step) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def enrollment_token(user: User) -> str:
    """A token that only lets `user` enrol (setup and enable), for ten minutes."""
    claims = {"tenantId": str(user.tenant_id), "role": user.role, "scope": ENROLLMENT_SCOPE}
    return create_access_token(identity=str(user.id), additional_claims=claims, expires_delta=ENROLLMENT_TTL)


def check_login_code(user: User, code: str | None) -> None:
    """Apply 2FA to a login whose password was right (in the user's tenant scope): refuse, or consume
    the code it brought."""
    if not user.two_factor_enabled:
        if current_tenant().settings.security.require_2fa:
            raise TwoFactorEnrollmentRequired(details={"enrollmentToken": enrollment_token(user)})
        return
    if not code:
        raise TwoFactorRequired()
    secret = crypto.decrypt(user.totp_secret_encrypted)
    step = _matching_step(secret, code.strip(), user.totp_last_step)
    if step is not None:
        if not User.objects(id=user.id, totp_last_step=user.totp_last_step).update_one(
            set__totp_last_step=step
        ):
            raise InvalidCredentials()  # the same code raced in twice
        return
    if User.objects(id=user.id, recovery_code_hashes=_hash(code)).update_one(
        pull__recovery_code_hashes=_hash(code)
    ):
        record("auth.recovery_code_used", target_type="user", target_id=user.id)
        return
    record("auth.login_failed", target_type="user", target_id=user.id, summary={"reason": "two-factor code"})
    raise InvalidCredentials()


def setup(user: User) -> dict[str, Any]:
    """Start (or restart) enrolment: a new secret, not active until a code from it is confirmed."""
    if user.two_factor_enabled:
        raise Conflict("Two-factor authentication is on already; disable it first")
    secret = pyotp.random_base32()
    # Never the secret of 2FA that an enrolment finished meanwhile: its device would stop matching.
    if not User.objects(id=user.id, two_factor_enabled=False).update_one(
        set__totp_secret_encrypted=crypto.encrypt(secret), unset__totp_last_step=True
    ):
        raise Conflict("Two-factor authentication is on already; disable it first")
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return {"secret": secret, "otpauth_uri": uri}


def enable(user: User, code: str) -> dict[str, Any]:
    """Confirm enrolment with a code from the new secret; return the recovery codes (shown once)."""
    user.reload()
    if user.two_factor_enabled:
        raise Conflict("Two-factor authentication is on already")
    if not user.totp_secret_encrypted:
        raise Conflict("Start with POST /auth/2fa/setup")
    step = _matching_step(crypto.decrypt(user.totp_secret_encrypted), code.strip(), None)
    if step is None:
        raise ValidationFailed(details={"code": ["This code does not match; check the device's clock."]})
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    # With the secret the code was checked against, and once: of two enrolments at once, the codes one
    # of them shows would otherwise be replaced by the other's.
    if not User.objects(
        id=user.id, two_factor_enabled=False, totp_secret_encrypted=user.totp_secret_encrypted
    ).update_one(
        set__two_factor_enabled=True,
        set__totp_last_step=step,
        set__recovery_code_hashes=[_hash(c) for c in codes],
    ):
        raise Conflict("Two-factor authentication changed meanwhile; start again with POST /auth/2fa/setup")
    record("auth.two_factor_enabled", target_type="user", target_id=user.id)
    return {"recovery_codes": codes}


def disable(user: User, code: str) -> None:
    """Turn 2FA off with a current code or a recovery code (not where the tenant requires it)."""
    user.reload()
    if not user.two_factor_enabled:
        raise Conflict("Two-factor authentication is off already")
    if current_tenant().settings.security.require_2fa:
        raise Conflict("This tenant requires two-factor authentication")
    secret = crypto.decrypt(user.totp_secret_encrypted)
    valid = _matching_step(secret, code.strip(), user.totp_last_step) is not None
    if not valid and _hash(code) not in user.recovery_code_hashes:
        raise ValidationFailed(details={"code": ["This code does not match."]})
    if not User.objects(id=user.id, two_factor_enabled=True).update_one(
        set__two_factor_enabled=False,
        unset__totp_secret_encrypted=True,
        unset__totp_last_step=True,
        set__recovery_code_hashes=[],
    ):
        raise Conflict("Two-factor authentication is off already")
    record("auth.two_factor_disabled", target_type="user", target_id=user.id)
