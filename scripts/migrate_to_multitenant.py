#!/usr/bin/env python3
"""Convert a single-tenant database to the multi-tenant layout.

    python scripts/migrate_to_multitenant.py --dry-run
    python scripts/migrate_to_multitenant.py --backup before-migration.json

The same as `CREATE_INDEXES=false flask --app wsgi migrate-to-multitenant`; every option is listed by
--help. Settings (MONGODB_URI, DEFAULT_TENANT_SLUG, ...) come from the environment.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.cli import migrate_command  # noqa: E402

if __name__ == "__main__":
    # The migration creates the indexes itself, in an order that keeps the data protected.
    app = create_app({"CREATE_INDEXES": False})
    with app.app_context():
        migrate_command.main(prog_name="migrate_to_multitenant.py")
