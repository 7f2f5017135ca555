"""Sharding every tenant collection by tenant: app.tenancy.sharding and scripts/shard_collections.py."""

from __future__ import annotations

from functools import partial
from typing import Any

import mongoengine as me
import pytest
from bson import MaxKey, MinKey, ObjectId, json_util
from mongoengine.base.common import _document_registry

from app.tenancy import registry
from app.tenancy.documents import TenantDocument
from app.tenancy.registry import tenant_document_classes
from app.tenancy.sharding import shard_commands

from . import support

run_script = partial(support.run_script, "shard_collections.py")
DB = "marketing"
RANGED = [("tenantId", 1), ("_id", 1)]
TENANT_ONLY = [("tenantId", 1)]
TENANT = ObjectId("65a1b2c3d4e5f60718293aff")


def namespaces() -> list[str]:
    return sorted(f"{DB}.{cls._get_collection_name()}" for cls in tenant_document_classes())


def class_of(namespace: str) -> type:
    name = namespace.split(".", 1)[1]
    [cls] = [c for c in tenant_document_classes() if c._get_collection_name() == name]
    return cls


def unique_specs(cls: type) -> list[list[str]]:
    """The field names of each unique index of a document class."""
    return [
        [name for name, _ in spec["fields"]]
        for spec in cls._meta.get("index_specs") or []
        if spec.get("unique")
    ]


def by_kind(commands: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [command for command in commands if kind in command]


# BSON order of the values a shard key holds here: MinKey < ObjectId (by bytes) < MaxKey.
def _rank(value: Any) -> tuple:
    if isinstance(value, MinKey):
        return (0, b"")
    if isinstance(value, MaxKey):
        return (2, b"")
    return (1, ObjectId(value).binary)


def _position(bound: dict[str, Any], key: dict[str, Any]) -> tuple:
    assert list(bound) == list(key), f"a bound must name the shard key's fields in order: {bound}"
    return tuple(_rank(bound[name]) for name in key)


def in_range(
    document: dict[str, Any], low: dict[str, Any], high: dict[str, Any], key: dict[str, Any]
) -> bool:
    """Tell whether a document's shard key value falls in the zone range [low, high)."""
    value = tuple(_rank(document[name]) for name in key)
    return _position(low, key) <= value < _position(high, key)


@pytest.fixture
def extra_class():
    """A tenant document class defined and declared after the app's: sharded like the others, without
    a list of its own in the sharding code."""

    class ShardingProbe(TenantDocument):
        code = me.StringField()
        meta = {
            "collection": "sharding_probes",
            "indexes": [{"fields": ["tenant_id", "code"], "unique": True}],
        }

    registry.declare_tenant_owned(ShardingProbe)
    yield ShardingProbe
    registry.undeclare(ShardingProbe)
    _document_registry.pop("ShardingProbe", None)


class TestShardCollections:
    def test_enable_sharding_comes_first(self):
        commands = shard_commands(DB)
        assert commands[0] == {"enableSharding": DB}
        assert len(by_kind(commands, "enableSharding")) == 1

    def test_one_shard_collection_per_tenant_document_class(self):
        commands = shard_commands(DB)
        sharded = [command["shardCollection"] for command in by_kind(commands, "shardCollection")]
        assert sorted(sharded) == namespaces()
        assert len(sharded) == len(set(sharded)) == len(tenant_document_classes())
        assert len(commands) == 1 + len(sharded)
        for name in ("users", "campaigns", "messages", "audit_logs", "media_chunks", "usage_counters"):
            assert f"{DB}.{name}" in sharded

    def test_a_new_declared_tenant_document_class_is_covered_automatically(self, extra_class):
        commands = shard_commands(DB)
        [probe] = [
            c for c in by_kind(commands, "shardCollection") if c["shardCollection"] == f"{DB}.sharding_probes"
        ]
        assert list(probe["key"].items()) == TENANT_ONLY

    def test_ranged_key_unless_a_unique_index_needs_the_tenant_only_key(self):
        for command in by_kind(shard_commands(DB), "shardCollection"):
            cls = class_of(command["shardCollection"])
            expected = TENANT_ONLY if unique_specs(cls) else RANGED
            assert list(command["key"].items()) == expected, command

    @pytest.mark.parametrize(
        ("collection", "key"),
        [
            ("users", TENANT_ONLY),
            ("telegram_accounts", TENANT_ONLY),
            ("media_chunks", TENANT_ONLY),
            ("api_keys", TENANT_ONLY),
            ("usage_counters", TENANT_ONLY),
            ("campaigns", RANGED),
            ("messages", RANGED),
            ("audit_logs", RANGED),
            ("webhooks", RANGED),
            ("media_files", RANGED),
        ],
    )
    def test_known_collections(self, collection, key):
        [command] = [c for c in shard_commands(DB) if c.get("shardCollection") == f"{DB}.{collection}"]
        assert list(command["key"].items()) == key

    def test_every_unique_index_starts_with_the_whole_shard_key(self):
        checked = 0
        for command in by_kind(shard_commands(DB), "shardCollection"):
            key_fields = list(command["key"])
            for fields in unique_specs(class_of(command["shardCollection"])):
                assert fields[: len(key_fields)] == key_fields, (command, fields)
                checked += 1
        assert checked >= 5

    def test_hashed_key_everywhere(self):
        commands = shard_commands(DB, hashed=True)
        assert commands[0] == {"enableSharding": DB}
        sharded = by_kind(commands, "shardCollection")
        assert sorted(c["shardCollection"] for c in sharded) == namespaces()
        assert all(c["key"] == {"tenantId": "hashed"} for c in sharded)
        assert by_kind(commands, "updateZoneKeyRange") == []


class TestZones:
    def test_one_range_per_collection_after_its_shard_collection(self):
        commands = shard_commands(DB, zone="big", tenant_id=TENANT)
        ranges = by_kind(commands, "updateZoneKeyRange")
        assert sorted(r["updateZoneKeyRange"] for r in ranges) == namespaces()
        assert all(r["zone"] == "big" for r in ranges)
        position = {c.get("shardCollection"): i for i, c in enumerate(commands)}
        for index, command in enumerate(commands):
            if "updateZoneKeyRange" in command:
                assert position[command["updateZoneKeyRange"]] < index
        assert by_kind(commands, "addShardToZone") == []

    def test_each_range_covers_exactly_the_tenants_documents(self):
        commands = shard_commands(DB, zone="big", tenant_id=TENANT)
        keys = {c["shardCollection"]: c["key"] for c in by_kind(commands, "shardCollection")}
        before, after = ObjectId("65a1b2c3d4e5f60718293afe"), ObjectId("65a1b2c3d4e5f60718293b00")
        lowest, highest = ObjectId("0" * 24), ObjectId("f" * 24)
        for command in by_kind(commands, "updateZoneKeyRange"):
            key = keys[command["updateZoneKeyRange"]]
            low, high = command["min"], command["max"]
            for _id in (lowest, TENANT, ObjectId(), highest):
                assert in_range({"tenantId": TENANT, "_id": _id}, low, high, key), (command, _id)
            for neighbour in (before, after, lowest, highest):
                for _id in (lowest, ObjectId(), highest):
                    assert not in_range({"tenantId": neighbour, "_id": _id}, low, high, key), (
                        command,
                        neighbour,
                    )

    def test_tenant_only_key_ends_at_the_next_object_id(self):
        commands = shard_commands(DB, zone="big", tenant_id=TENANT)
        [users] = [c for c in commands if c.get("updateZoneKeyRange") == f"{DB}.users"]
        assert users["min"] == {"tenantId": TENANT}
        assert users["max"] == {"tenantId": ObjectId("65a1b2c3d4e5f60718293b00")}
        [messages] = [c for c in commands if c.get("updateZoneKeyRange") == f"{DB}.messages"]
        assert messages["min"] == {"tenantId": TENANT, "_id": MinKey()}
        assert messages["max"] == {"tenantId": TENANT, "_id": MaxKey()}

    def test_a_named_shard_is_added_to_the_zone_before_the_ranges(self):
        commands = shard_commands(DB, zone="big", tenant_id=TENANT, shard="shard03")
        assert commands[0] == {"enableSharding": DB}
        assert by_kind(commands, "addShardToZone") == [{"addShardToZone": "shard03", "zone": "big"}]
        first_range = next(i for i, c in enumerate(commands) if "updateZoneKeyRange" in c)
        assert commands.index({"addShardToZone": "shard03", "zone": "big"}) < first_range

    def test_no_zone_no_ranges(self):
        commands = shard_commands(DB, tenant_id=TENANT, shard="shard03")
        assert by_kind(commands, "updateZoneKeyRange") == []
        assert by_kind(commands, "addShardToZone") == []

    def test_a_zone_with_a_hashed_key_is_refused(self):
        with pytest.raises(ValueError, match="hashed"):
            shard_commands(DB, hashed=True, zone="big", tenant_id=TENANT)

    def test_a_zone_without_a_tenant_is_refused(self):
        with pytest.raises(ValueError, match="tenant"):
            shard_commands(DB, zone="big")


# -- the script -------------------------------------------------------------------------------------


def printed_commands(stdout: str) -> list[dict[str, Any]]:
    return [json_util.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def app_namespaces(db: str) -> list[str]:
    """The tenant collections of the app itself (a fresh process has no test document classes)."""
    return sorted(
        f"{db}.{cls._get_collection_name()}"
        for cls in tenant_document_classes()
        if cls.__module__.startswith("app.")
    )


class TestScript:
    def test_dry_run_prints_the_commands(self):
        result = run_script("--dry-run", MONGODB_URI="mongomock://localhost/marketing")
        assert result.returncode == 0, result.stderr
        assert "Dry run" in result.stdout
        commands = printed_commands(result.stdout)
        assert commands[0] == {"enableSharding": "marketing"}
        sharded = by_kind(commands, "shardCollection")
        assert sorted(c["shardCollection"] for c in sharded) == app_namespaces("marketing")
        assert {c["shardCollection"]: c["key"] for c in sharded}["marketing.users"] == {"tenantId": 1}

    def test_hashed_dry_run(self):
        result = run_script("--dry-run", "--hashed", MONGODB_URI="mongomock://localhost/marketing")
        assert result.returncode == 0, result.stderr
        sharded = by_kind(printed_commands(result.stdout), "shardCollection")
        assert sharded and all(c["key"] == {"tenantId": "hashed"} for c in sharded)

    def test_zone_dry_run_for_a_tenant(self):
        result = run_script(
            "--dry-run",
            "--zone",
            "big",
            "--tenant",
            "acme",
            "--shard",
            "shard03",
            MONGODB_URI="mongomock://localhost/marketing",
            SEED_DEMO="true",
        )
        assert result.returncode == 0, result.stderr
        commands = printed_commands(result.stdout)
        assert {"addShardToZone": "shard03", "zone": "big"} in commands
        ranges = by_kind(commands, "updateZoneKeyRange")
        assert sorted(r["updateZoneKeyRange"] for r in ranges) == app_namespaces("marketing")
        assert len({r["min"]["tenantId"] for r in ranges}) == 1

    def test_zone_without_tenant_is_a_usage_error(self):
        result = run_script("--dry-run", "--zone", "big", MONGODB_URI="mongomock://localhost/marketing")
        assert result.returncode != 0
        assert "--zone and --tenant go together" in result.stderr
        assert "enableSharding" not in result.stdout

    def test_unknown_tenant_is_refused(self):
        result = run_script(
            "--dry-run", "--zone", "big", "--tenant", "nobody", MONGODB_URI="mongomock://localhost/marketing"
        )
        assert result.returncode != 0
        assert "no tenant with slug 'nobody'" in result.stderr
