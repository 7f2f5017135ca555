"""Tenant users: creation and the email directory that routes logins."""

from __future__ import annotations

import mongoengine as me
from bson import ObjectId

from app.auth.passwords import hash_password
from app.errors import Conflict
from app.usage import service as usage

from .models import EmailDirectory, PlatformUser, User


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(email: str, name: str, password: str, role: str = "member") -> User:
    """Create a user in the tenant in context, within its `users` limit; 409 email_taken when the
    email is already a member."""
    email = normalize_email(email)
    user = User(email=email, name=name.strip(), role=role, password_hash=hash_password(password))
    user.bind_tenant()
    user.validate()
    with usage.reserved("users"):
        try:
            user.save(force_insert=True)
        except me.NotUniqueError:
            raise Conflict("A user with this email already exists", code="email_taken") from None
    try:
        EmailDirectory.objects(email=email, tenant_id=user.tenant_id).update_one(
            set__user_id=user.id, upsert=True
        )
    except Exception:
        user.delete()  # keep users and the directory in step, then let the error through
        raise
    return user


def tenant_ids_of_email(email: str) -> list[ObjectId]:
    """Return the ids of the tenants in which `email` has a user."""
    entries = EmailDirectory.objects(email=normalize_email(email)).only("tenant_id")
    return [entry.tenant_id for entry in entries]


def forget_tenant(tenant_id: ObjectId) -> int:
    """Drop the directory entries of a deleted tenant."""
    return EmailDirectory.objects(tenant_id=tenant_id).delete()


def create_superadmin(email: str, name: str, password: str) -> PlatformUser:
    """Create a platform superadmin; 409 email_taken when one has this email."""
    admin = PlatformUser(
        email=normalize_email(email), name=name.strip(), password_hash=hash_password(password)
    )
    try:
        return admin.save(force_insert=True)
    except me.NotUniqueError:
        raise Conflict("A superadmin with this email already exists", code="email_taken") from None
