"""The service for bench/throughput.py (gunicorn --chdir bench service_app:app): the real app on the
embedded store, seeded in this process (the store lives here), with the credentials written to
BENCH_CREDENTIALS for the load generator."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.auth import tokens  # noqa: E402
from app.auth.api_keys import create_api_key  # noqa: E402
from app.tenancy.access import Principal  # noqa: E402
from app.tenancy.context import tenant_scope  # noqa: E402
from app.tenants.service import create_tenant  # noqa: E402
from app.users.service import create_user  # noqa: E402

app = create_app()
with app.app_context():
    # Enterprise: no plan limit or hourly rate gets in the way of a load test.
    tenant = create_tenant("Bench Corp", "bench", plan="enterprise")
    with tenant_scope(tenant):
        owner = create_user("owner@bench.example.com", "Owner", "bench password 1", "owner")
        principal = Principal(subject=str(owner.id), role="owner", tenant_id=tenant.id, via="access_token")
        key = create_api_key("bench", "admin", principal).key
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = app.config["JWT_REFRESH_TOKEN_EXPIRES"]  # outlives the run
    token = tokens.issue(owner, [tokens.PASSWORD])["access_token"]
    client = app.test_client()
    seeded = [
        client.post(
            "/api/v1/campaigns",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": f"seed {index}", "message": {"text": "hello"}, "targets": ["@channel1"]},
        ).json
        for index in range(20)
    ]
Path(os.environ["BENCH_CREDENTIALS"]).write_text(
    json.dumps({"token": token, "apiKey": key, "campaignId": seeded[0]["id"], "userId": str(owner.id)})
)
