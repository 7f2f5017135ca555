"""Settings: read once from the environment, overridable, and strict outside development."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from flask import request
from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser
from werkzeug.test import run_wsgi_app

import config
from app import create_app
from app.tenancy.access import infra

from .support import ROOT

FERNET_KEY = "cHJvZHVjdGlvbi1rZXktMDEyMzQ1Njc4OWFiY2RlZjA="
PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "JWT_SECRET_KEY": "j" * 40,
    "ENCRYPTION_KEYS": FERNET_KEY,
    "MONGODB_URI": "mongodb://db:27017/prod",
}


def test_development_needs_nothing():
    settings = config.load({"APP_ENV": "development"})
    assert settings["MONGODB_URI"].startswith("mongomock://")
    assert settings["ENABLE_MULTI_TENANT"] is True
    assert settings["DEFAULT_TENANT_SLUG"] == "default"
    assert settings["SUPERADMIN_EMAIL"] == config.DEV_SUPERADMIN["SUPERADMIN_EMAIL"]
    config.validate(settings)


def test_production_is_the_default_and_needs_secrets():
    with pytest.raises(config.ConfigError) as raised:
        config.load({})
    message = str(raised.value)
    for name in ("SECRET_KEY", "JWT_SECRET_KEY", "ENCRYPTION_KEYS", "MONGODB_URI"):
        assert name in message


def test_production_refuses_the_embedded_store_and_dev_secrets():
    base = {**PRODUCTION, "MONGODB_URI": "mongomock://localhost/prod"}
    with pytest.raises(config.ConfigError, match="embedded store"):
        config.validate(config.load(base))
    settings = config.load({**base, "MONGODB_URI": "mongodb://db:27017/prod"})
    config.validate(settings)
    with pytest.raises(config.ConfigError, match="JWT_SECRET_KEY"):
        config.validate({**settings, "JWT_SECRET_KEY": config.DEV_SECRETS["JWT_SECRET_KEY"]})


def test_production_refuses_the_telegram_sandbox():
    assert config.load(PRODUCTION)["TELEGRAM_SANDBOX"] is False
    with pytest.raises(config.ConfigError, match="TELEGRAM_SANDBOX"):
        config.validate(config.load({**PRODUCTION, "TELEGRAM_SANDBOX": "true"}))


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [
        (PRODUCTION, False),
        ({"APP_ENV": "testing"}, False),
        ({"APP_ENV": "development"}, True),
        ({**PRODUCTION, "EGRESS_ALLOW_PRIVATE_TARGETS": "true"}, True),
        ({"APP_ENV": "development", "EGRESS_ALLOW_PRIVATE_TARGETS": "false"}, False),
        ({**PRODUCTION, "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}, True),  # its former name
        ({"APP_ENV": "development", "WEBHOOK_ALLOW_PRIVATE_TARGETS": "false"}, False),
        (
            {**PRODUCTION, "EGRESS_ALLOW_PRIVATE_TARGETS": "false", "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"},
            False,
        ),
    ],
)
def test_private_egress_targets_are_for_development(environ, allowed):
    assert config.load(environ)["EGRESS_ALLOW_PRIVATE_TARGETS"] is allowed


@pytest.mark.parametrize("name", ["EGRESS_ALLOW_PRIVATE_TARGETS", "WEBHOOK_ALLOW_PRIVATE_TARGETS"])
def test_a_malformed_egress_setting_is_refused_by_its_name(name):
    with pytest.raises(config.ConfigError, match=name):
        config.load({**PRODUCTION, name: "sometimes"})


def test_production_refuses_demo_seeding():
    with pytest.raises(config.ConfigError, match="SEED_DEMO"):
        config.load({**PRODUCTION, "SEED_DEMO": "true"})


def test_production_refuses_the_development_encryption_key():
    keys = f"{FERNET_KEY},{config.DEV_SECRETS['ENCRYPTION_KEYS']}"
    settings = config.load({**PRODUCTION, "ENCRYPTION_KEYS": keys})
    with pytest.raises(config.ConfigError, match="ENCRYPTION_KEYS"):
        config.validate(settings)


@pytest.mark.parametrize("keys", ["", "not-a-key", "c2hvcnQ="])
def test_malformed_encryption_keys_are_refused(keys):
    with pytest.raises(config.ConfigError, match="ENCRYPTION_KEYS"):
        config.load({**PRODUCTION, "ENCRYPTION_KEYS": keys})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENABLE_MULTI_TENANT", "maybe"),
        ("TENANT_CACHE_TTL", "-1"),
        ("TENANT_CACHE_TTL", "soon"),
        ("MAX_CONTENT_LENGTH", "10"),
        ("TRIAL_DAYS", "0"),
        ("APP_ENV", "staging"),
        ("ANONYMOUS_RATE_LIMIT_PER_IP", "lots"),
        ("SIGNUP_RATE_LIMIT_PER_IP", "5/fortnight"),
    ],
)
def test_malformed_settings_are_refused(name, value):
    with pytest.raises(config.ConfigError, match=name):
        config.load({"APP_ENV": "development", name: value})


def test_anonymous_rate_limits_have_defaults_and_are_read():
    settings = config.load({"APP_ENV": "development"})
    assert settings["ANONYMOUS_RATE_LIMIT_PER_IP"] == "300/minute"
    assert settings["SIGNUP_RATE_LIMIT_PER_IP"] == "10/hour"
    changed = config.load(
        {
            "APP_ENV": "development",
            "ANONYMOUS_RATE_LIMIT_PER_IP": " 50 / second",
            "SIGNUP_RATE_LIMIT_PER_IP": "2/day",
        }
    )
    assert changed["ANONYMOUS_RATE_LIMIT_PER_IP"] == "50/second"
    assert changed["SIGNUP_RATE_LIMIT_PER_IP"] == "2/day"


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TENANT_CACHE_TTL", "5")
    monkeypatch.setenv("ENABLE_MULTI_TENANT", "false")
    monkeypatch.setenv("BASE_DOMAIN", "Example.COM.")
    settings = config.load({"APP_ENV": "testing", **__import__("os").environ})
    assert settings["TENANT_CACHE_TTL"] == 5
    assert settings["ENABLE_MULTI_TENANT"] is False
    assert settings["BASE_DOMAIN"] == "example.com"


def test_create_app_applies_overrides(app_factory):
    app = app_factory(TENANT_CACHE_TTL=7, BASE_DOMAIN="example.org")
    assert app.config["TENANT_CACHE_TTL"] == 7
    assert app.config["BASE_DOMAIN"] == "example.org"


def test_create_app_refuses_bad_overrides():
    with pytest.raises(config.ConfigError, match="JWT_SECRET_KEY"):
        create_app({"JWT_SECRET_KEY": "short"})


def _gunicorn_config():
    """Load gunicorn.conf.py the way gunicorn does (every module-level name is read as a setting)."""
    application = WSGIApplication.__new__(WSGIApplication)
    application.cfg = Config()
    application.load_config_from_file(str(ROOT / "gunicorn.conf.py"))
    return application.cfg


def _gunicorn_hook():
    return _gunicorn_config().settings["on_starting"].get()


def test_gunicorn_reads_its_config_file(monkeypatch):
    monkeypatch.setenv("PORT", "5123")
    cfg = _gunicorn_config()
    assert cfg.worker_class_str == "gthread"
    assert cfg.bind == ["127.0.0.1:5123"]
    assert cfg.workers == 1


class _Socket:
    """Where gunicorn writes an early answer (100 Continue); nothing is read from it."""

    def send(self, data):
        pass


def _environ(cfg, peer: str, path: str = "/prefix/x") -> dict:
    """The WSGI environ gunicorn makes of a request from `peer` that claims to come through a proxy:
    over https, from another address, under a script name."""
    raw = (
        f"GET {path} HTTP/1.1\r\nHost: api.example.com\r\nX-Forwarded-Proto: https\r\n"
        "X-Forwarded-Ssl: on\r\nX-Forwarded-For: 198.51.100.7\r\nSCRIPT_NAME: /prefix\r\n\r\n"
    )
    request = next(iter(RequestParser(cfg, iter([raw.encode()]), (peer, 50000))))
    _response, environ = wsgi.create(request, _Socket(), (peer, 50000), ("127.0.0.1", 8000), cfg)
    return environ


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "10.0.0.2", "203.0.113.9"])
def test_gunicorn_takes_the_scheme_and_script_name_from_no_peer(peer):
    cfg = _gunicorn_config()
    assert cfg.forwarded_allow_ips == []
    environ = _environ(cfg, peer)
    assert environ["wsgi.url_scheme"] == "http"
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("", "/prefix/x")
    assert environ["REMOTE_ADDR"] == peer
    # The headers still reach the app, whose TRUSTED_PROXIES decides what they are worth.
    assert environ["HTTP_X_FORWARDED_PROTO"] == "https"


@pytest.mark.parametrize(
    ("hops", "seen"),
    [(0, {"scheme": "http", "address": "203.0.113.9"}), (1, {"scheme": "https", "address": "198.51.100.7"})],
)
def test_the_app_trusts_forwarded_headers_only_through_trusted_proxies(app_factory, hops, seen):
    app = app_factory(TRUSTED_PROXIES=hops)

    @infra
    def where():
        return {"scheme": request.scheme, "address": request.remote_addr}

    app.add_url_rule("/where", "where", where)
    response = run_wsgi_app(app, _environ(_gunicorn_config(), "203.0.113.9", "/where"), buffered=True)
    assert json.loads(b"".join(response[0])) == seen


def _server(workers, max_requests=0):
    return SimpleNamespace(cfg=SimpleNamespace(workers=workers, max_requests=max_requests))


def test_gunicorn_refuses_several_workers_on_the_embedded_store(monkeypatch):
    monkeypatch.setenv("MONGODB_URI", "mongomock://localhost/x")
    on_starting = _gunicorn_hook()
    with pytest.raises(SystemExit, match="embedded store"):
        on_starting(_server(workers=2))
    with pytest.raises(SystemExit, match="max_requests"):
        on_starting(_server(workers=1, max_requests=1000))
    on_starting(_server(workers=1))


def test_gunicorn_allows_several_workers_on_a_real_server(monkeypatch):
    monkeypatch.setenv("MONGODB_URI", "mongodb://db:27017/app")
    _gunicorn_hook()(_server(workers=4))


def test_gunicorn_reports_configuration_errors(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(SystemExit, match="SECRET_KEY"):
        _gunicorn_hook()(_server(workers=1))
