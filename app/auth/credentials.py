"""Read the request's credential into a Principal."""

from __future__ import annotations

from flask import request

from app.errors import Unauthorized
from app.tenancy.access import Principal


def authenticate() -> Principal | None:
    """Return the caller, None without a credential; raise 401 for a credential that is not valid."""
    if request.headers.get("Authorization") or request.headers.get("X-API-Key"):
        raise Unauthorized("The credential is not valid")
    return None
