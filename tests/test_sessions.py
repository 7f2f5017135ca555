"""Sessions end when the right to act changes (README "Accounts and credentials"): a new password, two-factor
authentication turned on or off, a deactivation, a deletion, the tenant requiring 2FA. The change counts
at once in the process that made it and within the cache bound in another; tokens issued after it work.
Superadmins sign in with 2FA too, and recovery codes are stored keyed and used once, races included.
(API keys and their creators: test_api_keys.py; what impersonation may not leave: test_impersonation.py)"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import pyotp
import pytest
from flask_jwt_extended import decode_token

from app.audit.models import PlatformAuditLog
from app.auth import tokens
from app.auth.two_factor import check_login_code, keyed_recovery_hash
from app.errors import InvalidCredentials
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.users.models import PlatformUser, User

from .conftest import PASSWORD
from .support import (
    audit_entries,
    bearer,
    enrol,
    error_of,
    impersonation_headers,
    in_another_worker,
    next_code,
    run_together,
    stored_document,
    update_tenant,
)

API = "/api/v1"
LOGIN = f"{API}/auth/login"
REFRESH = f"{API}/auth/refresh"
CURRENT = f"{API}/tenants/current"
SETTINGS = f"{CURRENT}/settings"
USERS = f"{API}/users"
KEYS = f"{API}/api-keys"
TWO_FA = f"{API}/auth/2fa"
NEW_PASSWORD = "a brand new passphrase"
WITH_CODE = (tokens.PASSWORD, tokens.ONE_TIME_CODE)
ENDED = (401, 401)
WORKING = (200, 200)


# -- helpers ----------------------------------------------------------------------------------------


def login(client, email, password=PASSWORD, code=None, tenant="acme"):
    body = {"email": email, "password": password, **({"code": code} if code else {})}
    return client.post(LOGIN, json=body, headers={"X-Tenant-Id": tenant} if tenant else {})


def signed_in(client, email, **kwargs) -> dict:
    """Log in through the API; return the answer (access and refresh tokens)."""
    response = login(client, email, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def usable(client, session) -> tuple[int, int]:
    """The status of a read with the session's access token and of a refresh with its refresh token."""
    read = client.get(CURRENT, headers=bearer(session["accessToken"])).status_code
    refreshed = client.post(REFRESH, headers=bearer(session["refreshToken"])).status_code
    return read, refreshed


def user_url(user) -> str:
    return f"{USERS}/{user.id}"


# -- the changes that end sessions ------------------------------------------------------------------


@pytest.fixture
def world(client, tenant, owner, make_user, headers_for):
    """An owner enrolled in 2FA (so that they may require it) and an admin whose sessions are watched."""
    enrol(client, headers_for(owner))
    return SimpleNamespace(
        client=client,
        owner_headers=headers_for(owner, methods=WITH_CODE),
        user=make_user(tenant, "admin"),
        headers_for=headers_for,
        codes=[],
        sessions=[],
    )


@dataclass(frozen=True)
class Change:
    """A change that ends the watched user's sessions, made through the API (with the user's first
    session where it is their own doing); then how they sign in afterwards (None: they cannot)."""

    name: str
    make: Callable[[SimpleNamespace], None]
    sign_in_after: Callable[[SimpleNamespace], dict] | None
    prepare: Callable[[SimpleNamespace], None] | None = None


def _ok(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)


def _own(w) -> dict[str, str]:
    return bearer(w.sessions[0]["accessToken"])


def _change_password(w):
    _ok(w.client.patch(user_url(w.user), headers=w.owner_headers, json={"password": NEW_PASSWORD}))


def _change_own_password(w):
    _ok(w.client.patch(user_url(w.user), headers=_own(w), json={"password": NEW_PASSWORD}))


def _sign_in_with_new_password(w):
    assert login(w.client, w.user.email).status_code == 401
    return signed_in(w.client, w.user.email, password=NEW_PASSWORD)


def _deactivate(w):
    _ok(w.client.patch(user_url(w.user), headers=w.owner_headers, json={"active": False}))


def _sign_in_reactivated(w):
    _ok(w.client.patch(user_url(w.user), headers=w.owner_headers, json={"active": True}))
    return signed_in(w.client, w.user.email)


def _delete(w):
    _ok(w.client.delete(user_url(w.user), headers=w.owner_headers), 204)


def _erase(w):
    _ok(w.client.delete(f"{user_url(w.user)}?erase=true", headers=w.owner_headers), 204)


def _enable_2fa(w):
    w.secret, w.codes = enrol(w.client, _own(w))


def _sign_in_with_code(w):
    assert login(w.client, w.user.email).json["error"]["code"] == "two_factor_required"
    session = signed_in(w.client, w.user.email, code=next_code(w.secret))
    assert decode_token(session["accessToken"])["amr"] == list(WITH_CODE)
    return session


def _prepare_2fa(w):
    w.secret, w.codes = enrol(w.client, w.headers_for(w.user))


def _disable_2fa(w):
    _ok(w.client.post(f"{TWO_FA}/disable", headers=_own(w), json={"code": w.codes.pop()}), 204)


def _sign_in_with_password_alone(w):
    return signed_in(w.client, w.user.email)


def _require_2fa(w):
    _ok(w.client.patch(SETTINGS, headers=w.owner_headers, json={"security": {"require2fa": True}}))


def _sign_in_by_enrolling(w):
    refused = login(w.client, w.user.email)
    assert error_of(refused, 403)["code"] == "two_factor_enrollment_required"
    enrolment = bearer(refused.json["error"]["details"]["enrollmentToken"])
    setup = w.client.post(f"{TWO_FA}/setup", headers=enrolment)
    _ok(setup)
    code = pyotp.TOTP(setup.json["secret"]).now()
    enabled = w.client.post(f"{TWO_FA}/enable", headers=enrolment, json={"code": code})
    _ok(enabled)
    assert len(enabled.json["recoveryCodes"]) == 10
    assert decode_token(enabled.json["accessToken"])["amr"] == list(WITH_CODE)
    assert w.client.post(f"{TWO_FA}/setup", headers=enrolment).status_code == 401  # used up
    return enabled.json


CHANGES = [
    Change("password changed", _change_password, _sign_in_with_new_password),
    Change("own password changed", _change_own_password, _sign_in_with_new_password),
    Change("deactivated", _deactivate, _sign_in_reactivated),
    Change("deleted", _delete, None),
    Change("erased", _erase, None),
    Change("2fa enabled", _enable_2fa, _sign_in_with_code),
    Change("2fa disabled", _disable_2fa, _sign_in_with_password_alone, prepare=_prepare_2fa),
    Change("require2fa turned on", _require_2fa, _sign_in_by_enrolling),
]


def _open_sessions(w, change, count=2):
    """Prepare the change, then sign the watched user in `count` times (as on several devices)."""
    if change.prepare:
        change.prepare(w)
    for _ in range(count):
        code = w.codes.pop() if w.codes else None
        w.sessions.append(signed_in(w.client, w.user.email, code=code))
    assert [usable(w.client, s) for s in w.sessions] == [WORKING] * count


class TestChangesEndSessions:
    @pytest.mark.parametrize("change", CHANGES, ids=lambda c: c.name)
    def test_at_once_in_this_worker_and_for_good(self, world, change):
        w = world
        _open_sessions(w, change)
        change.make(w)
        assert [usable(w.client, s) for s in w.sessions] == [ENDED, ENDED]
        refused = w.client.get(CURRENT, headers=_own(w))
        assert error_of(refused, 401)["code"] in ("token_revoked", "unauthorized")
        if change.sign_in_after is not None:
            fresh = change.sign_in_after(w)
            assert usable(w.client, fresh) == WORKING
            assert [usable(w.client, s) for s in w.sessions] == [ENDED, ENDED]

    @pytest.mark.parametrize("change", CHANGES, ids=lambda c: c.name)
    def test_within_the_cache_bound_in_another_worker(self, cache_clock, app, world, change, monkeypatch):
        w = world
        _open_sessions(w, change, count=1)
        with in_another_worker(monkeypatch):
            change.make(w)
        cache_clock[0] += app.config["AUTH_CACHE_TTL"] - 1
        assert usable(w.client, w.sessions[0]) == WORKING
        cache_clock[0] += 2
        assert usable(w.client, w.sessions[0]) == ENDED

    def test_the_message_says_to_sign_in_again(self, world):
        w = world
        _open_sessions(w, CHANGES[0], count=1)
        _change_password(w)
        error = error_of(w.client.get(CURRENT, headers=_own(w)), 401)
        assert error["code"] == "token_revoked" and "sign in again" in error["message"]

    def test_a_change_of_role_acts_at_once_without_ending_the_session(self, world):
        w = world
        _open_sessions(w, CHANGES[0], count=1)
        body = {"general": {"language": "de"}}
        _ok(w.client.patch(SETTINGS, headers=_own(w), json=body))
        _ok(w.client.patch(user_url(w.user), headers=w.owner_headers, json={"role": "member"}))
        assert error_of(w.client.patch(SETTINGS, headers=_own(w), json=body), 403)["code"] == "forbidden"
        assert usable(w.client, w.sessions[0]) == WORKING
        refreshed = w.client.post(REFRESH, headers=bearer(w.sessions[0]["refreshToken"])).json
        assert decode_token(refreshed["accessToken"])["role"] == "member"

    def test_other_users_sessions_go_on(self, world, tenant, make_user):
        w = world
        other = make_user(tenant, "member")
        theirs = signed_in(w.client, other.email)
        _open_sessions(w, CHANGES[0], count=1)
        _change_password(w)
        _deactivate(w)
        assert usable(w.client, theirs) == WORKING
        assert w.client.get(CURRENT, headers=w.owner_headers).status_code == 200

    def test_an_impersonation_of_the_user_ends_with_their_sessions(self, world, tenant, superadmin_headers):
        w = world
        acting = impersonation_headers(w.client, superadmin_headers, tenant, user_id=w.user.id)
        assert w.client.get(CURRENT, headers=acting).status_code == 200
        _change_password(w)
        assert error_of(w.client.get(CURRENT, headers=acting), 401)["code"] == "token_revoked"


class TestRequire2fa:
    def test_refused_to_a_user_without_2fa_and_nothing_changes(
        self, client, tenant, owner, make_user, headers_for
    ):
        for user in (owner, make_user(tenant, "admin")):
            response = client.patch(
                SETTINGS, headers=headers_for(user), json={"security": {"require2fa": True}}
            )
            error = error_of(response, 422)
            assert error["code"] == "validation_error" and "two-factor" in error["message"]
            assert "require2fa" in error["details"]["security"]
        assert Tenant.objects.get(id=tenant.id).settings.security.require_2fa is False
        assert audit_entries(tenant, "tenant.settings_updated") == []

    def test_refused_to_an_impersonation_of_a_user_without_2fa(
        self, client, tenant, owner, superadmin_headers
    ):
        acting = impersonation_headers(client, superadmin_headers, tenant)
        response = client.patch(SETTINGS, headers=acting, json={"security": {"require2fa": True}})
        assert error_of(response, 422)["code"] == "validation_error"

    def test_a_superadmin_and_an_admin_key_may_turn_it_on(
        self, client, tenant, owner, auth_headers, superadmin_headers
    ):
        key = client.post(KEYS, headers=auth_headers, json={"name": "ops", "role": "admin"}).json["key"]
        hinted = {**superadmin_headers, "X-Tenant-Id": "acme"}
        _ok(client.patch(SETTINGS, headers=hinted, json={"security": {"require2fa": True}}))
        _ok(client.patch(SETTINGS, headers=hinted, json={"security": {"require2fa": False}}))
        _ok(client.patch(SETTINGS, headers={"X-API-Key": key}, json={"security": {"require2fa": True}}))

    def test_only_turning_it_on_asks_for_2fa(self, client, tenant, make_user, headers_for):
        """An admin signed in through single sign-on (whose provider does the second factor) saves the
        security form of a tenant that requires 2FA already: not turning it on, so not refused."""
        update_tenant(tenant, set__settings__security__require_2fa=True)
        admin = headers_for(make_user(tenant, "admin"), methods=(tokens.FEDERATED,))
        form = {"security": {"require2fa": True, "ipWhitelist": ["127.0.0.0/8"]}}
        _ok(client.patch(SETTINGS, headers=admin, json=form))
        assert Tenant.objects.get(id=tenant.id).settings.security.ip_whitelist == ["127.0.0.0/8"]

    def test_sessions_with_a_second_factor_go_on_and_ended_ones_stay_ended(self, world, tenant, make_user):
        w = world
        member = make_user(tenant, "member")
        password_only = signed_in(w.client, member.email)
        _require_2fa(w)
        assert usable(w.client, password_only) == ENDED
        assert w.client.get(CURRENT, headers=w.owner_headers).status_code == 200
        _ok(w.client.patch(SETTINGS, headers=w.owner_headers, json={"security": {"require2fa": False}}))
        assert usable(w.client, password_only) == ENDED
        assert usable(w.client, signed_in(w.client, member.email)) == WORKING

    def test_tokens_say_how_their_holder_signed_in(self, client, owner, headers_for):
        secret, codes = enrol(client, headers_for(owner))
        with_recovery_code = signed_in(client, owner.email, code=codes[0])
        with_totp = signed_in(client, owner.email, code=next_code(secret))
        for session in (with_recovery_code, with_totp):
            for token in (session["accessToken"], session["refreshToken"]):
                assert decode_token(token)["amr"] == list(WITH_CODE)


# -- superadmins protect their accounts with 2FA -----------------------------------------------------


def superadmin_login(client, superadmin, code=None, password=PASSWORD):
    return login(client, superadmin.email, password=password, code=code, tenant=None)


class TestSuperadminTwoFactor:
    @pytest.fixture
    def enrolled(self, client, superadmin, superadmin_headers):
        """The superadmin enrolled through the API (no tenant named); their TOTP secret and codes."""
        setup = client.post(f"{TWO_FA}/setup", headers=superadmin_headers)
        _ok(setup)
        assert setup.json["qrCode"].startswith("data:image/svg+xml")
        assert pyotp.parse_uri(setup.json["otpauthUri"]).secret == setup.json["secret"]
        code = pyotp.TOTP(setup.json["secret"]).now()
        enabled = client.post(f"{TWO_FA}/enable", headers=superadmin_headers, json={"code": code})
        _ok(enabled)
        assert "accessToken" not in enabled.json  # only an enrollment token completes a login
        return SimpleNamespace(secret=setup.json["secret"], codes=enabled.json["recoveryCodes"])

    def test_login_then_needs_the_code(self, client, superadmin, enrolled):
        without = superadmin_login(client, superadmin)
        assert error_of(without, 401)["code"] == "two_factor_required"
        wrong = superadmin_login(client, superadmin, code="000000")
        assert error_of(wrong, 401)["code"] == "invalid_credentials"
        wrong_password = superadmin_login(
            client, superadmin, code=next_code(enrolled.secret), password="nope"
        )
        assert error_of(wrong_password, 401)["code"] == "invalid_credentials"
        signed = superadmin_login(client, superadmin, code=next_code(enrolled.secret))
        _ok(signed)
        assert decode_token(signed.json["accessToken"])["amr"] == list(WITH_CODE)
        assert client.get(f"{API}/tenants", headers=bearer(signed.json["accessToken"])).status_code == 200
        replayed = superadmin_login(client, superadmin, code=next_code(enrolled.secret))
        assert error_of(replayed, 401)["code"] == "invalid_credentials"

    def test_a_recovery_code_works_once_and_is_on_the_platform_trail(self, client, superadmin, enrolled):
        _ok(superadmin_login(client, superadmin, code=enrolled.codes[0]))
        assert superadmin_login(client, superadmin, code=enrolled.codes[0]).status_code == 401
        _ok(superadmin_login(client, superadmin, code=enrolled.codes[1]))
        used = PlatformAuditLog.objects(action="auth.recovery_code_used")
        assert [entry.target_id for entry in used] == [str(superadmin.id)] * 2
        assert PlatformAuditLog.objects(action="auth.two_factor_enabled").count() == 1

    def test_enrolling_ends_the_superadmins_sessions_and_impersonations(
        self, client, tenant, owner, superadmin, superadmin_headers
    ):
        session = signed_in(client, superadmin.email, tenant=None)
        acting = impersonation_headers(client, superadmin_headers, tenant)
        setup = client.post(f"{TWO_FA}/setup", headers=superadmin_headers).json
        code = pyotp.TOTP(setup["secret"]).now()
        _ok(client.post(f"{TWO_FA}/enable", headers=superadmin_headers, json={"code": code}))
        for headers in (superadmin_headers, bearer(session["accessToken"]), acting):
            assert error_of(client.get(f"{API}/auth/me", headers=headers), 401)["code"] == "token_revoked"
        assert client.post(REFRESH, headers=bearer(session["refreshToken"])).status_code == 401

    def test_disabling_ends_the_sessions_and_the_password_alone_signs_in_again(
        self, client, superadmin, enrolled, headers_for
    ):
        headers = headers_for(superadmin, methods=WITH_CODE)
        _ok(client.post(f"{TWO_FA}/disable", headers=headers, json={"code": enrolled.codes[5]}), 204)
        assert client.get(f"{API}/tenants", headers=headers).status_code == 401
        _ok(superadmin_login(client, superadmin))
        assert PlatformUser.objects.get(id=superadmin.id).recovery_code_hashes == []


# -- recovery codes: keyed, and used once -------------------------------------------------------------


class TestRecoveryCodes:
    def test_stored_only_as_keyed_hashes(self, client, tenant, owner, headers_for):
        _secret, codes = enrol(client, headers_for(owner))
        with tenant_scope(tenant):
            raw = User._get_collection().find_one({"tenantId": tenant.id, "_id": owner.id})
        stored = raw["recoveryCodeHashes"]
        assert len(stored) == len(set(stored)) == 10
        assert all(entry.startswith("hmac-sha256:") for entry in stored)
        unkeyed = {hashlib.sha256(code.encode()).hexdigest() for code in codes}
        text = repr(raw)
        for code in codes:
            assert code not in text and code.replace("-", "") not in text
        assert not any(digest in text for digest in unkeyed)

    def test_the_key_comes_from_the_secret_key(self, app_factory):
        digest = hashlib.sha256(b"abc123-def456").hexdigest()
        hashes = set()
        for secret in ("one-secret-key", "another-secret-key"):
            with app_factory(SECRET_KEY=secret).app_context():
                hashes.add(keyed_recovery_hash(digest))
        assert len(hashes) == 2

    def test_one_code_racing_in_twice_signs_in_once(
        self, app, tenant, owner, headers_for, frequent_thread_switches
    ):
        client = app.test_client()
        _secret, codes = enrol(client, headers_for(owner))

        def sign_in(_index):
            with app.test_client() as racer:
                return login(racer, owner.email, code=codes[0]).status_code

        results = run_together(8, sign_in)
        assert sorted(results) == [200] + [401] * 7
        remaining = stored_document(User, tenant, owner.id).recovery_code_hashes
        assert len(remaining) == 9

    def test_a_code_checked_against_a_copy_read_before_its_use_is_refused(
        self, client, tenant, owner, headers_for
    ):
        """What two racing requests see: both read the account before either used the code."""
        _secret, codes = enrol(client, headers_for(owner))
        with tenant_scope(tenant):
            first, second = (User.objects.get(id=owner.id) for _ in range(2))
            assert check_login_code(first, codes[0]) == [tokens.ONE_TIME_CODE]
            with pytest.raises(InvalidCredentials):
                check_login_code(second, codes[0])
            assert check_login_code(second, codes[1]) == [tokens.ONE_TIME_CODE]

    def test_different_codes_racing_in_all_sign_in(
        self, app, tenant, owner, headers_for, frequent_thread_switches
    ):
        client = app.test_client()
        _secret, codes = enrol(client, headers_for(owner))

        def sign_in(index):
            with app.test_client() as racer:
                return login(racer, owner.email, code=codes[index]).status_code

        assert run_together(5, sign_in) == [200] * 5
        assert len(stored_document(User, tenant, owner.id).recovery_code_hashes) == 5

    def test_codes_stored_unkeyed_by_an_older_version_are_keyed_by_a_command(
        self, app, client, tenant, owner, make_user, headers_for
    ):
        _secret, codes = enrol(client, headers_for(owner))
        legacy = [hashlib.sha256(code.encode()).hexdigest() for code in codes]
        with tenant_scope(tenant):  # as an older version stored them
            User._get_collection().update_one(
                {"tenantId": tenant.id, "_id": owner.id}, {"$set": {"recoveryCodeHashes": legacy}}
            )
        assert login(client, owner.email, code=codes[0]).status_code == 401
        runner = app.test_cli_runner()
        result = runner.invoke(args=["users", "key-recovery-codes"])
        assert result.exit_code == 0 and "of 1 users" in result.output, result.output
        stored = stored_document(User, tenant, owner.id).recovery_code_hashes
        assert all(entry.startswith("hmac-sha256:") for entry in stored) and not set(stored) & set(legacy)
        _ok(login(client, owner.email, code=codes[0]))
        used_one = stored_document(User, tenant, owner.id).recovery_code_hashes
        assert len(used_one) == 9
        again = runner.invoke(args=["users", "key-recovery-codes"])
        assert again.exit_code == 0 and "of 0 users" in again.output
        assert stored_document(User, tenant, owner.id).recovery_code_hashes == used_one
