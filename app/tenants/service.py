"""Tenant registry services."""

from __future__ import annotations

import mongoengine as me
from flask import current_app

from app.errors import Conflict, ValidationFailed

from .models import Tenant
from .plans import DEFAULT_PLAN, PLANS
from .slugs import slug_problem, slugify


def _reserved_allowed() -> frozenset[str]:
    """The configured default tenant may use a reserved word (`default` is one)."""
    return frozenset({current_app.config["DEFAULT_TENANT_SLUG"]})


def check_slug(slug: str) -> str:
    """Return `slug` if it can name a new tenant; raise 422 or 409 otherwise."""
    problem = slug_problem(slug, allow_reserved=_reserved_allowed())
    if problem:
        raise ValidationFailed(details={"slug": [problem]})
    if Tenant.objects(slug=slug).only("id").first() is not None:
        raise Conflict("This slug is taken", code="slug_taken", details={"slug": slug})
    return slug


def create_tenant(
    name: str,
    slug: str | None = None,
    *,
    plan: str = DEFAULT_PLAN,
    domain: str | None = None,
) -> Tenant:
    """Create a tenant; derive the slug from the name when none is given."""
    if plan not in PLANS:
        raise ValidationFailed(details={"plan": [f"Unknown plan {plan!r}."]})
    slug = check_slug(slug if slug is not None else slugify(name))
    tenant = Tenant(name=name.strip(), slug=slug, plan=plan, domain=domain or None)
    try:
        return tenant.save(force_insert=True)
    except me.NotUniqueError:
        # Two signups raced for the same slug (or domain): the unique index decided.
        raise Conflict("This slug or domain is taken", code="slug_taken") from None


def plan_catalog() -> dict:
    """Return the plan catalog as the API lists it."""
    return {"items": [{"id": plan_id, **plan} for plan_id, plan in PLANS.items()]}
