"""Test connection: each vendor's cheap authenticated request, the redacted result, the
API action and the admin message after save (the save is never blocked)."""

import pytest
import requests
import responses
from django.urls import reverse

from integrations.delivery.connection_test import ConnectionStatus, check_connection
from integrations.models import Integration, WorkspaceMembership
from tests.test_admin import management_data, text

HOOK = "https://segment.chartmogul.example/hooks/tok-9f8e7d"


def make(workspace, kind: str, settings: dict, name: str = "Vendor") -> Integration:
    integration = Integration(workspace=workspace, name=name, kind=kind)
    integration.set_settings(settings)
    integration.save()
    return integration


@pytest.fixture
def customerio(workspace):
    return make(workspace, "customerio", {"site_id": "site-1", "api_key": "cio-secret-key"})


@responses.activate
def test_customerio_asks_for_the_account_region(customerio):
    responses.get(
        "https://track.customer.io/api/v1/accounts/region",
        json={"url": "https://track.customer.io", "region": "us", "environment_id": 3},
    )
    result = check_connection(customerio)
    assert result.status == ConnectionStatus.OK
    assert result.ok
    assert (result.method, result.url, result.http_status) == (
        "GET",
        "https://track.customer.io/api/v1/accounts/region",
        200,
    )
    assert "the settings work" in result.message
    assert '"region": "us"' in result.response
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Basic c2l0ZS0xOmNpby1zZWNyZXQta2V5"


@responses.activate
def test_a_refusal_is_a_failure_with_the_vendors_words_and_no_secret(customerio):
    responses.get(
        "https://track.customer.io/api/v1/accounts/region",
        status=401,
        json={"meta": {"error": "Unauthorized request with key cio-secret-key"}},
    )
    result = check_connection(customerio)
    assert result.status == ConnectionStatus.FAILED
    assert result.http_status == 401
    assert "answered 401" in result.message
    assert "Unauthorized request" in result.message
    assert "cio-secret-key" not in str(result.as_dict())
    assert "[REDACTED]" in result.response


@responses.activate
def test_no_answer_is_a_failure_saying_so(customerio):
    responses.get(
        "https://track.customer.io/api/v1/accounts/region",
        body=requests.ConnectionError("connection refused"),
    )
    result = check_connection(customerio)
    assert result.status == ConnectionStatus.FAILED
    assert result.http_status is None
    assert "got no answer" in result.message


@responses.activate
def test_chartmogul_webhook_mode_posts_an_empty_object_and_hides_the_url(workspace):
    integration = make(workspace, "chartmogul", {"webhook_url": HOOK})
    responses.post(HOOK, json={})
    result = check_connection(integration)
    assert result.ok
    assert responses.calls[0].request.body == b"{}"
    # The webhook URL is a credential: it is not shown back.
    assert "tok-9f8e7d" not in str(result.as_dict())


@responses.activate
def test_chartmogul_rest_mode_pings(workspace):
    integration = make(
        workspace, "chartmogul", {"mode": "rest", "api_key": "cm-key", "data_source_uuid": "ds_1"}
    )
    responses.get("https://api.chartmogul.com/v1/ping", json={"data": "pong!"})
    result = check_connection(integration)
    assert result.ok
    assert result.url == "https://api.chartmogul.com/v1/ping"
    assert responses.calls[0].request.headers["Authorization"] == "Basic Y20ta2V5Og=="


@responses.activate
def test_segment_sends_an_empty_batch_and_says_what_a_success_means(workspace):
    integration = make(workspace, "segment", {"write_key": "wk-secret", "region": "eu"})
    responses.post("https://events.eu1.segmentapis.com/v1/batch", json={"success": True})
    result = check_connection(integration)
    assert result.ok
    assert responses.calls[0].request.body == b'{"batch":[]}'
    assert "wrong write key" in result.note


def test_churnzero_offers_no_test_and_says_why(workspace):
    integration = make(workspace, "churnzero", {"app_key": "cz-key"})
    result = check_connection(integration)
    assert result.status == ConnectionStatus.UNAVAILABLE
    assert "answers every request with 200" in result.note


# -- the API ------------------------------------------------------------------------------


def endpoint(integration: Integration) -> str:
    return (
        f"/api/v1/workspaces/{integration.workspace.slug}/integrations/"
        f"{integration.pk}/test-connection/"
    )


@responses.activate
def test_the_api_runs_the_test_for_csms(member_client, customerio):
    responses.get("https://track.customer.io/api/v1/accounts/region", status=401, json={})
    response = member_client().post(endpoint(customerio))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed"
    assert body["http_status"] == 401
    assert set(body) == {
        "status",
        "message",
        "note",
        "method",
        "url",
        "http_status",
        "response",
        "duration_ms",
    }


def test_viewers_may_not_run_it_and_strangers_do_not_see_it(member_client, customerio, workspace):
    viewer = member_client(WorkspaceMembership.Role.VIEWER, username="viewer")
    assert viewer.post(endpoint(customerio)).status_code == 403
    other = workspace.__class__.objects.create(name="Other", slug="other")
    stranger = make(other, "churnzero", {"app_key": "k"})
    assert member_client(username="csm2").post(endpoint(stranger)).status_code == 404


# -- the admin ----------------------------------------------------------------------------


def change_url(integration: Integration) -> str:
    return reverse("admin:integrations_integration_change", args=[integration.pk])


def form_data(client, integration: Integration, **changes) -> dict:
    page = text(client.get(change_url(integration)))
    return {
        **management_data(page),
        "workspace": integration.workspace_id,
        "name": integration.name,
        "enabled": "on",
        "event_mode": "all",
        "api_base_url": "",
        "setting__site_id": "site-1",
        "setting__region": "us",
        **changes,
    }


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_saving_reports_the_connection_test_without_blocking_the_save(admin_client, customerio):
    """The test runs once the save is committed (never inside its transaction)."""
    client = admin_client
    responses.get("https://track.customer.io/api/v1/accounts/region", status=401, json={})
    response = client.post(
        change_url(customerio), form_data(client, customerio, name="Renamed"), follow=True
    )
    assert response.status_code == 200
    customerio.refresh_from_db()
    assert customerio.name == "Renamed"
    notes = [str(m) for m in response.context["messages"]]
    assert any("Test connection: Customer.io answered 401" in note for note in notes)


def test_field_mappings_are_edited_and_validated_on_the_integration_page(csm, customerio):
    client = csm
    page = text(client.get(change_url(customerio)))
    assert "Field mappings" in page
    assert 'name="mapping__person_id"' in page
    bad = form_data(client, customerio, mapping__person_id="traits..email")
    response = client.post(change_url(customerio), bad)
    assert response.status_code == 200
    assert "expected a key after" in text(response)
    good = form_data(
        client,
        customerio,
        mapping__person_id="$profile.traits.email || userId",
        mapping__object_attributes="traits.company",
    )
    assert client.post(change_url(customerio), good).status_code == 302
    customerio.refresh_from_db()
    assert customerio.field_mappings == {
        "person_id": "$profile.traits.email || userId",
        "object_attributes": "traits.company",
    }
    # In the audit trail, like every configuration change.
    assert customerio.history.first().field_mappings == customerio.field_mappings


def test_viewers_see_the_mappings_in_force(viewer, customerio):
    customerio.field_mappings = {"person_id": "traits.email"}
    customerio.save()
    page = text(viewer.get(change_url(customerio)))
    assert "traits.email" in page
    assert "preset: traits" in page
    assert 'name="mapping__person_id"' not in page


def test_the_settings_show_the_vendors_caveats(csm, workspace):
    churnzero = make(workspace, "churnzero", {"app_key": "k"})
    page = text(csm.get(change_url(churnzero)))
    assert "answers every request with HTTP 200" in page
    assert "the API base URL, when set, wins over the instance URL" in page
    assert "accountExternalId and contactExternalId" in page
