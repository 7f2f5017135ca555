"""The OpenAPI document as a client reads it: valid OpenAPI, one readable id per operation, the
credentials, tenant hints and error answers each route really has, and a Python client generated from
it that drives the service."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys

import httpx
import pytest
from bson import ObjectId
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from app import create_app
from app.tenancy.access import Access, rule_for

from .support import bot_token

DOCUMENT = "/api/v1/openapi.json"
PARAM = re.compile(r"{([^}]+)}")
ERROR_ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}
CLIENT_PACKAGE = "platform_client"


@pytest.fixture
def spec(client):
    return client.get(DOCUMENT).json


def each_operation(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def rule_of(app, path, method):
    concrete = PARAM.sub(lambda _m: str(ObjectId()), path)
    endpoint, _args = app.url_map.bind("localhost").match(concrete, method=method.upper())
    return rule_for(app, endpoint, method.upper())


def test_the_document_is_valid_openapi(spec):
    assert spec["openapi"] == "3.0.3"
    validate(spec)


def test_every_operation_has_its_own_readable_id(spec):
    ids = [operation.get("operationId") for _path, _method, operation in each_operation(spec)]
    assert all(re.fullmatch(r"[a-z][A-Za-z]+", str(name)) for name in ids), ids
    assert len(ids) == len(set(ids))
    assert {"listCampaigns", "createCampaign", "getCampaign", "updateCampaign", "sendCampaign"} <= set(ids)


def test_security_follows_each_routes_access_rule(app, spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["bearerAuth"]["description"],
    }
    assert (schemes["apiKeyAuth"]["in"], schemes["apiKeyAuth"]["name"]) == ("header", "X-API-Key")
    kinds = set()
    for path, method, operation in each_operation(spec):
        rule = rule_of(app, path, method)
        security = operation["security"]
        if rule.access is Access.PUBLIC and rule.token_type == "access":
            expected = []
        elif rule.access is Access.PLATFORM or rule.token_type == "refresh" or not rule.api_keys:
            expected = [{"bearerAuth": []}]
        else:
            expected = [{"bearerAuth": []}, {"apiKeyAuth": []}]
        assert security == expected, (method, path)
        kinds.add(json.dumps(security))
    assert len(kinds) == 3


def test_what_the_document_says_about_credentials_is_what_the_service_does(client, spec, auth_headers):
    operations = {operation["operationId"]: operation for _p, _m, operation in each_operation(spec)}
    assert operations["listPlans"]["security"] == []
    assert client.get("/api/v1/plans").status_code == 200
    assert {"apiKeyAuth": []} not in operations["createApiKey"]["security"]
    assert {"apiKeyAuth": []} not in operations["setupTwoFactor"]["security"]
    assert operations["listTenants"]["security"] == [{"bearerAuth": []}]
    assert client.get("/api/v1/tenants", headers=auth_headers).status_code == 403
    assert client.get("/api/v1/campaigns").status_code == 401


def test_swagger_ui_keeps_the_authorization(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert '"persistAuthorization": true' in page


def test_tenant_hints_are_declared_where_the_middleware_reads_them(app, spec):
    parameters = spec["components"]["parameters"]
    assert (parameters["TenantHeader"]["in"], parameters["TenantHeader"]["name"]) == ("header", "X-Tenant-Id")
    assert (parameters["TenantQuery"]["in"], parameters["TenantQuery"]["name"]) == ("query", "tenant")
    hints = [
        {"$ref": "#/components/parameters/TenantHeader"},
        {"$ref": "#/components/parameters/TenantQuery"},
    ]
    for path, method, operation in each_operation(spec):
        declared = [parameter for parameter in operation.get("parameters", []) if parameter in hints]
        expected = [] if rule_of(app, path, method).access is Access.PLATFORM else hints
        assert declared == expected, (method, path)
    assert "subdomain" in spec["info"]["description"] and "custom domain" in spec["info"]["description"]


def test_single_tenant_mode_declares_no_hints(app_factory):
    spec = app_factory(ENABLE_MULTI_TENANT=False).test_client().get(DOCUMENT).json
    assert "parameters" not in spec["components"]
    operation = spec["paths"]["/api/v1/campaigns"]["get"]
    assert [parameter["name"] for parameter in operation["parameters"]] == [
        "page",
        "perPage",
        "cursor",
        "status",
    ]
    assert (
        "404" not in operation["responses"]
        and "404" in spec["paths"]["/api/v1/campaigns/{campaign_id}"]["get"]["responses"]
    )


def test_lists_take_the_tenant_query_parameter(client, tenant, auth_headers):
    for path in ("/api/v1/campaigns", "/api/v1/users", "/api/v1/audit-logs"):
        response = client.get(path, query_string={"tenant": tenant.slug, "perPage": 5}, headers=auth_headers)
        assert response.status_code == 200, response.json
        assert response.json["perPage"] == 5


def test_error_answers_are_declared_with_the_envelope(app, spec):
    responses = spec["components"]["responses"]
    for name in ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "TooManyRequests"):
        assert responses[name]["content"]["application/json"]["schema"] == ERROR_ENVELOPE
    assert {"Retry-After", "X-RateLimit-Remaining"} <= set(responses["TooManyRequests"]["headers"])
    for path, method, operation in each_operation(spec):
        answers = operation["responses"]
        statuses = {int(status) for status in answers if status != "default"}
        assert {401, 403, 429} <= statuses and "default" in answers, (method, path)
        if "{" in path:
            assert 404 in statuses, (method, path)
        if "requestBody" in operation:
            assert {400, 413, 415, 422} <= statuses, (method, path)
        if any(parameter.get("in") == "query" for parameter in operation.get("parameters", [])):
            assert 422 in statuses, (method, path)
        if rule_of(app, path, method).access is Access.TENANT or method != "get":
            assert 409 in statuses, (method, path)
        for status in statuses - {s for s in statuses if s < 400}:
            assert answers[str(status)]["$ref"].startswith("#/components/responses/"), (method, path)


def test_the_documented_errors_are_the_ones_answered(client, auth_headers):
    missing = client.get(f"/api/v1/campaigns/{ObjectId()}", headers=auth_headers)
    assert missing.status_code == 404 and set(missing.json) == {"error"}
    bad = client.post("/api/v1/campaigns", data="{", content_type="application/json", headers=auth_headers)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_request"
    unknown = client.get("/api/v1/campaigns", headers={**auth_headers, "X-Tenant-Id": "nobody"})
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "tenant_not_found"


# -- a client generated from the document --------------------------------------------------------------


@pytest.fixture(scope="session")
def generated_client(tmp_path_factory):
    """The package openapi-python-client generates from the served document (once per run)."""
    root = tmp_path_factory.mktemp("generated")
    document = (
        create_app({"MONGODB_URI": "mongomock://localhost/generated_client"}).test_client().get(DOCUMENT)
    )
    (root / "openapi.json").write_bytes(document.data)
    # Literal enums: the time zone list holds names that one enum class could not tell apart (GMT+0, GMT0).
    (root / "config.json").write_text(
        json.dumps({"package_name_override": CLIENT_PACKAGE, "literal_enums": True, "post_hooks": []})
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(root / "openapi.json"),
            "--config",
            str(root / "config.json"),
            "--meta",
            "none",
            "--output-path",
            str(root / CLIENT_PACKAGE),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(CLIENT_PACKAGE)
    finally:
        sys.path.remove(str(root))


def _api(package, tag, operation):
    """The module of one operation: package.api.<tag>.<operation id in snake case>."""
    return importlib.import_module(f"{package.__name__}.api.{tag}.{operation}")


def _model(package, name):
    return importlib.import_module(f"{package.__name__}.models").__dict__[name]


def test_a_generated_client_signs_up_and_runs_a_campaign(app, generated_client):
    pkg = generated_client
    transport = httpx.WSGITransport(app=app)
    anonymous = pkg.Client(base_url="http://localhost", httpx_args={"transport": transport})

    signup_body = _model(pkg, "Signup").from_dict(
        {
            "tenant": {"name": "Initech"},
            "user": {"email": "bill@initech.example.com", "password": "tps-reports-1", "name": "Bill"},
            "plan": "starter",
        }
    )
    signed_up = _api(pkg, "tenants", "signup").sync(client=anonymous, body=signup_body)
    assert isinstance(signed_up, _model(pkg, "SignupResponse")), signed_up
    assert signed_up.tenant.slug == "initech"

    login_body = _model(pkg, "Login").from_dict(
        {"email": "bill@initech.example.com", "password": "tps-reports-1"}
    )
    logged_in = _api(pkg, "auth", "login").sync(client=anonymous, body=login_body, x_tenant_id="initech")
    assert isinstance(logged_in, _model(pkg, "LoginResponse")), logged_in
    owner = pkg.AuthenticatedClient(
        base_url="http://localhost", token=logged_in.access_token, httpx_args={"transport": transport}
    )

    bot = _api(pkg, "telegram_accounts", "create_telegram_account").sync(
        client=owner,
        body=_model(pkg, "TelegramAccountCreate").from_dict({"name": "News", "token": bot_token()}),
    )
    assert isinstance(bot, _model(pkg, "TelegramAccount")), bot

    created = _api(pkg, "campaigns", "create_campaign").sync(
        client=owner,
        body=_model(pkg, "CampaignCreate").from_dict(
            {
                "name": "Launch",
                "message": {"text": "TPS reports now come with a cover sheet"},
                "telegramAccountId": bot.id,
                "targets": ["1001", "@initech_news"],
            }
        ),
    )
    assert isinstance(created, _model(pkg, "Campaign")), created
    assert created.status == "draft"

    page = _api(pkg, "campaigns", "list_campaigns").sync(client=owner, tenant="initech")
    assert [campaign.id for campaign in page.items] == [created.id] and page.total == 1
    shown = _api(pkg, "campaigns", "get_campaign").sync(campaign_id=created.id, client=owner)
    assert (shown.name, shown.targets) == ("Launch", ["1001", "@initech_news"])

    missing = _api(pkg, "campaigns", "get_campaign").sync_detailed(campaign_id=str(ObjectId()), client=owner)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, _model(pkg, "ErrorEnvelope"))
    assert missing.parsed.error.code == "not_found"

    refused = _api(pkg, "campaigns", "list_campaigns").sync_detailed(client=anonymous)
    assert refused.status_code == 401 and refused.parsed.error.code == "unauthorized"


# -- examples ------------------------------------------------------------------------------------------


def example_of(schema, schemas):
    """The value Swagger UI offers for `schema`: its example, else one built from its parts."""
    if "$ref" in schema:
        return example_of(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas)
    if "example" in schema:
        return schema["example"]
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            return example_of(schema[key][0], schemas)
    if "enum" in schema:
        return next(value for value in schema["enum"] if value is not None)
    if "properties" in schema:
        return {
            name: example_of(prop, schemas)
            for name, prop in schema["properties"].items()
            if not prop.get("readOnly")
        }
    kind = schema.get("type")
    if kind == "array":
        return [example_of(schema.get("items", {}), schemas)]
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "object":
        return {}
    return "2026-05-04T09:00:00Z" if schema.get("format") == "date-time" else "string"


def request_bodies(spec):
    """The name of every component schema that a JSON request body is."""
    for _path, _method, operation in each_operation(spec):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            yield content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


def test_every_example_fits_its_schema(spec):
    schemas = spec["components"]["schemas"]
    checked = 0
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            if "example" in prop:
                validator = OAS30Validator({"allOf": [prop], "components": spec["components"]})
                assert not list(validator.iter_errors(prop["example"])), (name, field, prop["example"])
                checked += 1
    assert checked > 50


def test_the_bodies_swagger_ui_offers_are_accepted(app, spec):
    """What "Try it out" sends as it stands (every property, from the examples) passes the body's
    own marshmallow schema and the document's."""
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    classes = {name: key[0] for key, name in api.ma_plugin.converter.refs.items()}
    schemas = spec["components"]["schemas"]
    for name in sorted(set(request_bodies(spec))):
        body = example_of(schemas[name], schemas)
        assert "string" not in json.dumps(body), (name, body)
        validator = OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": spec["components"]})
        assert not list(validator.iter_errors(body)), (name, body)
        classes[name]().load(body)
