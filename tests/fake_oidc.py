"""A small OpenID provider on 127.0.0.1 for the single sign-on tests.

Each realm (`/<realm>`) is an issuer with its own RSA key, generated when the provider is made (once
per test run): discovery document, JWKS, an authorization endpoint that signs in the person the test
chose (remembering the nonce and the PKCE challenge), and a token endpoint that checks the client
secret, the code's client and redirect URI and the PKCE verifier, and answers with an ID token signed
by the realm's key. Tests make it misbehave (claims overridden, a key it does not publish, an error
instead of a code, a discovery document naming another issuer) to see each refusal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from .loopback import LoopbackServer

REALMS = ("acme", "globex")
ID_TOKEN_TTL = 300


def rsa_key(kid: str) -> RSAKey:
    """A new 2048-bit RSA signing key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return RSAKey.import_key(private, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class FakeProvider(LoopbackServer):
    def __init__(self) -> None:
        self.published = {realm: rsa_key(f"{realm}-1") for realm in REALMS}
        # Published nowhere, with the same key id as the acme realm's key: a forged signature.
        self.rogue_key = rsa_key("acme-1")
        self.lock = threading.Lock()
        self.reset()
        super().__init__(self._handler())

    def issuer(self, realm: str) -> str:
        return f"{self.url}/{realm}"

    def reset(self) -> None:
        """Forget clients, codes and scripted misbehaviour; the next person to sign in is a default one."""
        with self.lock:
            self.keys = dict(self.published)
            self.fetches: Counter[tuple[str, str]] = Counter()
            self.clients: dict[str, str] = {}
            self.codes: dict[str, dict[str, Any]] = {}
            self.person: dict[str, Any] = {
                "sub": "person-1",
                "email": "dana@acme.example.com",
                "email_verified": True,
                "name": "Dana Scully",
            }
            self.overrides: dict[str, Any] = {}
            self.sign_with: RSAKey | None = None
            self.authorize_error: str | None = None
            self.discovery_issuer: str | None = None
            self.discovery_changes: dict[str, Any] = {}  # fields of the discovery document replaced
            # endpoint ("token", "jwks", ".well-known/openid-configuration") -> (status, body) answered
            # instead, as it is
            self.raw_answers: dict[str, tuple[int, bytes]] = {}
            self.token_requests: list[dict[str, Any]] = []

    def register_client(self, client_id: str) -> str:
        """Register a client; return its secret."""
        secret = secrets.token_urlsafe(24)
        with self.lock:
            self.clients[client_id] = secret
        return secret

    def rotate_key(self, realm: str) -> None:
        """Sign with a new key from now on, and publish only that one."""
        key = rsa_key(f"{realm}-rotated")
        with self.lock:
            self.keys[realm] = key

    def sign_in_as(self, **claims: Any) -> None:
        """Who signs in at the authorization endpoint from now on (claims replace the default person's)."""
        with self.lock:
            self.person = {**self.person, **claims}

    # -- the endpoints -----------------------------------------------------------------------------

    def _discovery(self, realm: str) -> dict[str, Any]:
        base = self.issuer(realm)
        return {
            "issuer": self.discovery_issuer or base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            **self.discovery_changes,
        }

    def _authorize(self, realm: str, query: dict[str, str]) -> tuple[int, dict[str, str]]:
        redirect_uri = query.get("redirect_uri", "")
        problems = [
            query.get("response_type") != "code",
            query.get("client_id") not in self.clients,
            "openid" not in query.get("scope", "").split(),
            query.get("code_challenge_method") != "S256",
            not query.get("code_challenge"),
            not query.get("state"),
            not query.get("nonce"),
            not redirect_uri,
        ]
        if any(problems):
            return 400, {}
        answer = {"state": query["state"], "iss": self.issuer(realm)}
        if self.authorize_error:
            answer["error"] = self.authorize_error
            answer["error_description"] = "The person said no"
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = {
                "realm": realm,
                "client_id": query["client_id"],
                "redirect_uri": redirect_uri,
                "nonce": query["nonce"],
                "challenge": query["code_challenge"],
                "person": dict(self.person),
            }
            answer["code"] = code
        return 302, {"Location": f"{redirect_uri}?{urlencode(answer)}"}

    def _client_of(self, headers: Any, form: dict[str, str]) -> tuple[str | None, str]:
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        if scheme == "Basic":
            client_id, _, secret = base64.b64decode(value).decode().partition(":")
            return client_id, "basic" if self.clients.get(client_id) == secret else "wrong"
        client_id = form.get("client_id")
        return client_id, "post" if self.clients.get(client_id or "") == form.get(
            "client_secret"
        ) else "wrong"

    def _token(self, realm: str, headers: Any, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client_id, auth = self._client_of(headers, form)
        self.token_requests.append({"realm": realm, "client_id": client_id, "auth": auth, "form": form})
        if auth == "wrong":
            return 401, {"error": "invalid_client"}
        grant = self.codes.pop(form.get("code", ""), None)
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant["realm"] != realm
            or grant["client_id"] != client_id
            or grant["redirect_uri"] != form.get("redirect_uri")
            or s256(form.get("code_verifier", "")) != grant["challenge"]
        ):
            return 400, {"error": "invalid_grant"}
        now = int(time.time())
        claims = {
            "iss": self.issuer(realm),
            "aud": client_id,
            "iat": now,
            "exp": now + ID_TOKEN_TTL,
            "nonce": grant["nonce"],
            **grant["person"],
            **self.overrides,
        }
        key = self.sign_with or self.keys[realm]
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        access_token = secrets.token_urlsafe(24)
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any] | None = None, headers: Any = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send_raw(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self) -> tuple[str, str, dict[str, str]]:
                parts = urlsplit(self.path)
                realm, _, rest = parts.path.lstrip("/").partition("/")
                return realm, rest, dict(parse_qsl(parts.query))

            def do_GET(self) -> None:
                realm, rest, query = self._route()
                with provider.lock:
                    if realm not in provider.keys:
                        self._send(404, {"error": "no such realm"})
                    elif rest in provider.raw_answers:
                        self._send_raw(*provider.raw_answers[rest])
                    elif rest == ".well-known/openid-configuration":
                        provider.fetches[(realm, "discovery")] += 1
                        self._send(200, provider._discovery(realm))
                    elif rest == "jwks":
                        provider.fetches[(realm, "jwks")] += 1
                        self._send(200, {"keys": [provider.keys[realm].as_dict(private=False)]})
                    elif rest == "authorize":
                        status, headers = provider._authorize(realm, query)
                        self._send(status, None, headers)
                    else:
                        self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                realm, rest, _query = self._route()
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                with provider.lock:
                    if realm in provider.keys and rest in provider.raw_answers:
                        self._send_raw(*provider.raw_answers[rest])
                    elif realm in provider.keys and rest == "token":
                        self._send(*provider._token(realm, self.headers, form))
                    else:
                        self._send(404, {"error": "not found"})

        return Handler
