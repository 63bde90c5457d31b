"""``manage.py seed_demo``: idempotent demo data and the printed quick-start block."""

import base64
import io
import re
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from integrations.models import Integration, Source, Workspace, WorkspaceMembership


def seed(*args: str, **options) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out, **options)
    return out.getvalue()


def printed(output: str, label: str) -> str:
    match = re.search(rf"^\s*{label}:\s+(\S+)", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return match.group(1)


@pytest.fixture
def password_file(tmp_path):
    return tmp_path / "secret" / "demo-admin-password"


@pytest.mark.django_db
def test_creates_the_demo_setup(password_file):
    output = seed("--password-file", str(password_file))

    workspace = Workspace.objects.get(slug="demo")
    assert workspace.name == "Demo"
    source = Source.objects.get(workspace=workspace)
    assert (source.name, source.kind) == ("Demo Segment source", "segment")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.is_active
    membership = WorkspaceMembership.objects.get(user=admin, workspace=workspace)
    assert membership.role == WorkspaceMembership.Role.ADMIN
    integration = Integration.objects.get(workspace=workspace)
    assert (integration.name, integration.kind) == ("Demo webhook", "webhook")
    assert integration.enabled is False
    assert integration.settings["url"] == "https://example.com/webhook"
    assert integration.secret_settings["secret"].startswith("whsec_")

    password = password_file.read_text().strip()
    assert len(password) >= 12
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert admin.check_password(password)
    assert f"admin / {password}" in output


@pytest.mark.django_db
def test_printed_keys_and_urls_match_the_database(password_file):
    output = seed("--password-file", str(password_file), "--base-url", "http://127.0.0.1:8765/")
    source = Source.objects.get(workspace__slug="demo")

    assert printed(output, "Write key") == source.write_key
    assert printed(output, "Admin") == "http://127.0.0.1:8765/admin/"
    assert printed(output, "Segment webhook") == (
        f"http://127.0.0.1:8765/hooks/segment/{source.webhook_token}/"
    )
    assert (
        f"curl -u {source.write_key}: -H 'Content-Type: application/json' "
        """-d '{"userId":"demo-user","event":"Demo Event"}' http://127.0.0.1:8765/v1/track"""
    ) in output


@pytest.mark.django_db
def test_the_printed_track_call_is_accepted(password_file, api_client):
    output = seed("--password-file", str(password_file))
    write_key = printed(output, "Write key")

    api_client.credentials(
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    )
    response = api_client.post(
        "/v1/track", {"userId": "demo-user", "event": "Demo Event"}, format="json"
    )

    assert response.status_code == 200, response.content
    event = Source.objects.get(write_key=write_key).events.get()
    assert (event.user_id, event.event) == ("demo-user", "Demo Event")
    assert not event.deliveries.exists()  # the demo webhook is disabled


@pytest.mark.django_db
def test_running_twice_creates_nothing_new(password_file):
    first = seed("--password-file", str(password_file))
    admin = get_user_model().objects.get(username="admin")
    integration = Integration.objects.get()
    password_hash = admin.password

    second = seed("--password-file", str(password_file))

    assert Workspace.objects.count() == 1
    assert Source.objects.count() == 1
    assert get_user_model().objects.count() == 1
    assert WorkspaceMembership.objects.count() == 1
    assert Integration.objects.count() == 1
    assert Integration.objects.get().secret_settings == integration.secret_settings
    # Same key, same password, and the hash is untouched (sessions stay valid).
    assert printed(second, "Write key") == printed(first, "Write key")
    admin.refresh_from_db()
    assert admin.password == password_hash
    # The same block, but for the webhook secret: it was shown the first time only.
    secret = integration.secret_settings["secret"]
    assert printed(first, "Webhook secret") == secret
    assert secret not in second and "Webhook secret" not in second
    first_without_secret = re.sub(r"  Webhook secret: .*\n.*shown only now\)\n", "", first)
    assert second == first_without_secret != first


@pytest.mark.django_db
def test_an_existing_password_file_is_used_and_reset(password_file):
    password_file.parent.mkdir()
    password_file.write_text("correct-horse-battery\n")
    get_user_model().objects.create_user(username="admin", password="something-else")

    output = seed("--password-file", str(password_file))

    admin = get_user_model().objects.get(username="admin")
    assert admin.check_password("correct-horse-battery")
    assert admin.is_superuser and admin.is_staff
    assert "admin / correct-horse-battery" in output
    assert password_file.read_text() == "correct-horse-battery\n"


@pytest.mark.django_db
def test_default_password_file_is_under_base_dir_var(settings, tmp_path):
    settings.BASE_DIR = tmp_path

    first = seed()
    password = (tmp_path / "var" / "demo-admin-password").read_text().strip()
    second = seed()

    assert f"admin / {password}" in first
    assert f"admin / {password}" in second
    assert get_user_model().objects.get(username="admin").check_password(password)


@pytest.mark.django_db
def test_an_enabled_demo_webhook_is_left_alone(password_file):
    seed("--password-file", str(password_file))
    Integration.objects.update(enabled=True)

    seed("--password-file", str(password_file))

    assert Integration.objects.get().enabled is True


@pytest.mark.django_db
def test_the_block_says_local_urls_are_allowed(password_file, settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = True
    output = seed("--password-file", str(password_file))
    assert printed(output, "Local URLs") == "allowed"
    assert "INTEGRATIONS_ALLOW_PRIVATE_URLS=true" in output
    assert "http://127.0.0.1:9000/" in output


@pytest.mark.django_db
def test_the_block_says_local_urls_are_refused(password_file, settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False
    output = seed("--password-file", str(password_file))
    assert printed(output, "Local URLs") == "refused"
