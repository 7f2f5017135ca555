"""Encryption at rest of the secrets the service must use again (bot tokens, webhook secrets).

ENCRYPTION_KEYS is a comma-separated list of Fernet keys: the first encrypts, all of them decrypt, so a
key is rotated by putting a new one first and re-saving (or simply keeping the old one second).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app, has_app_context

EXTENSION = "crypto"


class DecryptionError(RuntimeError):
    """A stored secret cannot be decrypted with the configured keys."""


def init_app(app: Flask) -> None:
    """Keep the app's keys on the app (two apps in one process keep their own)."""
    app.extensions[EXTENSION] = MultiFernet([Fernet(key.encode()) for key in app.config["ENCRYPTION_KEYS"]])


def _cipher() -> MultiFernet:
    if not has_app_context():
        raise RuntimeError("app.crypto encrypts with the keys of the app in context; there is none")
    cipher: MultiFernet = current_app.extensions[EXTENSION]
    return cipher


def encrypt(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("a stored secret does not decrypt with ENCRYPTION_KEYS") from None
