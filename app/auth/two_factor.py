"""Two-factor authentication with TOTP (RFC 6238, via pyotp) and one-time recovery codes, for tenant
users and superadmins alike.

A tenant that requires 2FA refuses the password-only login of a user who has not enrolled, and hands
them a short enrollment token instead, good only for the two enrollment routes. Turning 2FA on or off
ends the account's sessions (as app.users.service.end_sessions does).

Recovery codes are stored as HMAC-SHA256 under a key derived from SECRET_KEY: the database alone does
not let anyone try the codes offline. A code is compared with every stored hash in constant time and
used up by one conditional write, so that two requests racing with the same code cannot both pass.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from typing import Any

import pyotp
import segno
from flask import current_app
from flask_jwt_extended import create_access_token

from app import crypto
from app.audit.service import record, record_platform
from app.errors import AppError, Conflict, InvalidCredentials, ValidationFailed
from app.tenancy.context import current_tenant, tenant_scope
from app.tenants.models import Tenant
from app.users.models import PlatformUser, User

from . import tokens
from .cache import forget

ISSUER = "Telegram Marketing"
ENROLLMENT_SCOPE = "2fa_enrollment"
ENROLLMENT_TTL = timedelta(minutes=10)
RECOVERY_CODES = 10
RECOVERY_HASH_PREFIX = "hmac-sha256:"

Account = User | PlatformUser


class TwoFactorRequired(AppError):
    status, code, message = 401, "two_factor_required", "Send the one-time code of your authenticator app"


class TwoFactorEnrollmentRequired(AppError):
    status, code = 403, "two_factor_enrollment_required"
    message = "This tenant requires two-factor authentication: enrol with the token in details"


def _recovery_key() -> bytes:
    """The HMAC key of recovery codes, derived from SECRET_KEY for this purpose alone."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"two-factor recovery codes", hashlib.sha256).digest()


def keyed_recovery_hash(digest: str) -> str:
    """Key the SHA-256 of a recovery code (the form in which codes were once stored)."""
    return RECOVERY_HASH_PREFIX + hmac.new(_recovery_key(), digest.encode(), hashlib.sha256).hexdigest()


def _recovery_hash(code: str) -> str:
    # The plain SHA-256 inside lets the codes stored before they were keyed be keyed in place, without
    # knowing them (`flask users key-recovery-codes`).
    return keyed_recovery_hash(hashlib.sha256(code.strip().lower().encode()).hexdigest())


def _stored_recovery_hash(account: Account, code: str) -> str | None:
    """The stored hash that `code` matches, compared with every one of them in constant time."""
    candidate = _recovery_hash(code).encode()
    match = None
    for stored in account.recovery_code_hashes:
        if hmac.compare_digest(stored.encode(), candidate):
            match = stored
    return match


def _record(account: Account, action: str, **summary: Any) -> None:
    """Audit a 2FA event: a tenant user's in the tenant's log, a superadmin's in the platform trail."""
    if isinstance(account, User):
        record(action, target_type="user", target_id=account.id, summary=summary)
    else:
        record_platform(action, target_type="superadmin", target_id=account.id, summary=summary)


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
    claims = {
        "tenantId": str(user.tenant_id),
        "role": user.role,
        "scope": ENROLLMENT_SCOPE,
        "ver": user.token_version,
    }
    return create_access_token(identity=str(user.id), additional_claims=claims, expires_delta=ENROLLMENT_TTL)


def check_login_code(account: Account, code: str | None) -> list[str]:
    """Apply 2FA to a login whose password was right (a tenant user's in their tenant's scope): refuse
    it, or use up the code it brought. Return what the code adds to the token's `amr`."""
    if not account.two_factor_enabled:
        if isinstance(account, User) and current_tenant().settings.security.require_2fa:
            raise TwoFactorEnrollmentRequired(details={"enrollmentToken": enrollment_token(account)})
        return []
    if not code:
        raise TwoFactorRequired()
    accounts = type(account).objects
    secret = crypto.decrypt(account.totp_secret_encrypted)
    step = _matching_step(secret, code.strip(), account.totp_last_step)
    if step is not None:
        if not accounts(id=account.id, totp_last_step=account.totp_last_step).update_one(
            set__totp_last_step=step
        ):
            raise InvalidCredentials()  # the same code raced in twice
        return [tokens.ONE_TIME_CODE]
    stored = _stored_recovery_hash(account, code)
    if stored is not None and accounts(id=account.id, recovery_code_hashes=stored).update_one(
        pull__recovery_code_hashes=stored
    ):
        _record(account, "auth.recovery_code_used")
        return [tokens.ONE_TIME_CODE]
    _record(account, "auth.login_failed", reason="two-factor code")
    raise InvalidCredentials()


def setup(account: Account) -> dict[str, Any]:
    """Start (or restart) enrolment: a new secret, not active until a code from it is confirmed."""
    if account.two_factor_enabled:
        raise Conflict("Two-factor authentication is on already; disable it first")
    secret = pyotp.random_base32()
    if (
        not type(account)
        .objects(id=account.id, two_factor_enabled=False)
        .update_one(set__totp_secret_encrypted=crypto.encrypt(secret), unset__totp_last_step=True)
    ):
        raise Conflict("Two-factor authentication is on already; disable it first")
    uri = pyotp.TOTP(secret).provisioning_uri(name=account.email, issuer_name=ISSUER)
    return {"secret": secret, "otpauth_uri": uri, "qr_code": segno.make(uri, error="m").svg_data_uri(scale=4)}


def enable(account: Account, code: str) -> tuple[Account, list[str]]:
    """Confirm enrolment with a code from the new secret, ending the account's sessions; return the
    account as now stored and the recovery codes (shown only now)."""
    if account.two_factor_enabled:
        raise Conflict("Two-factor authentication is on already")
    if not account.totp_secret_encrypted:
        raise Conflict("Start with POST /auth/2fa/setup")
    step = _matching_step(crypto.decrypt(account.totp_secret_encrypted), code.strip(), None)
    if step is None:
        raise ValidationFailed(details={"code": ["This code does not match; check the device's clock."]})
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    # Conditional on the secret the code was checked against: a setup racing in has replaced it.
    enabled = (
        type(account)
        .objects(id=account.id, two_factor_enabled=False, totp_secret_encrypted=account.totp_secret_encrypted)
        .modify(
            new=True,
            set__two_factor_enabled=True,
            set__totp_last_step=step,
            set__recovery_code_hashes=[_recovery_hash(c) for c in codes],
            inc__token_version=1,
        )
    )
    if enabled is None:
        raise Conflict("Two-factor authentication changed meanwhile: start again with setup")
    forget()
    _record(account, "auth.two_factor_enabled")
    return enabled, codes


def disable(account: Account, code: str) -> None:
    """Turn 2FA off with a current code or a recovery code (not where the tenant requires it), ending
    the account's sessions."""
    if not account.two_factor_enabled:
        raise Conflict("Two-factor authentication is off already")
    if isinstance(account, User) and current_tenant().settings.security.require_2fa:
        raise Conflict("This tenant requires two-factor authentication")
    secret = crypto.decrypt(account.totp_secret_encrypted)
    valid = _matching_step(secret, code.strip(), account.totp_last_step) is not None
    if not valid and _stored_recovery_hash(account, code) is None:
        raise ValidationFailed(details={"code": ["This code does not match."]})
    if (
        not type(account)
        .objects(id=account.id, two_factor_enabled=True, totp_secret_encrypted=account.totp_secret_encrypted)
        .update_one(
            set__two_factor_enabled=False,
            unset__totp_secret_encrypted=True,
            unset__totp_last_step=True,
            set__recovery_code_hashes=[],
            inc__token_version=1,
        )
    ):
        raise Conflict("Two-factor authentication is off already")
    forget()
    _record(account, "auth.two_factor_disabled")


def key_stored_recovery_codes() -> int:
    """Key the recovery codes that older versions stored as a bare SHA-256, in every tenant; return how
    many users changed. Idempotent, and safe while the service runs: each user's list is replaced by
    a write conditional on the list it was computed from (a code used meanwhile means another try)."""
    changed = 0
    for tenant in Tenant.objects.order_by("id").only("id"):  # the _id index alone
        with tenant_scope(tenant):
            for user in User.objects(two_factor_enabled=True).only("id"):
                changed += _key_recovery_codes(user.id)
    return changed


def _key_recovery_codes(user_id: Any) -> int:
    while True:
        user = User.objects(id=user_id).only("recovery_code_hashes").first()
        stored = user.recovery_code_hashes if user is not None else []
        keyed = [h if h.startswith(RECOVERY_HASH_PREFIX) else keyed_recovery_hash(h) for h in stored]
        if keyed == stored:
            return 0
        if User.objects(id=user_id, recovery_code_hashes=stored).update_one(set__recovery_code_hashes=keyed):
            return 1
