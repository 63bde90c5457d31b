"""Configuration export, import and copy in the admin."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations import portability
from integrations.models import EventRule, Integration, Workspace, WorkspaceMembership

CHANGELIST = reverse("admin:integrations_integration_changelist")
IMPORT = reverse("admin:integrations_integration_import")


@pytest.fixture
def hook(workspace) -> Integration:
    integration = Integration(workspace=workspace, name="Hook", kind="webhook")
    integration.set_settings(
        {"url": "https://hooks.example.com/in", "headers": {"Authorization": "Bearer tok-12345"}}
    )
    integration.save()
    EventRule.objects.create(integration=integration, event="Noise", enabled=False)
    return integration


@pytest.fixture
def other(db) -> Workspace:
    return Workspace.objects.create(name="Globex", slug="globex")


def joins(username: str, workspace: Workspace, role: str = "csm") -> None:
    user = WorkspaceMembership.objects.filter(user__username=username).first().user
    WorkspaceMembership.objects.create(user=user, workspace=workspace, role=role)


def exported(client, *integrations: Integration) -> dict:
    action = {"action": "export_selected", "_selected_action": [i.pk for i in integrations]}
    response = client.post(CHANGELIST, action)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="integrations-')
    return json.loads(response.content)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_a_viewer_exports_selected_integrations_without_secrets(viewer, hook):
    response = viewer.post(CHANGELIST, {"action": "export_selected", "_selected_action": hook.pk})
    text = response.content.decode()
    assert "tok-12345" not in text and hook.secret_settings["secret"] not in text
    document = json.loads(text)
    assert document["format"] == portability.FORMAT
    (item,) = document["integrations"]
    assert item["settings"]["headers"] == {"Authorization": ""}
    assert item["event_rules"] == [{"event": "Noise", "enabled": False, "send_as": ""}]


def test_the_import_page_creates_the_integrations_disabled_with_what_to_enter(csm, hook, other):
    joins("carla", other)
    document = exported(csm, hook)
    page = csm.get(IMPORT).content.decode()
    assert "Globex" in page and "Import" in page
    upload = SimpleUploadedFile("export.json", json.dumps(document).encode())
    response = csm.post(IMPORT, {"workspace": other.pk, "file": upload}, follow=True)
    assert response.status_code == 200
    (copy,) = Integration.objects.filter(workspace=other)
    assert (copy.name, copy.enabled) == ("Hook", False)
    assert list(copy.event_rules.values_list("event", "enabled")) == [("Noise", False)]
    (message,) = messages_of(response)
    assert message.startswith("Hook came in disabled: enter its Signing secret")
    assert "Custom headers values (Authorization)" in message
    assert copy.history.first().history_user.username == "carla"


def test_a_pasted_export_with_problems_is_refused_with_the_reasons(csm, workspace):
    document = {
        "format": portability.FORMAT,
        "version": 1,
        "integrations": [{"kind": "webhook", "name": "Bad", "settings": {}}],
    }
    response = csm.post(IMPORT, {"workspace": workspace.pk, "document": json.dumps(document)})
    text = response.content.decode()
    assert 'id="import-problems"' in text
    assert "integrations[0].settings.url: this setting is required" in text
    response = csm.post(IMPORT, {"workspace": workspace.pk, "document": "{nope"})
    assert "This is not JSON" in response.content.decode()
    response = csm.post(IMPORT, {"workspace": workspace.pk, "document": "[" * 100_000})
    assert "nests objects and arrays too deep" in response.content.decode()
    assert not Integration.objects.exists()


def test_an_import_goes_only_where_the_user_writes(csm, viewer, hook, other):
    joins("carla", other, role="viewer")
    document = exported(csm, hook)
    response = csm.post(IMPORT, {"workspace": other.pk, "document": json.dumps(document)})
    assert "Select a valid choice" in response.content.decode()
    assert viewer.get(IMPORT).status_code == 403
    assert (
        'href="/admin/integrations/integration/import/"'
        not in viewer.get(CHANGELIST).content.decode()
    )
    assert Integration.objects.count() == 1


def test_copy_to_another_workspace(csm, hook, other):
    joins("carla", other)
    action = {"action": "copy_to_workspace", "_selected_action": [hook.pk]}
    response = csm.post(CHANGELIST, action)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Hook (Webhook)" in page and "Globex" in page
    response = csm.post(CHANGELIST, {**action, "target": other.pk}, follow=True)
    (copy,) = Integration.objects.filter(workspace=other)
    assert not copy.enabled
    assert "Copied 1 integration(s) into Globex." in messages_of(response)
    assert copy.history.first().history_change_reason == "Copied from Acme: Hook"
    assert Integration.objects.filter(workspace=hook.workspace).count() == 1
