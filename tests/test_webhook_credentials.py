"""A webhook's custom header values and URL credentials are secrets: encrypted at rest,
write-only, never shown (API, admin pages, history, audit trail), and still sent as is.
A generated signing secret is shown once: in the answer to the save that made it."""

import html
import json
import re

import pytest
import responses
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook as StandardWebhook

from integrations.models import Delivery, Integration, WorkspaceMembership
from tests.browser_form import form_data
from tests.test_audit import every_history_row
from tests.traffic import deliver_due, send

Role = WorkspaceMembership.Role
TOKEN = "header-token-6b1f0c9e"
API_KEY = "header-key-3d7a2e51"
URL_PASSWORD = "url-pass-8c4d1f7a"
QUERY_KEY = "query-key-2e9b5c03"
VALUES = [TOKEN, API_KEY, URL_PASSWORD, QUERY_KEY]
URL = f"https://hook-user:{URL_PASSWORD}@hooks.example.com/in?api_key={QUERY_KEY}&team=cs"
MASKED_URL = "https://********@hooks.example.com/in?api_key=********&team=cs"
HEADERS = {"X-Auth-Token": f"Bearer {TOKEN}", "X-Api-Key": API_KEY}
ADD_URL = "/admin/integrations/integration/add/?kind=webhook"


def api_url(integration: Integration | None = None, workspace_slug: str = "acme") -> str:
    base = f"/api/v1/workspaces/{workspace_slug}/integrations/"
    return f"{base}{integration.pk}/" if integration else base


def change_url(integration: Integration) -> str:
    return reverse("admin:integrations_integration_change", args=[integration.pk])


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def assert_no_credentials(text: str) -> None:
    for value in [*VALUES, "hook-user"]:
        assert value not in text
        assert html.escape(value) not in text


def raw_columns(integration: Integration) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT settings, secret_settings FROM integrations_integration WHERE id = %s",
            [integration.pk],
        )
        return repr(cursor.fetchone())


@pytest.fixture
def hook(workspace) -> Integration:
    integration = Integration(workspace=workspace, name="Hook", kind="webhook")
    integration.set_settings({"url": URL, "headers": {**HEADERS, "X-Team": "team-value-77aa"}})
    integration.save()
    return integration


@pytest.fixture
def api_member(django_user_model, workspace):
    def make(role: str) -> APIClient:
        user = django_user_model.objects.create_user(f"api-{role}", password="pw")
        WorkspaceMembership.objects.create(user=user, workspace=workspace, role=role)
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


# --- at rest, and on the wire ---------------------------------------------------------


def test_credentials_are_encrypted_at_rest(hook):
    assert hook.settings == {
        "url": MASKED_URL,
        "signing": "standard",
        "headers": ["X-Auth-Token", "X-Api-Key", "X-Team"],
    }
    assert_no_credentials(raw_columns(hook))
    assert "team-value-77aa" not in raw_columns(hook)
    hook.refresh_from_db()
    assert hook.config()["url"] == URL
    assert hook.config()["headers"] == {**HEADERS, "X-Team": "team-value-77aa"}


@responses.activate
def test_requests_carry_the_credentials_unchanged(source, hook):
    responses.post(URL, status=200)
    send(source, type="track", userId="u1", event="Signed Up", messageId="m1")
    deliver_due(hook)
    assert Delivery.objects.get().status == Delivery.Status.DELIVERED
    (call,) = responses.calls
    assert call.request.url == URL
    assert call.request.headers["X-Auth-Token"] == f"Bearer {TOKEN}"
    assert call.request.headers["X-Api-Key"] == API_KEY
    assert call.request.headers["X-Team"] == "team-value-77aa"
    StandardWebhook(hook.secret_settings["secret"]).verify(
        call.request.body, dict(call.request.headers)
    )


# --- the API -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.VIEWER, Role.CSM, Role.ADMIN])
def test_the_api_shows_header_names_and_a_masked_url_to_every_role(api_member, hook, role):
    client = api_member(role)
    for response in (client.get(api_url(hook)), client.get(api_url())):
        assert response.status_code == 200, response.content
        assert_no_credentials(response.content.decode())
        assert "team-value-77aa" not in response.content.decode()
    settings = client.get(api_url(hook)).json()["settings"]
    assert settings["url"] == MASKED_URL
    assert settings["headers"] == {
        "X-Auth-Token": "********",
        "X-Api-Key": "********",
        "X-Team": "********",
    }


def test_the_api_create_answer_shows_no_credentials(api_member, workspace):
    settings = {"url": URL, "secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5", "headers": HEADERS}
    response = api_member(Role.CSM).post(
        api_url(), {"name": "Hook", "kind": "webhook", "settings": settings}, format="json"
    )
    assert response.status_code == 201, response.content
    assert_no_credentials(response.content.decode())
    assert Integration.objects.get().config()["url"] == URL


def test_what_the_api_shows_sent_back_changes_nothing(api_member, hook):
    client = api_member(Role.CSM)
    before = hook.config()
    body = client.get(api_url(hook)).json()
    assert client.put(api_url(hook), body, format="json").status_code == 200
    assert client.patch(api_url(hook), {"name": "Renamed"}, format="json").status_code == 200
    hook.refresh_from_db()
    assert hook.config() == before


def test_the_api_replaces_and_removes_headers(api_member, hook):
    headers = {"X-Auth-Token": "********", "X-Team": "", "X-New": "fresh"}
    response = api_member(Role.CSM).patch(
        api_url(hook), {"settings": {"headers": headers}}, format="json"
    )
    assert response.status_code == 200, response.content
    hook.refresh_from_db()
    assert hook.config()["headers"] == {
        "X-Auth-Token": f"Bearer {TOKEN}",
        "X-Team": "team-value-77aa",
        "X-New": "fresh",
    }
    assert hook.settings["headers"] == ["X-Auth-Token", "X-Team", "X-New"]


def test_the_api_refuses_a_new_header_without_its_value(api_member, hook):
    response = api_member(Role.CSM).patch(
        api_url(hook), {"settings": {"headers": {"X-Other": ""}}}, format="json"
    )
    assert response.status_code == 400
    assert "X-Other" in json.dumps(response.json())


# --- the admin ----------------------------------------------------------------------


def test_the_change_page_shows_header_names_and_a_masked_url(csm, hook):
    text = page(csm.get(change_url(hook)))
    assert_no_credentials(text)
    assert "team-value-77aa" not in text
    fields = form_data(text, "integration_form")
    assert fields["setting__headers"].split() == ["X-Auth-Token:", "X-Api-Key:", "X-Team:"]
    assert fields["setting__url"] == MASKED_URL
    assert fields["setting__secret"] == ""


def test_the_change_page_posted_back_as_is_keeps_every_credential(csm, hook):
    before = hook.config()
    data = form_data(page(csm.get(change_url(hook))), "integration_form")
    response = csm.post(change_url(hook), data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    hook.refresh_from_db()
    assert hook.config() == before


def test_the_change_page_replaces_adds_and_removes_headers(csm, hook):
    data = form_data(page(csm.get(change_url(hook))), "integration_form")
    data["setting__headers"] = "X-Auth-Token:\nX-Team: failure\nX-New: fresh\n"
    assert csm.post(change_url(hook), data).status_code == 302
    hook.refresh_from_db()
    assert hook.config()["headers"] == {
        "X-Auth-Token": f"Bearer {TOKEN}",
        "X-Team": "failure",
        "X-New": "fresh",
    }


def test_the_change_page_says_what_is_wrong_with_a_header(csm, hook):
    data = form_data(page(csm.get(change_url(hook))), "integration_form")
    for typed, problem in [
        ("no colon here", "Name: value"),
        ("X-Brand-New:", "X-Brand-New: give its value"),
    ]:
        data["setting__headers"] = typed
        text = page(csm.post(change_url(hook), data))
        assert html.escape(problem) in text or problem in text
    hook.refresh_from_db()
    assert hook.config()["headers"]["X-Team"] == "team-value-77aa"


def test_a_viewer_sees_header_names_and_a_masked_url(viewer, hook):
    text = page(viewer.get(change_url(hook)))
    assert_no_credentials(text)
    assert "team-value-77aa" not in text
    assert "X-Auth-Token, X-Api-Key, X-Team" in text
    assert html.escape(MASKED_URL) in text or MASKED_URL in text


@pytest.mark.parametrize("who", ["csm", "viewer"])
def test_history_and_audit_pages_show_no_values(request, hook, who):
    client = request.getfixturevalue(who)
    hook.set_settings({"url": URL.replace("/in", "/v2"), "headers": HEADERS})
    hook.save()
    pages = [
        client.get("/admin/integrations/audit-trail/"),
        client.get(reverse("admin:integrations_integration_history", args=[hook.pk])),
    ]
    for record in hook.history.all():
        pages.append(
            client.get(
                reverse(
                    "admin:integrations_integration_simple_history",
                    args=[hook.pk, record.history_id],
                )
            )
        )
    for response in pages:
        text = page(response)
        assert_no_credentials(text)
        assert "team-value-77aa" not in text
    assert "X-Api-Key" in page(pages[0])


def test_the_history_tables_hold_no_values(hook):
    hook.set_settings({"url": URL.replace("/in", "/v2"), "headers": HEADERS})
    hook.save()
    rows = every_history_row()
    assert_no_credentials(rows)
    assert "team-value-77aa" not in rows
    assert "X-Api-Key" in rows and "********" in rows


# --- a generated secret, shown once -------------------------------------------------


def add_webhook(client, workspace, **settings: str):
    data = form_data(page(client.get(ADD_URL)), "integration_form")
    data.update({"workspace": str(workspace.pk), "name": "New hook"})
    data["setting__url"] = "https://hooks.example.com/new"
    data.update({f"setting__{name}": value for name, value in settings.items()})
    return client.post(ADD_URL, data)


def test_the_generated_secret_is_shown_once_after_adding(csm, workspace):
    response = add_webhook(csm, workspace)
    text = page(response)
    integration = Integration.objects.get()
    secret = integration.secret_settings["secret"]
    assert secret.startswith("whsec_")
    assert secret in text and "not shown again" in text
    assert re.search(r'<button[^>]*data-copy-target="generated-secret-secret"', text)
    assert "no-cache" in response["Cache-Control"]
    # Never again: the change page says it is set.
    again = page(csm.get(change_url(integration)))
    assert secret not in again
    assert "Set; leave empty to keep it." in again
    assert secret not in page(csm.get(reverse("admin:integrations_integration_changelist")))


def test_a_typed_secret_is_not_shown_back(csm, workspace):
    typed = "whsec_c2VjcmV0LXNpZ25pbmcta2V5"
    response = add_webhook(csm, workspace, secret=typed)
    assert response.status_code == 302
    assert Integration.objects.get().secret_settings["secret"] == typed


def test_a_secret_generated_by_a_change_is_shown_once(csm, workspace):
    response = add_webhook(csm, workspace, signing="none")
    assert response.status_code == 302  # unsigned: nothing generated, nothing to show
    integration = Integration.objects.get()
    assert "secret" not in integration.secret_settings
    data = form_data(page(csm.get(change_url(integration))), "integration_form")
    data["setting__signing"] = "segment"
    text = page(csm.post(change_url(integration), data))
    integration.refresh_from_db()
    secret = integration.secret_settings["secret"]
    assert secret in text and "not shown again" in text
    assert secret not in page(csm.get(change_url(integration)))
