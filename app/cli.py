"""Operational tasks as flask commands; each docstring is the command's help text."""

from __future__ import annotations

import click
import mongoengine as me
from flask import Flask, current_app
from flask.cli import AppGroup
from marshmallow import ValidationError

from app import demo
from app.errors import AppError
from app.users.schemas import PASSWORD
from app.users.service import create_superadmin

users_cli = AppGroup("users", help="Manage accounts.")


@users_cli.command("create-superadmin")
@click.option("--email", prompt=True, help="The superadmin's email (their login).")
@click.option("--name", default="Platform Admin", show_default=True)
@click.password_option(help="At least 8 characters; prompted (twice) when not given.")
def create_superadmin_command(email: str, name: str, password: str) -> None:
    """Create a platform superadmin, who belongs to no tenant."""
    try:
        PASSWORD(password)
        admin = create_superadmin(email, name, password)
    except (AppError, ValidationError, me.ValidationError) as exc:
        raise click.ClickException(str(getattr(exc, "messages", None) or exc)) from None
    click.echo(f"Created superadmin {admin.email} ({admin.id}).")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)

    @app.cli.command("seed-demo")
    def seed_demo_command() -> None:
        """Create the demo superadmin and the two demo tenants (development only)."""
        if current_app.config["APP_ENV"] == "production":
            raise click.ClickException("seed-demo creates well-known accounts: refused in production")
        demo.print_accounts(demo.seed_demo(current_app))
