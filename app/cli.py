"""Operational tasks as flask commands; each docstring is the command's help text."""

from __future__ import annotations

import sys
import threading

import click
import mongoengine as me
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from marshmallow import ValidationError

from app import demo
from app.errors import AppError
from app.tenants.models import Tenant
from app.tenants.plans import PLAN_NAMES
from app.tenants.service import create_tenant
from app.users.schemas import PASSWORD
from app.users.service import create_superadmin
from config import is_embedded

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


@users_cli.command("key-recovery-codes")
def key_recovery_codes_command() -> None:
    """Key the two-factor recovery codes an older version stored unkeyed (once after upgrading;
    running it again changes nothing)."""
    from app.auth.two_factor import key_stored_recovery_codes

    click.echo(f"Keyed the recovery codes of {key_stored_recovery_codes()} users.")


jobs_cli = AppGroup("jobs", help="Scheduled jobs.")


def _refuse_embedded(process: str) -> None:
    """A process of its own cannot see the embedded store, which lives inside the serving process."""
    uri = current_app.config["MONGODB_URI"]
    if is_embedded(uri):
        raise click.ClickException(
            f"the embedded store ({uri}) lives inside the serving process, which runs the {process} "
            f"itself (make run); a separate {process} would only see an empty database of its own. "
            "Run it as a process of its own against MongoDB: MONGODB_URI=mongodb://..."
        )


@jobs_cli.command("run")
def run_jobs_command() -> None:
    """Run the scheduler: lead when this process holds the lease, wait otherwise (one per deployment)."""
    from app.jobs import run_scheduler
    from app.workers import until_signalled

    _refuse_embedded("scheduler")
    stop = threading.Event()
    until_signalled(lambda: run_scheduler(current_app._get_current_object(), stop), stop.set)  # type: ignore[attr-defined]


@jobs_cli.command("list")
def list_jobs_command() -> None:
    """Show the schedule."""
    from app.jobs import SCHEDULE

    for job in SCHEDULE:
        trigger = job.trigger(current_app.config)
        when = ", ".join(f"{k}={v}" for k, v in trigger.items() if k != "trigger")
        click.echo(f"{job.name:<18} {trigger['trigger']} ({when}) UTC  {job.description}")


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
    click.echo(f"{name}: {run_job(current_app._get_current_object(), job)}")  # type: ignore[attr-defined]


dispatcher_cli = AppGroup("dispatcher", help="Campaign and webhook delivery.")


@dispatcher_cli.command("run")
def run_dispatcher_command() -> None:
    """Run a dispatcher: send for the bots and webhooks whose work is due, sharing them with every
    other dispatcher through leases (run as many as the load needs)."""
    from app.workers import dispatcher, until_signalled

    _refuse_embedded("dispatcher")
    running = dispatcher(current_app._get_current_object())  # type: ignore[attr-defined]
    until_signalled(running.run, running.stopping.set)
    running.stop()


@click.command("migrate-to-multitenant")
@with_appcontext
@click.option("--slug", help="Slug of the default tenant [default: DEFAULT_TENANT_SLUG].")
@click.option("--name", default="Default", show_default=True, help="Name of the default tenant, if created.")
@click.option(
    "--plan",
    type=click.Choice(PLAN_NAMES),
    default="enterprise",
    show_default=True,
    help="Its plan, if created.",
)
@click.option("--dry-run", is_flag=True, help="Report what would change and write nothing.")
@click.option(
    "--backup",
    type=click.Path(dir_okay=False, writable=True),
    help="Write what will change to this JSON file first.",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation when there is no --backup.")
def migrate_command(
    slug: str | None, name: str, plan: str, dry_run: bool, backup: str | None, batch_size: int, yes: bool
) -> None:
    """Convert a single-tenant database to the multi-tenant layout (idempotent; back up first)."""
    from app.jobs.reconcile import recompute_tenant_usage
    from app.tenancy import migration

    config = current_app.config
    if config["CREATE_INDEXES"]:
        raise click.ClickException(
            "run with CREATE_INDEXES=false, so that the migration creates the indexes in its own order "
            "(scripts/migrate_to_multitenant.py does this for you)"
        )
    slug = slug or config["DEFAULT_TENANT_SLUG"]
    reports = migration.inspect()
    tenant = Tenant.objects(slug=slug).first()
    click.echo(f"Default tenant: {slug} ({'exists' if tenant else 'will be created, plan ' + plan})")
    if dry_run:
        _print_reports(reports, dry_run=True)
        click.echo("Dry run: nothing was written.")
        return
    if backup:
        with open(backup, "w", encoding="utf-8") as out:
            written = migration.write_backup(out, reports)
        click.echo(f"Backed up {written} documents and their old indexes to {backup}.")
    elif not yes:
        click.echo("Back up the database first (mongodump, or --backup PATH).")
        click.confirm("Migrate without a backup?", abort=True)
    try:
        tenant = tenant or create_tenant(name, slug, plan=plan)
        reports = migration.migrate(
            tenant,
            batch_size=batch_size,
            progress=lambda length, label: click.progressbar(
                length=length, label=f"{label:<20}", file=sys.stderr
            ),
        )
    except (migration.MigrationError, AppError) as exc:
        raise click.ClickException(str(exc)) from None
    usage = recompute_tenant_usage(tenant)
    _print_reports(reports, dry_run=False)
    click.echo(f"Usage of {slug} recomputed: {usage}")
    click.echo("Migration finished: every collection has the same number of documents as before.")


def _print_reports(reports: list, dry_run: bool) -> None:
    head = (
        "collection",
        "documents",
        "without tenantId",
        "backfilled" if not dry_run else "to backfill",
        "old indexes",
    )
    rows = [
        (
            r.collection,
            str(r.before),
            str(r.missing_tenant),
            str(r.missing_tenant if dry_run else r.backfilled),
            ", ".join(r.old_indexes) or "-",
        )
        for r in reports
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(dispatcher_cli)
    app.cli.add_command(migrate_command)

    @app.cli.command("seed-demo")
    def seed_demo_command() -> None:
        """Create the demo superadmin and the two demo tenants (development only)."""
        if current_app.config["APP_ENV"] == "production":
            raise click.ClickException("seed-demo creates well-known accounts: refused in production")
        demo.print_accounts(demo.seed_demo(current_app))
