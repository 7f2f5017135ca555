"""Field validators shared by the schemas: time zones, currencies, language tags, CIDRs, colours, CSS,
identity provider URLs; and the email and URL fields, whose length is capped before their patterns run.

Every validator of tenant-controlled text runs in time linear in its input: a cap on the length comes
before any costly work, and every pattern's unbounded quantifiers are possessive, with no quantifier
nested in another (tests/test_linear_validators.py checks both).

A validator that can say what it accepts in JSON Schema carries that as `json_schema` (`publishes`),
and the OpenAPI document shows it on every field the validator checks (`openapi_properties`), so that
what the document calls valid is what the service accepts. The patterns are written for both Python
and ECMAScript, the dialect of JSON Schema."""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import tinycss2
from flask import current_app
from marshmallow import ValidationError, fields, validate
from tinycss2.ast import (
    CurlyBracketsBlock,
    FunctionBlock,
    Node,
    ParenthesesBlock,
    SquareBracketsBlock,
    StringToken,
)

# ISO 4217 codes of currencies in use (funds and precious metals left out).
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
    GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
    LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR
    NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP
    STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG
    XOF XPF YER ZAR ZMW ZWG
    """.split()
)
# BCP 47, the common shapes: language, optional script, optional region ("en", "pt-BR", "zh-Hant-TW").
LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|\d{3}))?", re.ASCII)
HOST_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
COLOR_RE = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})", re.ASCII)
MAX_CIDRS = 100
MAX_CIDR_LENGTH = 64  # the longest network, IPv6 with an IPv4 tail and a prefix, has 49 characters
MAX_HOST_NAME = 253
MAX_URL = 2048
# Where an identity provider may answer over plain http: this machine (tests, local development).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

JsonSchema = dict[str, Any] | Callable[[], dict[str, Any]]


def publishes(schema: JsonSchema) -> Callable[[Any], Any]:
    """Give a validator the JSON Schema form of what it accepts (a dict, or a function making one)."""

    def attach(validator: Any) -> Any:
        validator.json_schema = schema
        return validator

    return attach


def openapi_properties(self: Any, field: Any, **_kwargs: Any) -> dict[str, Any]:
    """apispec attribute function: the JSON Schema of `field` and of its validators, where they publish
    one (a field class of our own publishes its type this way)."""
    properties: dict[str, Any] = {}
    for validator in (field, *field.validators):
        schema = getattr(validator, "json_schema", None)
        if schema is not None:
            properties.update(schema() if callable(schema) else schema)
    return properties


def whole(pattern: str, error: str) -> validate.Regexp:
    """A Regexp the whole value must match, published as the same JSON Schema pattern. `pattern` must
    mean the same in both dialects: classes such as [0-9] rather than \\d, which in Python also matches
    other scripts' digits."""
    return publishes({"pattern": f"^(?:{pattern})$"})(validate.Regexp(rf"(?:{pattern})\Z", error=error))


# An id in a body or query string (ids in paths go through the objectid URL converter).
object_id = whole("[0-9a-fA-F]{24}", "Use a 24-character hexadecimal id.")

# Custom CSS is tokenized (tinycss2) within these bounds, so that checking it is linear in its length.
MAX_CSS_CHARS = 50_000
MAX_CSS_RULES = 2_000  # {} blocks: rules, at-rules with a body, nested rules
MAX_CSS_DEPTH = 12  # blocks and functions nested in one another
# CSS that can run script, load other documents, or break out of the <style> element, looked for in the
# text (with and without its comments, which can split a word in two). Every quantifier is possessive:
# a failed match never backtracks, so each search is linear.
CSS_FORBIDDEN = (
    (re.compile(r"<"), "HTML (such as </style>) is not allowed in CSS"),
    (re.compile(r"\\"), "CSS escapes are not allowed"),
    (re.compile(r"@import", re.IGNORECASE), "@import is not allowed"),
    (re.compile(r"javascript:|vbscript:", re.IGNORECASE), "script URLs are not allowed"),
    (re.compile(r"expression\s*+\(", re.IGNORECASE), "expression() is not allowed"),
    (re.compile(r"behavior\s*+:|-moz-binding", re.IGNORECASE), "behaviors and bindings are not allowed"),
    (re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]"), "control characters are not allowed"),
    # No style needs more; Python refuses to read an integer of thousands of digits.
    (re.compile(r"[0-9]{51}"), "numbers of more than 50 digits are not allowed"),
)
CSS_URL_RE = re.compile(r"url\(\s*+['\"]?+\s*+([^'\")\s]*+)", re.IGNORECASE)
CSS_URL_ALLOWED = re.compile(r"https://|data:image/(?:png|gif|jpeg|webp);", re.IGNORECASE)
CSS_URL_PROBLEM = "only https: and data:image URLs are allowed in url()"
# Functions whose string arguments are URLs the browser loads, as url()'s are.
CSS_URL_FUNCTIONS = frozenset({"src", "image", "image-set", "-webkit-image-set"})
CSS_NESTING = (FunctionBlock, ParenthesesBlock, SquareBracketsBlock, CurlyBracketsBlock)


@publishes({"pattern": r"\S"})
def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must contain more than white space.")


# What people, bots, keys and tenants are called (stored without the white space around it).
NAME = (validate.Length(min=1, max=100), not_blank)


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@publishes(lambda: {"enum": sorted(_time_zones())})
def time_zone(value: str) -> None:
    if value not in _time_zones():
        raise ValidationError("Use an IANA time zone, such as Europe/Berlin or UTC.")


@publishes(lambda: {"enum": sorted(CURRENCIES)})
def currency(value: str) -> None:
    if value not in CURRENCIES:
        raise ValidationError("Use an ISO 4217 currency code, such as USD or EUR.")


@publishes({"pattern": f"^{LANGUAGE_RE.pattern}$"})
def language_tag(value: str) -> None:
    if not LANGUAGE_RE.fullmatch(value):
        raise ValidationError("Use a language tag, such as en, de or pt-BR.")


@publishes({"pattern": f"^{COLOR_RE.pattern}$"})
def color(value: str) -> None:
    if not COLOR_RE.fullmatch(value):
        raise ValidationError("Use a hex colour, such as #1a2b3c.")


def _is_network(value: str) -> bool:
    if len(value) > MAX_CIDR_LENGTH:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


@publishes({"maxItems": MAX_CIDRS})
def cidr_list(values: list[str]) -> None:
    if len(values) > MAX_CIDRS:
        raise ValidationError(f"At most {MAX_CIDRS} entries.")
    errors = {
        index: ["Use an IPv4 or IPv6 address or CIDR, such as 203.0.113.0/24."]
        for index, value in enumerate(values)
        if not _is_network(value)
    }
    if errors:
        raise ValidationError(errors)


def normalize_cidrs(values: list[str]) -> list[str]:
    """Return the CIDRs in canonical form, without duplicates, in the order given."""
    seen: dict[str, None] = {}
    for value in values:
        seen[str(ipaddress.ip_network(value, strict=False))] = None
    return list(seen)


@publishes(
    {"maxLength": MAX_HOST_NAME, "pattern": f"^{HOST_LABEL_RE.pattern}(?:\\.{HOST_LABEL_RE.pattern})+$"}
)
def host_name(value: str) -> None:
    """A custom domain: a lowercase DNS name with at least two labels."""
    labels = value.split(".") if len(value) <= MAX_HOST_NAME else []
    if not value.isascii() or len(labels) < 2 or not all(HOST_LABEL_RE.fullmatch(label) for label in labels):
        raise ValidationError("Use a lowercase domain name, such as marketing.example.com.")


def _without_comments(css: str) -> str:
    """Return `css` without its comments (an unclosed one runs to the end, as in a browser)."""
    parts, position = [], 0
    while (start := css.find("/*", position)) != -1:
        parts.append(css[position:start])
        end = css.find("*/", start + 2)
        position = len(css) if end == -1 else end + 2
    parts.append(css[position:])
    return "".join(parts)


def _css_url_allowed(url: str) -> bool:
    return not url or CSS_URL_ALLOWED.match(url) is not None


def _css_token_problems(css: str) -> list[str]:
    """Return what the tokens of `css` load that the text does not show as a url(), or the bound it
    goes past."""
    problems = []
    pending: list[tuple[list[Node], int, str | None]] = [
        (tinycss2.parse_component_value_list(css, skip_comments=True), 0, None)
    ]
    rules = 0
    while pending:
        tokens, depth, function = pending.pop()
        for token in tokens:
            if (
                isinstance(token, StringToken)
                and function in CSS_URL_FUNCTIONS
                and not _css_url_allowed(token.value)
            ):
                problems.append(CSS_URL_PROBLEM)
            if not isinstance(token, CSS_NESTING):
                continue
            if depth == MAX_CSS_DEPTH:
                return [f"Blocks and functions may be nested at most {MAX_CSS_DEPTH} deep."]
            rules += token.type == "{} block"
            if rules > MAX_CSS_RULES:
                return [f"At most {MAX_CSS_RULES:,} rules."]
            if isinstance(token, FunctionBlock):
                pending.append((token.arguments, depth + 1, token.lower_name))
            else:
                pending.append((token.content, depth + 1, None))
    return problems


def css_problems(css: str) -> list[str]:
    """Return why `css` is not safe to put in a tenant's <style> element (empty when it is). The work is
    linear in the length of `css`, which is refused past MAX_CSS_CHARS before anything else."""
    if len(css) > MAX_CSS_CHARS:
        return [f"At most {MAX_CSS_CHARS:,} characters."]
    problems = []
    for text in (css, _without_comments(css)):
        for pattern, problem in CSS_FORBIDDEN:
            if pattern.search(text):
                problems.append(problem)
        if not all(_css_url_allowed(url) for url in CSS_URL_RE.findall(text)):
            problems.append(CSS_URL_PROBLEM)
    if problems:
        return list(dict.fromkeys(problems))
    # Only text that passed the checks above is tokenized.
    return list(dict.fromkeys(_css_token_problems(css)))


@publishes({"maxLength": MAX_CSS_CHARS})
def safe_css(value: str) -> None:
    problems = css_problems(value)
    if problems:
        raise ValidationError(problems)


def provider_url_problem(url: str, production: bool) -> str | None:
    """Say why `url` cannot be an identity provider's URL (None when it can): https, or plain http to
    this machine outside production, so that tests and local development can run a provider."""
    try:
        parts = urlsplit(url)
        valid = bool(parts.hostname) and parts.port != 0 and parts.username is None
    except ValueError:  # a port that is not a number, or out of range
        valid = False
    if not valid or any(c.isspace() for c in url):
        return "Use a URL such as https://login.example.com (no user name, no spaces)."
    if parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and not production
    ):
        return None
    return "Use an https:// URL (http:// only to localhost, and never in production)."


@publishes({"maxLength": MAX_URL})
def oidc_issuer(value: str) -> None:
    """An OpenID Connect issuer: a provider URL (see provider_url_problem) without query or fragment."""
    if len(value) > MAX_URL:
        raise ValidationError(f"Longer than maximum length {MAX_URL}.")
    problem = provider_url_problem(value, current_app.config["APP_ENV"] == "production")
    if problem:
        raise ValidationError(problem)
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise ValidationError("An issuer URL has no query and no fragment.")


class _LengthFirst(fields.String):
    """A field whose value is refused past `max_length` characters before its validators run, such as
    the patterns of marshmallow's Email and URL: their work stays bounded by the cap."""

    def __init__(self, *args: Any, max_length: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_length = max_length
        self.json_schema = {"maxLength": max_length}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and len(value) > self.max_length:
            raise ValidationError(f"Longer than maximum length {self.max_length}.")
        return super()._deserialize(value, attr, data, **kwargs)


class Email(_LengthFirst, fields.Email):
    """An email address: at most 254 characters (RFC 5321), counted before its pattern runs."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, max_length=254, **kwargs)


class URL(_LengthFirst, fields.URL):
    """A URL: at most MAX_URL characters, counted before its pattern runs."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, max_length=MAX_URL, **kwargs)
