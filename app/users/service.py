"""Tenant users, platform superadmins, and the email directory that routes logins."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from typing import Any

import mongoengine as me
from bson import ObjectId
from mongoengine.errors import SaveConditionError
from mongoengine.queryset.visitor import Q

from app import clock, signals, wire
from app.audit.models import AuditLog, PlatformAuditLog
from app.audit.service import record
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed, found
from app.pagination import paginate
from app.tenancy.access import NOT_WHILE_IMPERSONATING, SUPERADMIN, Principal
from app.usage import service as usage

from .models import EmailDirectory, PlatformUser, User
from .owners import is_active_owner, owner_change
from .passwords import hash_password


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(email: str, name: str, password: str, role: str = "member") -> User:
    """Create a user in the tenant in context, within its `users` limit; 409 email_taken when the
    email is already a member."""
    email = normalize_email(email)
    user = User(email=email, name=name.strip(), role=role, password_hash=hash_password(password))
    user.bind_tenant()
    user.validate()
    counted = owner_change(user, was_owner=False, is_owner=is_active_owner(user))
    with usage.reserved("users"), counted as change:
        try:
            user.save(force_insert=True, validate=False)  # validated above, before the reservation
        except me.NotUniqueError:
            raise Conflict("A user with this email already exists", code="email_taken") from None
        try:
            EmailDirectory.objects(email=email, tenant_id=user.tenant_id).update_one(
                set__user_id=user.id, upsert=True
            )
        except Exception:
            user.delete()  # keep users and the directory in step, then let the error through
            raise
        change.written()
    return user


def tenant_ids_of_email(email: str) -> list[ObjectId]:
    """Return the ids of the tenants in which `email` has a user."""
    entries = EmailDirectory.objects(email=normalize_email(email)).only("tenant_id")
    return [entry.tenant_id for entry in entries]


def end_sessions(account: Any) -> None:
    """End every session of a tenant user or superadmin: the tokens issued so far stop working (in this
    process at once, in others within AUTH_CACHE_TTL). One atomic increment, so that concurrent
    changes each end what was issued before them."""
    type(account).objects(id=account.id).update_one(inc__token_version=1)
    signals.credentials_changed.send()


def create_superadmin(email: str, name: str, password: str) -> PlatformUser:
    """Create a platform superadmin; 409 email_taken when one has this email."""
    admin = PlatformUser(
        email=normalize_email(email), name=name.strip(), password_hash=hash_password(password)
    )
    try:
        return admin.save(force_insert=True)
    except me.NotUniqueError:
        raise Conflict("A superadmin with this email already exists", code="email_taken") from None


def list_users(paging: Mapping[str, Any], role: str | None = None, active: bool | None = None) -> dict:
    """Return a page of the tenant's users, oldest first."""
    users = User.objects(erased_at=None)
    if role:
        users = users.filter(role=role)
    if active is not None:
        users = users.filter(active=active)
    return paginate(users, ("created_at", "id"), paging)


def show_user(user_id: ObjectId) -> wire.Stored:
    """A user of the tenant in context as stored, for its response (not built into a document)."""
    return found(wire.stored(User, User.find_stored(id=user_id, erased_at=None)), "user")


def get_user(user_id: ObjectId) -> User:
    """Return a user of the tenant in context; another tenant's user is a 404 like a missing one."""
    return found(User.objects(id=user_id, erased_at=None).first(), "user")


def _check_may_manage(actor: Principal, target_role: str | None, new_role: str | None) -> None:
    """Admins manage admins and members; only owners (or a superadmin) touch owners or make one."""
    if actor.role in ("owner", SUPERADMIN):
        return
    if target_role == "owner" or new_role == "owner":
        raise Forbidden("Only an owner may change an owner or make one")


def _changed_meanwhile(user: User) -> Conflict | NotFound:
    """The error of a conditional write on `user` that found it changed (or gone) since it was read."""
    if User.objects(id=user.id, erased_at=None).only("id").first() is None:
        return NotFound("No such user")
    return Conflict("The user changed meanwhile; reload it", details={"userId": str(user.id)})


def _as_read(user: User) -> dict[str, Any]:
    """The filter of a write that applies only while the user still has the role and state it was read
    with (which decide who may change it, and whether it is an active owner)."""
    return {"role": user.role, "active": user.active, "erased_at": None}


# What decides who may sign in to the tenant and with which role: never changed while impersonating.
ACCESS_FIELDS = frozenset({"role", "active", "password"})


def add_user(actor: Principal, email: str, name: str, password: str, role: str) -> User:
    """Add a member to the tenant in context."""
    _check_may_manage(actor, None, role)
    user = create_user(email, name, password, role)
    record("user.created", target_type="user", target_id=user.id, summary={"role": role})
    return user


def update_user(actor: Principal, user_id: ObjectId, changes: dict[str, Any]) -> User:
    """Change a user's name, role, active flag or password."""
    user = get_user(user_id)
    new_role = changes.get("role")
    _check_may_manage(actor, user.role, new_role)
    if actor.impersonator and ACCESS_FIELDS & changes.keys():
        raise Forbidden(NOT_WHILE_IMPERSONATING)
    condition = _as_read(user)
    summary: dict[str, Any] = {}
    was_owner = is_active_owner(user)
    for name in ("name", "role", "active"):
        if name in changes and getattr(user, name) != changes[name]:
            summary[name] = {"from": getattr(user, name), "to": changes[name]}
            setattr(user, name, changes[name])
    if "password" in changes:
        user.password_hash = hash_password(changes["password"])
        summary["password"] = "changed"
    with owner_change(user, was_owner=was_owner, is_owner=is_active_owner(user)) as change:
        try:
            user.save(save_condition=condition)
        except SaveConditionError:
            raise _changed_meanwhile(user) from None
        change.written()
    if "password" in summary or summary.get("active", {}).get("to") is False:
        # Sessions begun with the old password, or before the deactivation, are over for good; a role
        # change needs nothing of the kind: every request acts with the account's current role.
        end_sessions(user)
    if summary:
        action = "user.role_changed" if "role" in summary else "user.updated"
        record(action, target_type="user", target_id=user.id, summary=summary)
    return user


def delete_user(actor: Principal, user_id: ObjectId) -> None:
    """Remove a user from the tenant (its seat goes back to the `users` limit)."""
    user = get_user(user_id)
    _check_may_manage(actor, user.role, None)
    with owner_change(user, is_owner=False) as change:
        if not User.objects(id=user.id, **_as_read(user)).delete():
            raise _changed_meanwhile(user)
        change.written()
    usage.refund("users")
    EmailDirectory.objects(email=user.email, tenant_id=user.tenant_id).delete()
    record("user.deleted", target_type="user", target_id=user.id, summary={"role": user.role})


def pseudonym_of(user: User) -> str:
    """A stable stand-in for an erased user, which names no person."""
    digest = hashlib.sha256(f"{user.tenant_id}:{user.id}".encode()).hexdigest()[:12]
    return f"erased-user-{digest}"


def _replace_text(value: Any, personal: list[str], pseudonym: str) -> Any:
    if isinstance(value, str):
        for text in personal:
            value = value.replace(text, pseudonym)
        return value
    if isinstance(value, dict):
        return {k: _replace_text(v, personal, pseudonym) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_text(v, personal, pseudonym) for v in value]
    return value


PERSONAL_KEYS = frozenset({"name", "email", "userEmail"})


def _replace_personal_keys(value: Any, pseudonym: str) -> Any:
    """Replace every value under a personal key (a name or an email, whatever it was then)."""
    if isinstance(value, dict):
        return {
            k: _pseudonymized(v, pseudonym) if k in PERSONAL_KEYS else _replace_personal_keys(v, pseudonym)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_replace_personal_keys(v, pseudonym) for v in value]
    return value


def _pseudonymized(value: Any, pseudonym: str) -> Any:
    if isinstance(value, dict):
        return {k: _pseudonymized(v, pseudonym) for k, v in value.items()}
    return pseudonym if isinstance(value, str) else value


def _pseudonymize_audit(user: User, pseudonym: str) -> int:
    """Replace the user's email and name in the audit entries that name them (tenant and platform)."""
    personal = [text for text in (user.email, user.name) if text]
    uid = str(user.id)
    changed = 0
    # Streamed, in no particular order (each $or branch reads its own index); an update changes no
    # field the queries read, so no entry comes twice.
    entries = itertools.chain(
        AuditLog.objects(Q(actor__id=uid) | Q(target_id=uid)).order_by().no_cache(),
        PlatformAuditLog.objects(tenant_id=user.tenant_id, target_id=uid).order_by().no_cache(),
    )
    for entry in entries:
        summary = _replace_text(entry.summary, personal, pseudonym)
        if entry.target_id == uid:
            # Entries about the user may hold names and emails they had before (renames): drop them all.
            summary = _replace_personal_keys(summary, pseudonym)
        update: dict[str, Any] = {"set__summary": summary}
        if entry.actor.id == uid:
            update["set__actor__label"] = pseudonym
        # An entry the retention purge removed meanwhile stays removed.
        changed += type(entry).objects(id=entry.id).update_one(**update)
    return changed


def erase_user(actor: Principal, user_id: ObjectId) -> None:
    """Remove a user's personal data (GDPR erasure) and pseudonymize the audit entries naming them.

    The user stays as a tombstone without personal fields, so that erasing again changes nothing."""
    user = found(User.objects(id=user_id).first(), "user")
    if user.erased_at is not None:
        return
    _check_may_manage(actor, user.role, None)
    pseudonym = pseudonym_of(user)
    with owner_change(user, is_owner=False) as change:
        entries = _pseudonymize_audit(user, pseudonym)
        EmailDirectory.objects(email=user.email, tenant_id=user.tenant_id).delete()
        erased = User.objects(id=user.id, **_as_read(user)).update_one(
            set__email=f"{pseudonym}@erased.invalid",
            set__name="Erased user",
            set__active=False,
            set__erased_at=clock.utcnow(),
            unset__password_hash=True,
            unset__last_login_at=True,
            unset__sso_issuer=True,
            unset__sso_subject=True,
        )
        if erased:
            change.written()
    if not erased:
        if User.objects(id=user.id, erased_at__ne=None).only("id").first() is not None:
            return  # erased by a concurrent request, which gave the seat back
        raise _changed_meanwhile(user)
    signals.credentials_changed.send()
    usage.refund("users")
    record(
        "user.erased",
        target_type="user",
        target_id=user.id,
        summary={"pseudonym": pseudonym, "auditEntries": entries},
    )


def connect() -> None:
    """Apply a tenant's requirement of a second factor to its accounts."""
    signals.requiring_second_factor.connect(_check_enrolled)
    signals.second_factor_required.connect(_end_sessions_without_second_factor)


def _check_enrolled(_sender: object, *, principal: Principal) -> None:
    """Refuse to require 2FA on behalf of a user who has not enrolled: their next password login would
    need an enrolment first (the dashboard offers one, but nobody should lock themselves out)."""
    if principal.via == "api_key" or principal.is_superadmin:
        return
    user = User.objects(id=principal.subject).first()
    if user is None or not user.two_factor_enabled:
        raise ValidationFailed(
            "Turn on two-factor authentication for your own account before requiring it",
            details={
                "security": {
                    "require2fa": [
                        "Enrol first (POST /api/v1/auth/2fa/setup, then /enable): you have no second factor."
                    ]
                }
            },
        )


def _end_sessions_without_second_factor(_sender: object) -> None:
    """Every session of a user without a second factor ends for good, so that turning the rule off
    again brings none back; the sessions of those who have one and used it go on."""
    User.objects(two_factor_enabled=False).update(inc__token_version=1)
    signals.credentials_changed.send()
