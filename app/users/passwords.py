"""Password hashing with argon2id (argon2-cffi's defaults, cheaper parameters under APP_ENV=testing)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import CHEAPEST

_hasher = PasswordHasher()
# Checked when an account does not exist, so that a miss costs what a wrong password costs.
_dummy_hash = _hasher.hash("a password nobody has")


def configure(testing: bool) -> None:
    """Use argon2's cheapest profile in tests, where thousands of hashes are made."""
    global _hasher, _dummy_hash
    _hasher = PasswordHasher.from_parameters(CHEAPEST) if testing else PasswordHasher()
    _dummy_hash = _hasher.hash("a password nobody has")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Tell whether `password` matches; a missing hash costs the same time as a wrong password."""
    try:
        return _hasher.verify(password_hash or _dummy_hash, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
