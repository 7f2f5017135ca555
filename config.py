"""Every setting of the service, read from the environment once.

`load(environ)` turns an environment mapping into a plain dict of settings; `create_app` calls it
exactly once and nothing else in the code base reads `os.environ`. The README lists every setting.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, overload

ENVIRONMENTS = ("development", "testing", "production")

# Development and testing get fixed, obviously insecure defaults so that `make run` and `make test`
# need no set-up; production has none and refuses to start without real values.
DEV_SECRETS = {
    "SECRET_KEY": "dev-insecure-secret-key",
    "JWT_SECRET_KEY": "dev-insecure-jwt-secret-key-0123456789",
    "ENCRYPTION_KEYS": "ZGV2LWluc2VjdXJlLWVuY3J5cHRpb24ta2V5LTAwMDA=",
}
DEV_SUPERADMIN = {
    "SUPERADMIN_EMAIL": "superadmin@example.com",
    "SUPERADMIN_PASSWORD": "superadmin-dev-password",
}
EMBEDDED_SCHEME = "mongomock://"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _fernet_keys(raw: str) -> list[str]:
    """Check ENCRYPTION_KEYS: comma-separated Fernet keys (32 bytes, url-safe base64)."""
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    if not keys:
        raise ConfigError("ENCRYPTION_KEYS must hold at least one Fernet key")
    for key in keys:
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (ValueError, binascii.Error):
            valid = False
        if not valid:
            raise ConfigError(
                "ENCRYPTION_KEYS must hold Fernet keys (make one with: python3 -c "
                "'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
            )
    return keys


def _rate(name: str, raw: str) -> str:
    """Check a rate limit such as '10/minute' (the syntax of the limits library)."""
    amount, _, per = raw.partition("/")
    if not amount.strip().isdigit() or per.strip() not in ("second", "minute", "hour", "day"):
        raise ConfigError(f"{name} must look like 10/minute (second, minute, hour or day), not {raw!r}")
    return f"{int(amount)}/{per.strip()}"


def _origins(raw: str) -> list[str]:
    """Check CORS_ORIGINS: comma-separated origins (scheme://host[:port]), or `*` for any."""
    origins = [origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip()]
    for origin in origins:
        scheme, separator, host = origin.partition("://")
        if origin != "*" and not (
            scheme in ("http", "https") and separator and host and not set(host) & set("/?#*@ ")
        ):
            raise ConfigError(
                f"CORS_ORIGINS must list origins such as https://app.example.com (or *), not {origin!r}"
            )
    return origins


def _allow_private_targets(get: Callable[[str], str | None], env: str) -> bool:
    """EGRESS_ALLOW_PRIVATE_TARGETS, or its former name WEBHOOK_ALLOW_PRIVATE_TARGETS; on in development."""
    for name in ("EGRESS_ALLOW_PRIVATE_TARGETS", "WEBHOOK_ALLOW_PRIVATE_TARGETS"):
        raw = get(name)
        if raw is not None:
            return _bool(name, raw)
    return env == "development"


def is_embedded(uri: str) -> bool:
    """Tell whether a MongoDB URI selects the embedded in-memory store."""
    return uri.startswith(EMBEDDED_SCHEME)


def load(environ: Mapping[str, str]) -> dict[str, Any]:
    """Read every setting from `environ` and validate it; raise ConfigError on a bad or missing one."""
    env = environ.get("APP_ENV", "production").strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    relaxed = env != "production"

    @overload
    def get(name: str) -> str | None: ...
    @overload
    def get(name: str, default: str) -> str: ...
    def get(name: str, default: str | None = None) -> str | None:
        value = environ.get(name)
        return value if value not in (None, "") else default

    missing = [
        name
        for name in ("SECRET_KEY", "JWT_SECRET_KEY", "ENCRYPTION_KEYS", "MONGODB_URI")
        if get(name) is None and not relaxed
    ]
    if missing:
        raise ConfigError(
            "missing required settings for APP_ENV=production: "
            + ", ".join(missing)
            + ". Set them in the environment (see README.md, 'Settings'), "
            "or use APP_ENV=development for a local run."
        )

    settings: dict[str, Any] = {
        "APP_ENV": env,
        "TESTING": env == "testing",
        "SECRET_KEY": get("SECRET_KEY", DEV_SECRETS["SECRET_KEY"]),
        "JWT_SECRET_KEY": get("JWT_SECRET_KEY", DEV_SECRETS["JWT_SECRET_KEY"]),
        "ENCRYPTION_KEYS": _fernet_keys(get("ENCRYPTION_KEYS", DEV_SECRETS["ENCRYPTION_KEYS"])),
        "MONGODB_URI": get("MONGODB_URI", f"{EMBEDDED_SCHEME}localhost/telegram_marketing"),
        "BASE_DOMAIN": (get("BASE_DOMAIN", "localhost") or "").lower().strip("."),
        "ENABLE_MULTI_TENANT": _bool("ENABLE_MULTI_TENANT", get("ENABLE_MULTI_TENANT", "true")),
        "DEFAULT_TENANT_SLUG": get("DEFAULT_TENANT_SLUG", "default"),
        "TENANT_DEBUG": _bool("TENANT_DEBUG", get("TENANT_DEBUG", "false")),
        # Compare every compiled response dump with marshmallow's (app/wire.py): on in the tests.
        "WIRE_CHECK": env == "testing",
        "TENANT_CACHE_TTL": _int("TENANT_CACHE_TTL", get("TENANT_CACHE_TTL", "60")),
        "AUTH_CACHE_TTL": _int("AUTH_CACHE_TTL", get("AUTH_CACHE_TTL", "5")),
        "MAX_CONTENT_LENGTH": _int(
            "MAX_CONTENT_LENGTH", get("MAX_CONTENT_LENGTH", str(16 * 1024 * 1024)), minimum=1024
        ),
        "RATELIMIT_STORAGE_URI": get("RATELIMIT_STORAGE_URI", "memory://"),
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", get("TRUSTED_PROXIES", "0")),
        "CORS_ORIGINS": _origins(get("CORS_ORIGINS", "") or ""),
        "ACCESS_TOKEN_TTL": _int("ACCESS_TOKEN_TTL", get("ACCESS_TOKEN_TTL", "900"), minimum=60),
        "REFRESH_TOKEN_TTL": _int(
            "REFRESH_TOKEN_TTL", get("REFRESH_TOKEN_TTL", str(30 * 86400)), minimum=300
        ),
        "LOGIN_RATE_LIMIT_PER_IP": _rate(
            "LOGIN_RATE_LIMIT_PER_IP", get("LOGIN_RATE_LIMIT_PER_IP", "30/minute")
        ),
        "LOGIN_RATE_LIMIT_PER_EMAIL": _rate(
            "LOGIN_RATE_LIMIT_PER_EMAIL", get("LOGIN_RATE_LIMIT_PER_EMAIL", "10/minute")
        ),
        "ANONYMOUS_RATE_LIMIT_PER_IP": _rate(
            "ANONYMOUS_RATE_LIMIT_PER_IP", get("ANONYMOUS_RATE_LIMIT_PER_IP", "300/minute")
        ),
        "SIGNUP_RATE_LIMIT_PER_IP": _rate(
            "SIGNUP_RATE_LIMIT_PER_IP", get("SIGNUP_RATE_LIMIT_PER_IP", "10/hour")
        ),
        "TRIAL_DAYS": _int("TRIAL_DAYS", get("TRIAL_DAYS", "14"), minimum=1),
        "RETENTION_DEFAULT_DAYS": _int(
            "RETENTION_DEFAULT_DAYS", get("RETENTION_DEFAULT_DAYS", "365"), minimum=1
        ),
        "SCHEDULER_LEASE_TTL": _int("SCHEDULER_LEASE_TTL", get("SCHEDULER_LEASE_TTL", "60"), minimum=3),
        "SCHEDULER_POLL_SECONDS": _int(
            "SCHEDULER_POLL_SECONDS", get("SCHEDULER_POLL_SECONDS", "10"), minimum=1
        ),
        "LOG_LEVEL": (get("LOG_LEVEL", "INFO") or "INFO").upper(),
        "METRICS_TOKEN": get("METRICS_TOKEN"),
        "METRICS_PORT": _int("METRICS_PORT", get("METRICS_PORT", "0")),
        "METRICS_HOST": get("METRICS_HOST", "127.0.0.1"),
        "PROMETHEUS_MULTIPROC_DIR": get("PROMETHEUS_MULTIPROC_DIR"),
        "SEED_DEMO": _bool("SEED_DEMO", get("SEED_DEMO", "false")),
        "CREATE_INDEXES": _bool("CREATE_INDEXES", get("CREATE_INDEXES", "true")),
        "TELEGRAM_API_BASE": (get("TELEGRAM_API_BASE", "https://api.telegram.org") or "").rstrip("/"),
        "TELEGRAM_RATE_PER_BOT": _rate("TELEGRAM_RATE_PER_BOT", get("TELEGRAM_RATE_PER_BOT", "30/second")),
        "TELEGRAM_RATE_PER_CHAT": _rate("TELEGRAM_RATE_PER_CHAT", get("TELEGRAM_RATE_PER_CHAT", "1/second")),
        "TELEGRAM_RATE_PER_GROUP": _rate(
            "TELEGRAM_RATE_PER_GROUP", get("TELEGRAM_RATE_PER_GROUP", "20/minute")
        ),
        "TELEGRAM_RATE_PAID_BROADCAST": _rate(
            "TELEGRAM_RATE_PAID_BROADCAST", get("TELEGRAM_RATE_PAID_BROADCAST", "1000/second")
        ),
        "TELEGRAM_CONCURRENCY": _int("TELEGRAM_CONCURRENCY", get("TELEGRAM_CONCURRENCY", "8"), minimum=1),
        "TELEGRAM_SANDBOX": _bool(
            "TELEGRAM_SANDBOX", get("TELEGRAM_SANDBOX", "true" if env == "development" else "false")
        ),
        "TELEGRAM_TIMEOUT": _int("TELEGRAM_TIMEOUT", get("TELEGRAM_TIMEOUT", "10"), minimum=1),
        "TELEGRAM_RETRIES": _int("TELEGRAM_RETRIES", get("TELEGRAM_RETRIES", "3")),
        "TELEGRAM_RETRY_BACKOFF_MS": _int(
            "TELEGRAM_RETRY_BACKOFF_MS", get("TELEGRAM_RETRY_BACKOFF_MS", "500")
        ),
        "MESSAGE_MAX_ATTEMPTS": _int("MESSAGE_MAX_ATTEMPTS", get("MESSAGE_MAX_ATTEMPTS", "5"), minimum=1),
        "DISPATCH_INTERVAL_SECONDS": _int(
            "DISPATCH_INTERVAL_SECONDS", get("DISPATCH_INTERVAL_SECONDS", "1"), minimum=1
        ),
        "DISPATCH_BATCH": _int("DISPATCH_BATCH", get("DISPATCH_BATCH", "500"), minimum=10),
        "DISPATCH_LANES": _int("DISPATCH_LANES", get("DISPATCH_LANES", "100"), minimum=1),
        "DISPATCH_LEASE_TTL": _int("DISPATCH_LEASE_TTL", get("DISPATCH_LEASE_TTL", "15"), minimum=3),
        "DISPATCH_TURN_SECONDS": _int("DISPATCH_TURN_SECONDS", get("DISPATCH_TURN_SECONDS", "30"), minimum=1),
        "WEBHOOK_TIMEOUT": _int("WEBHOOK_TIMEOUT", get("WEBHOOK_TIMEOUT", "5"), minimum=1),
        "WEBHOOK_MAX_ATTEMPTS": _int("WEBHOOK_MAX_ATTEMPTS", get("WEBHOOK_MAX_ATTEMPTS", "8"), minimum=1),
        "WEBHOOK_DISABLE_AFTER": _int("WEBHOOK_DISABLE_AFTER", get("WEBHOOK_DISABLE_AFTER", "3"), minimum=1),
        "WEBHOOK_CONCURRENCY": _int("WEBHOOK_CONCURRENCY", get("WEBHOOK_CONCURRENCY", "4"), minimum=1),
        "BILLING_GRACE_DAYS": _int("BILLING_GRACE_DAYS", get("BILLING_GRACE_DAYS", "14")),
        "STRIPE_WEBHOOK_SECRET": get("STRIPE_WEBHOOK_SECRET"),
        "EGRESS_ALLOW_PRIVATE_TARGETS": _allow_private_targets(get, env),
        "SUPERADMIN_EMAIL": get("SUPERADMIN_EMAIL"),
        "SUPERADMIN_PASSWORD": get("SUPERADMIN_PASSWORD"),
    }
    if relaxed:
        for name, default in DEV_SUPERADMIN.items():
            settings[name] = settings[name] or default
    elif settings["SEED_DEMO"]:
        raise ConfigError("SEED_DEMO creates well-known demo accounts; it is refused in production")
    return settings


def validate(settings: Mapping[str, Any]) -> None:
    """Check settings after overrides were applied (create_app calls this)."""
    if settings["APP_ENV"] == "production":
        for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
            if settings[name] == DEV_SECRETS[name]:
                raise ConfigError(f"{name} is the development default; set a real secret")
        if DEV_SECRETS["ENCRYPTION_KEYS"] in settings["ENCRYPTION_KEYS"]:
            raise ConfigError("ENCRYPTION_KEYS holds the development key; make a real one")
        if is_embedded(settings["MONGODB_URI"]):
            raise ConfigError(
                "the embedded store (mongomock://) is for development and tests; "
                "set MONGODB_URI=mongodb://... in production"
            )
        if settings["TELEGRAM_SANDBOX"]:
            raise ConfigError("TELEGRAM_SANDBOX fakes Telegram for development; it is refused in production")
    if len(settings["JWT_SECRET_KEY"]) < 32:
        raise ConfigError("JWT_SECRET_KEY must be at least 32 characters")
    if not settings["DEFAULT_TENANT_SLUG"]:
        raise ConfigError("DEFAULT_TENANT_SLUG must not be empty")
