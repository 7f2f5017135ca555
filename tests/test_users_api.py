"""/api/v1/users: owners and admins manage the members of their tenant, within the `users` limit."""

from __future__ import annotations

from functools import partial

import pytest
from bson import ObjectId

from app.audit.models import AuditLog
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.users.models import EmailDirectory, User

from .conftest import PASSWORD
from .support import (
    assert_limit_exceeded,
    audit_entries,
    document_snapshot,
    error_code,
    impersonation_headers,
    set_limits,
    stored_document,
)

API = "/api/v1"
USERS = f"{API}/users"
SECRET_KEYS = {"password", "passwordHash", "password_hash", "hash"}


# -- helpers ----------------------------------------------------------------------------------------


def user_url(user_or_id) -> str:
    return f"{USERS}/{getattr(user_or_id, 'id', user_or_id)}"


def new_user(**changes) -> dict:
    body = {"email": "new.person@example.com", "name": "New Person", "role": "member", "password": PASSWORD}
    return {**body, **changes}


stored_user = partial(stored_document, User)
stored_snapshot = partial(document_snapshot, User)


def user_count(tenant) -> int:
    with tenant_scope(tenant):
        return User.objects.count()


def seats_used(tenant) -> int:
    return Tenant.objects.get(id=tenant.id).usage.users


def login(client, tenant, email: str, password: str = PASSWORD):
    return client.post(
        f"{API}/auth/login",
        json={"email": email, "password": password},
        headers={"X-Tenant-Id": str(tenant.id)},
    )


def assert_no_secret(body: dict) -> None:
    assert not SECRET_KEYS & set(body), body
    assert not any(isinstance(v, str) and v.startswith("$") for v in body.values()), body


@pytest.fixture
def admin(tenant, make_user):
    return make_user(tenant, "admin")


@pytest.fixture
def member(tenant, make_user):
    return make_user(tenant, "member")


# -- POST /users -----------------------------------------------------------------------------------


class TestCreate:
    @pytest.mark.parametrize("role", ["admin", "member"])
    def test_owner_adds_a_user_without_any_hash(self, client, tenant, auth_headers, role):
        response = client.post(USERS, json=new_user(role=role), headers=auth_headers)
        assert response.status_code == 201, response.json
        body = response.json
        assert body["email"] == "new.person@example.com"
        assert body["name"] == "New Person"
        assert body["role"] == role
        assert body["active"] is True
        assert ObjectId.is_valid(body["id"])
        assert_no_secret(body)
        stored = stored_user(tenant, body["id"])
        assert stored is not None and stored.password_hash and stored.password_hash != PASSWORD
        assert stored.tenant_id == tenant.id

    def test_the_new_user_can_log_in(self, client, tenant, auth_headers):
        client.post(USERS, json=new_user(), headers=auth_headers)
        response = login(client, tenant, "new.person@example.com")
        assert response.status_code == 200, response.json
        assert response.json["user"]["role"] == "member"
        assert_no_secret(response.json["user"])

    def test_admin_adds_members_and_admins(self, client, admin, headers_for):
        for index, role in enumerate(("member", "admin")):
            response = client.post(
                USERS, json=new_user(email=f"a{index}@example.com", role=role), headers=headers_for(admin)
            )
            assert response.status_code == 201, response.json
            assert response.json["role"] == role

    def test_admin_cannot_make_an_owner(self, client, tenant, admin, headers_for):
        before = user_count(tenant)
        response = client.post(USERS, json=new_user(role="owner"), headers=headers_for(admin))
        assert response.status_code == 403
        assert error_code(response) == "forbidden"
        assert user_count(tenant) == before

    def test_email_is_unique_per_tenant_whatever_its_case(self, client, tenant, auth_headers):
        assert client.post(USERS, json=new_user(), headers=auth_headers).status_code == 201
        used = seats_used(tenant)
        response = client.post(
            USERS, json=new_user(email="New.Person@Example.COM", name="Twin"), headers=auth_headers
        )
        assert response.status_code == 409
        assert error_code(response) == "email_taken"
        assert set(response.json["error"]) >= {"code", "message"}
        assert seats_used(tenant) == used
        with tenant_scope(tenant):
            assert User.objects(email="new.person@example.com").count() == 1

    def test_the_same_email_may_exist_in_another_tenant(
        self, client, tenant, other_tenant, auth_headers, other_owner, headers_for
    ):
        first = client.post(USERS, json=new_user(), headers=auth_headers)
        second = client.post(USERS, json=new_user(), headers=headers_for(other_owner))
        assert first.status_code == 201 and second.status_code == 201
        assert first.json["id"] != second.json["id"]
        assert first.json["tenantId"] == str(tenant.id)
        assert second.json["tenantId"] == str(other_tenant.id)
        assert EmailDirectory.objects(email="new.person@example.com").count() == 2

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"email": "not-an-email"}, "email"),
            ({"email": None}, "email"),
            ({"password": "short"}, "password"),
            ({"password": "x" * 129}, "password"),
            ({"name": ""}, "name"),
            ({"name": "n" * 101}, "name"),
            ({"role": "superadmin"}, "role"),
            ({"role": "boss"}, "role"),
            ({"tenantId": "5f0000000000000000000000"}, "tenantId"),
            ({"passwordHash": "$argon2id$whatever"}, "passwordHash"),
            ({"active": False, "lastLoginAt": "2020-01-01T00:00:00Z"}, "lastLoginAt"),
        ],
    )
    def test_bad_input_is_422_and_creates_nothing(self, client, tenant, auth_headers, changes, field):
        before, used = user_count(tenant), seats_used(tenant)
        response = client.post(USERS, json=new_user(**changes), headers=auth_headers)
        assert response.status_code == 422, response.json
        assert error_code(response) == "validation_error"
        assert field in response.json["error"]["details"]
        assert user_count(tenant) == before
        assert seats_used(tenant) == used

    @pytest.mark.parametrize("missing", ["email", "name", "password"])
    def test_required_fields(self, client, tenant, auth_headers, missing):
        body = new_user()
        del body[missing]
        response = client.post(USERS, json=body, headers=auth_headers)
        assert response.status_code == 422
        assert missing in response.json["error"]["details"]


# -- GET /users ------------------------------------------------------------------------------------


class TestList:
    def test_pages(self, client, tenant, owner, auth_headers, make_user):
        for _ in range(4):
            make_user(tenant, "member")
        seen = []
        for page in (1, 2, 3):
            response = client.get(USERS, query_string={"page": page, "perPage": 2}, headers=auth_headers)
            assert response.status_code == 200
            body = response.json
            assert (body["page"], body["perPage"], body["total"]) == (page, 2, 5)
            assert len(body["items"]) == (2 if page < 3 else 1)
            for item in body["items"]:
                assert_no_secret(item)
            seen += [item["id"] for item in body["items"]]
        assert len(set(seen)) == 5
        assert str(owner.id) in seen

    def test_defaults_and_the_largest_page(self, client, auth_headers):
        body = client.get(USERS, headers=auth_headers).json
        assert (body["page"], body["perPage"], body["total"]) == (1, 20, 1)
        assert client.get(USERS, query_string={"perPage": 100}, headers=auth_headers).status_code == 200

    @pytest.mark.parametrize("query", ["perPage=101", "perPage=0", "page=0", "page=x", "role=superadmin"])
    def test_bad_paging_or_filter_is_422(self, client, auth_headers, query):
        response = client.get(f"{USERS}?{query}", headers=auth_headers)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"

    def test_filters(self, client, tenant, owner, auth_headers, make_user):
        admin = make_user(tenant, "admin")
        member = make_user(tenant, "member")
        with tenant_scope(tenant):
            User.objects(id=member.id).update_one(set__active=False)
        admins = client.get(USERS, query_string={"role": "admin"}, headers=auth_headers).json
        assert [item["id"] for item in admins["items"]] == [str(admin.id)]
        inactive = client.get(USERS, query_string={"active": "false"}, headers=auth_headers).json
        assert [item["id"] for item in inactive["items"]] == [str(member.id)]

    def test_lists_only_the_callers_tenant(self, client, tenant, owner, other_owner, headers_for, make_user):
        make_user(tenant, "member")
        ids = {item["id"] for item in client.get(USERS, headers=headers_for(other_owner)).json["items"]}
        assert ids == {str(other_owner.id)}


# -- GET /users/{id} -------------------------------------------------------------------------------


class TestRead:
    def test_owner_and_admin_read_a_user(self, client, member, owner, admin, headers_for):
        for actor in (owner, admin):
            response = client.get(user_url(member), headers=headers_for(actor))
            assert response.status_code == 200
            assert response.json["id"] == str(member.id)
            assert response.json["email"] == member.email
            assert_no_secret(response.json)

    def test_unknown_id_is_404(self, client, auth_headers):
        response = client.get(user_url(ObjectId()), headers=auth_headers)
        assert response.status_code == 404
        assert error_code(response) == "not_found"


# -- PATCH /users/{id} -----------------------------------------------------------------------------


class TestUpdate:
    def test_owner_changes_name_role_and_active(self, client, tenant, member, auth_headers):
        response = client.patch(
            user_url(member), json={"name": "Renamed", "role": "admin"}, headers=auth_headers
        )
        assert response.status_code == 200, response.json
        assert (response.json["name"], response.json["role"]) == ("Renamed", "admin")
        stored = stored_user(tenant, member.id)
        assert (stored.name, stored.role) == ("Renamed", "admin")
        response = client.patch(user_url(member), json={"active": False}, headers=auth_headers)
        assert response.status_code == 200 and response.json["active"] is False
        assert stored_user(tenant, member.id).active is False

    def test_password_change_is_not_returned_and_works(self, client, tenant, member, auth_headers):
        response = client.patch(
            user_url(member), json={"password": "a brand new secret"}, headers=auth_headers
        )
        assert response.status_code == 200
        assert_no_secret(response.json)
        assert login(client, tenant, member.email).status_code == 401
        assert login(client, tenant, member.email, "a brand new secret").status_code == 200

    def test_admin_manages_members_and_admins(self, client, tenant, admin, member, make_user, headers_for):
        other_admin = make_user(tenant, "admin")
        headers = headers_for(admin)
        assert client.patch(user_url(member), json={"role": "admin"}, headers=headers).status_code == 200
        assert (
            client.patch(user_url(other_admin), json={"role": "member"}, headers=headers).status_code == 200
        )
        assert stored_user(tenant, member.id).role == "admin"
        assert stored_user(tenant, other_admin.id).role == "member"

    @pytest.mark.parametrize(
        "body",
        [{"name": "Hijacked"}, {"role": "member"}, {"active": False}, {"password": "taking over now"}],
    )
    def test_admin_cannot_touch_an_owner(self, client, tenant, owner, admin, headers_for, body):
        before = stored_snapshot(tenant, owner.id)
        response = client.patch(user_url(owner), json=body, headers=headers_for(admin))
        assert response.status_code == 403
        assert error_code(response) == "forbidden"
        assert stored_snapshot(tenant, owner.id) == before

    def test_admin_cannot_make_an_owner(self, client, tenant, owner, admin, member, headers_for):
        response = client.patch(user_url(member), json={"role": "owner"}, headers=headers_for(admin))
        assert response.status_code == 403
        assert error_code(response) == "forbidden"
        assert stored_user(tenant, member.id).role == "member"
        response = client.patch(user_url(admin), json={"role": "owner"}, headers=headers_for(admin))
        assert response.status_code == 403
        assert stored_user(tenant, admin.id).role == "admin"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"role": "superadmin"}, "role"),
            ({"name": ""}, "name"),
            ({"active": "sometimes"}, "active"),
            ({"password": "short"}, "password"),
            ({"email": "new@example.com"}, "email"),
            ({"tenantId": "5f0000000000000000000000"}, "tenantId"),
        ],
    )
    def test_bad_changes_are_422_and_change_nothing(self, client, tenant, member, auth_headers, body, field):
        before = stored_snapshot(tenant, member.id)
        response = client.patch(user_url(member), json=body, headers=auth_headers)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"
        assert field in response.json["error"]["details"]
        assert stored_snapshot(tenant, member.id) == before


class TestTheLastOwner:
    @pytest.mark.parametrize(
        ("method", "body"),
        [
            ("patch", {"role": "admin"}),
            ("patch", {"role": "member"}),
            ("patch", {"active": False}),
            ("delete", None),
        ],
    )
    def test_the_only_active_owner_stays(self, client, tenant, owner, auth_headers, method, body):
        before = stored_snapshot(tenant, owner.id)
        kwargs = {"json": body} if body is not None else {}
        response = getattr(client, method)(user_url(owner), headers=auth_headers, **kwargs)
        assert response.status_code == 409
        assert error_code(response) == "conflict"
        assert stored_snapshot(tenant, owner.id) == before

    def test_an_inactive_second_owner_does_not_count(self, client, tenant, owner, auth_headers, make_user):
        second = make_user(tenant, "owner")
        response = client.patch(user_url(second), json={"active": False}, headers=auth_headers)
        assert response.status_code == 200, response.json
        response = client.patch(user_url(owner), json={"role": "admin"}, headers=auth_headers)
        assert response.status_code == 409
        assert stored_user(tenant, owner.id).role == "owner"

    def test_with_a_second_active_owner_the_first_may_go(
        self, client, tenant, owner, auth_headers, make_user
    ):
        admin = make_user(tenant, "admin")
        response = client.patch(user_url(admin), json={"role": "owner"}, headers=auth_headers)
        assert response.status_code == 200, response.json
        response = client.patch(user_url(owner), json={"role": "admin"}, headers=auth_headers)
        assert response.status_code == 200, response.json
        assert stored_user(tenant, owner.id).role == "admin"
        # now `admin` is the only owner, and stays one
        response = client.delete(user_url(admin), headers=auth_headers)  # the demoted owner is an admin now
        assert response.status_code == 403
        assert stored_user(tenant, admin.id).role == "owner"

    def test_an_owner_may_remove_another_owner(self, client, tenant, owner, auth_headers, make_user):
        second = make_user(tenant, "owner")
        assert client.delete(user_url(second), headers=auth_headers).status_code == 204
        assert stored_user(tenant, second.id) is None


# -- DELETE /users/{id} ----------------------------------------------------------------------------


class TestDelete:
    def test_owner_removes_a_user_and_the_seat_comes_back(self, client, tenant, member, auth_headers):
        used = seats_used(tenant)
        response = client.delete(user_url(member), headers=auth_headers)
        assert response.status_code == 204
        assert stored_user(tenant, member.id) is None
        assert seats_used(tenant) == used - 1
        assert EmailDirectory.objects(email=member.email).count() == 0
        assert client.get(user_url(member), headers=auth_headers).status_code == 404
        assert login(client, tenant, member.email).status_code == 401

    def test_admin_removes_a_member_but_not_an_owner(self, client, tenant, owner, admin, member, headers_for):
        assert client.delete(user_url(member), headers=headers_for(admin)).status_code == 204
        response = client.delete(user_url(owner), headers=headers_for(admin))
        assert response.status_code == 403
        assert error_code(response) == "forbidden"
        assert stored_user(tenant, owner.id) is not None

    def test_deleting_twice_is_404_and_refunds_once(self, client, tenant, member, auth_headers):
        used = seats_used(tenant)
        assert client.delete(user_url(member), headers=auth_headers).status_code == 204
        response = client.delete(user_url(member), headers=auth_headers)
        assert response.status_code == 404
        assert seats_used(tenant) == used - 1


# -- roles -----------------------------------------------------------------------------------------


class TestMembersAreRefused:
    def test_every_users_route_is_403_for_a_member(self, client, tenant, owner, member, headers_for):
        headers = headers_for(member)
        before = stored_snapshot(tenant, owner.id)
        count = user_count(tenant)
        calls = [
            client.get(USERS, headers=headers),
            client.post(USERS, json=new_user(), headers=headers),
            client.get(user_url(owner), headers=headers),
            client.patch(user_url(owner), json={"name": "Mine now"}, headers=headers),
            client.patch(user_url(member), json={"role": "admin"}, headers=headers),
            client.delete(user_url(owner), headers=headers),
            client.get(user_url(ObjectId()), headers=headers),
        ]
        for response in calls:
            assert response.status_code == 403, (response.request.method, response.request.path)
            assert error_code(response) == "forbidden"
        assert stored_snapshot(tenant, owner.id) == before
        assert stored_user(tenant, member.id).role == "member"
        assert user_count(tenant) == count

    def test_no_credential_is_401(self, client, owner):
        response = client.get(USERS)
        assert response.status_code == 401


# -- the `users` limit -----------------------------------------------------------------------------


class TestUsersLimit:
    def test_free_plan_allows_five(self, client, free_tenant, make_user, headers_for):
        owner = make_user(free_tenant, "owner")  # seat 1 of 5
        headers = headers_for(owner)
        for index in (2, 3, 4, 5):  # seat 4 is limit-1, seat 5 the limit
            response = client.post(USERS, json=new_user(email=f"u{index}@example.com"), headers=headers)
            assert response.status_code == 201, (index, response.json)
        assert seats_used(free_tenant) == 5
        response = client.post(USERS, json=new_user(email="u6@example.com"), headers=headers)
        assert_limit_exceeded(response, "users", limit=5, used=5)
        assert user_count(free_tenant) == 5
        assert seats_used(free_tenant) == 5
        assert EmailDirectory.objects(email="u6@example.com").count() == 0
        usage = client.get(f"{API}/tenants/current/usage", headers=headers).json
        assert usage["resources"]["users"]["used"] == 5 and usage["resources"]["users"]["limit"] == 5

    def test_deleting_a_user_gives_the_seat_back(self, client, free_tenant, make_user, headers_for):
        owner = make_user(free_tenant, "owner")
        headers = headers_for(owner)
        ids = [
            client.post(USERS, json=new_user(email=f"u{i}@example.com"), headers=headers).json["id"]
            for i in range(4)
        ]
        assert client.post(USERS, json=new_user(email="late@example.com"), headers=headers).status_code == 403
        assert client.delete(user_url(ids[0]), headers=headers).status_code == 204
        assert seats_used(free_tenant) == 4
        response = client.post(USERS, json=new_user(email="late@example.com"), headers=headers)
        assert response.status_code == 201, response.json
        assert seats_used(free_tenant) == 5

    def test_an_override_below_usage_refuses_new_users_only(
        self, client, tenant, owner, auth_headers, make_user
    ):
        existing = [make_user(tenant, "member") for _ in range(3)]  # 4 seats used
        set_limits(tenant, users=2)
        response = client.post(USERS, json=new_user(), headers=auth_headers)
        assert response.status_code == 403
        assert response.json["error"]["details"] == {
            "resource": "users",
            "limit": 2,
            "used": 4,
            "requested": 1,
        }
        listed = client.get(USERS, headers=auth_headers).json
        assert listed["total"] == 4
        for user in existing:
            assert client.get(user_url(user), headers=auth_headers).status_code == 200
        for user in existing[:2]:
            assert client.delete(user_url(user), headers=auth_headers).status_code == 204
        assert client.post(USERS, json=new_user(), headers=auth_headers).status_code == 403  # 2 of 2
        assert client.delete(user_url(existing[2]), headers=auth_headers).status_code == 204
        assert client.post(USERS, json=new_user(), headers=auth_headers).status_code == 201


# -- audit -----------------------------------------------------------------------------------------


class TestAudit:
    def test_a_role_change_is_audited(self, client, tenant, owner, member, auth_headers):
        client.patch(user_url(member), json={"role": "admin"}, headers=auth_headers)
        entries = audit_entries(tenant, "user.role_changed")
        assert len(entries) == 1
        entry = entries[0]
        assert entry.target_type == "user" and entry.target_id == str(member.id)
        assert entry.actor.id == str(owner.id)
        assert entry.summary["role"] == {"from": "member", "to": "admin"}

    def test_a_deletion_is_audited(self, client, tenant, owner, member, auth_headers):
        client.delete(user_url(member), headers=auth_headers)
        entries = audit_entries(tenant, "user.deleted")
        assert len(entries) == 1
        assert entries[0].target_id == str(member.id)
        assert entries[0].actor.id == str(owner.id)

    def test_refused_changes_are_not_audited_as_done(self, client, tenant, owner, auth_headers):
        client.patch(user_url(owner), json={"role": "admin"}, headers=auth_headers)
        client.delete(user_url(owner), headers=auth_headers)
        assert audit_entries(tenant, "user.role_changed") == []
        assert audit_entries(tenant, "user.deleted") == []

    def test_a_password_change_is_audited_without_the_password(self, client, tenant, member, auth_headers):
        client.patch(user_url(member), json={"password": "a brand new secret"}, headers=auth_headers)
        with tenant_scope(tenant):
            entries = list(AuditLog.objects(target_id=str(member.id)))
        assert entries
        for entry in entries:
            assert "a brand new secret" not in str(entry.to_mongo().to_dict())


# -- impersonation and deactivation ----------------------------------------------------------------


class TestImpersonation:
    def test_no_password_change_while_impersonating(self, client, tenant, owner, member, superadmin_headers):
        headers = impersonation_headers(client, superadmin_headers, tenant)
        for target in (member, owner):
            before = stored_user(tenant, target.id).password_hash
            response = client.patch(user_url(target), json={"password": "set by support"}, headers=headers)
            assert response.status_code == 403
            assert error_code(response) == "forbidden"
            assert stored_user(tenant, target.id).password_hash == before
        assert login(client, tenant, member.email, "set by support").status_code == 401

    def test_other_changes_are_allowed_while_impersonating(
        self, client, tenant, owner, member, superadmin_headers
    ):
        headers = impersonation_headers(client, superadmin_headers, tenant)
        response = client.patch(user_url(member), json={"name": "Fixed by support"}, headers=headers)
        assert response.status_code == 200
        assert stored_user(tenant, member.id).name == "Fixed by support"


class TestDeactivation:
    def test_a_deactivated_user_cannot_log_in(self, client, tenant, member, auth_headers):
        assert login(client, tenant, member.email).status_code == 200
        assert client.patch(user_url(member), json={"active": False}, headers=auth_headers).status_code == 200
        response = login(client, tenant, member.email)
        assert response.status_code == 401
        assert error_code(response) == "invalid_credentials"
        assert "accessToken" not in response.json

    def test_a_deactivated_users_token_stops_working(self, client, member, auth_headers, headers_for):
        headers = headers_for(member)
        assert client.get(f"{API}/auth/me", headers=headers).status_code == 200
        client.patch(user_url(member), json={"active": False}, headers=auth_headers)
        assert client.get(f"{API}/auth/me", headers=headers).status_code == 401

    def test_reactivated_user_logs_in_again(self, client, tenant, member, auth_headers):
        client.patch(user_url(member), json={"active": False}, headers=auth_headers)
        client.patch(user_url(member), json={"active": True}, headers=auth_headers)
        assert login(client, tenant, member.email).status_code == 200


# -- another tenant --------------------------------------------------------------------------------


class TestCrossTenant:
    def routes(self, target_id):
        url = user_url(target_id)
        return [
            ("get", url, None),
            ("patch", url, {"name": "Stolen"}),
            ("patch", url, {"role": "admin"}),
            ("patch", url, {"active": False}),
            ("patch", url, {"password": "taken over by globex"}),
            ("delete", url, None),
        ]

    def call(self, client, method, url, body, headers):
        kwargs = {"json": body} if body is not None else {}
        return getattr(client, method)(url, headers=headers, **kwargs)

    def test_another_tenants_user_is_404_like_a_missing_one(
        self, client, tenant, owner, member, other_owner, headers_for
    ):
        headers = headers_for(other_owner)
        for target in (owner, member):
            before = stored_snapshot(tenant, target.id)
            missing = ObjectId()
            for (method, url, body), (_, missing_url, _) in zip(
                self.routes(target.id), self.routes(missing), strict=True
            ):
                response = self.call(client, method, url, body, headers)
                random = self.call(client, method, missing_url, body, headers)
                assert response.status_code == 404, (method, body, response.json)
                assert error_code(response) == "not_found"
                assert (random.status_code, random.json) == (response.status_code, response.json)
            assert stored_snapshot(tenant, target.id) == before
        assert seats_used(tenant) == 2
        assert login(client, tenant, member.email).status_code == 200

    def test_another_tenants_admin_gets_404_too(
        self, client, tenant, member, other_tenant, make_user, headers_for
    ):
        headers = headers_for(make_user(other_tenant, "admin"))
        before = stored_snapshot(tenant, member.id)
        for method, url, body in self.routes(member.id):
            assert self.call(client, method, url, body, headers).status_code == 404
        assert stored_snapshot(tenant, member.id) == before

    def test_a_hint_for_the_first_tenant_does_not_help(
        self, client, tenant, member, other_owner, headers_for
    ):
        headers = {**headers_for(other_owner), "X-Tenant-Id": str(tenant.id)}
        response = client.get(user_url(member), headers=headers)
        assert response.status_code == 403
        assert error_code(response) == "tenant_mismatch"
