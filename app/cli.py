"""Operational tasks as flask commands; each docstring is the command's help text."""

from __future__ import annotations

import click
from flask import Flask, current_app

from app import demo


def register(app: Flask) -> None:
    @app.cli.command("seed-demo")
    def seed_demo_command() -> None:
        """Create the demo superadmin and the two demo tenants (development only)."""
        if current_app.config["APP_ENV"] == "production":
            raise click.ClickException("seed-demo creates well-known accounts: refused in production")
        demo.print_accounts(demo.seed_demo(current_app))
