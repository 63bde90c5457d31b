"""The configuration API answers as its OpenAPI schema says.

The schema's promises are checked one by one below, then all together by schemathesis,
with every check (``--checks all``), against the live test server, as a workspace admin
with data (a source, an integration, events and deliveries). That run is bounded (a fixed
seed, a few examples per operation) and takes a couple of minutes on the CI machine.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from rest_framework.authtoken.models import Token

from integrations.models import Integration, Source, Workspace, WorkspaceMembership
from tests.traffic import deliver_due, send

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5")
MAX_TIME = os.environ.get("SCHEMATHESIS_MAX_TIME", "")


@pytest.fixture
def schema(api_client, db) -> dict:
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def response_schema(schema: dict, path: str, method: str, status: str) -> dict:
    content = schema["paths"][path][method]["responses"][status]["content"]
    return content["application/json"]["schema"]


def component(schema: dict, ref: dict) -> dict:
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]


WORKSPACE = "/api/v1/workspaces/{workspace_slug}"


def test_the_catalog_is_a_list(schema):
    # Before: documented as one object.
    answer = response_schema(schema, f"{WORKSPACE}/catalog/", "get", "200")
    assert answer["type"] == "array"
    assert set(component(schema, answer["items"])["properties"]) >= {"name", "count"}


def test_the_webhook_secret_is_documented_where_it_is_shown(schema):
    # Before: write-only everywhere, yet in the answers to create and regenerate-keys.
    for path, method, status in [
        (f"{WORKSPACE}/sources/", "post", "201"),
        (f"{WORKSPACE}/sources/{{id}}/regenerate-keys/", "post", "200"),
    ]:
        shown = component(schema, response_schema(schema, path, method, status))
        assert shown["properties"]["webhook_secret"]["readOnly"] is True
        assert "webhook_secret" in shown["required"]
    for method, status in [("get", "200"), ("put", "200"), ("patch", "200")]:
        source = response_schema(schema, f"{WORKSPACE}/sources/{{id}}/", method, status)
        assert "webhook_secret" not in component(schema, source)["properties"]
    request = schema["paths"][f"{WORKSPACE}/sources/"]["post"]["requestBody"]["content"]
    assert (
        "webhook_secret" in component(schema, request["application/json"]["schema"])["properties"]
    )


def test_every_operation_documents_its_errors_in_the_error_shape(schema):
    # Before: most 4xx answers were undocumented.
    error = {"$ref": "#/components/schemas/Error"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            expected = {"400", "401", "403"} | ({"404"} if "{" in path else set())
            assert expected <= statuses, (method, path, statuses)
            if path.startswith("/api/"):
                for status in expected:
                    assert response_schema(schema, path, method, status) == error
    assert set(component(schema, error)["properties"]) == {"code", "message", "errors"}
    conflicts = {
        ("post", f"{WORKSPACE}/members/"),
        ("patch", f"{WORKSPACE}/members/{{username}}/"),
        ("delete", f"{WORKSPACE}/members/{{username}}/"),
        ("post", f"{WORKSPACE}/integrations/{{id}}/recover/"),
        ("post", f"{WORKSPACE}/deliveries/{{id}}/retry/"),
    }
    for method, path in conflicts:
        assert response_schema(schema, path, method, "409") == error


def test_list_paging_is_bounded_in_the_schema(schema):
    parameters = schema["paths"][f"{WORKSPACE}/events/"]["get"]["parameters"]
    limit = next(p for p in parameters if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 500, 50)


def test_api_docs_load_swagger_ui_from_this_server(client, db):
    # Before: from a CDN, a blank page offline.
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    bundle = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
    # A static file of this project (collectstatic gathers it; WhiteNoise serves it).
    assert finders.find(bundle.split("/static/", 1)[1]), bundle


@pytest.fixture
def token(settings) -> str:
    """A workspace admin's token, for a workspace with traffic."""
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False  # nothing leaves the machine
    user = get_user_model().objects.create_user("owner", password="pw")
    workspace = Workspace.objects.create(name="Acme", slug="acme")
    WorkspaceMembership.objects.create(
        user=user, workspace=workspace, role=WorkspaceMembership.Role.ADMIN
    )
    source = Source.objects.create(workspace=workspace, name="Website")
    hook = Integration(workspace=workspace, name="Hook", kind="webhook")
    # An address nothing listens on: deliveries fail at once, offline.
    hook.set_settings({"url": "http://127.0.0.1:9/in"})
    hook.save()
    for number in range(3):
        send(source, type="track", userId="u1", event="Signed Up", messageId=f"m{number}")
    deliver_due()
    return Token.objects.create(user=user).key


@pytest.mark.e2e  # a live server, and a couple of minutes: not for make test-fast
@pytest.mark.django_db(transaction=True)
def test_the_api_matches_its_schema(live_server, token, tmp_path: Path):
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{live_server.url}/api/schema/",
        "--checks",
        "all",
        "--header",
        f"Authorization: Token {token}",
        "--max-examples",
        MAX_EXAMPLES,
        *(["--max-time", MAX_TIME] if MAX_TIME else []),
        "--seed",
        "1",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    result = subprocess.run(  # noqa: S603 (our own command line)
        command, capture_output=True, text=True, timeout=600, env=env, check=False
    )
    output = f"{result.stdout[-30000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, output
    # It did test: every operation of the schema.
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected and tested, output
    assert int(tested[1]) == int(selected[2]) >= 30, output
