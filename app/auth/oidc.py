"""Talking to a tenant's OpenID provider (Authlib for OAuth 2.0, joserfc for the ID token's signature):
discovery, the authorization URL with nonce and PKCE (S256), the code exchange, and the checks of the ID
token. Refusals are 401 sso_failed with a `reason`; a provider that cannot be reached (or that the egress
policy refuses) is 503, one whose answer cannot be used 502. Every request to the provider follows the
egress policy (app.egress), and its endpoints must be on the issuer's host (same scheme, host and port):
a discovery document cannot send the browser, the code or the secret elsewhere. What the provider
answered is never repeated beyond its HTTP status and the error codes of RFC 6749.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from flask import current_app
from joserfc import jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet, KeySetSerialization
from joserfc.jws import JWSRegistry

from app import crypto, egress
from app.errors import AppError
from app.tenancy.cache import TTLCache
from app.tenants.models import SsoSettings
from app.validators import provider_url_problem

SCOPE = "openid email profile"
DISCOVERY_PATH = "/.well-known/openid-configuration"
HTTP_TIMEOUT = 10  # seconds, for each call to the provider
ID_TOKEN_LEEWAY = 60  # seconds of clock difference tolerated between the provider and us
# Asymmetric algorithms only: with HS256 the key would be the client secret, and "none" signs nothing.
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")
# The errors a token endpoint may answer (RFC 6749, 5.2): any other text is not repeated.
TOKEN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
CLAIM_REASONS = {
    "iss": "issuer_mismatch",
    "aud": "audience_mismatch",
    "azp": "audience_mismatch",
    "nonce": "nonce_mismatch",
}


# Discovery documents and key sets, for PROVIDER_CACHE_TTL seconds: every login needs both, and they
# change rarely. An ID token signed with a key the cached set lacks fetches the set again, once.
PROVIDER_CACHE_TTL = 300
provider_documents = TTLCache(ttl=PROVIDER_CACHE_TTL, max_entries=1_000)


class SsoFailed(AppError):
    status, code, message = 401, "sso_failed", "Single sign-on failed"


class ProviderError(AppError):
    status, code, message = 502, "sso_provider_error", "The identity provider's answer cannot be used"


class ProviderUnavailable(AppError):
    status, code, message = 503, "sso_provider_unavailable", "The identity provider cannot be reached"


def refused(reason: str, message: str, **details: Any) -> SsoFailed:
    """Build the refusal of a login, saying why in `details.reason`."""
    given = {name: value for name, value in details.items() if value is not None}
    return SsoFailed(message, details={"reason": reason, **given})


def _session(sso: SsoSettings, redirect_uri: str, with_secret: bool = False) -> OAuth2Session:
    """An OAuth 2.0 client of the tenant's provider, under the egress policy; the secret is decrypted
    only for the code exchange."""
    secret = crypto.decrypt(sso.client_secret_encrypted) if with_secret else None
    session = OAuth2Session(
        client_id=sso.client_id,
        client_secret=secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        default_timeout=HTTP_TIMEOUT,
    )
    return egress.guard(session, egress.Policy.for_tenants(current_app.config))


@contextmanager
def _calling(endpoint: str) -> Iterator[None]:
    """Turn the failures of a call to the provider's `endpoint` into 503 (unreachable, or refused by the
    egress policy) or 502 (unusable answer)."""
    try:
        yield
    except (requests.ConnectionError, requests.Timeout, egress.Unresolved):
        raise ProviderUnavailable(details={"reason": "provider_unreachable", "endpoint": endpoint}) from None
    except egress.Refused:
        raise ProviderUnavailable(
            "The egress policy refuses the identity provider's address",
            details={"reason": "provider_refused", "endpoint": endpoint},
        ) from None
    except (requests.RequestException, ValueError):
        raise ProviderError(details={"reason": "provider_bad_answer", "endpoint": endpoint}) from None


def _get_json(session: OAuth2Session, url: str, endpoint: str) -> dict[str, Any]:
    """GET a JSON object from the provider's `endpoint`, following no redirect (it could lead anywhere)."""
    with _calling(endpoint):
        response = session.request("GET", url, withhold_token=True, allow_redirects=False)
    try:
        body = response.json() if response.status_code == 200 else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderError(
            details={"reason": "provider_bad_answer", "endpoint": endpoint, "status": response.status_code}
        )
    return body


def _discover(session: OAuth2Session, sso: SsoSettings) -> dict[str, Any]:
    """The provider's discovery document, checked (cached)."""
    return provider_documents.get(("discovery", sso.issuer), lambda: _fetch_discovery(session, sso))


def _key_set(session: OAuth2Session, jwks_uri: str) -> dict[str, Any]:
    """The provider's signing keys (cached)."""
    return provider_documents.get(("jwks", jwks_uri), lambda: _get_json(session, jwks_uri, "jwks_uri"))


def _fetch_discovery(session: OAuth2Session, sso: SsoSettings) -> dict[str, Any]:
    """Read the provider's discovery document and check that it is the configured issuer's, with its
    endpoints on the issuer's host."""
    metadata = _get_json(session, sso.issuer.rstrip("/") + DISCOVERY_PATH, "discovery")
    if metadata.get("issuer") != sso.issuer:
        raise ProviderError(
            "The discovery document names another issuer", details={"reason": "discovery_issuer_mismatch"}
        )
    production = current_app.config["APP_ENV"] == "production"
    for name in ENDPOINTS:
        url = metadata.get(name)
        if not isinstance(url, str) or provider_url_problem(url, production):
            raise ProviderError(
                f"The discovery document has no usable {name}",
                details={"reason": "discovery_incomplete", "field": name},
            )
        if not _same_origin(url, sso.issuer):
            raise ProviderError(
                f"The discovery document's {name} is not on the issuer's host",
                details={"reason": "discovery_foreign_endpoint", "field": name},
            )
    return metadata


def _same_origin(url: str, issuer: str) -> bool:
    """Tell whether `url` has the issuer's scheme, host and port."""
    try:
        return egress.origin(url) == egress.origin(issuer)
    except egress.Refused:
        return False


def authorization_url(sso: SsoSettings, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
    """Return the provider's authorization URL for a login with this state, nonce and PKCE verifier."""
    with _session(sso, redirect_uri) as session:
        endpoint = _discover(session, sso)["authorization_endpoint"]
        url, _state = session.create_authorization_url(
            endpoint, state=state, nonce=nonce, code_verifier=code_verifier
        )
    return url


class _UnknownKey(Exception):
    """The ID token names a key the key set does not have (the provider may have rotated its keys)."""


def _signature_refused() -> SsoFailed:
    return refused("id_token_signature", "The ID token is not signed by this tenant's provider")


def _id_token_claims(
    id_token: str, jwks: dict[str, Any], sso: SsoSettings, nonce: str, access_token: str | None
) -> dict[str, Any]:
    """Verify the ID token (signature against the provider's keys, issuer, audience, expiry, nonce) and
    return its claims."""
    try:
        keys = KeySet.import_key_set(cast(KeySetSerialization, jwks))
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProviderError(
            "The identity provider's keys cannot be read", details={"reason": "jwks_invalid"}
        ) from None
    try:
        token = jwt.decode(id_token, keys, registry=JWSRegistry(algorithms=SIGNING_ALGORITHMS))
        claims = CodeIDToken(
            token.claims,
            token.header,
            {
                "iss": {"essential": True, "value": sso.issuer},
                "aud": {"essential": True, "value": sso.client_id},
            },
            {"nonce": nonce, "client_id": sso.client_id, "access_token": access_token},
        )
        claims.validate(leeway=ID_TOKEN_LEEWAY)
    except ExpiredTokenError:
        raise refused("id_token_expired", "The ID token has expired") from None
    except ClaimError as error:
        reason = CLAIM_REASONS.get(error.claim, "id_token_invalid")
        raise refused(reason, f"The ID token's {error.claim} is not valid", claim=error.claim) from None
    except InvalidKeyIdError:
        raise _UnknownKey() from None
    except BadSignatureError:
        raise _signature_refused() from None
    except (JoseError, ValueError):
        raise refused("id_token_invalid", "The ID token cannot be read") from None
    return dict(claims)


def verified_claims(
    sso: SsoSettings, redirect_uri: str, code: str, code_verifier: str, nonce: str
) -> dict[str, Any]:
    """Exchange the code (with the PKCE verifier and the client secret) and return the claims of the
    ID token once it passed every check."""
    with _session(sso, redirect_uri, with_secret=True) as session:
        metadata = _discover(session, sso)
        try:
            with _calling("token_endpoint"):
                token = session.fetch_token(
                    metadata["token_endpoint"], code=code, code_verifier=code_verifier, allow_redirects=False
                )
        except OAuthError as error:
            known = error.error if isinstance(error.error, str) and error.error in TOKEN_ERRORS else None
            raise refused("code_refused", "The identity provider refused the code", error=known) from None
        if not isinstance(token.get("id_token"), str):
            raise ProviderError(
                "The identity provider sent no ID token", details={"reason": "id_token_missing"}
            )

        def checked() -> dict[str, Any]:
            keys = _key_set(session, metadata["jwks_uri"])
            return _id_token_claims(token["id_token"], keys, sso, nonce, token.get("access_token"))

        try:
            return checked()
        except _UnknownKey:
            provider_documents.discard(("jwks", metadata["jwks_uri"]))
        try:
            return checked()
        except _UnknownKey:
            raise _signature_refused() from None
