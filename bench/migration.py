"""Time the migration to multi-tenant on a generated single-tenant database.

    .venv/bin/python bench/migration.py [--documents 100000] [--batch-size 1000]

The embedded store lives in this process, so the database is generated here and the migration
command (the same click command as scripts/migrate_to_multitenant.py, progress bars included) runs
against it in the same process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("APP_ENV", "development")

from app import create_app  # noqa: E402
from app.cli import migrate_command  # noqa: E402
from app.db import database  # noqa: E402

# Shares of a realistic single-tenant database: many messages, fewer of everything else.
SHARES = {"messages": 0.80, "audit_logs": 0.12, "campaigns": 0.05, "users": 0.02, "webhook_deliveries": 0.01}


def generate(total: int) -> dict[str, int]:
    db = database()
    db.users.create_index("email", unique=True)
    db.campaigns.create_index("createdAt")
    now = datetime.now(UTC)
    counts = {}
    for name, share in SHARES.items():
        n = max(1, int(total * share))
        if name == "users":
            docs = [
                {
                    "email": f"user{i}@old.example.com",
                    "name": f"User {i}",
                    "role": "member",
                    "active": True,
                    "createdAt": now,
                }
                for i in range(n)
            ]
        elif name == "campaigns":
            docs = [
                {
                    "name": f"c{i}",
                    "message": {"text": "hi"},
                    "targets": ["@chan1"],
                    "status": "draft",
                    "createdAt": now,
                }
                for i in range(n)
            ]
        elif name == "messages":
            docs = [{"chat": "@chan1", "text": "hi", "status": "sent", "queuedAt": now} for _ in range(n)]
        elif name == "audit_logs":
            docs = [{"action": "auth.login", "actor": {"kind": "user"}, "createdAt": now} for _ in range(n)]
        else:
            docs = [
                {"event": "usage.threshold", "payload": {}, "status": "delivered", "createdAt": now}
                for _ in range(n)
            ]
        db[name].insert_many(docs)
        counts[name] = n
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    app = create_app({"CREATE_INDEXES": False, "MONGODB_URI": "mongomock://localhost/bench_migration"})
    with app.app_context():
        started = time.perf_counter()
        counts = generate(args.documents)
        print(f"generated {sum(counts.values())} documents in {time.perf_counter() - started:.1f}s: {counts}")
        started = time.perf_counter()
        migrate_command.main(
            ["--yes", "--batch-size", str(args.batch_size)],
            prog_name="migrate_to_multitenant.py",
            standalone_mode=False,
        )
        print(f"migrated {sum(counts.values())} documents in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
