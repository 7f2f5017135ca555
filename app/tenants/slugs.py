"""Tenant slugs: lowercase DNS labels that can name a subdomain, and nothing that only looks like one."""

from __future__ import annotations

import re
import unicodedata

SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]", re.ASCII)
NOT_SLUG_RUN = re.compile(r"[^a-z0-9]++")
IDN_PREFIX_RE = re.compile(r"^(..)--")

# Words that are part of the platform's own host names or URLs, never a tenant.
RESERVED = frozenset(
    {
        "admin",
        "administrator",
        "api",
        "app",
        "apps",
        "assets",
        "auth",
        "billing",
        "blog",
        "cdn",
        "dashboard",
        "default",
        "dev",
        "docs",
        "ftp",
        "help",
        "imap",
        "internal",
        "localhost",
        "login",
        "mail",
        "media",
        "mx",
        "ns1",
        "ns2",
        "pop",
        "root",
        "signup",
        "smtp",
        "staging",
        "static",
        "status",
        "superadmin",
        "support",
        "system",
        "test",
        "webmail",
        "www",
    }
)


def slug_problem(slug: str, *, allow_reserved: frozenset[str] = frozenset()) -> str | None:
    """Return why `slug` cannot name a tenant, or None when it can."""
    if not isinstance(slug, str) or not slug.isascii():
        return "Use only the ASCII letters a-z, digits and hyphens."
    if not 3 <= len(slug) <= 63:
        return "Use 3 to 63 characters."
    if not SLUG_RE.fullmatch(slug):
        return "Use lowercase letters, digits and hyphens, starting and ending with a letter or digit."
    if slug[2:4] == "--":
        return "Hyphens in the third and fourth positions are reserved (IDN labels)."
    if slug in RESERVED and slug not in allow_reserved:
        return "This name is reserved."
    return None


def slugify(name: str) -> str:
    """Derive a slug candidate from a tenant name (the result still has to pass slug_problem)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = NOT_SLUG_RUN.sub("-", ascii_name.lower()).strip("-")[:63].strip("-")
    slug = IDN_PREFIX_RE.sub(r"\1-", slug)
    if len(slug) < 3:
        slug = f"{slug}-org" if slug else "org"
    return slug
