"""The admin: every model browsable, integrations edited per kind, secrets never rendered."""

import re
from datetime import UTC, datetime

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.urls import reverse

from integrations.destinations import registry
from integrations.models import (
    Delivery,
    DeliveryAttempt,
    Event,
    EventRule,
    Exchange,
    Integration,
    PropertyRule,
    Source,
    Workspace,
    WorkspaceMembership,
)

ADD_URL = "/admin/integrations/integration/add/"


@pytest.fixture
def client(client, admin_user) -> Client:
    """A client logged in as a superuser."""
    client.force_login(admin_user)
    return client


@pytest.fixture
def cio(workspace) -> Integration:
    integration = Integration(workspace=workspace, name="CIO", kind="customerio")
    integration.set_settings({"site_id": "site-1", "api_key": "cio-secret-key", "region": "eu"})
    integration.save()
    EventRule.objects.create(integration=integration, event="Signed Up", send_as="signup")
    PropertyRule.objects.create(integration=integration, name="email", enabled=False)
    return integration


@pytest.fixture
def delivery(workspace, source, cio) -> Delivery:
    event = Event.objects.create(
        workspace=workspace,
        source=source,
        message_id="m-1",
        type=Event.Type.TRACK,
        event="Signed Up",
        user_id="u-1",
        timestamp=datetime(2025, 1, 2, tzinfo=UTC),
        payload={"event": "Signed Up"},
    )
    exchange = Exchange.objects.create(
        integration=cio,
        method="POST",
        url="https://track.customer.io/api/v2/batch",
        response_status=503,
        response_body="upstream unavailable",
    )
    delivery = Delivery.objects.create(
        event=event,
        integration=cio,
        status="failed",
        last_outcome="failed",
        attempt_count=2,
        exchange=exchange,
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, number=1, outcome="retry", status_code=503, exchange=exchange
    )
    return delivery


@pytest.fixture
def everything(admin_user, workspace, delivery) -> None:
    """One row of every model, so list columns and change pages are rendered."""
    WorkspaceMembership.objects.create(user=admin_user, workspace=workspace)


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def raw_secret_column(integration: Integration) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_settings FROM integrations_integration WHERE id = %s",
            [integration.pk],
        )
        return cursor.fetchone()[0]


def admin_url(model, action: str = "changelist", *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{action}", args=args)


def test_every_integrations_model_is_in_the_admin():
    """Registered, edited inline on its parent's page, or shown on it (a delivery's
    earlier attempts, with their exchanges); dispatches and routing jobs are the worker's
    queue, which the health panel and dashboard count."""
    inlined = {EventRule, PropertyRule}
    registered = [Workspace, WorkspaceMembership, Source, Integration, Event, Delivery, Exchange]
    for model in registered:
        assert admin.site.is_registered(model), model
    assert {inline.model for ma in admin.site._registry.values() for inline in ma.inlines} >= (
        inlined
    )


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m.__name__)
def test_changelists_and_change_pages_open_without_secrets(client, everything, source, model):
    pages = [client.get(admin_url(model)), client.get(admin_url(model), {"q": "acme"})]
    pages += [client.get(admin_url(model, "change", obj.pk)) for obj in model.objects.all()[:3]]
    for page in map(text, pages):
        assert "cio-secret-key" not in page
        assert source.webhook_secret not in page


@pytest.mark.parametrize(
    ("model", "params"),
    [
        (Integration, {"kind__exact": "customerio"}),
        (Source, {"enabled__exact": "1"}),
        (Event, {"type__exact": "track"}),
        (Delivery, {"status__exact": "failed"}),
        (WorkspaceMembership, {"role__exact": "csm"}),
    ],
)
def test_list_filters(client, everything, model, params):
    obj = model.objects.get()
    assert admin_url(model, "change", obj.pk) in text(client.get(admin_url(model), params))


def test_event_and_delivery_are_read_only(client, everything, delivery):
    assert client.get(admin_url(Event, "add")).status_code == 403
    assert client.get(admin_url(Delivery, "add")).status_code == 403
    page = text(client.get(admin_url(Delivery, "change", delivery.pk)))
    assert 'name="_save"' not in page
    assert "https://track.customer.io/api/v2/batch" in page  # the attempt, inline
    assert "upstream unavailable" in page
    event_page = text(client.get(admin_url(Event, "change", delivery.event.pk)))
    assert 'name="_save"' not in event_page
    assert admin_url(Delivery, "change", delivery.pk) in event_page  # deliveries inline
    response = client.post(admin_url(Delivery, "change", delivery.pk), {"status": "delivered"})
    assert response.status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == "failed"


def test_integration_add_page_is_a_kind_chooser(client, db):
    page = text(client.get(ADD_URL))
    for kind, label in registry.kind_choices():
        assert f'href="?kind={kind}"' in page
        assert label in page
    assert "(group, identify, track)" in page  # ChurnZero's message types, in order
    assert 'name="setting__' not in page
    assert 'href="?kind=webhook"' in text(client.get(ADD_URL, {"kind": "zendesk"}))


def test_kind_chooser_needs_the_add_permission(django_user_model, workspace):
    """A viewer of a workspace (and of no other) may list integrations, not add one; Django's
    model permissions do not count, memberships do."""
    user = django_user_model.objects.create_user(username="auditor", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_integration"))
    WorkspaceMembership.objects.create(user=user, workspace=workspace, role="viewer")
    client = Client()
    client.force_login(user)
    assert client.get(admin_url(Integration)).status_code == 200
    assert client.get(ADD_URL).status_code == 403
    assert client.get(ADD_URL, {"kind": "segment"}).status_code == 403


def test_kind_page_shows_the_settings_fields(client, db):
    page = text(client.get(ADD_URL, {"kind": "customerio"}))
    assert re.search(r'<input type="text" name="setting__site_id"[^>]*required', page)
    assert re.search(r'<input type="password" name="setting__api_key"[^>]*required', page)
    assert re.search(r'<select name="setting__region"', page)
    assert 'name="event_rules-TOTAL_FORMS"' in page


def management_data(page: str) -> dict[str, str]:
    """Empty management forms for every inline formset on a rendered admin form."""
    data = {}
    for prefix in re.findall(r'name="([\w-]+)-TOTAL_FORMS"', page):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    return data


def test_add_form_creates_an_integration_with_encrypted_secrets(client, workspace):
    page = text(client.get(ADD_URL, {"kind": "customerio"}))
    data = {
        **management_data(page),
        "workspace": workspace.pk,
        "name": "Customer.io EU",
        "enabled": "on",
        "event_mode": "all",
        "api_base_url": "",
        "setting__site_id": "site-9",
        "setting__api_key": "cio-new-secret",
        "setting__region": "eu",
        "event_rules-TOTAL_FORMS": "1",
        "event_rules-0-event": "Signed Up",
        "event_rules-0-enabled": "on",
        "event_rules-0-send_as": "signup",
    }
    response = client.post(f"{ADD_URL}?kind=customerio", data)
    assert response.status_code == 302, response.content.decode()
    integration = Integration.objects.get()
    assert (integration.kind, integration.name) == ("customerio", "Customer.io EU")
    assert integration.settings == {"site_id": "site-9", "region": "eu"}
    assert integration.secret_settings == {"api_key": "cio-new-secret"}
    assert "cio-new-secret" not in raw_secret_column(integration)
    assert [(r.event, r.send_as) for r in integration.event_rules.all()] == [
        ("Signed Up", "signup")
    ]


def test_add_form_refuses_a_missing_secret(client, workspace):
    page = text(client.get(ADD_URL, {"kind": "segment"}))
    data = {**management_data(page), "workspace": workspace.pk, "name": "Seg"}
    data.update({"event_mode": "all", "setting__region": "us", "setting__write_key": ""})
    page = text(client.post(f"{ADD_URL}?kind=segment", data))
    assert "This field is required." in page
    assert not Integration.objects.exists()


def test_webhook_secret_is_generated_from_the_admin(client, workspace):
    page = text(client.get(ADD_URL, {"kind": "webhook"}))
    data = {**management_data(page), "workspace": workspace.pk, "name": "Hook"}
    data.update(
        {
            "event_mode": "all",
            "setting__url": "https://h.example.com",
            "setting__signing": "standard",
            "setting__headers": "",
        }
    )
    assert client.post(f"{ADD_URL}?kind=webhook", data).status_code == 200  # shows it once
    integration = Integration.objects.get()
    assert integration.secret_settings["secret"].startswith("whsec_")
    assert integration.settings == {
        "url": "https://h.example.com",
        "signing": "standard",
        "headers": [],
    }


def change_data(page: str, integration: Integration, **settings: str) -> dict[str, str]:
    data = {
        **management_data(page),
        "workspace": integration.workspace_id,
        "name": integration.name,
        "enabled": "on",
        "event_mode": integration.event_mode,
        "api_base_url": "",
        **{f"setting__{name}": value for name, value in settings.items()},
    }
    # Keep the existing rules as they are.
    for prefix, rules, key in [
        ("event_rules", integration.event_rules.all(), "event"),
        ("property_rules", integration.property_rules.all(), "name"),
    ]:
        data[f"{prefix}-TOTAL_FORMS"] = data[f"{prefix}-INITIAL_FORMS"] = str(len(rules))
        for i, rule in enumerate(rules):
            data[f"{prefix}-{i}-id"] = rule.pk
            data[f"{prefix}-{i}-integration"] = integration.pk
            data[f"{prefix}-{i}-{key}"] = getattr(rule, key)
            data[f"{prefix}-{i}-send_as"] = rule.send_as
            if rule.enabled:
                data[f"{prefix}-{i}-enabled"] = "on"
    return data


def test_change_page_never_contains_the_secret(client, cio):
    page = text(client.get(admin_url(Integration, "change", cio.pk)))
    assert "cio-secret-key" not in page
    assert re.search(r'<input type="password" name="setting__api_key"(?![^>]*value=)', page)
    assert 'value="site-1"' in page
    assert "leave empty to keep it" in page


def test_saving_without_the_secret_keeps_it(client, cio):
    page = text(client.get(admin_url(Integration, "change", cio.pk)))
    data = change_data(page, cio, site_id="site-2", api_key="", region="us")
    response = client.post(admin_url(Integration, "change", cio.pk), data)
    assert response.status_code == 302, response.content.decode()
    cio.refresh_from_db()
    assert cio.config() == {"site_id": "site-2", "region": "us", "api_key": "cio-secret-key"}
    assert cio.event_rules.count() == cio.property_rules.count() == 1


def test_saving_a_new_secret_replaces_it(client, cio):
    page = text(client.get(admin_url(Integration, "change", cio.pk)))
    data = change_data(page, cio, site_id="site-1", api_key="cio-rotated", region="eu")
    assert client.post(admin_url(Integration, "change", cio.pk), data).status_code == 302
    cio.refresh_from_db()
    assert cio.secret_settings == {"api_key": "cio-rotated"}
    assert "cio-rotated" not in raw_secret_column(cio)


def test_invalid_setting_is_shown_on_its_field(client, cio):
    page = text(client.get(admin_url(Integration, "change", cio.pk)))
    data = change_data(page, cio, site_id="site-1", api_key="", region="mars")
    page = text(client.post(admin_url(Integration, "change", cio.pk), data))
    assert "Select a valid choice" in page
    assert "cio-secret-key" not in page
    cio.refresh_from_db()
    assert cio.settings["region"] == "eu"


def test_source_pages_never_show_the_webhook_secret(client, everything, source):
    page = text(client.get(admin_url(Source, "change", source.pk)))
    assert source.webhook_secret not in page
    assert source.write_key in page
    assert f"/hooks/segment/{source.webhook_token}/" in page
    assert source.webhook_secret not in text(client.get(admin_url(Source)))


def test_source_page_shows_the_public_webhook_url(client, source, settings):
    settings.PUBLIC_BASE_URL = "https://console.example.com"
    page = text(client.get(admin_url(Source, "change", source.pk)))
    assert f"https://console.example.com/hooks/segment/{source.webhook_token}/" in page


def test_source_add_form(client, workspace):
    """The generated webhook secret is shown once, on the answer to the creation."""
    data = {"workspace": workspace.pk, "name": "App", "kind": "segment", "enabled": "on"}
    page = text(client.post(admin_url(Source, "add"), data))
    source = Source.objects.get()
    assert source.write_key and source.webhook_secret
    assert source.webhook_secret in page
    assert source.webhook_secret not in text(client.get(admin_url(Source, "change", source.pk)))


def test_regenerate_keys_action_asks_for_confirmation(client, source):
    old = (source.write_key, source.webhook_token, source.webhook_secret)
    data = {"action": "regenerate_keys", "_selected_action": [source.pk]}
    page = text(client.post(admin_url(Source), data))
    assert "Yes, regenerate the keys" in page
    source.refresh_from_db()
    assert (source.write_key, source.webhook_token, source.webhook_secret) == old
    page = text(client.post(admin_url(Source), {**data, "post": "yes"}))
    source.refresh_from_db()
    new = (source.write_key, source.webhook_token, source.webhook_secret)
    assert all(a != b for a, b in zip(old, new, strict=True))
    assert source.webhook_secret in page
