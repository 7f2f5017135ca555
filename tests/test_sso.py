"""Single sign-on with OpenID Connect: configuring it, and the real login flow against a small provider
running on 127.0.0.1 (tests/fake_oidc.py), every refusal audited, and the password rule."""

from __future__ import annotations

import socket
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app import crypto
from app.audit.models import AuditLog
from app.auth.models import SsoLoginState
from app.auth.oidc import SsoFailed
from app.auth.sso import _user_of, password_login_allowed
from app.clock import utcnow
from app.tenancy.cache import tenant_cache
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.users.models import EmailDirectory, User
from app.validators import provider_url_problem

from .conftest import PASSWORD
from .fake_oidc import s256
from .support import (
    bearer,
    configure_sso,
    impersonation_headers,
    run_together,
    sso_body,
    sso_callback_url,
    sso_start,
)

SETTINGS = "/api/v1/tenants/current/settings"
START = "/api/v1/auth/sso/start"
CALLBACK = "/api/v1/auth/sso/callback"
BRANDING = "/api/v1/tenants/branding"
CURRENT = "/api/v1/tenants/current"
REFRESH = "/api/v1/auth/refresh"


def sso_login(client, slug="acme"):
    return client.get(sso_callback_url(client, slug))


def password_login(client, email, slug="acme"):
    return client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}, query_string={"tenant": slug}
    )


def stored_tenant(slug="acme") -> Tenant:
    return Tenant.objects.get(slug=slug)


def refusals(tenant) -> list[dict]:
    with tenant_scope(tenant):
        return [entry.summary for entry in AuditLog.objects(action="auth.sso_refused").order_by("created_at")]


def assert_refused(response, tenant, reason, status=401, code="sso_failed"):
    """The answer is the refusal, and the tenant's audit log says why."""
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code
    assert refusals(tenant)[-1]["reason"] == reason


def users_of(tenant) -> list[str]:
    with tenant_scope(tenant):
        return sorted(user.email for user in User.objects)


def update_tenant(tenant, **changes) -> None:
    Tenant.objects(id=tenant.id).update(**changes)
    tenant_cache().clear()


# -- configuring --------------------------------------------------------------------------------------


class TestConfigure:
    def test_the_owner_configures_it_and_the_secret_is_never_returned(self, client, auth_headers, provider):
        body = sso_body(provider, defaultRole="admin", passwordLoginAllowed=False)
        secret = body["clientSecret"]
        response = configure_sso(client, auth_headers, body)
        assert response.status_code == 200
        expected = {
            "configured": True,
            "issuer": provider.issuer("acme"),
            "clientId": "acme-app",
            "allowedDomains": ["acme.example.com"],
            "defaultRole": "admin",
            "passwordLoginAllowed": False,
        }
        assert response.json["settings"]["security"]["sso"] == expected
        current = client.get("/api/v1/tenants/current", headers=auth_headers)
        assert current.json["settings"]["security"]["sso"] == expected
        stored = stored_tenant().settings.security.sso
        assert stored.client_secret_encrypted != secret
        assert crypto.decrypt(stored.client_secret_encrypted) == secret
        export = client.get("/api/v1/tenants/current/export", headers=auth_headers)
        texts = [answer.get_data(as_text=True) for answer in (response, current, export)]
        audit = client.get("/api/v1/audit-logs", headers=auth_headers)
        for text in [*texts, audit.get_data(as_text=True)]:
            assert secret not in text and stored.client_secret_encrypted not in text
            assert 'clientSecret"' not in text and "clientSecretEncrypted" not in text
        assert '"sso"' in texts[2]
        entry = next(e for e in audit.json["items"] if e["action"] == "tenant.settings_updated")
        assert entry["summary"]["security"]["sso"]["issuer"] == provider.issuer("acme")
        assert entry["summary"]["security"]["sso"]["clientSecretChanged"] is True

    def test_a_tenant_without_it_shows_it_unconfigured(self, client, auth_headers):
        sso = client.get("/api/v1/tenants/current", headers=auth_headers).json["settings"]["security"]["sso"]
        assert sso == {
            "configured": False,
            "issuer": None,
            "clientId": None,
            "allowedDomains": [],
            "defaultRole": "member",
            "passwordLoginAllowed": True,
        }

    def test_admins_and_members_may_not_change_it(self, client, tenant, make_user, headers_for, provider):
        for role in ("admin", "member"):
            response = configure_sso(client, headers_for(make_user(tenant, role)), sso_body(provider))
            assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
        assert not stored_tenant().settings.security.sso.configured

    def test_superadmins_may_not_change_it_nor_impersonators(
        self, client, tenant, owner, superadmin_headers, provider
    ):
        as_superadmin = {**superadmin_headers, "X-Tenant-Id": "acme"}
        response = configure_sso(client, as_superadmin, sso_body(provider))
        assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
        impersonation = client.post(
            f"/api/v1/tenants/{tenant.id}/impersonate",
            headers=superadmin_headers,
            json={"reason": "support ticket 42", "userId": str(owner.id)},
        )
        token = impersonation.json["accessToken"]
        response = configure_sso(client, {"Authorization": f"Bearer {token}"}, sso_body(provider))
        assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
        assert not stored_tenant().settings.security.sso.configured

    def test_an_admin_still_changes_the_other_security_settings(self, client, tenant, make_user, headers_for):
        headers = headers_for(make_user(tenant, "admin"))
        body = {"security": {"ipWhitelist": ["127.0.0.0/8"]}}
        response = client.patch(SETTINGS, headers=headers, json=body)
        assert response.status_code == 200
        assert stored_tenant().settings.security.ip_whitelist == ["127.0.0.0/8"]

    def test_it_needs_the_sso_feature(self, client, other_headers, provider):
        response = configure_sso(client, other_headers, sso_body(provider))  # globex is on the starter plan
        assert response.status_code == 403 and response.json["error"]["code"] == "feature_not_available"
        assert not stored_tenant("globex").settings.security.sso.configured

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"issuer": "ftp://idp.example.com"}, "issuer"),
            ({"issuer": "http://idp.example.com"}, "issuer"),
            ({"issuer": "https://idp.example.com/?tenant=acme"}, "issuer"),
            ({"issuer": "https://user:pw@idp.example.com"}, "issuer"),
            ({"issuer": "not a url"}, "issuer"),
            ({"allowedDomains": ["Acme.example.com"]}, "allowedDomains"),
            ({"allowedDomains": ["acme"]}, "allowedDomains"),
            ({"allowedDomains": ["*.acme.example.com"]}, "allowedDomains"),
            ({"allowedDomains": []}, "allowedDomains"),
            ({"allowedDomains": "acme.example.com"}, "allowedDomains"),
            ({"defaultRole": "owner"}, "defaultRole"),
            ({"clientId": ""}, "clientId"),
            ({"clientSecret": ""}, "clientSecret"),
            ({"passwordLoginAllowed": "sometimes"}, "passwordLoginAllowed"),
            ({"scope": "everything"}, "scope"),
        ],
    )
    def test_bad_values_are_422_and_nothing_changes(self, client, auth_headers, provider, changes, field):
        before = stored_tenant().to_mongo().to_dict()
        response = configure_sso(client, auth_headers, sso_body(provider, **changes))
        assert response.status_code == 422
        assert field in response.json["error"]["details"]["security"]["sso"]
        assert stored_tenant().to_mongo().to_dict() == before

    def test_a_first_configuration_must_be_complete(self, client, auth_headers, provider):
        response = configure_sso(
            client, auth_headers, {"issuer": provider.issuer("acme"), "clientId": "acme-app"}
        )
        assert response.status_code == 422
        details = response.json["error"]["details"]["security"]["sso"]
        assert set(details) == {"clientSecret"}
        response = configure_sso(client, auth_headers, {**sso_body(provider), "allowedDomains": None})
        assert response.status_code == 422
        assert not stored_tenant().settings.security.sso.configured

    def test_a_change_keeps_the_secret_but_a_new_provider_needs_a_new_one(
        self, client, auth_headers, provider, acme_sso
    ):
        encrypted = stored_tenant().settings.security.sso.client_secret_encrypted
        response = configure_sso(
            client, auth_headers, {"allowedDomains": ["acme.example.com", "acme.example.org"]}
        )
        assert response.status_code == 200
        sso = stored_tenant().settings.security.sso
        assert sso.client_secret_encrypted == encrypted and sso.allowed_domains == [
            "acme.example.com",
            "acme.example.org",
        ]
        for change in ({"issuer": provider.issuer("globex")}, {"clientId": "another-app"}):
            response = configure_sso(client, auth_headers, change)
            assert response.status_code == 422
            assert "clientSecret" in response.json["error"]["details"]["security"]["sso"]
        assert stored_tenant().settings.security.sso.issuer == provider.issuer("acme")

    def test_null_removes_it(self, client, auth_headers, acme_sso):
        response = configure_sso(client, auth_headers, None)
        assert response.status_code == 200
        assert response.json["settings"]["security"]["sso"]["configured"] is False
        assert stored_tenant().settings.security.sso.client_secret_encrypted is None
        assert sso_start(client).status_code == 404

    def test_http_issuers_are_for_this_machine_outside_production(self):
        assert provider_url_problem("http://127.0.0.1:8080/realm", production=False) is None
        assert provider_url_problem("http://localhost/realm", production=False) is None
        assert provider_url_problem("http://127.0.0.1:8080/realm", production=True) is not None
        assert provider_url_problem("http://10.0.0.5/realm", production=False) is not None
        assert provider_url_problem("https://login.example.com/realm", production=True) is None
        assert provider_url_problem("https://login.example.com:99999/", production=False) is not None


# -- the login flow ---------------------------------------------------------------------------------


class TestLogin:
    def test_start_redirects_to_the_provider_with_state_nonce_and_pkce(
        self, client, tenant, provider, acme_sso
    ):
        response = sso_start(client)
        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert (
            f"{location.scheme}://{location.netloc}{location.path}" == provider.issuer("acme") + "/authorize"
        )
        query = {name: values[0] for name, values in parse_qs(location.query).items()}
        assert query["response_type"] == "code" and query["client_id"] == "acme-app"
        assert query["redirect_uri"] == "http://localhost/api/v1/auth/sso/callback"
        assert "openid" in query["scope"].split() and "email" in query["scope"].split()
        assert query["code_challenge_method"] == "S256"
        flow = SsoLoginState.objects.get(state=query["state"])
        assert flow.tenant_id == tenant.id and flow.nonce == query["nonce"] and flow.used_at is None
        assert s256(flow.code_verifier) == query["code_challenge"]
        assert acme_sso["clientSecret"] not in response.headers["Location"]

    def test_a_first_login_creates_the_user_and_the_next_finds_it(self, client, tenant, provider, acme_sso):
        response = sso_login(client)
        assert response.status_code == 200, response.json
        body = response.json
        assert body["user"]["email"] == "dana@acme.example.com" and body["user"]["role"] == "member"
        assert body["user"]["name"] == "Dana Scully" and body["tenant"]["slug"] == "acme"
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
        assert me.status_code == 200 and me.json["user"]["id"] == body["user"]["id"]
        assert stored_tenant().usage.users == 2  # the owner, and the new user
        assert provider.token_requests[-1]["auth"] == "basic"
        assert "code_verifier" in provider.token_requests[-1]["form"]

        again = sso_login(client)
        assert again.status_code == 200
        assert again.json["user"]["id"] == body["user"]["id"]
        assert stored_tenant().usage.users == 2
        with tenant_scope(tenant):
            user = User.objects.get(email="dana@acme.example.com")
            assert user.password_hash and user.last_login_at is not None
            actions = [entry.action for entry in AuditLog.objects.order_by("created_at")]
        assert actions.count("auth.sso_login") == 2 and actions.count("user.created") == 1
        assert EmailDirectory.objects(email="dana@acme.example.com").count() == 1

    def test_the_default_role_is_the_configured_one(self, client, auth_headers, provider, acme_sso):
        assert configure_sso(client, auth_headers, {"defaultRole": "admin"}).status_code == 200
        assert sso_login(client).json["user"]["role"] == "admin"

    def test_an_existing_user_keeps_its_account_and_role(self, client, owner, provider, acme_sso):
        provider.sign_in_as(email=owner.email.upper(), name="Someone Else")
        body = sso_login(client).json
        assert body["user"]["id"] == str(owner.id) and body["user"]["role"] == "owner"
        assert body["user"]["name"] == owner.name

    def test_the_user_is_made_in_that_tenant_only(self, client, tenant, owner, make_user, provider, acme_sso):
        initech = create_tenant("Initech", "initech", plan="professional")
        make_user(initech, "owner", email="dana@acme.example.com")
        assert sso_login(client).status_code == 200
        assert users_of(tenant) == sorted(["dana@acme.example.com", owner.email])
        with tenant_scope(initech):
            assert User.objects.count() == 1
        assert EmailDirectory.objects(email="dana@acme.example.com").count() == 2

    def test_the_dashboard_landing_sends_the_provider_back_to_the_dashboard(
        self, client, tenant, provider, acme_sso
    ):
        """The login page's button: the provider sends the browser to /dashboard/sso, whose page hands
        what it got to /auth/sso/callback (the code is exchanged with the redirect URI it was issued for)."""
        response = client.get(START, query_string={"tenant": "acme", "landing": "dashboard"})
        assert response.status_code == 302
        query = parse_qs(urlsplit(response.headers["Location"]).query)
        assert query["redirect_uri"] == ["http://localhost/dashboard/sso"]
        answer = requests.get(response.headers["Location"], allow_redirects=False, timeout=5)
        back = urlsplit(answer.headers["Location"])
        assert back.path == "/dashboard/sso"
        login = client.get(f"/api/v1/auth/sso/callback?{back.query}")
        assert login.status_code == 200, login.json
        assert login.json["user"]["email"] == "dana@acme.example.com"
        assert provider.token_requests[-1]["form"]["redirect_uri"] == "http://localhost/dashboard/sso"

    def test_an_unknown_landing_is_422(self, client, tenant, provider, acme_sso):
        response = client.get(START, query_string={"tenant": "acme", "landing": "https://evil.example.com"})
        assert response.status_code == 422 and "landing" in response.json["error"]["details"]

    def test_the_public_branding_says_whether_login_pages_offer_it(self, client, tenant, provider, acme_sso):
        def offered() -> bool:
            return client.get(BRANDING, query_string={"tenant": "acme"}).json["tenant"]["sso"]

        assert offered() is True
        update_tenant(tenant, set__settings__security__sso_enabled=False)
        assert offered() is False  # configured, but switched off
        update_tenant(tenant, set__settings__security__sso_enabled=True, set__features={"sso": False})
        assert offered() is False  # not in the plan any more
        update_tenant(tenant, set__features={})
        assert offered() is True

    def test_a_tenant_without_it_offers_none(self, client, tenant):
        assert client.get(BRANDING, query_string={"tenant": "acme"}).json["tenant"]["sso"] is False

    def test_start_needs_a_tenant(self, client, provider, acme_sso):
        response = client.get(START)
        assert response.status_code == 409 and response.json["error"]["code"] == "tenant_required"

    def test_a_tenant_without_it_is_404(self, client, tenant, provider):
        assert_refused(sso_start(client), tenant, "not_configured", status=404, code="sso_not_configured")

    def test_a_plan_without_it_is_403(self, client, tenant, provider, acme_sso):
        url = sso_callback_url(client)
        update_tenant(tenant, set__features={"sso": False})
        assert_refused(
            sso_start(client), tenant, "feature_not_available", status=403, code="feature_not_available"
        )
        assert_refused(
            client.get(url), tenant, "feature_not_available", status=403, code="feature_not_available"
        )

    def test_the_state_is_kept_for_a_while_past_its_expiry_then_dropped(self, app):
        info = SsoLoginState._get_collection().index_information().values()
        ttl = [index for index in info if "expireAfterSeconds" in index]
        assert ttl and ttl[0]["key"] == [("expiresAt", 1)] and ttl[0]["expireAfterSeconds"] == 3600


# -- refusals -------------------------------------------------------------------------------------------


class TestRefusals:
    def test_a_replayed_state(self, client, tenant, provider, acme_sso):
        url = sso_callback_url(client)
        assert client.get(url).status_code == 200
        assert_refused(client.get(url), tenant, "state_replayed")

    def test_an_unknown_state(self, client, tenant, provider, acme_sso):
        response = client.get(CALLBACK, query_string={"state": "made-up", "code": "x"})
        assert response.status_code == 401 and response.json["error"]["details"]["reason"] == "state_unknown"
        # A hint is anyone's to send: a state this service never issued writes nothing into its log.
        hinted = client.get(CALLBACK, query_string={"state": "made-up", "code": "x", "tenant": "acme"})
        assert hinted.status_code == 401 and hinted.json["error"]["details"]["reason"] == "state_unknown"
        assert refusals(tenant) == []

    def test_an_expired_state(self, client, tenant, owner, provider, acme_sso):
        url = sso_callback_url(client)
        state = parse_qs(urlsplit(url).query)["state"][0]
        SsoLoginState.objects(state=state).update(set__expires_at=utcnow() - timedelta(seconds=1))
        assert_refused(client.get(url), tenant, "state_expired")
        assert users_of(tenant) == [owner.email]

    def test_a_wrong_nonce(self, client, tenant, provider, acme_sso):
        provider.overrides = {"nonce": "someone-elses-nonce"}
        assert_refused(sso_login(client), tenant, "nonce_mismatch")

    def test_an_id_token_of_another_providers_issuer(self, client, tenant, provider, acme_sso):
        provider.overrides = {"iss": provider.issuer("globex")}
        assert_refused(sso_login(client), tenant, "issuer_mismatch")

    def test_an_id_token_for_another_tenants_client(self, client, tenant, provider, acme_sso):
        provider.overrides = {"aud": "globex-app"}
        assert_refused(sso_login(client), tenant, "audience_mismatch")

    def test_a_code_of_another_tenants_login(
        self, client, tenant, make_user, headers_for, provider, acme_sso
    ):
        initech = create_tenant("Initech", "initech", plan="professional")
        body = sso_body(provider, client_id="initech-app", allowedDomains=["initech.example.com"])
        assert configure_sso(client, headers_for(make_user(initech, "owner")), body).status_code == 200
        ours = parse_qs(urlsplit(sso_callback_url(client, "acme")).query)
        theirs = parse_qs(urlsplit(sso_callback_url(client, "initech")).query)
        response = client.get(CALLBACK, query_string={"state": ours["state"][0], "code": theirs["code"][0]})
        assert_refused(response, tenant, "code_refused")
        assert response.json["error"]["details"]["error"] == "invalid_grant"

    def test_a_callback_naming_another_tenant(self, client, tenant, other_tenant, provider, acme_sso):
        url = sso_callback_url(client)
        assert_refused(client.get(url + "&tenant=globex"), tenant, "tenant_mismatch")

    def test_a_signature_by_another_key(self, client, tenant, provider, acme_sso):
        provider.sign_with = provider.rogue_key
        assert_refused(sso_login(client), tenant, "id_token_signature")

    def test_a_signature_by_another_realms_key(self, client, tenant, provider, acme_sso):
        provider.sign_with = provider.keys["globex"]
        assert_refused(sso_login(client), tenant, "id_token_signature")

    def test_an_expired_id_token(self, client, tenant, provider, acme_sso):
        now = int(utcnow().timestamp())
        provider.overrides = {"iat": now - 900, "exp": now - 600}
        assert_refused(sso_login(client), tenant, "id_token_expired")

    def test_an_email_outside_the_allowed_domains(self, client, tenant, owner, provider, acme_sso):
        provider.sign_in_as(email="eve@acme.example.com.evil.test")
        response = sso_login(client)
        assert_refused(response, tenant, "email_domain_not_allowed")
        assert response.json["error"]["details"]["domain"] == "acme.example.com.evil.test"
        assert users_of(tenant) == [owner.email]

    def test_an_unverified_email(self, client, tenant, provider, acme_sso):
        provider.sign_in_as(email_verified=False)
        assert_refused(sso_login(client), tenant, "email_not_verified")

    def test_a_deactivated_user(self, client, tenant, make_user, provider, acme_sso):
        user = make_user(tenant, "member", email="dana@acme.example.com")
        with tenant_scope(tenant):
            User.objects(id=user.id).update(set__active=False)
        assert_refused(sso_login(client), tenant, "user_deactivated")

    def test_the_users_limit(self, client, tenant, owner, provider, acme_sso):
        update_tenant(tenant, set__limits={"users": 1})
        response = sso_login(client)
        assert_refused(response, tenant, "limit_exceeded", status=403, code="limit_exceeded")
        assert response.json["error"]["details"]["resource"] == "users"
        assert users_of(tenant) == [owner.email]
        assert stored_tenant().usage.users == 1

    def test_the_provider_says_no(self, client, tenant, provider, acme_sso):
        provider.authorize_error = "access_denied"
        response = sso_login(client)
        assert_refused(response, tenant, "provider_error")
        assert response.json["error"]["details"]["error"] == "access_denied"

    def test_a_wrong_client_secret(self, client, tenant, provider, acme_sso):
        provider.register_client("acme-app")  # the provider has a new secret; the tenant the old one
        response = sso_login(client)
        assert_refused(response, tenant, "code_refused")
        assert response.json["error"]["details"]["error"] == "invalid_client"

    def test_a_provider_that_cannot_be_reached(self, client, tenant, auth_headers, provider):
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        body = {**sso_body(provider), "issuer": f"http://127.0.0.1:{port}/acme"}
        assert configure_sso(client, auth_headers, body).status_code == 200
        response = sso_start(client)
        assert_refused(response, tenant, "provider_unreachable", status=503, code="sso_provider_unavailable")

    def test_a_discovery_document_of_another_issuer(self, client, tenant, provider, acme_sso):
        provider.discovery_issuer = provider.issuer("globex")
        response = sso_start(client)
        assert_refused(response, tenant, "discovery_issuer_mismatch", status=502, code="sso_provider_error")

    def test_a_suspended_tenant(self, client, tenant, provider, acme_sso):
        url = sso_callback_url(client)
        update_tenant(tenant, set__status="suspended")
        assert_refused(client.get(url), tenant, "tenant_suspended", status=403, code="tenant_suspended")


# -- password logins while single sign-on is on ---------------------------------------------------------


def user_named(tenant, email) -> User:
    with tenant_scope(tenant):
        return User.objects.get(email=email)


class TestSubjects:
    """The provider's subject decides who signs in once it is bound; the email only finds the user
    at a first single sign-on."""

    def test_the_first_login_binds_the_subject(self, client, tenant, provider, acme_sso):
        assert sso_login(client).status_code == 200
        user = user_named(tenant, "dana@acme.example.com")
        assert (user.sso_issuer, user.sso_subject) == (provider.issuer("acme"), "person-1")

    def test_an_existing_user_is_bound_at_their_first_sso_login(
        self, client, tenant, make_user, provider, acme_sso
    ):
        user = make_user(tenant, "admin", email="dana@acme.example.com")
        response = sso_login(client)
        assert response.status_code == 200 and response.json["user"]["id"] == str(user.id)
        assert user_named(tenant, user.email).sso_subject == "person-1"

    def test_a_new_email_at_the_provider_keeps_the_same_user(self, client, tenant, owner, provider, acme_sso):
        first = sso_login(client).json["user"]["id"]
        provider.sign_in_as(email="dana.scully@acme.example.com")
        response = sso_login(client)
        assert response.status_code == 200 and response.json["user"]["id"] == first
        assert users_of(tenant) == sorted([owner.email, "dana@acme.example.com"])

    def test_an_email_given_to_another_person_is_refused(self, client, tenant, provider, acme_sso):
        first = sso_login(client).json["user"]["id"]
        provider.sign_in_as(sub="person-2")  # the provider gave dana's address to someone else
        assert_refused(sso_login(client), tenant, "subject_mismatch")
        assert str(user_named(tenant, "dana@acme.example.com").id) == first

    def test_a_provider_the_owner_configures_anew_binds_again(
        self, client, tenant, auth_headers, provider, acme_sso
    ):
        first = sso_login(client).json["user"]["id"]
        body = sso_body(provider, realm="globex", client_id="acme-new")
        assert configure_sso(client, auth_headers, body).status_code == 200
        provider.sign_in_as(sub="globex-person-1")
        response = sso_login(client)
        assert response.status_code == 200 and response.json["user"]["id"] == first
        assert user_named(tenant, "dana@acme.example.com").sso_issuer == provider.issuer("globex")

    def test_of_two_people_signing_in_first_with_one_address_at_once_one_is_bound(
        self, app, tenant, make_user, provider, acme_sso, frequent_thread_switches
    ):
        sso = stored_tenant().settings.security.sso
        for repetition in range(10):
            user = make_user(tenant, "member", email=f"shared{repetition}@acme.example.com")

            def first_login(index, email=user.email, repetition=repetition):
                claims = {"sub": f"person-{repetition}-{index}", "email": email, "email_verified": True}
                with app.app_context(), tenant_scope(tenant):
                    return _user_of(sso, claims)[0].id

            results = run_together(2, first_login)
            signed_in = [r for r in results if not isinstance(r, BaseException)]
            refused = [r for r in results if isinstance(r, SsoFailed)]
            assert signed_in == [user.id] and len(refused) == 1, results
            assert refused[0].details["reason"] == "subject_mismatch"
            winner = results.index(user.id)
            assert user_named(tenant, user.email).sso_subject == f"person-{repetition}-{winner}"


class TestProviderDocuments:
    def test_discovery_and_keys_are_fetched_once_for_many_logins(self, client, provider, acme_sso):
        assert sso_login(client).status_code == 200
        fetched = dict(provider.fetches)
        for _ in range(3):
            assert sso_login(client).status_code == 200
        assert provider.fetches == fetched
        assert fetched[("acme", "jwks")] == 1

    def test_keys_the_provider_rotated_are_fetched_again(self, client, provider, acme_sso):
        assert sso_login(client).status_code == 200
        provider.rotate_key("acme")
        assert sso_login(client).status_code == 200
        assert provider.fetches[("acme", "jwks")] == 2

    def test_an_unknown_key_fetches_the_keys_once_more_then_refuses(self, client, tenant, provider, acme_sso):
        assert sso_login(client).status_code == 200
        provider.sign_with = provider.keys["globex"]
        assert_refused(sso_login(client), tenant, "id_token_signature")
        assert provider.fetches[("acme", "jwks")] == 2


class TestSsoRateLimit:
    @pytest.fixture
    def settings(self):
        return {"LOGIN_RATE_LIMIT_PER_IP": "3/minute"}

    def test_starts_and_callbacks_are_counted_per_address(self, client, provider, acme_sso):
        for _ in range(3):
            assert sso_start(client).status_code == 302
        refused = sso_start(client)
        assert refused.status_code == 429 and refused.json["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        callback = client.get(CALLBACK, query_string={"state": "s", "code": "c"})
        assert callback.status_code == 429
        assert provider.fetches[("acme", "discovery")] <= 1


class TestPasswordLogin:
    @pytest.fixture
    def sso_only(self, client, auth_headers, acme_sso):
        response = configure_sso(client, auth_headers, {"passwordLoginAllowed": False})
        assert response.status_code == 200

    def test_members_and_admins_are_sent_to_single_sign_on(self, client, tenant, make_user, sso_only):
        for role in ("member", "admin"):
            response = password_login(client, make_user(tenant, role).email)
            assert response.status_code == 403 and response.json["error"]["code"] == "sso_required"

    def test_owners_keep_their_password(self, client, owner, sso_only):
        assert password_login(client, owner.email).status_code == 200

    def test_a_wrong_password_reveals_nothing(self, client, tenant, make_user, sso_only):
        email = make_user(tenant, "member").email
        response = client.post(
            "/api/v1/auth/login", json={"email": email, "password": "wrong"}, query_string={"tenant": "acme"}
        )
        assert response.status_code == 401 and response.json["error"]["code"] == "invalid_credentials"

    def test_passwords_work_where_it_is_allowed_or_cannot_be_used(
        self, client, tenant, auth_headers, make_user, acme_sso
    ):
        member = make_user(tenant, "member")
        assert password_login(client, member.email).status_code == 200
        assert configure_sso(client, auth_headers, {"passwordLoginAllowed": False}).status_code == 200
        assert password_login(client, member.email).status_code == 403
        update_tenant(tenant, set__features={"sso": False})
        assert password_login(client, member.email).status_code == 200
        assert password_login_allowed(stored_tenant(), member)

    def test_turning_passwords_off_ends_the_password_sessions_of_members(
        self, client, tenant, auth_headers, make_user, acme_sso
    ):
        member = make_user(tenant, "member")
        issued = password_login(client, member.email).json
        session = bearer(issued["accessToken"])
        assert client.get(CURRENT, headers=session).status_code == 200
        assert configure_sso(client, auth_headers, {"passwordLoginAllowed": False}).status_code == 200
        response = client.get(CURRENT, headers=session)
        assert response.status_code == 401 and "single sign-on" in response.json["error"]["message"]
        assert client.post(REFRESH, headers=bearer(issued["refreshToken"])).status_code == 401
        assert client.get(CURRENT, headers=auth_headers).status_code == 200  # the owner's password
        assert configure_sso(client, auth_headers, {"passwordLoginAllowed": True}).status_code == 200
        assert client.get(CURRENT, headers=session).status_code == 200

    def test_a_superadmin_may_still_log_in_as_a_member(
        self, client, tenant, make_user, superadmin_headers, sso_only
    ):
        member = make_user(tenant, "member")
        headers = impersonation_headers(client, superadmin_headers, tenant, user_id=member.id)
        assert client.get(CURRENT, headers=headers).status_code == 200

    def test_single_sign_on_sessions_go_on(self, client, auth_headers, provider, acme_sso):
        issued = sso_login(client).json
        assert configure_sso(client, auth_headers, {"passwordLoginAllowed": False}).status_code == 200
        assert client.get(CURRENT, headers=bearer(issued["accessToken"])).status_code == 200
        refreshed = client.post(REFRESH, headers=bearer(issued["refreshToken"]))
        assert refreshed.status_code == 200
        assert client.get(CURRENT, headers=bearer(refreshed.json["accessToken"])).status_code == 200

    def test_removing_it_brings_passwords_back(self, client, tenant, auth_headers, make_user, sso_only):
        member = make_user(tenant, "member")
        assert configure_sso(client, auth_headers, None).status_code == 200
        assert password_login(client, member.email).status_code == 200


def test_sso_is_off_while_sso_enabled_is_false(client, auth_headers, provider):
    """The ssoEnabled switch of the security settings turns a complete configuration on and off."""
    assert configure_sso(client, auth_headers, sso_body(provider), enabled=False).status_code == 200
    response = sso_start(client)
    assert response.status_code == 404 and response.json["error"]["code"] == "sso_not_configured"
    assert configure_sso(client, auth_headers, {}, enabled=True).status_code == 200
    assert sso_start(client).status_code == 302
