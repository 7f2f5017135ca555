"""Operational tasks as commands; each docstring is the command's help text.

One group of commands, `cli`, serves as `tgm` (the project's console script), `python -m app`, and
`flask --app wsgi` (which lists them through the `flask.commands` entry points in pyproject.toml, so
that they show whether or not the app can be created). Listing commands and showing their help never
create the app; running one does, and a configuration error then ends it with one line on stderr.
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime
from typing import Any

import click
import mongoengine as me
from flask import Flask, current_app
from flask.cli import AppGroup, NoAppException, ScriptInfo, routes_command, shell_command, with_appcontext
from marshmallow import ValidationError

from app import demo, leases, metrics
from app.errors import AppError
from app.tenants.admin import fill_search_terms
from app.tenants.models import Tenant
from app.tenants.plans import PLAN_NAMES
from app.users.schemas import PASSWORD
from app.users.service import create_superadmin
from config import ConfigError, is_embedded


class UnconfiguredError(NoAppException):
    """The app cannot be created as configured: one line on stderr and exit status 1, no traceback
    (Flask's own command line shows the line and lists the commands all the same)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"Configuration error: {self.format_message()}", file=file, err=True)


def application() -> Flask:
    """The app, for `gunicorn wsgi:app` and every command; a configuration error is UnconfiguredError."""
    from app import create_app

    try:
        return create_app()
    except ConfigError as exc:
        raise UnconfiguredError(str(exc)) from None


# A group's callback runs before its commands parse their options, so a configuration error ends the
# command before it prompts for anything.
@click.group("users", cls=AppGroup)
@with_appcontext
def users_cli() -> None:
    """Manage accounts."""


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


@click.group("tenants", cls=AppGroup)
@with_appcontext
def tenants_cli() -> None:
    """Look after the tenants' records."""


@tenants_cli.command("fill-search-terms")
def fill_search_terms_command() -> None:
    """Write the search terms of tenants an older version stored without them, so that the
    superadmin's search finds them (once after upgrading; running it again changes nothing)."""
    click.echo(f"Wrote the search terms of {fill_search_terms()} tenants.")


@click.group("jobs", cls=AppGroup)
@with_appcontext
def jobs_cli() -> None:
    """Scheduled jobs."""


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
    metrics.serve_separately(current_app.config)
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


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


@jobs_cli.command("status")
def status_command() -> None:
    """Show who leads the scheduler and until when, each job's last run and last success, the
    dispatchers alive with the lanes they hold, and the queue."""
    from app.system.service import system_status

    status = system_status()
    scheduler = status["scheduler"]
    if scheduler["holder"] is None:
        click.echo("scheduler: no lease (no scheduler has run, or the last one stopped cleanly)")
    else:
        state = "leads" if scheduler["held"] else "EXPIRED (no scheduler leads)"
        click.echo(
            f"scheduler: {scheduler['holder']} {state}; lease renewed {_when(scheduler['renewed_at'])}, "
            f"expires {_when(scheduler['expires_at'])}"
        )
    click.echo("jobs:")
    for job in status["jobs"]:
        running = f"  RUNNING since {_when(job['running_since'])}" if job["running_since"] else ""
        click.echo(
            f"  {job['name']:<18} last {job['last_outcome'] or 'never run':<9} "
            f"finished {_when(job['last_finished_at'])}  last ok {_when(job['last_success_at'])}{running}"
        )
        if job["last_outcome"] == "failed":
            click.echo(f"  {'':<18} {job['last_error']}")
    click.echo("dispatchers:")
    for found in status["dispatchers"]:
        lanes = ", ".join(f"{kind} {count}" for kind, count in sorted(found["lanes"].items())) or "no lanes"
        state = "alive" if found["alive"] else "STOPPED"
        click.echo(f"  {found['holder']} {state}, renewed {_when(found['renewed_at'])}: {lanes}")
    if not status["dispatchers"]:
        click.echo("  none (start one: flask --app wsgi dispatcher run)")
    queue = status["queue"]
    click.echo(
        f"queue: {queue['queued']} queued, {queue['sending']} sending; "
        f"{status['lanes_waiting']} lanes with work due and no dispatcher"
    )


@jobs_cli.command("release-lease")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def release_lease_command(yes: bool) -> None:
    """Take the scheduler's lease from its holder, so that a waiting scheduler leads at its next look
    (SCHEDULER_POLL_SECONDS). For a holder that is alive but stuck: a dead one's lease expires by
    itself after SCHEDULER_LEASE_TTL."""
    lease = leases.Lease.objects(name=leases.SCHEDULER).first()
    if lease is None:
        click.echo("Nobody holds the scheduler's lease.")
        return
    if not yes:
        click.confirm(f"Take the scheduler's lease from {lease.holder}?", abort=True)
    released = leases.force_release(leases.SCHEDULER)
    click.echo(f"Released the scheduler's lease of {released.holder if released else lease.holder}.")


@click.group("dispatcher", cls=AppGroup)
@with_appcontext
def dispatcher_cli() -> None:
    """Campaign and webhook delivery."""


@dispatcher_cli.command("run")
def run_dispatcher_command() -> None:
    """Run a dispatcher: send for the bots and webhooks whose work is due, sharing them with every
    other dispatcher through leases (run as many as the load needs)."""
    from app.workers import dispatcher, until_signalled

    _refuse_embedded("dispatcher")
    metrics.serve_separately(current_app.config)
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
    from app.maintenance.migration import migrate_to_multitenant
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
        reports, usage = migrate_to_multitenant(
            slug,
            name,
            plan,
            batch_size,
            progress=lambda length, label: click.progressbar(
                length=length, label=f"{label:<20}", file=sys.stderr
            ),
        )
    except (migration.MigrationError, AppError) as exc:
        raise click.ClickException(str(exc)) from None
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


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create the demo superadmin and the two demo tenants (development only)."""
    if current_app.config["APP_ENV"] == "production":
        raise click.ClickException("seed-demo creates well-known accounts: refused in production")
    demo.print_accounts(demo.seed_demo(current_app))


# The project's commands; pyproject.toml names each under "flask.commands" too.
COMMANDS = (users_cli, tenants_cli, jobs_cli, dispatcher_cli, migrate_command, seed_demo_command)


class Commands(click.Group):
    """A group whose commands create the app when they run (as `flask --app wsgi` does), not before."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        extra.setdefault("obj", ScriptInfo(create_app=application, set_debug_flag=False))
        return super().make_context(info_name, args, parent, **extra)


cli = Commands(
    "tgm",
    help="Operate the Telegram marketing backend. Settings come from the environment (README.md, "
    "'Settings'; APP_ENV=development for a local run).",
    commands=[*COMMANDS, shell_command, routes_command],
)


def main() -> None:
    """The `tgm` console script and `python -m app`."""
    cli()


def register(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
