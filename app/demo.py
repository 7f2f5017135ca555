"""Demo data for `make run` and `flask seed-demo`: a superadmin and two tenants with an owner each."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.users.models import PlatformUser, User
from app.users.service import create_superadmin, create_user

log = logging.getLogger("app.demo")

DEMO_TENANTS = (
    {"name": "Acme Corp", "slug": "acme", "plan": "professional", "owner": "owner@acme.example.com"},
    {"name": "Globex", "slug": "globex", "plan": "free", "owner": "owner@globex.example.com"},
)
DEMO_PASSWORD = "demo-password-123"


def seed_demo(app: Flask) -> list[dict[str, Any]]:
    """Create the demo accounts that do not exist yet; return the credentials of all of them."""
    email, password = app.config["SUPERADMIN_EMAIL"], app.config["SUPERADMIN_PASSWORD"]
    if PlatformUser.objects(email=email).first() is None:
        create_superadmin(email, "Platform Admin", password)
    accounts = [{"role": "superadmin", "email": email, "password": password, "tenant": None}]
    for demo in DEMO_TENANTS:
        tenant = Tenant.objects(slug=demo["slug"]).first() or create_tenant(
            demo["name"], demo["slug"], plan=demo["plan"]
        )
        with tenant_scope(tenant):
            if User.objects(email=demo["owner"]).first() is None:
                create_user(demo["owner"], f"{demo['name']} Owner", DEMO_PASSWORD, role="owner")
        accounts.append(
            {"role": "owner", "email": demo["owner"], "password": DEMO_PASSWORD, "tenant": demo["slug"]}
        )
    return accounts


def print_accounts(accounts: list[dict[str, Any]]) -> None:
    """Print the demo credentials (development only: production refuses SEED_DEMO)."""
    lines = ["Demo accounts (development only):"]
    for account in accounts:
        where = f" tenant={account['tenant']}" if account["tenant"] else ""
        lines.append(f"  {account['role']:<10} {account['email']} / {account['password']}{where}")
    print("\n".join(lines), flush=True)
