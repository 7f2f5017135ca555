"""Test-only document classes and routes that exercise the tenancy core directly, and the helpers
the test modules share."""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mongoengine as me
import pyotp
import pytest
import requests
from bson import ObjectId
from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.audit.models import AuditLog
from app.auth.cache import auth_cache
from app.telegram_accounts.models import TelegramAccount
from app.tenancy import registry
from app.tenancy.access import public
from app.tenancy.cache import tenant_cache
from app.tenancy.context import current_tenant, tenant_scope, unscoped
from app.tenancy.documents import TenantDocument, TenantReferenceField
from app.tenancy.registry import tenant_document_classes
from app.tenants.models import Tenant
from app.usage import service as usage

# Tests of the embedded store itself (mongomock and what app.db adds to it), pointless on a server.
embedded_only = pytest.mark.skipif(
    bool(os.environ.get("MONGODB_TEST_URI")), reason="tests the embedded store, not MongoDB"
)


class Note(TenantDocument):
    title = me.StringField(required=True, max_length=50)
    meta = {"collection": "test_notes", "indexes": [{"fields": ["tenant_id", "title"], "unique": True}]}


class Attachment(TenantDocument):
    note = TenantReferenceField(Note)
    label = me.StringField()
    meta = {"collection": "test_attachments", "indexes": [{"fields": ["tenant_id", "note"]}]}


# The tests' own tenant documents are declared as the app's are: exported, purged, checked like them.
registry.declare_tenant_owned(Note, Attachment)


class ProbeBody(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=20))
    count = fields.Integer()


def probe_blueprint() -> Blueprint:
    """Routes that show what the tenancy core decided, and that fail in the ways the API must handle."""
    blp = Blueprint("probe", __name__, url_prefix="/api/v1/probe")

    @blp.route("/tenant")
    class ProbeTenant(MethodView):
        @public
        def get(self):
            tenant = current_tenant()
            return jsonify(slug=tenant.slug if tenant else None)

    @blp.route("/private")
    class ProbePrivate(MethodView):
        def get(self):
            return jsonify(slug=current_tenant().slug)

    @blp.route("/echo")
    class ProbeEcho(MethodView):
        @public
        @blp.arguments(ProbeBody)
        @blp.response(201, ProbeBody)
        def post(self, body):
            return body

    @blp.route("/crash")
    class ProbeCrash(MethodView):
        @public
        def get(self):
            raise RuntimeError("database password is hunter2")

    return blp


def register_probe(app) -> None:
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    api.register_blueprint(probe_blueprint())


# -- helpers shared by the test modules --------------------------------------------------------------


ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
_bot_ids = itertools.count(100001)


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Start `count` threads at the same moment; return what each returned (or raised)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index):
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # the outcome under test, collected for the assertions
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def run_script(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run scripts/<script> in a fresh process, in development mode, with only the settings in `env`."""
    environment = {**os.environ, "APP_ENV": "development", **env}
    for name in ("MONGODB_URI", "SEED_DEMO", "ENABLE_MULTI_TENANT", "CREATE_INDEXES"):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextmanager
def log_records(name: str) -> Iterator[list[logging.LogRecord]]:
    """Collect the records that reach logger `name` within the block."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@contextmanager
def in_another_worker(monkeypatch) -> Iterator[None]:
    """Make changes as another worker would: the database changes, but this process's caches of
    credentials and tenants are not told (they see it when their entries expire)."""
    with monkeypatch.context() as patch:
        for cache in (auth_cache(), tenant_cache()):
            patch.setattr(cache, "clear", lambda: None)
            patch.setattr(cache, "discard", lambda _key: None)
        yield


# -- requests and responses


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response) -> str:
    return response.json["error"]["code"]


def error_of(response, status: int, *, mimetype: str | None = None) -> dict:
    """The error of a response in the one error envelope, with this status (and media type)."""
    assert response.status_code == status, response.get_data(as_text=True)
    if mimetype is not None:
        assert response.mimetype == mimetype
    body = response.json
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return body["error"]


def created(response) -> dict:
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def assert_limit_exceeded(response, resource: str, limit: int, used: int, requested: int = 1) -> None:
    """The request was refused for going over a limit of the plan, with these numbers."""
    assert response.status_code == 403, response.get_data(as_text=True)
    assert error_code(response) == "limit_exceeded"
    assert response.json["error"]["details"] == {
        "resource": resource,
        "limit": limit,
        "used": used,
        "requested": requested,
    }


def random_id() -> str:
    return str(ObjectId())


def file_part(data: bytes, filename: str, content_type: str) -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=filename, content_type=content_type)


def multipart(fields: dict) -> dict:
    """Encode a multipart body in memory (the test client spills big bodies to a file it never closes)."""
    boundary, body = encode_multipart(fields)
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def tenant_url(tenant, action: str = "") -> str:
    return f"{API}/tenants/{tenant.id}" + (f"/{action}" if action else "")


def impersonation_headers(client, superadmin_headers, tenant, user_id=None) -> dict[str, str]:
    """Impersonate a user of `tenant` (its owner unless `user_id` is given); return headers acting as them."""
    body = {"reason": "support"}
    if user_id is not None:
        body["userId"] = str(user_id)
    response = client.post(f"{API}/tenants/{tenant.id}/impersonate", headers=superadmin_headers, json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return bearer(response.json["accessToken"])


# -- two-factor authentication through the API


def enrol(client, headers) -> tuple[str, list[str]]:
    """Turn on 2FA for the caller through the API; return the TOTP secret and the recovery codes."""
    setup = client.post(f"{API}/auth/2fa/setup", headers=headers)
    assert setup.status_code == 200, setup.get_data(as_text=True)
    secret = setup.json["secret"]
    code = pyotp.TOTP(secret).now()
    enabled = client.post(f"{API}/auth/2fa/enable", headers=headers, json={"code": code})
    assert enabled.status_code == 200, enabled.get_data(as_text=True)
    return secret, enabled.json["recoveryCodes"]


def next_code(secret: str) -> str:
    """The code of the next time step (the current one was used up by enable)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def wrong_code(secret: str) -> str:
    """A six-digit code that matches none of the steps the server could accept."""
    totp, now = pyotp.TOTP(secret), time.time()
    valid = {totp.at(now + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in valid)


# -- bots and campaigns through the API


def sso_body(provider, realm="acme", client_id="acme-app", **changes) -> dict:
    """A complete `sso` settings group for a client registered at the fake provider's realm."""
    return {
        "issuer": provider.issuer(realm),
        "clientId": client_id,
        "clientSecret": provider.register_client(client_id),
        "allowedDomains": ["acme.example.com"],
        **changes,
    }


def configure_sso(client, headers, sso, enabled=True):
    """PATCH the tenant's single sign-on settings group."""
    return client.patch(
        f"{API}/tenants/current/settings",
        headers=headers,
        json={"security": {"sso": sso, "ssoEnabled": enabled}},
    )


def sso_start(client, slug="acme"):
    """GET /auth/sso/start for the tenant `slug`."""
    return client.get(f"{API}/auth/sso/start", query_string={"tenant": slug})


def sso_callback_url(client, slug="acme") -> str:
    """Start a single sign-on and go where it sends the browser; return where the provider sends it
    back (path and query)."""
    response = sso_start(client, slug)
    assert response.status_code == 302, response.json
    answer = requests.get(response.headers["Location"], allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return f"{back.path}?{back.query}"


def bot_token(bot_id: int | str = 123456789) -> str:
    """A token of BotFather's shape, different for every bot id."""
    return f"{bot_id}:AAE{hashlib.sha256(str(bot_id).encode()).hexdigest()[:32]}"


def connect_bot(client, headers) -> tuple[str, str]:
    """Connect a new bot to the caller's tenant; return (account id, Telegram bot id)."""
    bot_id = str(next(_bot_ids))
    response = client.post(
        f"{API}/telegram-accounts", json={"name": "Sender", "token": bot_token(bot_id)}, headers=headers
    )
    assert response.status_code == 201, response.json
    return response.json["id"], bot_id


def create_bot(client, headers) -> str:
    """Connect a new bot to the caller's tenant and return its account id."""
    return connect_bot(client, headers)[0]


def sent_campaign(client, headers, account: str, targets: list, text: str = "Hello", **extra) -> str:
    """Create a campaign with `targets` sent by bot `account`, send it, and return its id."""
    body = {
        "name": "Campaign",
        "message": {"text": text},
        "targets": list(targets),
        "telegramAccountId": account,
        **extra,
    }
    response = client.post(f"{API}/campaigns", json=body, headers=headers)
    assert response.status_code == 201, response.json
    campaign_id = response.json["id"]
    response = client.post(f"{API}/campaigns/{campaign_id}/send", headers=headers)
    assert response.status_code == 202, response.json
    return campaign_id


# -- what is stored


def update_tenant(tenant, **changes) -> Tenant:
    """Change a tenant behind the service's back (as a superadmin, drift or another worker would), drop
    cached copies, and return the tenant as stored."""
    Tenant.objects(id=tenant.id).update(**changes)
    tenant_cache().clear()
    return Tenant.objects.get(id=tenant.id)


def set_limits(tenant, **limits) -> Tenant:
    """Override limits of the tenant's plan (as a superadmin would), effective at once."""
    return update_tenant(tenant, set__limits=limits)


def messages_used(tenant) -> int:
    with tenant_scope(tenant):
        return usage.used(tenant, "messagesPerMonth")


def stored_document(document_class, tenant, document_id):
    """The document of `tenant` with this id, as stored (None if there is none)."""
    with tenant_scope(tenant):
        return document_class.objects(id=document_id).first()


def document_snapshot(document_class, tenant, document_id) -> dict | None:
    """The stored fields of a document of `tenant` (None if there is none), to compare before and after."""
    document = stored_document(document_class, tenant, document_id)
    return document.to_mongo().to_dict() if document else None


def audit_entries(tenant, action: str) -> list[AuditLog]:
    with tenant_scope(tenant):
        return list(AuditLog.objects(action=action))


def stored_documents(document_class, tenant) -> list:
    """Every document of `tenant` in this class, as stored, oldest first."""
    with tenant_scope(tenant):
        return list(document_class.objects.order_by("created_at"))


def stored_accounts(tenant) -> list[TelegramAccount]:
    return stored_documents(TelegramAccount, tenant)


def stagger(tenant, document_class, ids) -> None:
    """Give documents creation times a second apart, in the order of `ids` (the clock may not tick)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with tenant_scope(tenant):
        for offset, document_id in enumerate(ids):
            document_class.objects(id=document_id).update_one(
                set__created_at=start + timedelta(seconds=offset)
            )


def all_tenant_documents(
    tenant, reason: str = "test: snapshot of one tenant's documents"
) -> dict[str, list[dict]]:
    """Every document `tenant` owns, per collection, as stored (read unscoped, for `reason`)."""
    with unscoped(reason):
        return {
            cls._get_collection_name(): sorted(
                (doc.to_mongo().to_dict() for doc in cls.objects(tenant_id=tenant.id)),
                key=lambda d: str(d["_id"]),
            )
            for cls in tenant_document_classes()
        }


HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def operations(client) -> Iterator[tuple[str, str]]:
    """(path, method) of every operation in the service's own OpenAPI document."""
    spec = client.get("/api/v1/openapi.json").json
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method
