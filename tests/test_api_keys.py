"""API keys (README "Accounts and credentials"): created by owners and admins, shown once, stored as a
hash, authenticating as the tenant with the key's role, revoked at once, and isolated per tenant."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from bson import ObjectId

from app.auth.models import ApiKey
from app.tenancy.context import tenant_scope
from app.tenants.service import create_tenant
from app.users.models import PlatformUser

from .support import audit_entries, in_another_worker, update_tenant

KEYS = "/api/v1/api-keys"
ME = "/api/v1/auth/me"
SETTINGS = "/api/v1/tenants/current/settings"
CREATED_FIELDS = {"id", "name", "prefix", "key", "createdAt", "role"}


# -- helpers -------------------------------------------------------------------------------------------


def assert_error(response, status, code):
    """The response is the one error envelope with this status and code."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def create_key(client, headers, name="ci pipeline", role=None, **extra):
    """POST /api-keys; return the response."""
    body = {"name": name, **extra}
    if role is not None:
        body["role"] = role
    return client.post(KEYS, json=body, headers=headers)


def new_key(client, headers, role=None, name="ci pipeline"):
    """Create a key and return the 201 body (with the one-time `key`)."""
    response = create_key(client, headers, name=name, role=role)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def create_in_order(client, headers, tenant, names):
    """Create keys named `names`, a minute apart (so that their order never hangs on a clock tick)."""
    start = datetime.now(UTC) - timedelta(hours=1)
    for minute, name in enumerate(names):
        created = new_key(client, headers, name=name)
        with tenant_scope(tenant):
            ApiKey.objects(id=created["id"]).update_one(set__created_at=start + timedelta(minutes=minute))


def with_key(key, **extra):
    return {"X-API-Key": key, **extra}


def list_items(response):
    """The keys of one page of GET /api-keys."""
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"]


def listed_keys(client, headers):
    return list_items(client.get(KEYS, headers=headers))


def stored_keys(tenant):
    """The raw documents of the tenant's API keys, as MongoDB holds them."""
    with tenant_scope(tenant):
        return [doc.to_mongo().to_dict() for doc in ApiKey.objects]


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def admin_headers(tenant, make_user, headers_for):
    return headers_for(make_user(tenant, "admin"))


@pytest.fixture
def member_key(client, auth_headers):
    """A member-role key of `tenant` (the 201 body)."""
    return new_key(client, auth_headers, role="member")


# -- creation ------------------------------------------------------------------------------------------


class TestCreate:
    def test_owner_creates_a_key_shown_in_full(self, client, auth_headers, tenant):
        response = create_key(client, auth_headers, name="CI pipeline")
        assert response.status_code == 201, response.get_data(as_text=True)
        body = response.get_json()
        assert set(body) >= CREATED_FIELDS
        assert ObjectId.is_valid(body["id"])
        assert body["name"] == "CI pipeline"
        assert body["role"] == "member"  # the default role
        assert body["createdAt"]
        assert len(body["key"]) >= 32
        assert body["key"] not in body["prefix"]
        assert body["prefix"] != body["key"]

    def test_admin_creates_an_admin_key(self, client, admin_headers):
        body = new_key(client, admin_headers, role="admin")
        assert body["role"] == "admin"

    def test_every_key_is_different(self, client, auth_headers):
        first, second = new_key(client, auth_headers), new_key(client, auth_headers)
        assert first["key"] != second["key"]
        assert first["id"] != second["id"]

    def test_member_may_not_create_keys(self, client, member_headers, tenant):
        assert_error(create_key(client, member_headers), 403, "forbidden")
        assert stored_keys(tenant) == []

    def test_member_may_not_list_keys(self, client, member_headers):
        assert_error(client.get(KEYS, headers=member_headers), 403, "forbidden")

    def test_owner_role_is_refused(self, client, auth_headers, tenant):
        response = create_key(client, auth_headers, role="owner")
        assert_error(response, 422, "validation_error")
        assert "role" in response.get_json()["error"]["details"]
        assert stored_keys(tenant) == []

    @pytest.mark.parametrize("role", ["superadmin", "", "ADMIN"])
    def test_other_unknown_roles_are_refused(self, client, auth_headers, role):
        assert_error(create_key(client, auth_headers, role=role), 422, "validation_error")

    def test_unknown_fields_are_refused(self, client, auth_headers, tenant):
        response = create_key(client, auth_headers, scopes=["*"])
        assert_error(response, 422, "validation_error")
        assert "scopes" in response.get_json()["error"]["details"]
        assert stored_keys(tenant) == []

    def test_name_is_required(self, client, auth_headers):
        response = client.post(KEYS, json={"role": "admin"}, headers=auth_headers)
        assert_error(response, 422, "validation_error")
        assert "name" in response.get_json()["error"]["details"]

    def test_a_plan_without_api_access_cannot_create_keys(self, client, make_user, headers_for):
        free = create_tenant("Free Co", "freeco", plan="free")
        headers = headers_for(make_user(free, "owner"))
        assert_error(create_key(client, headers), 403, "feature_not_available")
        assert stored_keys(free) == []

    def test_without_credential_is_401(self, client, tenant):
        assert_error(client.post(KEYS, json={"name": "x"}), 401, "unauthorized")


# -- shown once, stored as a hash ----------------------------------------------------------------------


class TestShownOnce:
    def test_list_shows_metadata_but_never_the_key(self, client, auth_headers, member_key):
        response = client.get(KEYS, headers=auth_headers)
        items = list_items(response)
        assert len(items) == 1
        item = items[0]
        assert item["id"] == member_key["id"]
        assert item["name"] == member_key["name"]
        assert item["prefix"] == member_key["prefix"]
        assert item["createdAt"]
        assert "lastUsedAt" in item and item["lastUsedAt"] is None
        assert "key" not in item
        assert "keyHash" not in item
        text = response.get_data(as_text=True)
        assert member_key["key"] not in text
        assert sha256(member_key["key"]) not in text

    def test_list_is_paginated_like_every_list(self, client, auth_headers, member_key):
        body = client.get(KEYS, headers=auth_headers).get_json()
        assert isinstance(body, dict), body
        assert {"items", "page", "perPage", "total"} <= set(body)
        assert body["total"] == 1

    def test_list_pages(self, client, auth_headers, tenant):
        create_in_order(client, auth_headers, tenant, ["first", "second", "third"])
        body = client.get(KEYS, query_string={"page": 2, "perPage": 2}, headers=auth_headers).get_json()
        assert (body["page"], body["perPage"], body["total"]) == (2, 2, 3)
        assert [item["name"] for item in body["items"]] == ["first"]

    def test_list_is_newest_first(self, client, auth_headers, tenant):
        names = ["first", "second", "third"]
        create_in_order(client, auth_headers, tenant, names)
        assert [item["name"] for item in listed_keys(client, auth_headers)] == names[::-1]

    def test_database_holds_only_the_hash(self, client, auth_headers, tenant, member_key):
        key = member_key["key"]
        (document,) = stored_keys(tenant)
        for field, value in document.items():
            assert value != key, field
            assert key not in str(value), field
        assert document["keyHash"] == sha256(key)
        with tenant_scope(tenant):
            api_key = ApiKey.objects.get(id=member_key["id"])
        assert api_key.key_hash == sha256(key)
        assert not hasattr(api_key, "key")


# -- authenticating with a key -------------------------------------------------------------------------


class TestAuthenticate:
    def test_key_authenticates_as_the_tenant_with_its_role(self, client, tenant, member_key):
        response = client.get(ME, headers=with_key(member_key["key"]))
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["credential"]["type"] == "api_key"
        assert body["credential"]["role"] == "member"
        assert body["tenant"]["id"] == str(tenant.id)
        assert body["user"] is None

    def test_admin_key_shows_admin_role(self, client, auth_headers):
        key = new_key(client, auth_headers, role="admin")["key"]
        body = client.get(ME, headers=with_key(key)).get_json()
        assert body["credential"]["type"] == "api_key"
        assert body["credential"]["role"] == "admin"

    def test_key_reads_the_tenant(self, client, tenant, member_key):
        response = client.get("/api/v1/tenants/current", headers=with_key(member_key["key"]))
        assert response.status_code == 200
        assert response.get_json()["slug"] == tenant.slug

    def test_member_key_may_not_change_settings(self, client, member_key):
        response = client.patch(
            SETTINGS, json={"general": {"timezone": "Europe/Berlin"}}, headers=with_key(member_key["key"])
        )
        assert_error(response, 403, "forbidden")

    def test_admin_key_may_change_settings(self, client, auth_headers):
        key = new_key(client, auth_headers, role="admin")["key"]
        response = client.patch(
            SETTINGS, json={"general": {"timezone": "Europe/Berlin"}}, headers=with_key(key)
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["settings"]["general"]["timezone"] == "Europe/Berlin"

    def test_last_used_at_is_set_after_use(self, client, auth_headers, tenant, member_key):
        assert listed_keys(client, auth_headers)[0]["lastUsedAt"] is None
        assert client.get(ME, headers=with_key(member_key["key"])).status_code == 200
        (item,) = listed_keys(client, auth_headers)
        assert item["lastUsedAt"] is not None
        assert item["lastUsedAt"] >= item["createdAt"]
        assert stored_keys(tenant)[0]["lastUsedAt"] is not None

    def test_failed_use_does_not_touch_last_used_at(self, client, auth_headers, tenant, member_key):
        forged = member_key["key"][:-1] + ("0" if member_key["key"][-1] != "0" else "1")
        assert_error(client.get(ME, headers=with_key(forged)), 401, "unauthorized")
        assert stored_keys(tenant)[0].get("lastUsedAt") is None


# -- revocation and isolation --------------------------------------------------------------------------


class TestRevoke:
    def test_revoked_key_stops_working_at_once(self, client, auth_headers, member_key):
        headers = with_key(member_key["key"])
        assert client.get(ME, headers=headers).status_code == 200
        response = client.delete(f"{KEYS}/{member_key['id']}", headers=auth_headers)
        assert response.status_code == 204
        assert response.get_data() == b""
        assert_error(client.get(ME, headers=headers), 401, "unauthorized")
        assert listed_keys(client, auth_headers) == []

    def test_deleting_twice_is_404(self, client, auth_headers, member_key):
        url = f"{KEYS}/{member_key['id']}"
        assert client.delete(url, headers=auth_headers).status_code == 204
        assert_error(client.delete(url, headers=auth_headers), 404, "not_found")

    def test_unknown_id_is_404(self, client, auth_headers, member_key):
        assert_error(client.delete(f"{KEYS}/{ObjectId()}", headers=auth_headers), 404, "not_found")

    def test_admin_may_revoke(self, client, admin_headers, member_key):
        assert client.delete(f"{KEYS}/{member_key['id']}", headers=admin_headers).status_code == 204

    def test_member_may_not_revoke(self, client, member_headers, member_key):
        response = client.delete(f"{KEYS}/{member_key['id']}", headers=member_headers)
        assert_error(response, 403, "forbidden")
        assert client.get(ME, headers=with_key(member_key["key"])).status_code == 200

    def test_revoking_one_key_leaves_the_others(self, client, auth_headers, member_key):
        other = new_key(client, auth_headers, name="other")
        assert client.delete(f"{KEYS}/{member_key['id']}", headers=auth_headers).status_code == 204
        assert client.get(ME, headers=with_key(other["key"])).status_code == 200
        assert [item["id"] for item in listed_keys(client, auth_headers)] == [other["id"]]


@pytest.mark.multitenant
class TestIsolation:
    def test_another_tenant_deleting_the_id_gets_404_and_the_key_survives(
        self, client, auth_headers, other_headers, member_key
    ):
        response = client.delete(f"{KEYS}/{member_key['id']}", headers=other_headers)
        assert_error(response, 404, "not_found")
        assert client.get(ME, headers=with_key(member_key["key"])).status_code == 200
        assert [item["id"] for item in listed_keys(client, auth_headers)] == [member_key["id"]]

    def test_another_tenants_404_looks_like_a_missing_id(self, client, other_headers, member_key):
        theirs = client.delete(f"{KEYS}/{member_key['id']}", headers=other_headers)
        missing = client.delete(f"{KEYS}/{ObjectId()}", headers=other_headers)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.get_json() == missing.get_json()

    def test_another_tenants_admin_key_cannot_delete_it(self, client, other_headers, member_key):
        their_key = new_key(client, other_headers, role="admin")["key"]
        response = client.delete(f"{KEYS}/{member_key['id']}", headers=with_key(their_key))
        assert_error(response, 404, "not_found")
        assert client.get(ME, headers=with_key(member_key["key"])).status_code == 200

    def test_lists_show_only_the_tenants_own_keys(self, client, auth_headers, other_headers, member_key):
        theirs = new_key(client, other_headers, name="globex key")
        assert [item["id"] for item in listed_keys(client, other_headers)] == [theirs["id"]]
        assert [item["id"] for item in listed_keys(client, auth_headers)] == [member_key["id"]]

    def test_a_key_authenticates_only_its_own_tenant(self, client, other_tenant, other_headers):
        key = new_key(client, other_headers)["key"]
        body = client.get(ME, headers=with_key(key)).get_json()
        assert body["tenant"]["id"] == str(other_tenant.id)


# -- keys that are not valid ---------------------------------------------------------------------------


def _wrong_prefix(key, tenant, other):
    return "xyz" + key[3:]


def _other_tenants_id(key, tenant, other):
    return key.replace(str(tenant.id), str(other.id))


def _unknown_tenant_id(key, tenant, other):
    return key.replace(str(tenant.id), str(ObjectId()))


def _not_an_id(key, tenant, other):
    return key.replace(str(tenant.id), "acme")


def _random_secret(key, tenant, other):
    return f"tmk_{tenant.id}_{secrets.token_hex(32)}"


def _truncated(key, tenant, other):
    return key[:-1]


def _extended(key, tenant, other):
    return key + "a"


def _extra_part(key, tenant, other):
    return key + "_extra"


def _prefix_only(key, tenant, other):
    return "tmk_"


def _empty(key, tenant, other):
    return ""


def _whitespace(key, tenant, other):
    return "   "


MALFORMED = [
    _wrong_prefix,
    _other_tenants_id,
    _unknown_tenant_id,
    _not_an_id,
    _random_secret,
    _truncated,
    _extended,
    _extra_part,
    _prefix_only,
    _empty,
    _whitespace,
]


class TestMalformedKeys:
    @pytest.mark.parametrize("forge", MALFORMED, ids=lambda forge: forge.__name__.strip("_"))
    def test_is_401_in_the_envelope(self, client, tenant, other_tenant, member_key, forge):
        forged = forge(member_key["key"], tenant, other_tenant)
        assert forged != member_key["key"]
        assert_error(client.get(ME, headers=with_key(forged)), 401, "unauthorized")

    @pytest.mark.parametrize("forge", [_random_secret, _other_tenants_id], ids=["random", "other_tenant"])
    def test_is_401_on_a_public_route_too(self, client, tenant, other_tenant, member_key, forge):
        forged = forge(member_key["key"], tenant, other_tenant)
        assert_error(client.get("/api/v1/plans", headers=with_key(forged)), 401, "unauthorized")

    def test_another_tenants_real_secret_under_this_tenants_id(self, client, tenant, other_headers):
        their_key = new_key(client, other_headers)["key"]
        _prefix, their_tenant_id, secret = their_key.split("_")
        forged = f"tmk_{tenant.id}_{secret}"
        assert_error(client.get(ME, headers=with_key(forged)), 401, "unauthorized")

    def test_both_a_token_and_a_key_is_401(self, client, auth_headers, member_key):
        headers = {**auth_headers, **with_key(member_key["key"])}
        assert_error(client.get(ME, headers=headers), 401, "unauthorized")

    def test_key_as_bearer_token_is_401(self, client, member_key):
        headers = {"Authorization": f"Bearer {member_key['key']}"}
        response = client.get(ME, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] in {"unauthorized", "invalid_credentials"}


# -- the key's tenant changes --------------------------------------------------------------------------


class TestTenantState:
    def test_downgrade_to_a_plan_without_api_access(self, client, tenant, member_key):
        update_tenant(tenant, set__plan="free")
        assert_error(client.get(ME, headers=with_key(member_key["key"])), 403, "feature_not_available")

    def test_feature_override_off_disables_keys(self, client, tenant, member_key):
        update_tenant(tenant, set__features={"apiAccess": False})
        assert_error(client.get(ME, headers=with_key(member_key["key"])), 403, "feature_not_available")

    def test_upgrade_again_restores_the_key(self, client, tenant, member_key):
        update_tenant(tenant, set__plan="free")
        assert client.get(ME, headers=with_key(member_key["key"])).status_code == 403
        update_tenant(tenant, set__plan="starter")
        assert client.get(ME, headers=with_key(member_key["key"])).status_code == 200

    def test_suspended_tenant(self, client, tenant, member_key):
        update_tenant(tenant, set__status="suspended")
        assert_error(client.get(ME, headers=with_key(member_key["key"])), 403, "tenant_suspended")

    def test_suspension_by_the_superadmin_applies_at_once(
        self, client, tenant, member_key, superadmin_headers
    ):
        response = client.post(
            f"/api/v1/tenants/{tenant.id}/suspend", json={"reason": "unpaid"}, headers=superadmin_headers
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        assert_error(client.get(ME, headers=with_key(member_key["key"])), 403, "tenant_suspended")

    @pytest.mark.parametrize(
        "hint",
        [
            lambda other: {"headers": {"X-Tenant-Id": str(other.id)}},
            lambda other: {"headers": {"X-Tenant-Id": other.slug}},
            lambda other: {"query_string": {"tenant": other.slug}},
        ],
        ids=["header_id", "header_slug", "query"],
    )
    def test_hint_naming_another_tenant_is_a_mismatch(self, client, tenant, other_tenant, member_key, hint):
        request = hint(other_tenant)
        headers = {**with_key(member_key["key"]), **request.pop("headers", {})}
        assert_error(client.get(ME, headers=headers, **request), 403, "tenant_mismatch")
        (entry,) = audit_entries(tenant, "auth.tenant_mismatch")
        assert entry.actor.kind == "api_key"
        assert entry.actor.id == member_key["id"]
        assert entry.summary["namedTenant"] == str(other_tenant.id)
        assert audit_entries(other_tenant, "auth.tenant_mismatch") == []

    def test_hint_naming_the_keys_own_tenant_is_fine(self, client, tenant, member_key):
        headers = with_key(member_key["key"], **{"X-Tenant-Id": tenant.slug})
        assert client.get(ME, headers=headers).status_code == 200
        assert audit_entries(tenant, "auth.tenant_mismatch") == []


# -- audit ---------------------------------------------------------------------------------------------


class TestAudit:
    def test_creation_is_audited_without_the_key(self, client, auth_headers, owner, tenant, member_key):
        (entry,) = audit_entries(tenant, "api_key.created")
        assert entry.target_id == member_key["id"]
        assert entry.actor.id == str(owner.id)
        assert entry.summary.get("name") == member_key["name"]
        raw = str(entry.to_mongo().to_dict())
        assert member_key["key"] not in raw
        assert member_key["key"].split("_")[-1] not in raw
        assert sha256(member_key["key"]) not in raw

    def test_revocation_is_audited_without_the_key(self, client, admin_headers, tenant, member_key):
        assert client.delete(f"{KEYS}/{member_key['id']}", headers=admin_headers).status_code == 204
        (entry,) = audit_entries(tenant, "api_key.revoked")
        assert entry.target_id == member_key["id"]
        assert entry.actor.kind == "user"
        raw = str(entry.to_mongo().to_dict())
        assert member_key["key"] not in raw
        assert member_key["key"].split("_")[-1] not in raw

    def test_refused_creation_and_foreign_revocation_are_not_audited(
        self, client, member_headers, other_headers, tenant, other_tenant, member_key
    ):
        create_key(client, member_headers)
        client.delete(f"{KEYS}/{member_key['id']}", headers=other_headers)
        assert len(audit_entries(tenant, "api_key.created")) == 1
        assert audit_entries(tenant, "api_key.revoked") == []
        assert audit_entries(other_tenant, "api_key.revoked") == []


# -- a key acts with its creator's current rights -------------------------------------------------------

USERS = "/api/v1/users"
CURRENT = "/api/v1/tenants/current"


def key_status(client, key) -> int:
    return client.get(CURRENT, headers=with_key(key)).status_code


@pytest.fixture
def keys(client, tenant, make_user, headers_for):
    """An admin, and an admin key and a member key they created."""
    admin = make_user(tenant, "admin")
    headers = headers_for(admin)
    return SimpleNamespace(
        creator=admin,
        admin_key=new_key(client, headers, role="admin", name="admin key")["key"],
        member_key=new_key(client, headers, role="member", name="member key")["key"],
    )


def change_user(client, user, headers, **changes):
    response = client.patch(f"{USERS}/{user.id}", headers=headers, json=changes)
    assert response.status_code == 200, response.get_data(as_text=True)


def remove_user(client, user, headers, query=""):
    response = client.delete(f"{USERS}/{user.id}{query}", headers=headers)
    assert response.status_code == 204, response.get_data(as_text=True)


CREATOR_GONE = {
    "deleted": lambda client, keys, headers: remove_user(client, keys.creator, headers),
    "erased": lambda client, keys, headers: remove_user(client, keys.creator, headers, "?erase=true"),
    "deactivated": lambda client, keys, headers: change_user(client, keys.creator, headers, active=False),
    "demoted": lambda client, keys, headers: change_user(client, keys.creator, headers, role="member"),
}


class TestCreatorsRights:
    @pytest.mark.parametrize("change", CREATOR_GONE.values(), ids=CREATOR_GONE.keys())
    def test_a_key_stops_when_its_creator_loses_its_role_at_once(self, client, keys, auth_headers, change):
        assert key_status(client, keys.admin_key) == 200
        change(client, keys, auth_headers)
        response = client.get(CURRENT, headers=with_key(keys.admin_key))
        assert_error(response, 401, "unauthorized")
        assert "created it" in response.get_json()["error"]["message"]

    @pytest.mark.parametrize("change", CREATOR_GONE.values(), ids=CREATOR_GONE.keys())
    def test_within_the_cache_bound_in_another_worker(
        self, cache_clock, app, client, keys, auth_headers, monkeypatch, change
    ):
        assert key_status(client, keys.admin_key) == 200
        with in_another_worker(monkeypatch):
            change(client, keys, auth_headers)
        cache_clock[0] += app.config["AUTH_CACHE_TTL"] - 1
        assert key_status(client, keys.admin_key) == 200
        cache_clock[0] += 2
        assert key_status(client, keys.admin_key) == 401

    @pytest.mark.parametrize("change", ["deleted", "erased", "deactivated"])
    def test_all_keys_of_a_creator_who_is_gone_stop(self, client, keys, auth_headers, change):
        CREATOR_GONE[change](client, keys, auth_headers)
        assert key_status(client, keys.member_key) == 401

    def test_a_demoted_creator_keeps_the_keys_of_their_new_role(self, client, keys, auth_headers):
        change_user(client, keys.creator, auth_headers, role="member")
        assert key_status(client, keys.member_key) == 200
        change_user(client, keys.creator, auth_headers, role="admin")
        assert key_status(client, keys.admin_key) == 200  # never more than the creator may do now

    def test_a_reactivated_creator_brings_their_keys_back(self, client, keys, auth_headers):
        change_user(client, keys.creator, auth_headers, active=False)
        change_user(client, keys.creator, auth_headers, active=True)
        assert [key_status(client, k) for k in (keys.admin_key, keys.member_key)] == [200, 200]

    def test_an_owner_demoted_to_admin_keeps_admin_keys(self, client, tenant, owner, make_user, headers_for):
        second_owner = headers_for(make_user(tenant, "owner"))
        key = new_key(client, headers_for(owner), role="admin")["key"]
        change_user(client, owner, second_owner, role="admin")
        assert key_status(client, key) == 200
        change_user(client, owner, second_owner, role="member")
        assert key_status(client, key) == 401

    def test_a_superadmins_key_ends_with_the_superadmin(self, client, tenant, superadmin, headers_for):
        key = new_key(client, {"X-Tenant-Id": "acme", **headers_for(superadmin)}, role="admin")["key"]
        assert key_status(client, key) == 200
        admin = PlatformUser.objects.get(id=superadmin.id)
        admin.active = False
        admin.save()
        assert key_status(client, key) == 401

    def test_a_key_cannot_create_keys(self, client, tenant, keys):
        response = create_key(client, with_key(keys.admin_key), name="child", role="admin")
        assert_error(response, 403, "forbidden")
        assert sorted(doc["name"] for doc in stored_keys(tenant)) == ["admin key", "member key"]

    @pytest.mark.parametrize("action", ["setup", "enable", "disable"])
    def test_a_key_cannot_touch_two_factor_authentication(self, client, keys, action):
        response = client.post(
            f"/api/v1/auth/2fa/{action}", json={"code": "123456"}, headers=with_key(keys.admin_key)
        )
        assert_error(response, 403, "forbidden")
        assert "API key" in response.get_json()["error"]["message"]
