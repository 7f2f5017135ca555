#!/usr/bin/env python3
"""Shard every tenant collection of a MongoDB sharded cluster by tenant.

    python scripts/shard_collections.py --dry-run                 # print the admin commands
    python scripts/shard_collections.py                           # run them (MONGODB_URI -> mongos)
    python scripts/shard_collections.py --hashed                  # {tenantId: "hashed"}
    python scripts/shard_collections.py --zone big --tenant acme --shard shard03

The collections come from the tenant document classes, not from a list kept by hand.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click  # noqa: E402
from bson import json_util  # noqa: E402

from app import create_app  # noqa: E402
from app.db import database  # noqa: E402
from app.tenancy.sharding import shard_commands  # noqa: E402
from app.tenants.models import Tenant  # noqa: E402


@click.command()
@click.option("--hashed", is_flag=True, help='Shard on {tenantId: "hashed"} instead of ranges.')
@click.option("--zone", help="Pin a tenant's documents to this zone.")
@click.option("--tenant", "slug", help="The tenant (slug) that --zone pins.")
@click.option("--shard", help="With --zone: add this shard to the zone first.")
@click.option("--dry-run", is_flag=True, help="Print the admin commands and run nothing.")
def main(hashed: bool, zone: str | None, slug: str | None, shard: str | None, dry_run: bool) -> None:
    """Enable sharding and shard every tenant collection on tenantId."""
    if bool(zone) != bool(slug):
        raise click.UsageError("--zone and --tenant go together")
    app = create_app({"CREATE_INDEXES": False})
    with app.app_context():
        db = database()
        tenant_id = None
        if slug:
            tenant = Tenant.objects(slug=slug).first()
            if tenant is None:
                raise click.ClickException(f"no tenant with slug {slug!r}")
            tenant_id = tenant.id
        try:
            commands = shard_commands(db.name, hashed=hashed, zone=zone, tenant_id=tenant_id, shard=shard)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        for command in commands:
            click.echo(json_util.dumps(command))
            if not dry_run:
                db.client.admin.command(command)
    click.echo("Dry run: nothing was run." if dry_run else f"Ran {len(commands)} commands.")


if __name__ == "__main__":
    main()
