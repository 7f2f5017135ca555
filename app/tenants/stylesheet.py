"""A tenant's custom CSS as its pages get it: checked when saved, served from a per-process cache."""

from __future__ import annotations

import hashlib

from app.tenancy.cache import TTLCache
from app.validators import css_problems

from .models import Tenant
from .plans import effective_features

# The stylesheet of each version of a tenant, by its id and updatedAt (a change saves a new version):
# anonymous requests for it cost a lookup, never a check of the CSS.
_stylesheets = TTLCache(ttl=3600, max_entries=1_000)
NOTHING = ("", hashlib.sha256(b"").hexdigest()[:32])


def _checked(tenant: Tenant) -> tuple[str, str]:
    css = tenant.branding.custom_css or ""
    # The CSS was checked when it was saved; CSS an older version of the rules let through is checked
    # once more here, once per version and process (the check is linear in its bounded length).
    if css_problems(css):
        return NOTHING
    return css, hashlib.sha256(css.encode()).hexdigest()[:32]


def tenant_stylesheet(tenant: Tenant) -> tuple[str, str]:
    """Return the custom CSS of the tenant's pages (none without the whiteLabel feature) and its ETag."""
    if not effective_features(tenant.plan, tenant.features).get("whiteLabel"):
        return NOTHING
    return _stylesheets.get((tenant.id, tenant.updated_at), lambda: _checked(tenant))
