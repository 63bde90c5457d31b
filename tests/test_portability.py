"""Configuration export and import through the API: a document with no secret, imported
into another workspace with the same validation as any save."""

import json

import pytest

from integrations import portability
from integrations.models import (
    EventRule,
    Integration,
    PropertyRule,
    Workspace,
    WorkspaceMembership,
)

Role = WorkspaceMembership.Role
SECRETS = ["cz-app-key-123", "cio-api-key-456", "tok-12345", "header-secret-789"]


@pytest.fixture
def target(db) -> Workspace:
    return Workspace.objects.create(name="Globex", slug="globex")


@pytest.fixture
def configured(workspace) -> list[Integration]:
    """A workspace's integrations with secrets everywhere, and rules."""
    hook = Integration(workspace=workspace, name="Hook", kind="webhook", event_mode="only_enabled")
    hook.set_settings(
        {
            "url": "https://hooks.example.com/in",
            "headers": {"Authorization": "Bearer tok-12345", "X-Api-Key": "header-secret-789"},
        }
    )
    hook.save()
    EventRule.objects.create(integration=hook, event="Signed Up", send_as="signup")
    EventRule.objects.create(integration=hook, event="identify", enabled=False)
    PropertyRule.objects.create(integration=hook, name="email", send_as="mail")
    churnzero = Integration(workspace=workspace, name="CZ", kind="churnzero")
    churnzero.set_settings({"app_key": "cz-app-key-123"})
    churnzero.save()
    cio = Integration(workspace=workspace, name="CIO", kind="customerio", enabled=False)
    cio.set_settings({"site_id": "site-1", "api_key": "cio-api-key-456", "region": "eu"})
    cio.api_base_url = "https://track-eu.example.com"
    cio.save()
    return [hook, churnzero, cio]


def client_in(member_client, django_user_model, target, role: str, username: str):
    client = member_client(role, username=username)
    user = django_user_model.objects.get(username=username)
    WorkspaceMembership.objects.create(user=user, workspace=target, role=role)
    return client


def base(workspace: Workspace) -> str:
    return f"/api/v1/workspaces/{workspace.slug}/integrations"


def test_a_viewer_exports_the_workspace_without_any_secret(member_client, workspace, configured):
    viewer = member_client(Role.VIEWER, username="viewer")
    response = viewer.get(f"{base(workspace)}/export/")
    assert response.status_code == 200, response.json()
    text = response.content.decode()
    generated = [i.secret_settings["secret"] for i in configured if "secret" in i.secret_settings]
    for secret in [*SECRETS, *generated]:
        assert secret not in text
    document = response.json()
    assert (document["format"], document["version"]) == (portability.FORMAT, 1)
    by_name = {item["name"]: item for item in document["integrations"]}
    assert set(by_name) == {"Hook", "CZ", "CIO"}
    hook = by_name["Hook"]
    assert hook["settings"] == {
        "url": "https://hooks.example.com/in",
        "headers": {"Authorization": "", "X-Api-Key": ""},
        "signing": "standard",
    }
    assert hook["secrets_left_out"] == ["secret"]
    assert hook["event_mode"] == "only_enabled"
    assert {(r["event"], r["enabled"], r["send_as"]) for r in hook["event_rules"]} == {
        ("Signed Up", True, "signup"),
        ("identify", False, ""),
    }
    assert hook["property_rules"] == [{"name": "email", "enabled": True, "send_as": "mail"}]
    assert by_name["CIO"]["api_base_url"] == "https://track-eu.example.com"
    assert by_name["CIO"]["settings"] == {"site_id": "site-1", "region": "eu"}


def test_one_integration_exports(member_client, workspace, configured):
    viewer = member_client(Role.VIEWER, username="viewer")
    response = viewer.get(f"{base(workspace)}/{configured[1].pk}/export/")
    assert response.status_code == 200
    assert [i["name"] for i in response.json()["integrations"]] == ["CZ"]
    assert "cz-app-key-123" not in response.content.decode()


def test_another_workspaces_integration_does_not_export(member_client, target, configured):
    viewer = member_client(Role.VIEWER, username="viewer")
    stranger = Integration(workspace=target, name="Theirs", kind="segment")
    stranger.set_settings({"write_key": "k"})
    stranger.save()
    assert viewer.get(f"{base(configured[0].workspace)}/{stranger.pk}/export/").status_code == 404
    assert viewer.get(f"{base(target)}/export/").status_code == 404


def test_import_into_another_workspace_comes_in_disabled_with_what_to_enter(
    member_client, django_user_model, workspace, target, configured
):
    csm = client_in(member_client, django_user_model, target, Role.CSM, "csm")
    document = csm.get(f"{base(workspace)}/export/").json()
    response = csm.post(f"{base(target)}/import/", document, format="json")
    assert response.status_code == 201, response.json()
    result = {item["name"]: item for item in response.json()["integrations"]}
    assert {name: item["enabled"] for name, item in result.items()} == {
        "Hook": False,
        "CZ": False,
        "CIO": False,
    }
    assert result["CZ"]["to_enter"] == ["Application key"]
    assert result["CZ"]["message"] == (
        "CZ came in disabled: enter its Application key, then enable it."
    )
    assert "Custom headers values (Authorization, X-Api-Key)" in result["Hook"]["to_enter"]
    assert "Signing secret (a new one was generated" in result["Hook"]["to_enter"][0]
    assert result["CIO"]["message"].startswith("CIO is disabled: enter its Track API key")
    copied = Integration.objects.get(workspace=target, name="Hook")
    assert copied.event_mode == "only_enabled"
    assert set(copied.event_rules.values_list("event", "enabled", "send_as")) == {
        ("Signed Up", True, "signup"),
        ("identify", False, ""),
    }
    assert list(copied.property_rules.values_list("name", "send_as")) == [("email", "mail")]
    assert copied.secret_settings["secret"] != configured[0].secret_settings["secret"]
    # A header comes in once its value is entered (the message names them).
    assert (copied.settings["headers"], copied.secret_settings["headers"]) == ([], {})
    record = copied.history.first()
    assert (record.history_user.username, record.history_change_reason) == (
        "csm",
        "Imported from an export",
    )
    cz = Integration.objects.get(workspace=target, name="CZ")
    assert "app_key" not in cz.secret_settings
    # The source workspace is untouched.
    assert Integration.objects.filter(workspace=workspace).count() == 3


def test_an_integration_without_secrets_to_enter_keeps_its_enabled_flag(
    member_client, workspace, monkeypatch
):
    csm = member_client(Role.CSM, username="csm")
    document = {
        "format": portability.FORMAT,
        "version": 1,
        "integrations": [
            {"kind": "segment", "name": "Fwd", "settings": {"region": "eu"}, "enabled": True}
        ],
    }
    monkeypatch.setattr(portability, "to_enter", lambda *args: [])
    response = csm.post(f"{base(workspace)}/import/", document, format="json")
    assert response.status_code == 201
    assert response.json()["integrations"][0]["enabled"] is True


def test_a_viewer_cannot_import(member_client, workspace, configured):
    viewer = member_client(Role.VIEWER, username="viewer")
    document = viewer.get(f"{base(workspace)}/export/").json()
    assert viewer.post(f"{base(workspace)}/import/", document, format="json").status_code == 403
    assert Integration.objects.count() == 3


def valid_item(**changes):
    return {"kind": "webhook", "name": "Hook", "settings": {"url": "https://h.example"}, **changes}


@pytest.mark.parametrize(
    ("document", "where", "says"),
    [
        ([], "non_field_errors", "Expected a dictionary"),
        ({"format": "other", "version": 1, "integrations": [valid_item()]}, "format", "format"),
        (
            {"format": portability.FORMAT, "version": 2, "integrations": [valid_item()]},
            "version",
            "reads version 1",
        ),
        ({"format": portability.FORMAT, "version": 1, "integrations": []}, "integrations", ""),
        (
            {"format": portability.FORMAT, "version": 1, "integrations": [valid_item(kind="x")]},
            "integrations",
            "unknown kind 'x'; known: chartmogul, churnzero",
        ),
        (
            {
                "format": portability.FORMAT,
                "version": 1,
                "integrations": [valid_item(settings={"url": "https://h.example", "secret": "s"})],
            },
            "integrations",
            "a secret setting is not imported",
        ),
        (
            {
                "format": portability.FORMAT,
                "version": 1,
                "integrations": [valid_item(settings={"url": "not a url"})],
            },
            "integrations",
            "Enter a valid URL",
        ),
        (
            {
                "format": portability.FORMAT,
                "version": 1,
                "integrations": [
                    valid_item(event_rules=[{"event": "A"}, {"event": "A", "enabled": False}])
                ],
            },
            "integrations",
            "listed more than once: A",
        ),
    ],
)
def test_invalid_documents_are_clear_400s(member_client, workspace, document, where, says):
    csm = member_client(Role.CSM, username="csm")
    response = csm.post(f"{base(workspace)}/import/", document, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert where in body["errors"]
    assert says in json.dumps(body["errors"])
    assert not Integration.objects.exists()


def test_an_import_is_all_or_nothing(member_client, workspace):
    csm = member_client(Role.CSM, username="csm")
    document = {
        "format": portability.FORMAT,
        "version": 1,
        "integrations": [valid_item(), valid_item(name="Bad", settings={})],
    }
    response = csm.post(f"{base(workspace)}/import/", document, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["integrations"]["1"]["settings"]["url"] == [
        "this setting is required"
    ]
    assert not Integration.objects.exists()


def test_an_import_refuses_private_urls_like_any_save(member_client, workspace, settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False
    csm = member_client(Role.CSM, username="csm")
    document = {
        "format": portability.FORMAT,
        "version": 1,
        "integrations": [valid_item(settings={"url": "http://127.0.0.1:9/in"})],
    }
    response = csm.post(f"{base(workspace)}/import/", document, format="json")
    assert response.status_code == 400
    message = response.json()["errors"]["integrations"]["0"]["settings"]["url"][0]
    assert message.startswith("refused: 127.0.0.1 resolves to 127.0.0.1")


def test_error_lines_say_where(db):
    detail = {"integrations": {"1": {"settings": {"url": ["bad"]}}}, "version": ["old"]}
    assert portability.error_lines(detail) == [
        "integrations[1].settings.url: bad",
        "version: old",
    ]


def test_an_imported_integration_is_enabled_once_its_secret_is_entered(
    member_client, workspace, configured
):
    csm = member_client(Role.CSM, username="csm")
    document = csm.get(f"{base(workspace)}/{configured[1].pk}/export/").json()
    (item,) = csm.post(f"{base(workspace)}/import/", document, format="json").json()["integrations"]
    url = f"{base(workspace)}/{item['id']}/"
    response = csm.patch(url, {"enabled": True}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["settings"]["app_key"] == [
        "enter this secret to enable the integration"
    ]
    body = {"enabled": True, "settings": {"app_key": "new-key"}}
    assert csm.patch(url, body, format="json").status_code == 200
    assert Integration.objects.get(pk=item["id"]).enabled


def test_a_url_with_credentials_is_exported_masked_and_imported_without_them(
    member_client, workspace
):
    hook = Integration(workspace=workspace, name="Keyed", kind="webhook")
    hook.set_settings({"url": "https://hooks.example.com/in?api_key=k-77a1&team=cs"})
    hook.save()
    document = portability.export_document([hook])
    exported = document["integrations"][0]["settings"]["url"]
    assert "k-77a1" not in exported and "api_key=" in exported
    other = Workspace.objects.create(name="Other", slug="other")
    (imported,) = portability.import_document(other, document)
    integration = imported.integration
    assert integration.config()["url"] == "https://hooks.example.com/in?team=cs"
    assert not integration.enabled
    assert "URL: its credentials (api_key)" in imported.message
