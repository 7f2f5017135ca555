"""The admin commands that shard every tenant collection by tenant (scripts/shard_collections.py).

Ranged key {tenantId: 1, _id: 1} by default: a tenant's documents stay together and a large tenant
still splits into chunks. MongoDB requires every unique index of a sharded collection to start with
the whole shard key, so a collection with a unique (tenantId, ...) index is sharded on {tenantId: 1}
instead. With --hashed, {tenantId: "hashed"} spreads tenants evenly (no zones then: hashing scatters
a tenant's key range). A zone pins one tenant's range, in every collection, to the shards of a zone.
"""

from __future__ import annotations

from typing import Any

from bson import MaxKey, MinKey, ObjectId

from .collection import TENANT_FIELD
from .registry import tenant_document_classes

RANGED = {TENANT_FIELD: 1, "_id": 1}
TENANT_ONLY = {TENANT_FIELD: 1}
HASHED = {TENANT_FIELD: "hashed"}


def _has_other_unique_index(document_class: Any) -> bool:
    return any(spec.get("unique") for spec in document_class._meta.get("index_specs") or [])


def shard_key(document_class: Any, hashed: bool = False) -> dict[str, Any]:
    """Return the shard key of a tenant collection."""
    if hashed:
        return HASHED
    return TENANT_ONLY if _has_other_unique_index(document_class) else RANGED


def _next_object_id(value: ObjectId) -> ObjectId:
    return ObjectId((int(str(value), 16) + 1).to_bytes(12, "big"))


def zone_range(key: dict[str, Any], tenant_id: ObjectId) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the [min, max) range of one tenant's documents under a ranged shard key."""
    if key == TENANT_ONLY:
        return {TENANT_FIELD: tenant_id}, {TENANT_FIELD: _next_object_id(tenant_id)}
    return {TENANT_FIELD: tenant_id, "_id": MinKey()}, {TENANT_FIELD: tenant_id, "_id": MaxKey()}


def shard_commands(
    database: str,
    *,
    hashed: bool = False,
    zone: str | None = None,
    tenant_id: ObjectId | None = None,
    shard: str | None = None,
) -> list[dict[str, Any]]:
    """Return the admin commands, in order, for every tenant document class."""
    if zone and hashed:
        raise ValueError("zones pin key ranges; a hashed key scatters a tenant's range: use one or the other")
    if zone and tenant_id is None:
        raise ValueError("a zone needs the tenant it pins")
    commands: list[dict[str, Any]] = [{"enableSharding": database}]
    if zone and shard:
        commands.append({"addShardToZone": shard, "zone": zone})
    for document_class in sorted(tenant_document_classes(), key=lambda c: c._get_collection_name()):
        namespace = f"{database}.{document_class._get_collection_name()}"
        key = shard_key(document_class, hashed)
        commands.append({"shardCollection": namespace, "key": key})
        if zone and tenant_id is not None:
            low, high = zone_range(key, tenant_id)
            commands.append({"updateZoneKeyRange": namespace, "min": low, "max": high, "zone": zone})
    return commands
