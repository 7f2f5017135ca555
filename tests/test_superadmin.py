"""The superadmin's tenant routes: list, show, change, suspend, activate, count and delete tenants."""

from __future__ import annotations

import pytest
from bson import ObjectId

from app.audit.models import PlatformAuditLog
from app.tenancy.context import unscoped
from app.tenancy.registry import tenant_document_classes
from app.tenants.admin import DELETING, fill_search_terms
from app.tenants.models import Tenant
from app.tenants.plans import PLANS
from app.tenants.service import create_tenant

from .support import audit_entries, error_code, run_together, tenant_url, update_tenant

API = "/api/v1"
TENANTS = f"{API}/tenants"
REASON = "Unpaid invoices since March"


# -- helpers ----------------------------------------------------------------------------------------


def slugs_of(response) -> list[str]:
    assert response.status_code == 200, response.json
    return sorted(item["slug"] for item in response.json["items"])


def stored(tenant) -> Tenant:
    return Tenant.objects(id=tenant.id).first()


def platform_audit(tenant_id, action: str) -> list[PlatformAuditLog]:
    return list(PlatformAuditLog.objects(tenant_id=tenant_id, action=action))


def counts_of(tenant_id) -> dict[str, int]:
    """Count the documents of every tenant collection that belong to `tenant_id`."""
    with unscoped("test: count a tenant's documents"):
        return {
            cls._get_collection_name(): cls.objects(tenant_id=tenant_id).count()
            for cls in tenant_document_classes()
        }


def create_api_key(client, headers, name: str) -> dict:
    response = client.post(f"{API}/api-keys", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def patch_settings(client, headers, timezone: str) -> None:
    response = client.patch(
        f"{TENANTS}/current/settings", json={"general": {"timezone": timezone}}, headers=headers
    )
    assert response.status_code == 200, response.json


@pytest.fixture
def many_tenants(tenant, other_tenant):
    """Acme (professional), Globex (starter) and three free tenants, one of them suspended."""
    extra = [create_tenant(f"Initech {n}", f"initech-{n}") for n in range(1, 4)]
    Tenant.objects(id=extra[0].id).update(set__status="suspended", set__suspended_reason="test")
    tenant.domain = "marketing.acme.io"
    tenant.save()
    return [tenant, other_tenant, *extra]


# -- GET /tenants ---------------------------------------------------------------------------------


class TestList:
    def test_default_page_lists_every_tenant(self, client, superadmin_headers, many_tenants):
        response = client.get(TENANTS, headers=superadmin_headers)
        assert response.status_code == 200
        body = response.json
        assert body["page"] == 1
        assert body["perPage"] == 20
        assert body["total"] == 5
        assert sorted(item["slug"] for item in body["items"]) == sorted(t.slug for t in many_tenants)
        assert {"id", "name", "slug", "status", "plan", "limits", "usage"} <= set(body["items"][0])

    def test_pages_split_the_list_without_overlap(self, client, superadmin_headers, many_tenants):
        seen = []
        for page in (1, 2, 3):
            response = client.get(f"{TENANTS}?page={page}&perPage=2", headers=superadmin_headers)
            assert response.status_code == 200
            assert response.json["page"] == page
            assert response.json["perPage"] == 2
            assert response.json["total"] == 5
            seen += [item["id"] for item in response.json["items"]]
        assert len(seen) == 5
        assert set(seen) == {str(t.id) for t in many_tenants}
        beyond = client.get(f"{TENANTS}?page=4&perPage=2", headers=superadmin_headers)
        assert beyond.json["items"] == []
        assert beyond.json["total"] == 5

    def test_per_page_of_100_is_allowed(self, client, superadmin_headers, many_tenants):
        response = client.get(f"{TENANTS}?perPage=100", headers=superadmin_headers)
        assert response.status_code == 200
        assert response.json["perPage"] == 100

    @pytest.mark.parametrize("query", ["perPage=101", "perPage=0", "page=0", "status=deleted", "plan=gold"])
    def test_bad_paging_or_filter_is_422(self, client, superadmin_headers, tenant, query):
        response = client.get(f"{TENANTS}?{query}", headers=superadmin_headers)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"

    def test_filter_by_status(self, client, superadmin_headers, many_tenants):
        suspended = client.get(f"{TENANTS}?status=suspended", headers=superadmin_headers)
        assert slugs_of(suspended) == ["initech-1"]
        assert suspended.json["total"] == 1
        active = client.get(f"{TENANTS}?status=active", headers=superadmin_headers)
        assert slugs_of(active) == ["acme", "globex", "initech-2", "initech-3"]

    def test_filter_by_plan(self, client, superadmin_headers, many_tenants):
        assert slugs_of(client.get(f"{TENANTS}?plan=starter", headers=superadmin_headers)) == ["globex"]
        free = client.get(f"{TENANTS}?plan=free", headers=superadmin_headers)
        assert slugs_of(free) == ["initech-1", "initech-2", "initech-3"]
        both = client.get(f"{TENANTS}?plan=free&status=active", headers=superadmin_headers)
        assert slugs_of(both) == ["initech-2", "initech-3"]

    @pytest.mark.parametrize(
        ("q", "expected"),
        [
            ("ACME", ["acme"]),  # name, any case
            ("gLoBeX", ["globex"]),
            ("initech-2", ["initech-2"]),  # slug
            ("Acme.IO", ["acme"]),  # domain
            ("initech", ["initech-1", "initech-2", "initech-3"]),
            ("nobody", []),
        ],
    )
    def test_search_name_slug_and_domain(self, client, superadmin_headers, many_tenants, q, expected):
        assert slugs_of(client.get(TENANTS, query_string={"q": q}, headers=superadmin_headers)) == expected

    @pytest.mark.parametrize(
        ("q", "expected"),
        [
            ("corp", ["acme"]),  # a word of the name
            ("  acme   CORP ", ["acme"]),  # white space as the name has it, any case
            ("2", ["initech-2"]),  # a part of the slug
            ("marketing", ["acme"]),  # a label of the domain
            ("io", ["acme"]),
            ("cme", []),  # the beginning of a word, not any part of it
            ("corp acme", []),
        ],
    )
    def test_search_matches_the_beginning_of_each_word(
        self, client, superadmin_headers, many_tenants, q, expected
    ):
        assert slugs_of(client.get(TENANTS, query_string={"q": q}, headers=superadmin_headers)) == expected

    def test_search_with_filters_counts_what_it_finds(self, client, superadmin_headers, many_tenants):
        for query, expected in [
            ({"q": "initech", "status": "active"}, ["initech-2", "initech-3"]),
            ({"q": "initech", "plan": "free", "status": "suspended"}, ["initech-1"]),
            ({"q": "initech", "plan": "starter"}, []),
            ({"q": "initech", "perPage": 1, "page": 2}, ["initech-2"]),
        ]:
            response = client.get(TENANTS, query_string=query, headers=superadmin_headers)
            assert slugs_of(response) == expected, query
        response = client.get(
            TENANTS, query_string={"q": "initech", "perPage": 1}, headers=superadmin_headers
        )
        assert response.json["total"] == 3

    def test_search_finds_a_renamed_tenant_by_its_new_name_only(
        self, client, superadmin_headers, many_tenants, tenant
    ):
        response = client.patch(
            tenant_url(tenant), json={"name": "Umbrella Holdings"}, headers=superadmin_headers
        )
        assert response.status_code == 200, response.json
        assert slugs_of(client.get(TENANTS, query_string={"q": "umbrella"}, headers=superadmin_headers)) == [
            "acme"
        ]
        assert slugs_of(client.get(TENANTS, query_string={"q": "corp"}, headers=superadmin_headers)) == []

    def test_tenants_stored_without_search_terms_are_found_once_filled(
        self, app, client, superadmin_headers, many_tenants
    ):
        """An older version stored no search terms: `tenants fill-search-terms` writes them, once."""
        Tenant.objects.update(unset__search_terms=True)
        assert slugs_of(client.get(TENANTS, query_string={"q": "initech"}, headers=superadmin_headers)) == []

        result = app.test_cli_runner().invoke(args=["tenants", "fill-search-terms"])
        assert result.exit_code == 0, result.output
        assert result.output == f"Wrote the search terms of {len(many_tenants)} tenants.\n"
        found = client.get(TENANTS, query_string={"q": "initech"}, headers=superadmin_headers)
        assert slugs_of(found) == ["initech-1", "initech-2", "initech-3"]
        assert slugs_of(client.get(TENANTS, query_string={"q": "acme.io"}, headers=superadmin_headers)) == [
            "acme"
        ]
        again = app.test_cli_runner().invoke(args=["tenants", "fill-search-terms"])
        assert again.output == "Wrote the search terms of 0 tenants.\n"

    def test_filling_search_terms_works_in_batches(self, client, superadmin_headers, many_tenants):
        Tenant.objects.update(unset__search_terms=True)
        assert fill_search_terms(batch_size=2) == len(many_tenants)
        found = client.get(TENANTS, query_string={"q": "initech"}, headers=superadmin_headers)
        assert slugs_of(found) == ["initech-1", "initech-2", "initech-3"]

    @pytest.mark.parametrize(("q", "expected"), [(".*", ["regex-fans"]), ("(", []), ("[a-z]+", [])])
    def test_search_treats_regex_characters_literally(
        self, client, superadmin_headers, many_tenants, q, expected
    ):
        create_tenant("Regex .* Fans", "regex-fans")
        response = client.get(TENANTS, query_string={"q": q}, headers=superadmin_headers)
        assert slugs_of(response) == expected


# -- GET /tenants/{id} -----------------------------------------------------------------------------


class TestShow:
    def test_one_tenant(self, client, superadmin_headers, tenant, other_tenant):
        response = client.get(tenant_url(other_tenant), headers=superadmin_headers)
        assert response.status_code == 200
        body = response.json
        assert body["id"] == str(other_tenant.id)
        assert body["slug"] == "globex"
        assert body["plan"] == "starter"
        assert body["limits"] == PLANS["starter"]["limits"]

    def test_unknown_id_is_404(self, client, superadmin_headers, tenant):
        response = client.get(f"{TENANTS}/{ObjectId()}", headers=superadmin_headers)
        assert response.status_code == 404
        assert error_code(response) == "not_found"

    @pytest.mark.parametrize("bad_id", ["not-an-id", "z" * 24, "12345", "0" * 25])
    def test_malformed_id_is_404(self, client, superadmin_headers, tenant, bad_id):
        response = client.get(f"{TENANTS}/{bad_id}", headers=superadmin_headers)
        assert response.status_code == 404
        assert error_code(response) == "not_found"


# -- PATCH /tenants/{id} ---------------------------------------------------------------------------


class TestPatch:
    def patch(self, client, headers, tenant, body):
        return client.patch(tenant_url(tenant), json=body, headers=headers)

    def test_name_and_plan(self, client, superadmin_headers, tenant):
        response = self.patch(
            client, superadmin_headers, tenant, {"name": "Acme Holdings", "plan": "starter"}
        )
        assert response.status_code == 200, response.json
        assert response.json["name"] == "Acme Holdings"
        assert response.json["plan"] == "starter"
        assert response.json["limits"] == PLANS["starter"]["limits"]
        assert stored(tenant).name == "Acme Holdings"
        assert stored(tenant).plan == "starter"

    def test_limit_overrides_change_the_effective_limits(self, client, superadmin_headers, tenant):
        response = self.patch(client, superadmin_headers, tenant, {"limits": {"users": 7, "webhooks": None}})
        assert response.status_code == 200, response.json
        limits = response.json["limits"]
        assert limits["users"] == 7
        assert limits["webhooks"] is None  # null is unlimited
        assert limits["campaigns"] == PLANS["professional"]["limits"]["campaigns"]
        assert response.json["limitOverrides"] == {"users": 7, "webhooks": None}
        assert stored(tenant).limits == {"users": 7, "webhooks": None}

    def test_limit_overrides_are_replaced_as_a_whole(self, client, superadmin_headers, tenant):
        self.patch(client, superadmin_headers, tenant, {"limits": {"users": 7}})
        response = self.patch(client, superadmin_headers, tenant, {"limits": {"campaigns": 3}})
        assert response.status_code == 200
        assert response.json["limitOverrides"] == {"campaigns": 3}
        assert response.json["limits"]["campaigns"] == 3
        assert response.json["limits"]["users"] == PLANS["professional"]["limits"]["users"]
        cleared = self.patch(client, superadmin_headers, tenant, {"limits": {}})
        assert cleared.json["limitOverrides"] == {}
        assert cleared.json["limits"] == PLANS["professional"]["limits"]

    def test_overrides_survive_a_plan_change(self, client, superadmin_headers, tenant):
        self.patch(client, superadmin_headers, tenant, {"limits": {"users": 7}})
        response = self.patch(client, superadmin_headers, tenant, {"plan": "free"})
        assert response.json["limits"]["users"] == 7
        assert response.json["limits"]["campaigns"] == PLANS["free"]["limits"]["campaigns"]

    def test_the_tenant_sees_its_effective_limits(self, client, superadmin_headers, auth_headers, tenant):
        self.patch(client, superadmin_headers, tenant, {"limits": {"users": 2}})
        current = client.get(f"{TENANTS}/current", headers=auth_headers)
        assert current.json["limits"]["users"] == 2

    @pytest.mark.parametrize(
        "limits",
        [{"seats": 5}, {"users": -1}, {"storage": -100}, {"users": "many"}],
    )
    def test_bad_limits_are_422_and_nothing_is_stored(self, client, superadmin_headers, tenant, limits):
        response = self.patch(client, superadmin_headers, tenant, {"name": "Changed", "limits": limits})
        assert response.status_code == 422
        assert error_code(response) == "validation_error"
        assert "limits" in response.json["error"]["details"]
        assert stored(tenant).limits == {}
        assert stored(tenant).name == "Acme Corp"

    def test_feature_overrides(self, client, superadmin_headers, tenant):
        response = self.patch(
            client, superadmin_headers, tenant, {"features": {"whiteLabel": True, "abTesting": False}}
        )
        assert response.status_code == 200, response.json
        assert response.json["features"]["whiteLabel"] is True
        assert response.json["features"]["abTesting"] is False
        assert response.json["features"]["apiAccess"] is True  # from the plan
        assert response.json["featureOverrides"] == {"whiteLabel": True, "abTesting": False}
        replaced = self.patch(client, superadmin_headers, tenant, {"features": {"aiSuggestions": True}})
        assert replaced.json["featureOverrides"] == {"aiSuggestions": True}
        assert replaced.json["features"]["whiteLabel"] is False

    def test_unknown_feature_is_422(self, client, superadmin_headers, tenant):
        response = self.patch(client, superadmin_headers, tenant, {"features": {"teleportation": True}})
        assert response.status_code == 422
        assert stored(tenant).features == {}

    def test_domain(self, client, superadmin_headers, tenant):
        response = self.patch(client, superadmin_headers, tenant, {"domain": "marketing.acme.io"})
        assert response.status_code == 200, response.json
        assert response.json["domain"] == "marketing.acme.io"
        assert stored(tenant).domain == "marketing.acme.io"

    def test_domain_of_another_tenant_is_409(self, client, superadmin_headers, tenant, other_tenant):
        assert (
            self.patch(client, superadmin_headers, tenant, {"domain": "shared.example.org"}).status_code
            == 200
        )
        response = self.patch(client, superadmin_headers, other_tenant, {"domain": "shared.example.org"})
        assert response.status_code == 409
        assert error_code(response) == "conflict"
        assert stored(other_tenant).domain is None
        assert stored(tenant).domain == "shared.example.org"

    def test_subdomain_of_the_base_domain_is_422(self, app, client, superadmin_headers, tenant):
        domain = f"shop.{app.config['BASE_DOMAIN']}"
        response = self.patch(client, superadmin_headers, tenant, {"domain": domain})
        assert response.status_code == 422
        assert "domain" in response.json["error"]["details"]
        assert stored(tenant).domain is None

    @pytest.mark.parametrize("domain", ["Acme.IO", "no-dots", "bad_label.example.com", "-x.example.com"])
    def test_malformed_domain_is_422(self, client, superadmin_headers, tenant, domain):
        response = self.patch(client, superadmin_headers, tenant, {"domain": domain})
        assert response.status_code == 422
        assert stored(tenant).domain is None

    def test_billing(self, client, superadmin_headers, tenant):
        body = {"billing": {"status": "past_due", "email": "billing@acme.example.com"}}
        response = self.patch(client, superadmin_headers, tenant, body)
        assert response.status_code == 200, response.json
        assert response.json["billing"]["status"] == "past_due"
        assert response.json["billing"]["email"] == "billing@acme.example.com"
        assert stored(tenant).billing.status == "past_due"

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "Changed", "status": "suspended"},
            {"name": "Changed", "slug": "acme-two"},
            {"name": "Changed", "usage": {"users": 0}},
            {"name": "Changed", "billing": {"status": "active", "customerRef": "cus_1"}},
            {"name": "Changed", "billing": {"status": "free-forever"}},
            {"name": "Changed", "plan": "platinum"},
        ],
    )
    def test_unknown_or_bad_fields_are_422_and_nothing_is_stored(
        self, client, superadmin_headers, tenant, body
    ):
        response = self.patch(client, superadmin_headers, tenant, body)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"
        fresh = stored(tenant)
        assert fresh.name == "Acme Corp"
        assert fresh.slug == "acme"
        assert fresh.status == "active"
        assert fresh.plan == "professional"
        assert fresh.billing.customer_ref is None
        assert audit_entries(tenant, "tenant.updated") == []

    def test_unknown_tenant_is_404(self, client, superadmin_headers, tenant):
        response = client.patch(f"{TENANTS}/{ObjectId()}", json={"name": "Ghost"}, headers=superadmin_headers)
        assert response.status_code == 404
        assert error_code(response) == "not_found"

    def test_change_is_audited_in_both_trails(self, client, superadmin, superadmin_headers, tenant):
        body = {"plan": "enterprise", "limits": {"users": 500}, "name": "Acme Global"}
        assert self.patch(client, superadmin_headers, tenant, body).status_code == 200

        [entry] = audit_entries(tenant, "tenant.updated")
        assert entry.actor.kind == "superadmin"
        assert entry.actor.id == str(superadmin.id)
        assert entry.target_id == str(tenant.id)
        assert entry.summary["changed"]["plan"] == {"from": "professional", "to": "enterprise"}
        assert entry.summary["changed"]["limits"] == {"from": {}, "to": {"users": 500}}
        assert "name" in entry.summary["fields"]

        [platform_entry] = platform_audit(tenant.id, "tenant.updated")
        assert platform_entry.actor.kind == "superadmin"
        assert platform_entry.actor.id == str(superadmin.id)
        assert platform_entry.tenant_slug == "acme"
        assert platform_entry.summary["changed"]["plan"]["to"] == "enterprise"


# -- suspend / activate ------------------------------------------------------------------------------


class TestSuspendAndActivate:
    @pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "no"}, {"reason": "x" * 501}])
    def test_reason_is_required(self, client, superadmin_headers, tenant, body):
        response = client.post(tenant_url(tenant, "suspend"), json=body, headers=superadmin_headers)
        assert response.status_code == 422
        assert error_code(response) == "validation_error"
        assert stored(tenant).status == "active"

    def test_suspend_locks_the_tenant_out_and_activate_lets_it_back(
        self, client, superadmin, superadmin_headers, tenant, auth_headers
    ):
        assert client.get(f"{TENANTS}/current", headers=auth_headers).status_code == 200

        response = client.post(
            tenant_url(tenant, "suspend"), json={"reason": REASON}, headers=superadmin_headers
        )
        assert response.status_code == 200, response.json
        assert response.json["status"] == "suspended"
        assert response.json["suspendedReason"] == REASON
        refused = client.get(f"{TENANTS}/current", headers=auth_headers)
        assert refused.status_code == 403
        assert error_code(refused) == "tenant_suspended"

        response = client.post(tenant_url(tenant, "activate"), headers=superadmin_headers)
        assert response.status_code == 200, response.json
        assert response.json["status"] == "active"
        assert response.json["suspendedReason"] is None
        again = client.get(f"{TENANTS}/current", headers=auth_headers)
        assert again.status_code == 200
        assert again.json["status"] == "active"

    def test_suspension_leaves_other_tenants_alone(
        self, client, superadmin_headers, tenant, other_owner, headers_for
    ):
        client.post(tenant_url(tenant, "suspend"), json={"reason": REASON}, headers=superadmin_headers)
        assert client.get(f"{TENANTS}/current", headers=headers_for(other_owner)).status_code == 200

    def test_both_are_audited(self, client, superadmin, superadmin_headers, tenant):
        client.post(tenant_url(tenant, "suspend"), json={"reason": REASON}, headers=superadmin_headers)
        client.post(tenant_url(tenant, "activate"), headers=superadmin_headers)

        [suspended] = audit_entries(tenant, "tenant.suspended")
        assert suspended.summary["reason"] == REASON
        assert suspended.actor.kind == "superadmin"
        assert suspended.actor.id == str(superadmin.id)
        [activated] = audit_entries(tenant, "tenant.activated")
        assert activated.actor.id == str(superadmin.id)

        [platform_suspended] = platform_audit(tenant.id, "tenant.suspended")
        assert platform_suspended.summary["reason"] == REASON
        assert platform_suspended.actor.id == str(superadmin.id)
        assert len(platform_audit(tenant.id, "tenant.activated")) == 1

    @pytest.mark.parametrize("action", ["suspend", "activate"])
    def test_unknown_tenant_is_404(self, client, superadmin_headers, tenant, action):
        url = f"{TENANTS}/{ObjectId()}/{action}"
        response = client.post(url, json={"reason": REASON}, headers=superadmin_headers)
        assert response.status_code == 404
        assert error_code(response) == "not_found"


# -- GET /tenants/stats ------------------------------------------------------------------------------


def test_stats_count_by_status_and_plan_and_add_up_usage(client, superadmin_headers, many_tenants, make_user):
    acme, globex = many_tenants[0], many_tenants[1]
    for _ in range(3):
        make_user(acme)
    make_user(globex)
    Tenant.objects(id=acme.id).update(set__usage__storage=1_000, set__usage__campaigns=4)
    Tenant.objects(id=globex.id).update(set__usage__storage=500, set__usage__webhooks=2)

    response = client.get(f"{TENANTS}/stats", headers=superadmin_headers)
    assert response.status_code == 200, response.json
    counts = response.json["tenants"]
    assert counts["total"] == 5
    assert counts["byStatus"] == {"active": 4, "suspended": 1}
    assert counts["byPlan"] == {"professional": 1, "starter": 1, "free": 3}
    usage = response.json["usage"]
    assert usage["users"] == 4
    assert usage["storage"] == 1_500
    assert usage["campaigns"] == 4
    assert usage["webhooks"] == 2
    assert usage["telegramAccounts"] == 0


def test_stats_with_no_tenants(client, superadmin_headers):
    response = client.get(f"{TENANTS}/stats", headers=superadmin_headers)
    assert response.status_code == 200
    assert response.json["tenants"]["total"] == 0


# -- DELETE /tenants/{id} ----------------------------------------------------------------------------


class TestDelete:
    @pytest.fixture
    def populated(self, client, tenant, other_tenant, owner, other_owner, make_user, headers_for):
        """Users, API keys and audit entries in both tenants; return the old credentials of `tenant`."""
        for _ in range(2):
            make_user(tenant, "member")
            make_user(other_tenant, "member")
        make_user(tenant, "admin")
        acme_headers = headers_for(owner)
        globex_headers = headers_for(other_owner)
        acme_key = create_api_key(client, acme_headers, "CI")
        create_api_key(client, acme_headers, "Zapier")
        create_api_key(client, globex_headers, "Globex CI")
        patch_settings(client, acme_headers, "Europe/Berlin")
        patch_settings(client, globex_headers, "Asia/Tokyo")
        return {"token": acme_headers, "api_key": {"X-API-Key": acme_key["key"]}}

    def test_delete_removes_every_document_of_the_tenant_only(
        self, client, superadmin_headers, tenant, other_tenant, populated
    ):
        before = counts_of(tenant.id)
        neighbour_before = counts_of(other_tenant.id)
        assert before["users"] == 4
        assert before["api_keys"] == 2
        assert before["audit_logs"] > 0
        assert neighbour_before["users"] == 3
        assert neighbour_before["api_keys"] == 1

        response = client.delete(tenant_url(tenant), headers=superadmin_headers)
        assert response.status_code == 204
        assert response.data == b""

        assert counts_of(tenant.id) == dict.fromkeys(before, 0)
        assert counts_of(other_tenant.id) == neighbour_before
        assert Tenant.objects(id=tenant.id).count() == 0
        assert Tenant.objects(id=other_tenant.id).count() == 1

    def test_old_credentials_of_the_deleted_tenant_are_401(
        self, client, superadmin_headers, tenant, other_owner, headers_for, populated
    ):
        assert client.get(f"{TENANTS}/current", headers=populated["api_key"]).status_code == 200
        client.delete(tenant_url(tenant), headers=superadmin_headers)

        for headers in (populated["token"], populated["api_key"]):
            response = client.get(f"{TENANTS}/current", headers=headers)
            assert response.status_code == 401
            assert error_code(response) == "unauthorized"
        assert client.get(f"{TENANTS}/current", headers=headers_for(other_owner)).status_code == 200

    def test_platform_trail_records_what_was_removed(
        self, client, superadmin, superadmin_headers, tenant, populated
    ):
        before = counts_of(tenant.id)
        client.delete(tenant_url(tenant), headers=superadmin_headers)

        [entry] = platform_audit(tenant.id, "tenant.deleted")
        assert entry.actor.kind == "superadmin"
        assert entry.actor.id == str(superadmin.id)
        assert entry.tenant_slug == "acme"
        assert entry.summary["name"] == "Acme Corp"
        removed = entry.summary["removed"]
        for collection, count in before.items():
            assert removed[collection] == count, collection
        assert removed["email_directory"] == before["users"]

    def test_deleting_again_is_404(self, client, superadmin_headers, tenant):
        assert client.delete(tenant_url(tenant), headers=superadmin_headers).status_code == 204
        again = client.delete(tenant_url(tenant), headers=superadmin_headers)
        assert again.status_code == 404
        assert error_code(again) == "not_found"
        assert client.get(tenant_url(tenant), headers=superadmin_headers).status_code == 404

    @pytest.mark.parametrize("action", ["activate", "suspend"])
    def test_a_tenant_being_deleted_is_neither_activated_nor_suspended_again(
        self, client, superadmin_headers, tenant, action
    ):
        # A deletion that stopped halfway: the deletion sweep finishes what stays suspended for it.
        update_tenant(tenant, set__status="suspended", set__suspended_reason=DELETING)
        body = {"reason": "again"}
        response = client.post(tenant_url(tenant, action), headers=superadmin_headers, json=body)
        assert response.status_code == 409
        assert error_code(response) == "conflict"
        stored = Tenant.objects.get(id=tenant.id)
        assert (stored.status, stored.suspended_reason) == ("suspended", DELETING)

    def test_a_change_racing_the_deletion_does_not_bring_the_tenant_back(
        self, app, superadmin_headers, tenant, frequent_thread_switches
    ):
        for repetition in range(8):
            doomed = create_tenant(f"Doomed {repetition}", f"doomed-{repetition}")

            def act(index, doomed=doomed):
                client = app.test_client()
                if index == 0:
                    return client.delete(tenant_url(doomed), headers=superadmin_headers).status_code
                if index == 1:
                    return client.post(tenant_url(doomed, "activate"), headers=superadmin_headers).status_code
                body = {"name": "Renamed"}
                return client.patch(tenant_url(doomed), headers=superadmin_headers, json=body).status_code

            deleted, activated, renamed = run_together(3, act)
            assert deleted == 204, repetition
            assert activated in (200, 404, 409) and renamed in (200, 404, 409), (activated, renamed)
            assert Tenant.objects(id=doomed.id).count() == 0, repetition

    def test_the_slug_is_free_again(self, client, superadmin_headers, tenant):
        client.delete(tenant_url(tenant), headers=superadmin_headers)
        assert create_tenant("Acme Reborn", "acme").slug == "acme"


# -- who may call the superadmin routes --------------------------------------------------------------

SUPERADMIN_ROUTES = [
    ("GET", "", None),
    ("GET", "/stats", None),
    ("GET", "/{id}", None),
    ("PATCH", "/{id}", {"name": "Hijacked", "plan": "enterprise"}),
    ("DELETE", "/{id}", None),
    ("POST", "/{id}/suspend", {"reason": REASON}),
    ("POST", "/{id}/activate", None),
    ("POST", "/{id}/impersonate", {"reason": "Just looking around"}),
]
ROUTE_IDS = [f"{method} {path or '/'}" for method, path, _ in SUPERADMIN_ROUTES]


def call(client, method: str, path: str, body, tenant, headers=None):
    url = TENANTS + path.replace("{id}", str(tenant.id))
    return client.open(url, method=method, json=body, headers=headers or {})


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
@pytest.mark.parametrize(("method", "path", "body"), SUPERADMIN_ROUTES, ids=ROUTE_IDS)
def test_tenant_roles_get_403(client, tenant, other_tenant, make_user, headers_for, role, method, path, body):
    headers = headers_for(make_user(tenant, role))
    for target in (tenant, other_tenant):
        response = call(client, method, path, body, target, headers)
        assert response.status_code == 403, (target.slug, response.json)
        assert error_code(response) == "forbidden"
        assert "X-Impersonating" not in response.headers
    for target, plan in ((tenant, "professional"), (other_tenant, "starter")):
        fresh = stored(target)
        assert fresh is not None
        assert fresh.status == "active"
        assert fresh.plan == plan
    assert PlatformAuditLog.objects.count() == 0


@pytest.mark.parametrize(("method", "path", "body"), SUPERADMIN_ROUTES, ids=ROUTE_IDS)
def test_no_credential_gets_401(client, tenant, method, path, body):
    response = call(client, method, path, body, tenant)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert stored(tenant).status == "active"


@pytest.mark.parametrize(("method", "path", "body"), SUPERADMIN_ROUTES, ids=ROUTE_IDS)
def test_an_api_key_gets_403(client, tenant, auth_headers, method, path, body):
    key = create_api_key(client, auth_headers, "admin key")["key"]
    response = call(client, method, path, body, tenant, {"X-API-Key": key})
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


# -- a superadmin on tenant routes -------------------------------------------------------------------


class TestSuperadminOnTenantRoutes:
    @pytest.mark.parametrize("hint", ["id", "slug"])
    def test_x_tenant_id_selects_the_tenant(self, client, superadmin_headers, tenant, other_tenant, hint):
        value = str(other_tenant.id) if hint == "id" else other_tenant.slug
        response = client.get(f"{TENANTS}/current", headers={**superadmin_headers, "X-Tenant-Id": value})
        assert response.status_code == 200
        assert response.json["id"] == str(other_tenant.id)
        assert response.json["slug"] == "globex"

    def test_query_parameter_selects_the_tenant(self, client, superadmin_headers, tenant):
        response = client.get(f"{TENANTS}/current?tenant=acme", headers=superadmin_headers)
        assert response.status_code == 200
        assert response.json["slug"] == "acme"

    def test_without_a_hint_the_tenant_is_required(self, client, superadmin_headers, tenant):
        response = client.get(f"{TENANTS}/current", headers=superadmin_headers)
        assert response.status_code == 409
        assert error_code(response) == "tenant_required"

    def test_a_hint_naming_no_tenant_is_404(self, client, superadmin_headers, tenant):
        response = client.get(f"{TENANTS}/current", headers={**superadmin_headers, "X-Tenant-Id": "nobody"})
        assert response.status_code == 404
        assert error_code(response) == "tenant_not_found"

    def test_a_superadmin_reaches_a_suspended_tenant(self, client, superadmin_headers, tenant):
        client.post(tenant_url(tenant, "suspend"), json={"reason": REASON}, headers=superadmin_headers)
        response = client.get(f"{TENANTS}/current", headers={**superadmin_headers, "X-Tenant-Id": "acme"})
        assert response.status_code == 200
        assert response.json["status"] == "suspended"

    def test_a_tenant_owner_cannot_name_another_tenant(self, client, auth_headers, other_tenant):
        response = client.get(f"{TENANTS}/current", headers={**auth_headers, "X-Tenant-Id": "globex"})
        assert response.status_code == 403
        assert error_code(response) == "tenant_mismatch"
