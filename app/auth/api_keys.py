"""API keys of a tenant: created with the key shown once, listed without it, revoked at once."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from app.audit.service import record
from app.errors import Forbidden, NotFound, found
from app.pagination import paginate
from app.tenancy.access import Principal
from app.tenancy.context import current_tenant
from app.tenants.service import require_feature

from .credentials import API_KEY_PREFIX, hash_api_key
from .models import ApiKey


def create_api_key(name: str, role: str, creator: Principal) -> ApiKey:
    """Create a key for the tenant in context; its `key` attribute (not stored) is shown only now."""
    if creator.via == "api_key":
        # A key acts with its creator's rights (app.auth.credentials): a person must stand behind it,
        # or a key could outlive the revocation of the key that made it.
        raise Forbidden("API keys are created by a signed-in user, not by another API key")
    tenant = current_tenant()
    require_feature(tenant, "apiAccess")
    secret = secrets.token_hex(32)
    key = f"{API_KEY_PREFIX}_{tenant.id}_{secret}"
    api_key = ApiKey(
        name=name.strip(),
        role=role,
        prefix=f"{API_KEY_PREFIX}_…{secret[-6:]}",
        key_hash=hash_api_key(key),
        created_by=creator.subject,
    ).save(force_insert=True)
    record(
        "api_key.created",
        target_type="api_key",
        target_id=api_key.id,
        summary={"name": api_key.name, "role": role},
    )
    api_key.key = key
    return api_key


def list_api_keys(paging: Mapping[str, Any]) -> dict:
    """Return a page of the tenant's keys, newest first."""
    return paginate(ApiKey.objects, ("-created_at", "-id"), paging)


def revoke_api_key(key_id: ObjectId) -> None:
    """Delete a key: requests made with it fail from now on."""
    api_key = found(ApiKey.objects(id=key_id).first(), "API key")
    if not ApiKey.objects(id=api_key.id).delete():
        raise NotFound("No such API key")  # revoked by a concurrent request, which audited it
    record("api_key.revoked", target_type="api_key", target_id=key_id, summary={"name": api_key.name})
