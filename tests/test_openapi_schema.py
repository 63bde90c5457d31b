"""The configuration API answers as its OpenAPI schema says: schemathesis, with every
check (``--checks all``), against the live test server, as a workspace admin with data
(a source, an integration, events and deliveries).

Bounded: a fixed seed, a few examples per operation and a time budget, so that the run
takes a few minutes at most on the CI machine.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from integrations.models import Integration, Source, Workspace, WorkspaceMembership
from tests.traffic import deliver_due, send

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5")
MAX_TIME = os.environ.get("SCHEMATHESIS_MAX_TIME", "")


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
