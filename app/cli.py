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


jobs_cli = AppGroup("jobs", help="Scheduled jobs.")


@jobs_cli.command("run")
def run_jobs_command() -> None:
    """Run the scheduler: lead when this process holds the lease, wait otherwise (one per deployment)."""
    from app.jobs import run_scheduler

    run_scheduler(current_app._get_current_object())


@jobs_cli.command("list")
def list_jobs_command() -> None:
    """Show the schedule."""
    from app.jobs import SCHEDULE

    for job in SCHEDULE:
        when = ", ".join(f"{k}={v}" for k, v in job.trigger.items() if k != "trigger")
        click.echo(f"{job.name:<18} {job.trigger['trigger']} ({when}) UTC  {job.description}")


@jobs_cli.command("run-once")
@click.argument("name")
def run_once_command(name: str) -> None:
    """Run one job now, without the lease (after an outage, or to try it)."""
    from app.jobs import SCHEDULE, job_named, run_job

    try:
        job = job_named(name)
    except KeyError:
        names = ", ".join(job.name for job in SCHEDULE)
        raise click.ClickException(f"no job named {name!r}; the jobs are: {names}") from None
    click.echo(f"{name}: {run_job(current_app._get_current_object(), job)}")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(jobs_cli)

    @app.cli.command("seed-demo")
    def seed_demo_command() -> None:
        """Create the demo superadmin and the two demo tenants (development only)."""
        if current_app.config["APP_ENV"] == "production":
            raise click.ClickException("seed-demo creates well-known accounts: refused in production")
        demo.print_accounts(demo.seed_demo(current_app))
