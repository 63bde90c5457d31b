"""The audit trail: every configuration change recorded (who, when, what), secrets never."""

import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations import audit
from integrations.models import (
    EventRule,
    Integration,
    PropertyRule,
    Source,
    Workspace,
    WorkspaceMembership,
)
from tests.test_admin import admin_url, change_data

Role = WorkspaceMembership.Role
AUDIT = "/admin/integrations/audit-trail/"
SECRETS = ["cio-secret-key", "cio-rotated-key", "cio-api-key-3"]


@pytest.fixture
def csm(django_user_model, workspace):
    user = django_user_model.objects.create_user("carla", is_staff=True)
    WorkspaceMembership.objects.create(user=user, workspace=workspace, role=Role.CSM)
    return user


@pytest.fixture
def browser(csm) -> Client:
    client = Client()
    client.force_login(csm)
    return client


@pytest.fixture
def token_client(csm) -> APIClient:
    """The CSM through the API with a token (not a session): the way scripts call it."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=csm).key}")
    return client


@pytest.fixture
def cio(workspace) -> Integration:
    integration = Integration(workspace=workspace, name="CIO", kind="customerio")
    integration.set_settings({"site_id": "site-1", "api_key": "cio-secret-key", "region": "eu"})
    integration.save()
    EventRule.objects.create(integration=integration, event="Signed Up", send_as="signup")
    return integration


def history_tables() -> list[str]:
    return [t for t in connection.introspection.table_names() if "_historical" in t]


def every_history_row() -> str:
    """Every value of every historical table, as text."""
    rows = []
    with connection.cursor() as cursor:
        for table in history_tables():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            rows += cursor.fetchall()
    return repr(rows)


def test_the_configuration_models_are_tracked(db):
    names = {t.removeprefix("integrations_historical") for t in history_tables()}
    assert names == {"workspace", "workspacemembership", "source", "integration", "eventrule"} | {
        "propertyrule",
        "alertrule",
    }


# --- who ------------------------------------------------------------------------------


def test_an_admin_change_records_the_user(browser, csm, cio, source):
    page = browser.get(admin_url(Integration, "change", cio.pk)).content.decode()
    data = change_data(page, cio, site_id="site-2", api_key="cio-rotated-key", region="eu")
    assert browser.post(admin_url(Integration, "change", cio.pk), data).status_code == 302
    record = cio.history.first()
    assert (record.history_type, record.history_user) == ("~", csm)
    assert record.settings == {"site_id": "site-2", "region": "eu"}
    data = {"workspace": source.workspace_id, "name": "Renamed", "kind": "segment"}
    assert browser.post(admin_url(Source, "change", source.pk), data).status_code == 302
    assert source.history.first().history_user == csm


def test_an_api_change_with_a_token_records_the_user(token_client, csm, cio, workspace):
    url = f"/api/v1/workspaces/{workspace.slug}/integrations/{cio.pk}/"
    payload = {"name": "CIO EU", "event_rules": [{"event": "Churned", "enabled": False}]}
    assert token_client.patch(url, payload, format="json").status_code == 200
    assert cio.history.first().history_user == csm
    assert cio.history.first().name == "CIO EU"
    # The rules replaced: the old one deleted, the new one created, both by the CSM.
    records = EventRule.history.order_by("history_date")
    assert [(r.event, r.history_type, r.history_user) for r in records][-2:] == [
        ("Signed Up", "-", csm),
        ("Churned", "+", csm),
    ]
    response = token_client.post(
        f"/api/v1/workspaces/{workspace.slug}/sources/", {"name": "App"}, format="json"
    )
    assert response.status_code == 201
    assert Source.history.get(name="App").history_user == csm


def test_pause_and_resume_are_in_the_audit_trail(token_client, csm, cio, workspace):
    cio.name = "CIO renamed elsewhere"  # a stale instance: the history must not keep it
    Integration.objects.filter(pk=cio.pk).update(name="CIO live")
    base = f"/api/v1/workspaces/{workspace.slug}/integrations/{cio.pk}"
    assert token_client.post(f"{base}/pause/").status_code == 200
    assert token_client.post(f"{base}/resume/").status_code == 200
    resumed, paused = cio.history.all()[:2]
    assert (paused.paused, paused.history_change_reason, paused.history_user) == (
        True,
        "Paused",
        csm,
    )
    assert (resumed.paused, resumed.history_change_reason, resumed.history_user) == (
        False,
        "Resumed",
        csm,
    )
    assert paused.name == "CIO live"
    [change] = [
        c for c in audit.describe(audit.changes([workspace.pk])) if c.at == paused.history_date
    ]
    assert ("paused", "False", "True") in [(f.name, str(f.old), str(f.new)) for f in change.fields]
    assert change.reason == "Paused"


def test_the_audit_trail_shows_why_the_system_changed_something(browser, cio):
    cio.change_state("Flagged by the delivery worker", flagged_reason="HTTP 410")
    entries = rows(browser.get(AUDIT).content.decode())
    assert any(
        "(system)" in row and "changed: Flagged by the delivery worker" in row for row in entries
    ), entries


def test_members_api_changes_record_the_user(django_user_model, workspace):
    boss = django_user_model.objects.create_user("boss")
    WorkspaceMembership.objects.create(user=boss, workspace=workspace, role=Role.ADMIN)
    django_user_model.objects.create_user("newbie")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=boss).key}")
    members = f"/api/v1/workspaces/{workspace.slug}/members/"
    assert client.post(members, {"username": "newbie", "role": "viewer"}).status_code == 201
    assert client.patch(f"{members}newbie/", {"role": "csm"}).status_code == 200
    assert client.delete(f"{members}newbie/").status_code == 204
    records = WorkspaceMembership.history.filter(user__username="newbie").order_by("history_date")
    assert [(r.history_type, r.role, r.history_user) for r in records] == [
        ("+", "viewer", boss),
        ("~", "csm", boss),
        ("-", "csm", boss),
    ]


# --- secrets --------------------------------------------------------------------------


def test_secret_changes_are_stamped_not_stored(token_client, browser, cio, source, workspace):
    created_stamp = cio.secrets_changed_at
    assert created_stamp is not None
    # Saving without touching a secret leaves the stamp.
    cio.name = "CIO 2"
    cio.save()
    assert Integration.objects.get(pk=cio.pk).secrets_changed_at == created_stamp
    call_command("rotate_secrets", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert Integration.objects.get(pk=cio.pk).secrets_changed_at == created_stamp
    # Through the API...
    url = f"/api/v1/workspaces/{workspace.slug}/integrations/{cio.pk}/"
    settings = {"site_id": "site-1", "api_key": "cio-api-key-3", "region": "eu"}
    assert token_client.patch(url, {"settings": settings}, format="json").status_code == 200
    api_stamp = Integration.objects.get(pk=cio.pk).secrets_changed_at
    assert api_stamp > created_stamp
    # ... and the admin.
    cio.refresh_from_db()
    page = browser.get(admin_url(Integration, "change", cio.pk)).content.decode()
    data = change_data(page, cio, site_id="site-1", api_key="cio-rotated-key", region="eu")
    assert browser.post(admin_url(Integration, "change", cio.pk), data).status_code == 302
    assert Integration.objects.get(pk=cio.pk).secrets_changed_at > api_stamp
    # Regenerated source keys.
    old_secret = source.webhook_secret
    token_client.post(f"/api/v1/workspaces/{workspace.slug}/sources/{source.pk}/regenerate-keys/")
    source.refresh_from_db()
    assert source.keys_rotated_at is not None
    assert source.history.first().keys_rotated_at == source.keys_rotated_at
    text = every_history_row()
    for secret in [*SECRETS, old_secret, source.webhook_secret]:
        assert secret not in text
    columns = {
        column.name
        for table in history_tables()
        for column in connection.introspection.get_table_description(connection.cursor(), table)
    }
    assert not columns & {"secret_settings", "webhook_secret"}


def test_audit_pages_never_show_secrets(admin_client, cio, source, workspace):
    cio.set_settings({"site_id": "site-1", "api_key": "cio-rotated-key", "region": "eu"})
    cio.save()
    source.regenerate_keys()
    pages = [
        admin_client.get(AUDIT),
        admin_client.get(admin_url(Integration, "history", cio.pk)),
        admin_client.get(admin_url(Source, "history", source.pk)),
    ]
    for record in cio.history.all():
        pages.append(admin_client.get(f"/admin/integrations/integration/{cio.pk}/history/"))
        pages.append(
            admin_client.get(
                f"/admin/integrations/integration/{cio.pk}/history/{record.history_id}/"
            )
        )
    for response in pages:
        assert response.status_code == 200
        text = response.content.decode()
        for secret in [*SECRETS, source.webhook_secret]:
            assert secret not in text
    text = pages[0].content.decode()
    assert "secret settings" in text and "webhook secret" in text
    assert "changed (value not shown)" in text


def test_reverting_from_the_history_is_refused(admin_client, cio):
    record = cio.history.first()
    url = f"/admin/integrations/integration/{cio.pk}/history/{record.history_id}/"
    assert admin_client.post(url, {"name": "Reverted"}).status_code == 403
    assert Integration.objects.get(pk=cio.pk).config()["api_key"] == "cio-secret-key"


# --- the audit trail page -------------------------------------------------------------


def rows(text: str) -> list[str]:
    body = text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in body.split("<tr>")[1:]
    ]


def test_audit_trail_tells_who_changed_what(browser, csm, cio, workspace):
    page = browser.get(admin_url(Integration, "change", cio.pk)).content.decode()
    data = change_data(page, cio, site_id="site-1", api_key="", region="eu")
    data["name"] = "CIO EU"
    data["property_rules-TOTAL_FORMS"] = "1"
    data.update({"property_rules-0-name": "email", "property_rules-0-send_as": "mail"})
    assert browser.post(admin_url(Integration, "change", cio.pk), data).status_code == 302
    response = browser.get(AUDIT)
    assert response.status_code == 200
    entries = rows(response.content.decode())
    assert any(
        "carla" in row and "Integration" in row and "changed" in row and "name: CIO → CIO EU" in row
        for row in entries
    ), entries
    assert any("carla" in row and "Property rule" in row and "created" in row for row in entries)
    assert any("(system)" in row and "Integration" in row and "created" in row for row in entries)
    assert "Audit trail" in browser.get("/admin/").content.decode()


def test_audit_trail_is_scoped_to_the_users_workspaces(browser, cio, django_user_model, db):
    other = Workspace.objects.create(name="Bravomark", slug="bravomark")
    source = Source.objects.create(workspace=other, name="bravomark site")
    hook = Integration(workspace=other, name="bravomark hook", kind="webhook")
    hook.set_settings({"url": "https://b.example.com"})
    hook.save()
    rule = PropertyRule.objects.create(integration=hook, name="bravomark prop")
    intruder = django_user_model.objects.create_user("bravomark-user")
    WorkspaceMembership.objects.create(user=intruder, workspace=other)
    source.regenerate_keys()
    hook.delete()  # deleted with its rule: the history stays B's
    assert not PropertyRule.objects.filter(pk=rule.pk).exists()
    for params in [{}, {"workspace": other.pk}, {"kind": "propertyrule"}, {"user": ""}]:
        response = browser.get(AUDIT, params)
        assert response.status_code == 200
        assert "bravomark" not in response.content.decode().replace(f'value="{other.pk}"', "")
    assert "CIO" in browser.get(AUDIT).content.decode()
    superuser = Client()
    superuser.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    text = superuser.get(AUDIT, {"kind": "propertyrule"}).content.decode()
    assert "bravomark prop" in text and "deleted" in text


def test_audit_trail_filters(browser, cio, csm):
    cio.name = "CIO 2"
    cio._history_user = csm
    cio.save()
    entries = rows(browser.get(AUDIT, {"kind": "eventrule"}).content.decode())
    assert len(entries) == 1 and "Event rule" in entries[0]
    entries = rows(browser.get(AUDIT, {"user": "carla"}).content.decode())
    assert len(entries) == 1 and "name: CIO → CIO 2" in entries[0]


def test_audit_trail_pages(browser, cio, csm):
    for n in range(55):
        EventRule.objects.create(integration=cio, event=f"e{n}")
    total = sum(model.history.count() for model in audit.TRACKED)
    first = browser.get(AUDIT).content.decode()
    assert f"Page 1 of 2 ({total} changes)" in first and "Older" in first
    assert len(rows(first)) == 50
    second = browser.get(AUDIT, {"p": 2}).content.decode()
    assert "Page 2 of 2" in second and len(rows(second)) == total - 50
    assert "Signed Up" in second  # the oldest last


def test_non_members_get_no_audit_trail(django_user_model, cio, workspace):
    client = Client()
    client.force_login(django_user_model.objects.create_user("outsider", is_staff=True))
    assert client.get(AUDIT).status_code == 403
    assert "Audit trail" not in client.get("/admin/").content.decode()


def test_history_pages_are_scoped(browser, db):
    other = Workspace.objects.create(name="Globex", slug="globex")
    source = Source.objects.create(workspace=other, name="Globex site")
    assert browser.get(admin_url(Source, "history", source.pk)).status_code == 403
    record = source.history.first()
    url = f"/admin/integrations/source/{source.pk}/history/{record.history_id}/"
    assert browser.get(url).status_code == 403
    pk = source.pk
    source.delete()
    assert browser.get(admin_url(Source, "history", pk)).status_code == 403
    assert browser.get(admin_url(Workspace, "history", other.pk)).status_code == 403


def test_an_admin_creation_is_recorded(browser, csm, workspace):
    data = {"workspace": workspace.pk, "name": "New", "kind": "segment", "enabled": "on"}
    assert browser.post(admin_url(Source, "add"), data).status_code == 200  # the new keys page
    record = Source.history.get(name="New")
    assert (record.history_type, record.history_user) == ("+", csm)
