""".env.example lists every setting the service reads, each with a comment, at its true default."""

from __future__ import annotations

import ast
import re

import config

from .support import ROOT

ASSIGNMENT = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
# Secrets and a MongoDB URI, so that a production environment loads.
PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "a-production-secret",
    "JWT_SECRET_KEY": "a-production-jwt-secret-of-32-characters",
    "ENCRYPTION_KEYS": "cHJvZHVjdGlvbi1lbmNyeXB0aW9uLWtleS0wMDAwMDA=",
    "MONGODB_URI": "mongodb://db.example.internal/telegram_marketing",
}


def example() -> dict[str, str]:
    """The settings of .env.example and their values; every one has a comment line right above it."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    settings = {}
    for index, line in enumerate(lines):
        match = ASSIGNMENT.match(line)
        if match:
            assert lines[index - 1].startswith("# "), f"{match['name']} has no comment above it"
            assert match["name"] not in settings, f"{match['name']} is listed twice"
            settings[match["name"]] = match["value"]
    return settings


class Recording(dict):
    """An environment that records every name read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name, default=None):
        self.read.add(name)
        return super().get(name, default)

    def __getitem__(self, name):
        self.read.add(name)
        return super().__getitem__(name)


def read_by_config() -> set[str]:
    """Every name config.load reads, in each environment."""
    read: set[str] = set()
    for environ in ({"APP_ENV": "development"}, {"APP_ENV": "testing"}, PRODUCTION):
        recording = Recording(environ)
        config.load(recording)
        read |= recording.read
    return read


def read_by_gunicorn() -> set[str]:
    """The names gunicorn.conf.py reads with os.environ.get (its own settings)."""
    tree = ast.parse((ROOT / "gunicorn.conf.py").read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) == "os.environ.get"
        and isinstance(node.args[0], ast.Constant)
    }


def test_every_setting_read_is_listed():
    read = read_by_config() | read_by_gunicorn()
    assert {"APP_ENV", "SECRET_KEY", "WEBHOOK_ALLOW_PRIVATE_TARGETS", "TRIAL_DAYS", "PORT"} <= read
    assert sorted(read - example().keys()) == []


def test_every_listed_setting_is_read():
    assert sorted(example().keys() - read_by_config() - read_by_gunicorn()) == []


def test_the_values_listed_are_the_defaults():
    """Outside production every listed value (an empty one meaning the default) changes nothing;
    in production the same holds once the required values are filled in."""
    listed = {name: value for name, value in example().items() if name != "APP_ENV"}
    for environ in ({"APP_ENV": "development"}, PRODUCTION):
        filled = {**listed, **{name: value for name, value in environ.items() if not listed.get(name)}}
        assert config.load({**filled, "APP_ENV": environ["APP_ENV"]}) == config.load(environ)
    assert example()["APP_ENV"] == config.load(PRODUCTION)["APP_ENV"] == "production"


def test_a_setting_config_reads_but_the_example_does_not_list_is_found(monkeypatch):
    load = config.load

    def load_reading_more(environ):
        environ.get("NEW_SETTING")
        return load(environ)

    monkeypatch.setattr(config, "load", load_reading_more)
    assert read_by_config() - example().keys() == {"NEW_SETTING"}
