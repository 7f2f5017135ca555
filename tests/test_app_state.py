"""What create_app configures is kept on the app it builds: two apps in one process do not share
their encryption keys, their password hasher or their caches by accident."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from cryptography.fernet import Fernet

from app import crypto
from app.auth.cache import auth_cache
from app.auth.cache import forget as forget_credentials
from app.tenancy.cache import forget_tenants, tenant_cache
from app.users import passwords


def test_each_app_encrypts_with_its_own_keys(app_factory):
    first = app_factory(ENCRYPTION_KEYS=[Fernet.generate_key().decode()])
    second = app_factory(ENCRYPTION_KEYS=[Fernet.generate_key().decode()])
    with first.app_context():
        secret = crypto.encrypt("bot token")
        assert crypto.decrypt(secret) == "bot token"
    with second.app_context(), pytest.raises(crypto.DecryptionError):
        crypto.decrypt(secret)
    with first.app_context():
        assert crypto.decrypt(secret) == "bot token"  # building the second app changed nothing here


def test_without_an_app_there_is_no_key_to_encrypt_with():
    with pytest.raises(RuntimeError, match="there is none"):
        crypto.encrypt("bot token")


def test_each_app_hashes_passwords_with_its_own_parameters(app_factory):
    testing = app_factory(TESTING=True)
    serving = app_factory(TESTING=False)
    cheapest, default = PasswordHasher.from_parameters(CHEAPEST), PasswordHasher()
    with testing.app_context():
        cheap_hash = passwords.hash_password("correct horse")
    with serving.app_context():
        full_hash = passwords.hash_password("correct horse")
        assert passwords.verify_password(cheap_hash, "correct horse")  # a hash says its own parameters
    assert not cheapest.check_needs_rehash(cheap_hash) and default.check_needs_rehash(cheap_hash)
    assert not default.check_needs_rehash(full_hash)
    # Outside any app (a script's own hashing): argon2's defaults.
    assert not default.check_needs_rehash(passwords.hash_password("correct horse"))


@pytest.mark.parametrize(
    ("cache", "setting", "forget"),
    [(tenant_cache, "TENANT_CACHE_TTL", forget_tenants), (auth_cache, "AUTH_CACHE_TTL", forget_credentials)],
)
def test_each_app_caches_on_its_own(app_factory, cache, setting, forget):
    first = app_factory(**{setting: 60})
    second = app_factory(**{setting: 0})
    with first.app_context():
        assert cache().ttl == 60
        assert cache().get("key", lambda: "first's") == "first's"
    with second.app_context():
        assert cache().ttl == 0  # building the second app changed nothing in the first's
        assert cache().get("key", lambda: "second's") == "second's"
        forget()  # a change in the second app's context forgets the second's entries only
    with first.app_context():
        assert cache().get("key", lambda: "loaded again") == "first's"
        forget()
        assert cache().get("key", lambda: "loaded again") == "loaded again"
    forget()  # outside any app there is no cache to forget: nothing happens
