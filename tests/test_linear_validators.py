"""Every validator of tenant-controlled text answers in time linear in its input, counted, not timed.

Regular expressions run in C, where no step can be counted: theirs is checked in their structure (every
unbounded quantifier possessive, no quantifier nested in another), and a cap on the input is checked
before them. The Python code of the validators is counted step by step (sys.settrace): at their maximum
length, pathological inputs take about twice the steps of inputs half as long, and past the maximum
they are refused in the same few steps whatever their length."""

from __future__ import annotations

import gc
import importlib
import pkgutil
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from re import _constants as sre
from re import _parser as sre_parse
from typing import Any

import marshmallow
import mongoengine
import pytest
from marshmallow import ValidationError, fields, validate

import app as app_package
from app import validators
from app.campaigns.schemas import ChatTarget
from app.tenants.slugs import slug_problem, slugify

# -- the patterns -------------------------------------------------------------------------------------


def _modules() -> list[Any]:
    return [
        importlib.import_module(info.name) for info in pkgutil.walk_packages(app_package.__path__, "app.")
    ]


def _module_patterns() -> Iterator[tuple[str, re.Pattern]]:
    """Every compiled pattern at the top level of a module of the app, alone or in a table."""
    for module in _modules():
        for name, value in vars(module).items():
            items = value if isinstance(value, tuple) else (value,)
            for item in items:
                for candidate in item if isinstance(item, tuple) else (item,):
                    if isinstance(candidate, re.Pattern):
                        yield f"{module.__name__}.{name}", candidate


def _schema_fields() -> Iterator[tuple[str, fields.Field]]:
    """Every field of every schema of the app, and the fields inside lists and dicts."""
    _modules()
    pending = list(marshmallow.Schema.__subclasses__())
    seen = set()
    while pending:
        schema = pending.pop()
        pending.extend(schema.__subclasses__())
        if schema in seen or not schema.__module__.startswith("app."):
            continue
        seen.add(schema)
        inner = [(f"{schema.__name__}.{name}", field) for name, field in schema._declared_fields.items()]
        while inner:
            name, field = inner.pop()
            yield name, field
            for attribute in ("inner", "key_field", "value_field"):
                if getattr(field, attribute, None) is not None:
                    inner.append((f"{name}.{attribute}", getattr(field, attribute)))


def _schema_patterns() -> Iterator[tuple[str, re.Pattern]]:
    for name, field in _schema_fields():
        for validator in field.validators:
            if isinstance(validator, validate.Regexp):
                yield name, validator.regex


def _document_patterns() -> Iterator[tuple[str, re.Pattern]]:
    _modules()
    for document_class in mongoengine.base.common._document_registry.values():
        for name, field in document_class._fields.items():
            if getattr(field, "regex", None) is not None:
                yield f"{document_class.__name__}.{name}", field.regex


ALL_PATTERNS = sorted(
    {
        (name, pattern.pattern): pattern
        for name, pattern in (*_module_patterns(), *_schema_patterns(), *_document_patterns())
    }.items()
)


def backtracking_risks(pattern: re.Pattern) -> list[str]:
    """Say what in `pattern` can make a match backtrack more than linearly (empty: nothing)."""
    risks = []

    def walk(items: Any, repeated: bool) -> None:
        for op, argument in items:
            if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
                _low, high, body = argument
                if high == sre.MAXREPEAT and op is not sre.POSSESSIVE_REPEAT:
                    risks.append("an unbounded quantifier that backtracks")
                if repeated and high > 1:
                    risks.append("a quantifier inside a quantifier")
                walk(body, repeated or high > 1)
            elif op is sre.BRANCH:
                if repeated:
                    risks.append("alternatives inside a quantifier")
                for branch in argument[1]:
                    walk(branch, repeated)
            elif op is sre.SUBPATTERN:
                walk(argument[3], repeated)
            elif op in (sre.ATOMIC_GROUP,):
                walk(argument, repeated)
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                walk(argument[1], repeated)

    walk(sre_parse.parse(pattern.pattern, pattern.flags), repeated=False)
    return risks


def test_the_patterns_are_found():
    names = {name for (name, _text), _pattern in ALL_PATTERNS}
    for expected in (
        "app.validators.LANGUAGE_RE",
        "app.validators.CSS_FORBIDDEN",
        "app.validators.CSS_URL_RE",
        "app.tenants.slugs.SLUG_RE",
        "app.campaigns.schemas.CHANNEL_RE",
        "app.request_hooks.BOT_TOKEN_IN_PATH",
        "TelegramAccountCreateSchema.token",
        "UsageCounter.period",
    ):
        assert expected in names, sorted(names)


@pytest.mark.parametrize(("name", "pattern"), [(name, pattern) for (name, _), pattern in ALL_PATTERNS])
def test_no_pattern_can_backtrack_more_than_linearly(name, pattern):
    assert backtracking_risks(pattern) == [], (name, pattern.pattern)


@pytest.mark.parametrize(
    ("pattern", "risky"),
    [
        (r"(a+)+b", True),
        (r"(?:a|ab)*c", True),
        (r"\s*['\"]?\s*x", True),
        (r"/\*.*?\*/", True),
        (r"(?:[a-z]{1,9}){1,9}", True),
        (r"a\s*+b", False),
        (r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", False),
        (r"(?:-(?:[A-Z]{2}|\d{3}))?", False),
        (r"(?:ab|cd){2}", True),
    ],
)
def test_the_structural_check_tells_risky_patterns(pattern, risky):
    assert bool(backtracking_risks(re.compile(pattern))) is risky


# -- counting the work of a validator -----------------------------------------------------------------


@contextmanager
def counted_work() -> Iterator[dict[str, int]]:
    """Count the Python steps (calls, lines, returns) of the block, and its calls of a compiled pattern.
    The garbage collector waits meanwhile: a finalizer it ran would count as the block's steps."""
    work = {"steps": 0, "patterns": 0}

    def trace(frame: Any, event: str, argument: Any) -> Any:
        work["steps"] += 1
        return trace

    def profile(frame: Any, event: str, argument: Any) -> None:
        if event == "c_call" and isinstance(getattr(argument, "__self__", None), re.Pattern):
            work["patterns"] += 1

    previous_trace, previous_profile = sys.gettrace(), sys.getprofile()
    collecting = gc.isenabled()
    gc.disable()
    sys.settrace(trace)
    sys.setprofile(profile)
    try:
        yield work
    finally:
        sys.settrace(previous_trace)
        sys.setprofile(previous_profile)
        if collecting:
            gc.enable()


def run(check: Callable[[Any], Any], value: Any) -> dict[str, int]:
    """Run a validator on `value` (refusing it is an answer too); return the work it took, once
    warmed up (a first call may do one-time work: imports, caches)."""
    with suppress(ValidationError):
        check(value)
    with counted_work() as work, suppress(ValidationError):
        check(value)
    return work


def stretch(unit: str, length: int) -> str:
    """`unit` repeated up to exactly `length` characters."""
    return (unit * (length // len(unit) + 1))[:length]


def assert_linear(check: Callable[[Any], Any], make: Callable[[int], Any], length: int) -> None:
    """The work at `length` is at most about twice the work at half of it."""
    half, full = run(check, make(length // 2)), run(check, make(length))
    assert full["steps"] <= 2.5 * half["steps"] + 200, (half, full)


def assert_refused_early(check: Callable[[Any], Any], make: Callable[[int], Any], cap: int) -> None:
    """Past its cap a value is refused in the same steps whatever its length, before any pattern runs."""
    just_over, far_over = run(check, make(cap + 1)), run(check, make(cap * 100))
    assert just_over["patterns"] == far_over["patterns"] == 0, (just_over, far_over)
    assert just_over["steps"] == far_over["steps"], (just_over, far_over)


CSS_UNITS = [
    "/*",  # the comment that made a backtracking expression quadratic
    "/**/a",
    "(",
    "{",
    "a{}",
    "url(",
    "url( ",
    "url(/*",
    "expression ",
    "behavior \t",
    '"',
    "'a",
    ".1",
    "1e1",
    "-",
    "@media x{",
    'image-set("x" ',
    "#a",
    "*/",
    ".a{color:red;background:url(https://cdn.example.com/a.png)}\n",
]


@pytest.mark.parametrize("unit", CSS_UNITS)
def test_custom_css_is_checked_in_linear_steps(unit):
    check = validators.safe_css
    assert_linear(check, lambda length: stretch(unit, length), validators.MAX_CSS_CHARS)
    assert_refused_early(check, lambda length: stretch(unit, length), validators.MAX_CSS_CHARS)


@pytest.mark.parametrize("unit", ["a.", "a-", "a", ".", "ab-cd.", "-a."])
def test_host_names(unit):
    assert_linear(validators.host_name, lambda length: stretch(unit, length), validators.MAX_HOST_NAME)
    assert_refused_early(validators.host_name, lambda length: stretch(unit, length), validators.MAX_HOST_NAME)


@pytest.mark.parametrize("unit", ["1", "1.", ":", "::1:", "1:" * 7, "a", "/"])
def test_ip_lists(unit):
    def entries(length: int) -> list[str]:
        return [stretch(unit, length)] * validators.MAX_CIDRS

    assert_linear(validators.cidr_list, entries, validators.MAX_CIDR_LENGTH)
    assert_refused_early(validators.cidr_list, entries, validators.MAX_CIDR_LENGTH)
    too_many = run(validators.cidr_list, ["10.0.0.0/8"] * (validators.MAX_CIDRS * 100))
    assert too_many == run(validators.cidr_list, ["10.0.0.0/8"] * (validators.MAX_CIDRS + 1))


@pytest.mark.parametrize("unit", ["https://", "a.", "%", ":", "https://a.example.com/" + "?#" * 10, "@"])
def test_identity_provider_urls(app, unit):
    def url(length: int) -> str:
        return "https://" + stretch(unit, length - 8)

    assert_linear(validators.oidc_issuer, url, validators.MAX_URL)
    assert_refused_early(validators.oidc_issuer, url, validators.MAX_URL)


@pytest.mark.parametrize("unit", ["a", "a-", "-", "--", "a1"])
def test_slugs(unit):
    assert_refused_early(slug_problem, lambda length: stretch(unit, length), 63)
    assert_linear(slugify, lambda length: stretch(unit + "é !", length), 100)


@pytest.mark.parametrize(
    ("check", "unit"),
    [
        (validators.language_tag, "aa-Aaaa-"),
        (validators.color, "#aaa"),
        (validators.object_id, "a"),
        (validators.time_zone, "Europe/"),
        (validators.currency, "EUR"),
        (validators.not_blank, " "),
        (ChatTarget().deserialize, "@a_"),
        (ChatTarget().deserialize, "-1"),
    ],
)
def test_validators_of_bounded_patterns_take_the_same_steps_at_any_length(check, unit):
    """A whole-value pattern whose quantifiers are all bounded matches at most so many characters."""
    short, long = run(check, stretch(unit, 100)), run(check, stretch(unit, 100_000))
    assert short == long


# -- marshmallow's email and URL patterns ---------------------------------------------------------------


def test_every_email_and_url_field_is_capped_before_its_pattern():
    uncapped = [
        name
        for name, field in _schema_fields()
        if isinstance(field, (fields.Email, fields.URL))
        and not isinstance(field, (validators.Email, validators.URL))
    ]
    assert uncapped == []


@pytest.mark.parametrize("field_class", [validators.Email, validators.URL])
def test_past_the_cap_the_pattern_never_runs(monkeypatch, field_class):
    calls = []
    for validator_class in (validate.Email, validate.URL):
        original = validator_class.__call__

        def counting(self, value, original=original):
            calls.append(value)
            return original(self, value)

        monkeypatch.setattr(validator_class, "__call__", counting)
    field = field_class()
    unit = "a." if field_class is validators.URL else "a@a."
    for length in (field.max_length + 1, field.max_length * 100):
        with pytest.raises(ValidationError, match="Longer than maximum length"):
            field.deserialize(stretch(unit, length))
    assert calls == []
    assert field.deserialize("https://a.example.com" if field_class is validators.URL else "a@example.com")
    assert len(calls) == 1
