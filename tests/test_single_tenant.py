"""Single-tenant mode (ENABLE_MULTI_TENANT=false), side by side with the multi-tenant default.

In single-tenant mode every request names the default tenant (DEFAULT_TENANT_SLUG) and no hint is
read; the data keeps the multi-tenant layout, so switching the mode back needs no migration.
"""

from __future__ import annotations

import pytest
from flask_jwt_extended import decode_token

from app.db import database
from app.errors import Conflict
from app.tenancy import migration
from app.tenancy.cache import tenant_cache
from app.tenancy.context import unscoped
from app.tenancy.registry import tenant_document_classes
from app.tenants import service as tenant_service
from app.tenants.models import Tenant
from app.tenants.service import ensure_default_tenant

from .conftest import PASSWORD
from .support import error_code, tenant_url

API = "/api/v1"
TENANTS = f"{API}/tenants"
LOGIN = f"{API}/auth/login"
CURRENT = f"{TENANTS}/current"
HOME_EMAIL = "owner@home.example.com"
SIGNUP = {
    "tenant": {"name": "Initech Industries"},
    "user": {"email": "bill@initech.example.com", "password": "tps reports 123", "name": "Bill"},
}

both_modes = pytest.mark.parametrize(
    "app", [False, True], ids=["single-tenant", "multi-tenant"], indirect=True
)


@pytest.fixture
def app(app_factory, request):
    """The app in single-tenant mode; `both_modes` runs a test in multi-tenant mode as well."""
    multi_tenant = getattr(request, "param", False)
    app = app_factory(ENABLE_MULTI_TENANT=multi_tenant)
    with app.app_context():
        yield app


@pytest.fixture
def multi(app) -> bool:
    return app.config["ENABLE_MULTI_TENANT"]


@pytest.fixture
def home(app):
    """The default tenant (in multi-tenant mode, an ordinary tenant of that slug)."""
    return ensure_default_tenant()


@pytest.fixture
def home_owner(home, make_user):
    return make_user(home, "owner", email=HOME_EMAIL)


@pytest.fixture
def home_headers(home_owner, headers_for):
    return headers_for(home_owner)


def login(client, email=HOME_EMAIL, password=PASSWORD, **kwargs):
    return client.post(LOGIN, json={"email": email, "password": password}, **kwargs)


# -- the default tenant -----------------------------------------------------------------------------


class TestDefaultTenant:
    @both_modes
    def test_exists_from_the_start_in_single_tenant_mode_only(self, app, multi):
        tenants = list(Tenant.objects)
        if multi:
            assert tenants == []
        else:
            [tenant] = tenants
            assert (tenant.slug, tenant.name, tenant.plan, tenant.status) == (
                "default",
                "Default",
                "enterprise",
                "active",
            )

    def test_a_missing_default_tenant_is_created_and_never_twice(self, app):
        Tenant.objects.delete()
        tenant_cache().clear()
        first = ensure_default_tenant()
        second = ensure_default_tenant()
        assert first.id == second.id
        assert [t.slug for t in Tenant.objects] == ["default"]

    def test_a_concurrent_creation_is_reused(self, app, monkeypatch):
        Tenant.objects.delete()
        real_create = tenant_service.create_tenant

        def another_process_was_first(*args, **kwargs):
            real_create(*args, **kwargs)  # the other process
            return real_create(*args, **kwargs)  # ours: the slug is taken now

        monkeypatch.setattr(tenant_service, "create_tenant", another_process_was_first)
        tenant = ensure_default_tenant()
        assert [t.id for t in Tenant.objects] == [tenant.id]

    def test_the_slug_comes_from_the_settings(self, app_factory):
        app = app_factory(ENABLE_MULTI_TENANT=False, DEFAULT_TENANT_SLUG="main")
        with app.app_context():
            assert [t.slug for t in Tenant.objects] == ["main"]
            assert ensure_default_tenant().slug == "main"


# -- signup and login -------------------------------------------------------------------------------


class TestSignup:
    @both_modes
    def test_signup_of_new_tenants_is_off_in_single_tenant_mode(self, client, multi):
        before = Tenant.objects.count()
        response = client.post(f"{TENANTS}/signup", json=SIGNUP)
        if multi:
            assert response.status_code == 201, response.json
            assert Tenant.objects.count() == before + 1
        else:
            assert response.status_code == 403
            assert error_code(response) == "forbidden"
            assert Tenant.objects.count() == before
            assert Tenant.objects(slug="initech-industries").count() == 0


class TestLogin:
    @both_modes
    def test_login_without_a_hint(self, client, home, home_owner):
        response = login(client)
        assert response.status_code == 200, response.json
        assert response.json["tenant"]["slug"] == "default"
        assert decode_token(response.json["accessToken"])["tenantId"] == str(home.id)

    @both_modes
    @pytest.mark.parametrize(
        ("hint", "names"),
        [
            ({"headers": {"X-Tenant-Id": "no-such-tenant"}}, None),
            ({"headers": {"X-Tenant-Id": "globex"}}, "globex"),
            ({"query_string": {"tenant": "globex"}}, "globex"),
            ({"query_string": {"tenant": "no-such-tenant"}}, None),
            ({"base_url": "http://globex.localhost"}, "globex"),
        ],
        ids=["header-unknown", "header-other", "param-other", "param-unknown", "subdomain-other"],
    )
    def test_hints_are_ignored_in_single_tenant_mode(
        self, client, multi, home_owner, other_tenant, hint, names
    ):
        response = login(client, **hint)
        if not multi:
            assert response.status_code == 200, response.json
            assert response.json["tenant"]["slug"] == "default"
        elif names is None:
            assert response.status_code == 404
            assert error_code(response) == "tenant_not_found"
        else:
            # The hint selects Globex, where this email has no user.
            assert response.status_code == 401
            assert error_code(response) == "invalid_credentials"

    @both_modes
    def test_a_superadmin_logs_in(self, client, home, superadmin):
        response = login(client, email=superadmin.email)
        assert response.status_code == 200, response.json
        assert response.json["tenant"] is None
        assert decode_token(response.json["accessToken"])["role"] == "superadmin"


# -- authenticated requests -------------------------------------------------------------------------


class TestCredentials:
    @both_modes
    @pytest.mark.parametrize("named", ["globex", "no-such-tenant"])
    def test_hints_next_to_a_token_are_ignored_in_single_tenant_mode(
        self, client, multi, home_headers, other_tenant, named
    ):
        response = client.get(CURRENT, headers={**home_headers, "X-Tenant-Id": named})
        if not multi:
            assert response.status_code == 200, response.json
            assert response.json["slug"] == "default"
        elif named == "globex":
            assert response.status_code == 403
            assert error_code(response) == "tenant_mismatch"
        else:
            assert response.status_code == 404
            assert error_code(response) == "tenant_not_found"

    @both_modes
    def test_a_token_of_another_tenant_is_a_mismatch_in_single_tenant_mode(
        self, client, multi, home, other_owner, headers_for
    ):
        response = client.get(CURRENT, headers=headers_for(other_owner))
        if multi:
            assert response.status_code == 200, response.json
            assert response.json["slug"] == "globex"
        else:
            assert response.status_code == 403
            assert error_code(response) == "tenant_mismatch"

    @both_modes
    def test_a_superadmin_works_in_the_default_tenant_without_naming_it(
        self, client, multi, home, superadmin_headers
    ):
        response = client.get(CURRENT, headers=superadmin_headers)
        if multi:
            assert response.status_code == 409
            assert error_code(response) == "tenant_required"
        else:
            assert response.status_code == 200, response.json
            assert response.json["slug"] == "default"


# -- the superadmin's routes ------------------------------------------------------------------------


class TestSuperadmin:
    @both_modes
    def test_lists_tenants(self, client, home, other_tenant, superadmin_headers):
        response = client.get(TENANTS, headers=superadmin_headers)
        assert response.status_code == 200, response.json
        assert sorted(item["slug"] for item in response.json["items"]) == ["default", "globex"]

    @both_modes
    def test_suspends_and_activates_the_default_tenant(self, client, home, home_headers, superadmin_headers):
        response = client.post(
            tenant_url(home, "suspend"), json={"reason": "unpaid invoices"}, headers=superadmin_headers
        )
        assert response.status_code == 200, response.json
        assert response.json["status"] == "suspended"
        refused = client.get(CURRENT, headers=home_headers)
        assert refused.status_code == 403
        assert error_code(refused) == "tenant_suspended"

        response = client.post(tenant_url(home, "activate"), headers=superadmin_headers)
        assert response.status_code == 200, response.json
        assert response.json["status"] == "active"
        assert client.get(CURRENT, headers=home_headers).status_code == 200

    @both_modes
    def test_the_default_tenant_cannot_be_deleted_in_single_tenant_mode(
        self, client, multi, home, home_owner, superadmin_headers
    ):
        response = client.delete(tenant_url(home), headers=superadmin_headers)
        if multi:
            assert response.status_code == 204
            assert Tenant.objects(id=home.id).count() == 0
        else:
            assert response.status_code == 409
            assert error_code(response) == "conflict"
            assert Tenant.objects.get(id=home.id).status == "active"
            assert login(client).status_code == 200

    def test_other_tenants_can_still_be_deleted(self, client, home, other_tenant, superadmin_headers):
        response = client.delete(tenant_url(other_tenant), headers=superadmin_headers)
        assert response.status_code == 204
        assert [t.slug for t in Tenant.objects] == ["default"]

    def test_the_service_refuses_too(self, app, home):
        from app.tenants.admin import delete_tenant

        with pytest.raises(Conflict):
            delete_tenant(home.id)
        assert Tenant.objects(id=home.id).count() == 1


# -- the data ---------------------------------------------------------------------------------------


def create_data(client, headers) -> dict[str, str]:
    """A user, a campaign and a webhook, through the API, as the owner."""
    ids = {}
    user = client.post(
        f"{API}/users",
        json={"email": "member@home.example.com", "name": "Member", "role": "member", "password": PASSWORD},
        headers=headers,
    )
    assert user.status_code == 201, user.json
    ids["user"] = user.json["id"]
    campaign = client.post(
        f"{API}/campaigns",
        json={
            "name": "Spring sale",
            "message": {"text": "Everything is 20% off"},
            "targets": ["@channel_one"],
        },
        headers=headers,
    )
    assert campaign.status_code == 201, campaign.json
    ids["campaign"] = campaign.json["id"]
    return ids


class TestData:
    def test_every_document_carries_the_default_tenant(self, client, home, home_headers):
        create_data(client, home_headers)
        assert login(client).status_code == 200
        db = database()
        stored = {}
        for name in sorted(c._get_collection_name() for c in tenant_document_classes()):
            docs = list(db[name].find({}))
            stored[name] = len(docs)
            assert all(doc.get("tenantId") == home.id for doc in docs), name
        assert stored["users"] == 2
        assert stored["campaigns"] == 1
        assert stored["audit_logs"] >= 1

    def test_switching_back_to_multi_tenant_needs_no_migration(
        self, app, client, home, home_headers, other_tenant
    ):
        ids = create_data(client, home_headers)
        # Single-tenant mode: the hint is ignored.
        assert client.get(CURRENT, headers={**home_headers, "X-Tenant-Id": "globex"}).status_code == 200

        app.config["ENABLE_MULTI_TENANT"] = True
        tenant_cache().clear()

        # Nothing to migrate: every document has its tenant, every index is tenant-prefixed.
        with unscoped("test: the data after single-tenant mode"):
            reports = migration.inspect()
        assert {r.collection for r in reports} == {
            c._get_collection_name() for c in tenant_document_classes()
        }
        for report in reports:
            assert (report.missing_tenant, report.old_indexes, report.new_indexes) == (0, [], []), report

        # The same token and the same data.
        current = client.get(CURRENT, headers=home_headers)
        assert current.status_code == 200
        assert current.json["slug"] == "default"
        campaigns = client.get(f"{API}/campaigns", headers=home_headers)
        assert campaigns.status_code == 200
        assert [item["id"] for item in campaigns.json["items"]] == [ids["campaign"]]
        member = client.get(f"{API}/users/{ids['user']}", headers=home_headers)
        assert member.status_code == 200

        # Logins by email alone still find the default tenant.
        response = login(client)
        assert response.status_code == 200, response.json
        assert response.json["tenant"]["slug"] == "default"

        # Hints are read again.
        mismatch = client.get(CURRENT, headers={**home_headers, "X-Tenant-Id": "globex"})
        assert mismatch.status_code == 403
        assert error_code(mismatch) == "tenant_mismatch"
        unknown = client.get(CURRENT, headers={**home_headers, "X-Tenant-Id": "no-such-tenant"})
        assert unknown.status_code == 404
        assert login(client, headers={"X-Tenant-Id": "globex"}).status_code == 401

        # And new tenants may sign up.
        assert client.post(f"{TENANTS}/signup", json=SIGNUP).status_code == 201
