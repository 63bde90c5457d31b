"""The configuration API: auth, workspace isolation, roles, integrations, sources, traffic."""

from datetime import UTC, datetime
from io import StringIO
from types import SimpleNamespace
from typing import Any

import pytest
import responses
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations.api.serializers import SECRET_MASK
from integrations.models import (
    Delivery,
    DeliveryAttempt,
    Event,
    Exchange,
    Integration,
    Source,
    Workspace,
    WorkspaceMembership,
)
from tests.traffic import deliver_due, send

Role = WorkspaceMembership.Role

# Valid settings of every kind, each with one secret (name, value).
VALID = {
    "churnzero": (
        {"app_key": "cz-app-key-1", "instance_url": "https://eu1analytics.churnzero.net"},
        "app_key",
    ),
    "customerio": ({"site_id": "site-1", "api_key": "cio-api-key-1", "region": "eu"}, "api_key"),
    "chartmogul": (
        {
            "mode": "rest",
            "api_key": "cm-api-key-1",
            "data_source_uuid": "ds_1",
            "create_company_when": "user_created",
        },
        "api_key",
    ),
    "segment": ({"write_key": "seg-write-key-1", "region": "eu"}, "write_key"),
    "webhook": (
        {
            "url": "https://hooks.example.com/in",
            "signing": "standard",
            "secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5",
            "headers": {},
        },
        "secret",
    ),
}


def url(workspace: Workspace, collection: str, pk: Any = None, action: str = "") -> str:
    base = f"/api/v1/workspaces/{workspace.slug}/{collection}/"
    if pk is not None:
        base += f"{pk}/"
    return base + (f"{action}/" if action else "")


def results(response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def make_integration(workspace: Workspace, kind: str = "customerio", **fields) -> Integration:
    integration = Integration(workspace=workspace, name=f"{kind} tool", kind=kind, **fields)
    integration.set_settings(VALID[kind][0])
    integration.save()
    return integration


def make_event(workspace: Workspace, message_id: str, **fields) -> Event:
    fields.setdefault("type", Event.Type.TRACK)
    return Event.objects.create(
        workspace=workspace,
        message_id=message_id,
        timestamp=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        payload={"messageId": message_id},
        **fields,
    )


def raw_secret_column(integration: Integration) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_settings FROM integrations_integration WHERE id = %s",
            [integration.pk],
        )
        return cursor.fetchone()[0]


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


@pytest.fixture
def csm(member_client) -> APIClient:
    return member_client(Role.CSM, "csm")


@pytest.fixture
def viewer(member_client) -> APIClient:
    return member_client(Role.VIEWER, "viewer")


@pytest.fixture
def other(db) -> SimpleNamespace:
    """A second workspace with one of everything; members of ``workspace`` must not see it."""
    workspace = Workspace.objects.create(name="Globex", slug="globex")
    integration = make_integration(workspace, "segment")
    event = make_event(workspace, "globex-1", user_id="globex-user")
    return SimpleNamespace(
        workspace=workspace,
        source=Source.objects.create(workspace=workspace, name="Globex site"),
        integration=integration,
        event=event,
        delivery=Delivery.objects.create(
            event=event, integration=integration, status="retrying", last_outcome="retry"
        ),
    )


# --- authentication -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/workspaces/", "/api/v1/workspaces/acme/integrations/"])
def test_unauthenticated_requests_get_a_json_401(api_client, workspace, path):
    body = assert_error(api_client.get(path), 401, "not_authenticated")
    assert set(body) == {"code", "message"}


def test_a_bad_token_is_refused(api_client, workspace):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert_error(api_client.get("/api/v1/workspaces/"), 401, "authentication_failed")


def test_token_auth(django_user_model, workspace):
    user = django_user_model.objects.create_user(username="alice")
    WorkspaceMembership.objects.create(user=user, workspace=workspace, role=Role.VIEWER)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert [w["slug"] for w in results(client.get("/api/v1/workspaces/"))] == ["acme"]


def test_drf_create_token_command_makes_a_working_token(django_user_model, db):
    user = django_user_model.objects.create_user(username="bob")
    out = StringIO()
    call_command("drf_create_token", "bob", stdout=out)
    key = Token.objects.get(user=user).key
    assert key in out.getvalue()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/workspaces/").status_code == 200


def test_session_auth(django_user_model, workspace):
    user = django_user_model.objects.create_user(username="carol", password="pw")
    WorkspaceMembership.objects.create(user=user, workspace=workspace)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get(url(workspace, "integrations")).status_code == 200


# --- workspaces and isolation ---------------------------------------------------------


def test_workspace_list_shows_only_memberships(csm, workspace, other):
    assert [w["slug"] for w in results(csm.get("/api/v1/workspaces/"))] == ["acme"]
    assert csm.get("/api/v1/workspaces/acme/").json()["name"] == "Acme"
    assert csm.get("/api/v1/workspaces/globex/").status_code == 404


def test_superuser_sees_every_workspace_and_its_items(django_user_model, workspace, other):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_superuser(username="root"))
    assert [w["slug"] for w in results(client.get("/api/v1/workspaces/"))] == ["acme", "globex"]
    assert results(client.get(url(other.workspace, "integrations")))[0]["id"] == (
        other.integration.pk
    )
    response = client.post(url(other.workspace, "sources"), {"name": "New"}, format="json")
    assert response.status_code == 201


@pytest.fixture
def creator(django_user_model) -> APIClient:
    """A staff user given the permission to add workspaces (and no membership)."""
    user = django_user_model.objects.create_user(username="founder", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_workspace"))
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_creating_a_workspace_makes_the_creator_its_admin(creator, db):
    response = creator.post("/api/v1/workspaces/", {"name": "Initech", "slug": "initech"})
    assert response.status_code == 201, response.content
    membership = WorkspaceMembership.objects.get(workspace__slug="initech")
    assert (membership.user.username, membership.role) == ("founder", Role.ADMIN)
    assert creator.get("/api/v1/workspaces/initech/").status_code == 200


def test_only_superusers_and_staff_with_the_permission_create_workspaces(
    member_client, django_user_model, db
):
    payload = {"name": "Initech", "slug": "initech"}
    for role in Role.values:  # even an admin of a workspace
        client = member_client(role, f"{role}-user")
        assert_error(client.post("/api/v1/workspaces/", payload), 403, "permission_denied")
    # The permission alone, without staff status, is not enough.
    user = django_user_model.objects.create_user(username="not-staff")
    user.user_permissions.add(Permission.objects.get(codename="add_workspace"))
    client = APIClient()
    client.force_authenticate(user)
    assert_error(client.post("/api/v1/workspaces/", payload), 403, "permission_denied")
    assert not Workspace.objects.filter(slug="initech").exists()
    root = APIClient()
    root.force_authenticate(django_user_model.objects.create_superuser(username="root"))
    assert root.post("/api/v1/workspaces/", payload).status_code == 201


def test_workspace_slug_must_be_unique(creator, workspace):
    response = creator.post("/api/v1/workspaces/", {"name": "Acme 2", "slug": "acme"})
    assert "slug" in assert_error(response, 400, "invalid")["errors"]


def other_urls(other: SimpleNamespace) -> list[str]:
    ws = other.workspace
    return [
        url(ws, "sources"),
        url(ws, "sources", other.source.pk),
        url(ws, "integrations"),
        url(ws, "integrations", other.integration.pk),
        url(ws, "events"),
        url(ws, "events", other.event.pk),
        url(ws, "deliveries"),
        url(ws, "deliveries", other.delivery.pk),
    ]


def test_member_of_a_gets_404_on_every_b_endpoint(csm, workspace, other):
    for path in other_urls(other):
        assert csm.get(path).status_code == 404, path
    for path in [url(other.workspace, "sources"), url(other.workspace, "integrations")]:
        assert csm.post(path, {"name": "x"}, format="json").status_code == 404, path
    detail = url(other.workspace, "integrations", other.integration.pk)
    assert csm.patch(detail, {"name": "x"}, format="json").status_code == 404
    assert csm.delete(detail).status_code == 404
    regenerate = url(other.workspace, "sources", other.source.pk, "regenerate-keys")
    assert csm.post(regenerate).status_code == 404
    assert Integration.objects.filter(pk=other.integration.pk, name="segment tool").exists()


def test_404_has_the_json_error_shape(csm, workspace, other):
    assert_error(csm.get(url(other.workspace, "integrations")), 404, "not_found")
    assert_error(csm.get(url(workspace, "integrations", 999)), 404, "not_found")


def test_b_items_are_not_reachable_through_a(csm, workspace, other):
    """B's ids under A's slug are 404, and A's lists never show them."""
    for collection, item in [
        ("sources", other.source),
        ("integrations", other.integration),
        ("events", other.event),
        ("deliveries", other.delivery),
    ]:
        assert csm.get(url(workspace, collection, item.pk)).status_code == 404, collection
        assert results(csm.get(url(workspace, collection))) == [], collection
    for params in [{"message_id": "globex-1"}, {"user_id": "globex-user"}]:
        assert results(csm.get(url(workspace, "events"), params)) == []
    deliveries = csm.get(url(workspace, "deliveries"), {"integration": other.integration.pk})
    assert results(deliveries) == []


# --- roles ----------------------------------------------------------------------------


def test_viewer_reads_but_cannot_write(viewer, workspace, source, webhook_integration):
    assert len(results(viewer.get(url(workspace, "integrations")))) == 1
    assert len(results(viewer.get(url(workspace, "sources")))) == 1
    integration = url(workspace, "integrations", webhook_integration.pk)
    attempts = [
        viewer.post(url(workspace, "sources"), {"name": "New"}, format="json"),
        viewer.patch(url(workspace, "sources", source.pk), {"name": "x"}, format="json"),
        viewer.post(url(workspace, "sources", source.pk, "regenerate-keys")),
        viewer.delete(url(workspace, "sources", source.pk)),
        viewer.post(
            url(workspace, "integrations"),
            {"name": "x", "kind": "segment", "settings": VALID["segment"][0]},
            format="json",
        ),
        viewer.patch(integration, {"enabled": False}, format="json"),
        viewer.put(integration, {"name": "x", "kind": "webhook"}, format="json"),
        viewer.delete(integration),
    ]
    for response in attempts:
        assert_error(response, 403, "permission_denied")
    source.refresh_from_db()
    webhook_integration.refresh_from_db()
    assert (source.name, webhook_integration.enabled) == ("Website", True)


@pytest.mark.parametrize("role", [Role.CSM, Role.ADMIN])
def test_csm_and_admin_can_write(member_client, workspace, webhook_integration, role):
    client = member_client(role)
    detail = url(workspace, "integrations", webhook_integration.pk)
    assert client.patch(detail, {"enabled": False}, format="json").status_code == 200
    assert client.delete(detail).status_code == 204
    assert not Integration.objects.exists()


def test_writes_are_refused_through_the_readonly_endpoints(csm, workspace):
    assert csm.post(url(workspace, "events"), {}, format="json").status_code == 405
    assert csm.post(url(workspace, "deliveries"), {}, format="json").status_code == 405


# --- integrations ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(VALID))
def test_create_integration_of_every_kind(csm, workspace, kind):
    settings, secret_name = VALID[kind]
    payload = {"name": f"My {kind}", "kind": kind, "settings": settings}
    response = csm.post(url(workspace, "integrations"), payload, format="json")
    assert response.status_code == 201, response.content
    secret = settings[secret_name]
    assert secret.encode() not in response.content
    body = response.json()
    # Secret settings left unset come back as null (ChartMogul's REST mode has no webhook URL).
    unset = {"webhook_url": None} if kind == "chartmogul" else {}
    assert body["settings"] == {**settings, secret_name: SECRET_MASK, **unset}
    assert (body["kind"], body["enabled"], body["event_rules"]) == (kind, True, [])
    integration = Integration.objects.get(pk=body["id"])
    assert integration.workspace == workspace
    assert integration.secret_settings[secret_name] == secret
    assert secret_name not in integration.settings
    raw = raw_secret_column(integration)
    assert secret not in raw and secret_name not in raw


def test_defaults_are_filled_in(csm, workspace):
    payload = {"name": "CIO", "kind": "customerio", "settings": {"site_id": "s", "api_key": "k"}}
    response = csm.post(url(workspace, "integrations"), payload, format="json")
    assert response.json()["settings"] == {"site_id": "s", "api_key": SECRET_MASK, "region": "us"}


@pytest.mark.parametrize(
    ("kind", "settings", "field"),
    [
        ("churnzero", {"instance_url": "https://analytics.churnzero.net"}, "app_key"),
        ("chartmogul", {"mode": "rest", "api_key": "k"}, "data_source_uuid"),
        ("customerio", {"site_id": "s", "api_key": "k", "region": "mars"}, "region"),
        (
            "chartmogul",
            {**VALID["chartmogul"][0], "create_company_when": "never"},
            "create_company_when",
        ),
        ("churnzero", {"app_key": "k", "instance_url": "not a url"}, "instance_url"),
        ("webhook", {"url": "ftp://hooks.example.com"}, "url"),
        ("webhook", {"url": "https://hooks.example.com", "headers": {"Bad Name": "x"}}, "headers"),
        ("segment", {"write_key": "k", "writeKey": "k"}, "writeKey"),
        ("customerio", {**VALID["customerio"][0], "app_key": "k"}, "app_key"),
    ],
)
def test_invalid_settings_are_refused_naming_the_setting(csm, workspace, kind, settings, field):
    payload = {"name": "Bad", "kind": kind, "settings": settings}
    response = csm.post(url(workspace, "integrations"), payload, format="json")
    errors = assert_error(response, 400, "invalid")["errors"]
    assert list(errors) == ["settings"]
    assert field in errors["settings"]
    assert not Integration.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "zendesk"}, "kind"),
        ({"kind": "segment", "api_base_url": "not a url"}, "api_base_url"),
        ({"kind": "segment", "settings": ["write_key"]}, "settings"),
        ({"kind": "segment", "name": ""}, "name"),
    ],
)
def test_invalid_integration_fields_are_refused(csm, workspace, payload, field):
    payload = {"name": "X", "settings": VALID["segment"][0], **payload}
    response = csm.post(url(workspace, "integrations"), payload, format="json")
    assert field in assert_error(response, 400, "invalid")["errors"]


def test_secrets_never_come_back(csm, workspace):
    settings, _ = VALID["customerio"]
    created = csm.post(
        url(workspace, "integrations"),
        {"name": "CIO", "kind": "customerio", "settings": settings},
        format="json",
    )
    detail = url(workspace, "integrations", created.json()["id"])
    responses = [
        created,
        csm.get(url(workspace, "integrations")),
        csm.get(detail),
        csm.patch(detail, {"settings": {"api_key": "cio-api-key-2"}}, format="json"),
        csm.put(
            detail,
            {"name": "CIO", "kind": "customerio", "settings": {"site_id": "s2"}},
            format="json",
        ),
    ]
    for response in responses:
        assert response.status_code in (200, 201), response.content
        assert b"cio-api-key" not in response.content
        assert SECRET_MASK.encode() in response.content
    assert Integration.objects.get().secret_settings == {"api_key": "cio-api-key-2"}


def test_patch_without_the_secret_keeps_it_and_other_settings(csm, workspace):
    integration = make_integration(workspace, "customerio")
    detail = url(workspace, "integrations", integration.pk)
    response = csm.patch(detail, {"settings": {"region": "us"}}, format="json")
    assert response.status_code == 200, response.content
    integration.refresh_from_db()
    assert integration.settings == {"site_id": "site-1", "region": "us"}
    assert integration.secret_settings == {"api_key": "cio-api-key-1"}


def test_patch_without_settings_keeps_them(csm, workspace):
    integration = make_integration(workspace, "chartmogul")
    response = csm.patch(
        url(workspace, "integrations", integration.pk), {"name": "Renamed"}, format="json"
    )
    assert response.json()["name"] == "Renamed"
    integration.refresh_from_db()
    assert integration.config() == VALID["chartmogul"][0]


def test_sending_the_mask_back_keeps_the_secret(csm, workspace):
    integration = make_integration(workspace, "churnzero")
    detail = url(workspace, "integrations", integration.pk)
    body = csm.get(detail).json()
    body["settings"]["instance_url"] = "https://analytics.churnzero.net/"
    response = csm.put(detail, body, format="json")
    assert response.status_code == 200, response.content
    integration.refresh_from_db()
    assert integration.config() == {
        "app_key": "cz-app-key-1",
        "instance_url": "https://analytics.churnzero.net",
    }


def test_a_secret_can_be_replaced_and_is_encrypted(csm, workspace):
    integration = make_integration(workspace, "segment")
    detail = url(workspace, "integrations", integration.pk)
    csm.patch(detail, {"settings": {"write_key": "seg-write-key-2"}}, format="json")
    integration.refresh_from_db()
    assert integration.secret_settings == {"write_key": "seg-write-key-2"}
    assert "seg-write-key-2" not in raw_secret_column(integration)


def test_webhook_secret_is_generated_when_absent_and_shown_once(csm, workspace):
    payload = {"name": "Hook", "kind": "webhook", "settings": {"url": "https://h.example.com"}}
    response = csm.post(url(workspace, "integrations"), payload, format="json")
    integration = Integration.objects.get()
    secret = integration.secret_settings["secret"]
    assert secret.startswith("whsec_") and len(secret) > 20
    # The answer to the creation shows it, once...
    assert response.json()["settings"] == {
        "url": "https://h.example.com",
        "signing": "standard",
        "secret": secret,
        "headers": {},
    }
    # ... and no other answer does: not a read, not a list, not an update.
    detail = url(workspace, "integrations", integration.pk)
    answers = [
        csm.get(detail),
        csm.get(url(workspace, "integrations")),
        csm.patch(detail, {"name": "Renamed"}, format="json"),
        csm.put(detail, {**payload, "name": "Hook"}, format="json"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.content
        assert secret.encode() not in answer.content
    assert answers[0].json()["settings"]["secret"] == SECRET_MASK


def test_a_given_secret_is_not_shown_back(csm, workspace):
    settings = {"url": "https://h.example.com", "secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5"}
    payload = {"name": "Hook", "kind": "webhook", "settings": settings}
    response = csm.post(url(workspace, "integrations"), payload, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["settings"]["secret"] == SECRET_MASK
    assert b"c2VjcmV0LXNpZ25pbmcta2V5" not in response.content


def test_kind_cannot_change(csm, workspace, webhook_integration):
    detail = url(workspace, "integrations", webhook_integration.pk)
    response = csm.patch(detail, {"kind": "segment", "settings": {"write_key": "k"}}, format="json")
    assert "kind" in assert_error(response, 400, "invalid")["errors"]
    webhook_integration.refresh_from_db()
    assert webhook_integration.kind == "webhook"


def test_rules_are_created_and_replaced(csm, workspace):
    payload = {
        "name": "CIO",
        "kind": "customerio",
        "settings": VALID["customerio"][0],
        "event_rules": [
            {"event": "Signed Up", "enabled": True, "send_as": "signup"},
            {"event": "identify", "enabled": False, "send_as": ""},
        ],
        "property_rules": [{"name": "email", "enabled": True, "send_as": "email_address"}],
    }
    response = csm.post(url(workspace, "integrations"), payload, format="json")
    body = response.json()
    assert body["event_rules"] == sorted(payload["event_rules"], key=lambda r: r["event"])
    assert body["property_rules"] == payload["property_rules"]
    detail = url(workspace, "integrations", body["id"])

    response = csm.patch(detail, {"event_rules": [{"event": "Churned"}]}, format="json")
    assert response.json()["event_rules"] == [{"event": "Churned", "enabled": True, "send_as": ""}]
    assert response.json()["property_rules"] == payload["property_rules"]
    integration = Integration.objects.get()
    assert [r.event for r in integration.event_rules.all()] == ["Churned"]

    response = csm.patch(detail, {"property_rules": []}, format="json")
    assert response.json()["property_rules"] == []
    assert not integration.property_rules.exists()


@pytest.mark.parametrize(
    ("field", "rules"),
    [
        ("event_rules", [{"event": "Signed Up"}, {"event": "Signed Up", "enabled": False}]),
        ("property_rules", [{"name": "email"}, {"name": "plan"}, {"name": "email"}]),
    ],
)
def test_duplicate_rules_are_refused(csm, workspace, webhook_integration, field, rules):
    detail = url(workspace, "integrations", webhook_integration.pk)
    response = csm.patch(detail, {field: rules}, format="json")
    errors = assert_error(response, 400, "invalid")["errors"]
    assert field in errors
    assert not getattr(webhook_integration, field).exists()


# --- sources --------------------------------------------------------------------------


def test_source_create_reveals_the_webhook_secret_once(csm, workspace):
    response = csm.post(url(workspace, "sources"), {"name": "App"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    source = Source.objects.get(pk=body["id"])
    assert source.workspace == workspace
    assert body["write_key"] == source.write_key
    assert body["webhook_url"] == f"http://testserver/hooks/segment/{source.webhook_token}/"
    assert body["webhook_secret"] == source.webhook_secret != ""
    secret = source.webhook_secret.encode()
    for response in [
        csm.get(url(workspace, "sources")),
        csm.get(url(workspace, "sources", source.pk)),
        csm.patch(url(workspace, "sources", source.pk), {"name": "App 2"}, format="json"),
    ]:
        assert response.status_code == 200, response.content
        assert secret not in response.content
        assert "webhook_secret" not in str(response.json())


def test_source_webhook_secret_can_be_set_or_disabled(csm, workspace, source):
    detail = url(workspace, "sources", source.pk)
    response = csm.patch(detail, {"webhook_secret": "shared-1"}, format="json")
    assert b"shared-1" not in response.content
    source.refresh_from_db()
    assert source.webhook_secret == "shared-1"
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM integrations_source WHERE id = %s", [source.pk])
        assert "shared-1" not in cursor.fetchone()[0]
    csm.patch(detail, {"webhook_secret": ""}, format="json")
    source.refresh_from_db()
    assert source.webhook_secret == ""


def test_source_write_key_is_read_only(csm, workspace, source):
    old = source.write_key
    csm.patch(url(workspace, "sources", source.pk), {"write_key": "mine"}, format="json")
    source.refresh_from_db()
    assert source.write_key == old


def test_regenerate_keys(csm, workspace, source):
    before = csm.get(url(workspace, "sources", source.pk)).json()
    old_secret = source.webhook_secret
    response = csm.post(url(workspace, "sources", source.pk, "regenerate-keys"))
    assert response.status_code == 200, response.content
    body = response.json()
    source.refresh_from_db()
    assert body["write_key"] == source.write_key != before["write_key"]
    assert body["webhook_url"] != before["webhook_url"]
    assert source.webhook_token in body["webhook_url"]
    assert body["webhook_secret"] == source.webhook_secret != old_secret


def test_webhook_url_uses_public_base_url(csm, workspace, source, settings):
    settings.PUBLIC_BASE_URL = "https://console.example.com/"
    body = csm.get(url(workspace, "sources", source.pk)).json()
    assert body["webhook_url"] == (
        f"https://console.example.com/hooks/segment/{source.webhook_token}/"
    )


# --- events and deliveries ------------------------------------------------------------


@pytest.fixture
def traffic(workspace, webhook_integration) -> SimpleNamespace:
    """Three events; deliveries to two integrations, one with two attempts."""
    cio = make_integration(workspace, "customerio")
    signup = make_event(workspace, "m-1", event="Signed Up", user_id="u-1")
    churn = make_event(workspace, "m-2", event="Churned", user_id="u-1")
    identify = make_event(workspace, "m-3", type=Event.Type.IDENTIFY, user_id="u-2")
    first, second = (
        Exchange.objects.create(
            integration=webhook_integration,
            method="POST",
            url="https://hooks.example.com/in",
            response_status=status,
        )
        for status in (500, 502)
    )
    failed = Delivery.objects.create(
        event=signup,
        integration=webhook_integration,
        status="failed",
        attempt_count=2,
        last_outcome="failed",
        last_status_code=502,
        exchange=second,
    )
    DeliveryAttempt.objects.create(
        delivery=failed, number=1, outcome="retry", status_code=500, exchange=first
    )
    return SimpleNamespace(
        hook=webhook_integration,
        cio=cio,
        events=[signup, churn, identify],
        failed=failed,
        delivered=Delivery.objects.create(
            event=signup, integration=cio, status="delivered", last_outcome="delivered"
        ),
        retrying=Delivery.objects.create(
            event=churn, integration=cio, status="retrying", last_outcome="retry"
        ),
    )


@pytest.mark.parametrize(
    ("params", "message_ids"),
    [
        ({}, {"m-1", "m-2", "m-3"}),
        ({"message_id": "m-2"}, {"m-2"}),
        ({"user_id": "u-1"}, {"m-1", "m-2"}),
        ({"event": "Signed Up"}, {"m-1"}),
        ({"user_id": "u-1", "event": "Churned"}, {"m-2"}),
        ({"type": "identify"}, {"m-3"}),
        ({"message_id": "nope"}, set()),
    ],
)
def test_event_filters(viewer, workspace, traffic, params, message_ids):
    events = results(viewer.get(url(workspace, "events"), params))
    assert {e["message_id"] for e in events} == message_ids


def test_event_detail(viewer, workspace, traffic):
    body = viewer.get(url(workspace, "events", traffic.events[0].pk)).json()
    assert (body["message_id"], body["event"], body["payload"]) == (
        "m-1",
        "Signed Up",
        {"messageId": "m-1"},
    )
    assert viewer.get(url(workspace, "events", "not-a-uuid")).status_code == 404


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"failed", "delivered", "retrying"}),
        ({"message_id": "m-1"}, {"failed", "delivered"}),
        ({"status": "delivered"}, {"delivered"}),
        ({"message_id": "m-2", "status": "delivered"}, set()),
    ],
)
def test_delivery_filters(viewer, workspace, traffic, params, expected):
    deliveries = results(viewer.get(url(workspace, "deliveries"), params))
    assert {d["status"] for d in deliveries} == expected
    assert len(deliveries) == len(expected)


def test_delivery_filter_by_integration(viewer, workspace, traffic):
    deliveries = results(viewer.get(url(workspace, "deliveries"), {"integration": traffic.cio.pk}))
    assert {d["id"] for d in deliveries} == {traffic.delivered.pk, traffic.retrying.pk}
    response = viewer.get(url(workspace, "deliveries"), {"integration": "cio"})
    assert_error(response, 400, "invalid_filter")


def test_delivery_detail_carries_every_attempt_and_exchange(viewer, workspace, traffic):
    body = viewer.get(url(workspace, "deliveries", traffic.failed.pk)).json()
    assert (body["message_id"], body["event_name"], body["integration"]) == (
        "m-1",
        "Signed Up",
        traffic.hook.pk,
    )
    attempts = body["attempts"]
    assert [(a["number"], a["outcome"], a["status_code"]) for a in attempts] == [
        (1, "retry", 500),
        (2, "failed", 502),
    ]
    assert [[e["response_status"] for e in a["exchanges"]] for a in attempts] == [[500], [502]]
    assert attempts[1]["exchanges"][0]["deliveries"] == [traffic.failed.pk]
    # Lists stay light: the exchanges are in the detail only.
    listed = results(viewer.get(url(workspace, "deliveries"), {"status": "failed"}))
    assert "attempts" not in listed[0]
    assert listed[0]["attempt_count"] == 2


@responses.activate
def test_delivery_detail_carries_every_exchange_of_a_multi_step_attempt(viewer, workspace, source):
    """ChartMogul's REST mode looks the customer up, then writes it: both exchanges, in
    order, with the write's answer, and the key redacted."""
    api = "https://api.chartmogul.com/v1"
    chartmogul = Integration(workspace=workspace, name="ChartMogul", kind="chartmogul")
    chartmogul.set_settings(
        {"mode": "rest", "api_key": "cm_live_secret", "data_source_uuid": "ds_1"}
    )
    chartmogul.save()
    responses.get(f"{api}/customers", json={"entries": [], "has_more": False})
    responses.post(f"{api}/customers", status=201, json={"uuid": "cus_1"})
    send(source, type="group", anonymousId="a1", groupId="acme", traits={"name": "Acme"})
    deliver_due(chartmogul)
    delivery = Delivery.objects.get(integration=chartmogul)
    response = viewer.get(url(workspace, "deliveries", delivery.pk))
    (attempt,) = response.json()["attempts"]
    steps = [
        (e["method"], e["url"].split("?")[0], e["response_status"]) for e in attempt["exchanges"]
    ]
    assert steps == [("GET", f"{api}/customers", 200), ("POST", f"{api}/customers", 201)]
    assert "cus_1" in attempt["exchanges"][1]["response_body"]
    assert "cm_live_secret" not in response.content.decode()


# --- schema ---------------------------------------------------------------------------


def test_openapi_schema_and_docs(api_client, db):
    schema = api_client.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/workspaces/{workspace_slug}/integrations/" in paths
    assert "/api/v1/workspaces/{workspace_slug}/sources/{id}/regenerate-keys/" in paths
    detail = paths["/api/v1/workspaces/{workspace_slug}/integrations/{id}/"]["get"]
    assert {p["name"]: p["schema"]["type"] for p in detail["parameters"]}["id"] == "integer"
    assert api_client.get("/api/docs/").status_code == 200


def test_purchasely_source_gets_a_webhook_url(csm, workspace):
    response = csm.post(url(workspace, "sources"), {"name": "P", "kind": "purchasely"})
    assert response.status_code == 201
    assert Source.objects.get().webhook_token in response.json()["webhook_url"]
