"""Encryption at rest of the secrets the service must use again (bot tokens, webhook secrets).

ENCRYPTION_KEYS is a comma-separated list of Fernet keys: the first encrypts, all of them decrypt, so a
key is rotated by putting a new one first and re-saving (or simply keeping the old one second).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_fernet: MultiFernet | None = None


class DecryptionError(RuntimeError):
    """A stored secret cannot be decrypted with the configured keys."""


def configure(keys: list[str]) -> None:
    global _fernet
    _fernet = MultiFernet([Fernet(key.encode()) for key in keys])


def _cipher() -> MultiFernet:
    if _fernet is None:
        raise RuntimeError("app.crypto is not configured (create_app configures it)")
    return _fernet


def encrypt(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("a stored secret does not decrypt with ENCRYPTION_KEYS") from None
