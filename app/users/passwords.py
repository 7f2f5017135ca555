"""Password hashing with argon2id (argon2-cffi's defaults, cheaper parameters under APP_ENV=testing)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import CHEAPEST
from flask import Flask, current_app, has_app_context

EXTENSION = "passwords"


class Hasher:
    """An argon2id hasher, and a hash of its own that a missing account is checked against, so that a
    miss costs what a wrong password costs."""

    def __init__(self, hasher: PasswordHasher):
        self.hasher = hasher
        self.dummy_hash = hasher.hash("a password nobody has")


_DEFAULT = Hasher(PasswordHasher())


def init_app(app: Flask) -> None:
    """Keep the app's hasher on the app: argon2's cheapest profile in tests (TESTING), where thousands of
    hashes are made, its defaults otherwise."""
    testing = app.config["TESTING"]
    app.extensions[EXTENSION] = Hasher(PasswordHasher.from_parameters(CHEAPEST)) if testing else _DEFAULT


def _hasher() -> Hasher:
    """The hasher of the app in context; argon2's defaults outside one (a script's own hashing)."""
    hasher: Hasher = current_app.extensions[EXTENSION] if has_app_context() else _DEFAULT
    return hasher


def hash_password(password: str) -> str:
    return _hasher().hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Tell whether `password` matches; a missing hash costs the same time as a wrong password."""
    try:
        hasher = _hasher()
        return (
            hasher.hasher.verify(password_hash or hasher.dummy_hash, password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False
