"""The event tester (preview and test send) and the event catalog."""

import json

import pytest
import responses
from rest_framework.test import APIClient

from integrations.models import Delivery, Event, EventRule, Source, WorkspaceMembership
from tests.test_fanout import make_integration
from tests.traffic import route, send

BASE = "/api/v1/workspaces/acme"
URL = "https://hooks.example.com/in"


@pytest.fixture
def csm(member_client):
    return member_client(WorkspaceMembership.Role.CSM)


@pytest.fixture
def hook(workspace):
    integration = make_integration(workspace)
    integration.set_settings({"url": URL, "headers": {"Authorization": "Bearer tok-12345"}})
    integration.save()
    return integration


def test_samples_are_listed(csm, hook):
    samples = csm.get(f"{BASE}/integrations/{hook.pk}/test/").json()["samples"]
    assert {"identify", "track", "SUBSCRIPTION_STARTED", "accept_offer"} <= set(samples)


def test_preview_shows_the_exact_request_and_sends_nothing(csm, hook):
    with responses.RequestsMock() as mock:  # any request would fail the test
        response = csm.post(
            f"{BASE}/integrations/{hook.pk}/test/", {"sample": "TRIAL_CONVERTED"}, format="json"
        )
        assert len(mock.calls) == 0
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["sent"] is False
    assert body["routed"] is True
    (request,) = body["requests"]
    assert request["method"] == "POST"
    assert request["url"] == URL
    assert json.loads(request["body"])["event"] == "TRIAL_CONVERTED"
    # Secrets are redacted even in the preview.
    assert request["headers"]["Authorization"] == "[REDACTED]"
    assert hook.secret_settings["secret"] not in response.content.decode()
    assert "tok-12345" not in response.content.decode()
    assert not Event.objects.exists()


def test_preview_of_a_switched_off_event_says_why(csm, hook):
    EventRule.objects.create(integration=hook, event="Noise", enabled=False)
    event = {"type": "track", "userId": "u", "event": "Noise"}
    body = csm.post(f"{BASE}/integrations/{hook.pk}/test/", {"event": event}, format="json").json()
    assert body["routed"] is False
    assert "event rule" in body["reason"]
    assert body["requests"] == []


def test_invalid_hand_written_event_is_400(csm, hook):
    response = csm.post(
        f"{BASE}/integrations/{hook.pk}/test/", {"event": {"type": "track"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "no_user_anon_id"


@pytest.mark.parametrize("body", [{}, {"sample": "identify", "event": {}}, {"sample": "nope"}])
def test_tester_needs_one_sample_or_event(csm, hook, body):
    response = csm.post(f"{BASE}/integrations/{hook.pk}/test/", body, format="json")
    assert response.status_code == 400


@responses.activate
def test_send_makes_a_test_delivery_marked_in_the_log(csm, hook):
    responses.post(URL, status=201, json={"received": True})
    response = csm.post(
        f"{BASE}/integrations/{hook.pk}/test/", {"sample": "identify", "send": True}, format="json"
    )
    body = response.json()
    assert body["sent"] is True
    delivery = Delivery.objects.get(pk=body["delivery"]["id"])
    assert delivery.origin == Delivery.Origin.TEST
    assert delivery.status == Delivery.Status.DELIVERED
    assert delivery.event.is_test
    (attempt,) = delivery.attempt_log()
    assert attempt.trigger == "test"
    (exchange,) = body["delivery"]["attempts"][0]["exchanges"]
    assert exchange["response_body"] == '{"received": true}'
    assert "tok-12345" not in response.content.decode()


@responses.activate
def test_failed_test_send_is_not_retried(csm, hook):
    responses.post(URL, status=503)
    body = csm.post(
        f"{BASE}/integrations/{hook.pk}/test/", {"sample": "track", "send": True}, format="json"
    ).json()
    delivery = Delivery.objects.get(pk=body["delivery"]["id"])
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.next_attempt_at is None
    assert "503" in delivery.last_error


def test_viewer_cannot_use_the_tester(member_client, hook):
    viewer = member_client(WorkspaceMembership.Role.VIEWER, username="v")
    response = viewer.post(f"{BASE}/integrations/{hook.pk}/test/", {"sample": "track"})
    assert response.status_code == 403


def test_catalog_lists_known_and_seen_events(
    csm, source, workspace, django_capture_on_commit_callbacks
):
    Source.objects.create(workspace=workspace, name="App", kind="purchasely")
    # Seen events are counted once the router's transaction commits.
    for name in ("accept_offer", "accept_offer", "Custom Thing"):
        send(source, type="track", userId="u", event=name)
    send(source, type="identify", userId="u")
    with django_capture_on_commit_callbacks(execute=True):
        route()
    entries = {e["name"]: e for e in csm.get(f"{BASE}/catalog/").json()}
    assert entries["accept_offer"]["group"] == "Chargebee Retention"
    assert entries["accept_offer"]["count"] == 2
    assert entries["accept_offer"]["last_seen_at"]
    assert entries["SUBSCRIPTION_STARTED"]["group"] == "Purchasely: Lifecycle"
    assert entries["SUBSCRIPTION_STARTED"]["count"] == 0
    assert entries["Custom Thing"]["group"] == "Seen in traffic"
    assert entries["Custom Thing"]["count"] == 1
    assert "identify" not in entries


def test_catalog_is_workspace_scoped(django_user_model, source):
    send(source, type="track", userId="u", event="Secret Event")
    stranger = django_user_model.objects.create_user("stranger")
    client = APIClient()
    client.force_authenticate(stranger)
    assert client.get(f"{BASE}/catalog/").status_code == 404


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ('{"total": 1e999}', "invalid_number"),
        (nested(80), "nesting_too_deep"),
        ('{"name": "\\ud800"}', "invalid_string"),
    ],
)
def test_an_event_that_could_not_be_stored_is_400(csm, hook, properties, code):
    raw = '{"event": {"type": "track", "userId": "u1", "event": "E", "properties": %s}}'
    response = csm.post(
        f"{BASE}/integrations/{hook.pk}/test/",
        raw % properties,
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not Event.objects.exists()


def test_a_body_nested_beyond_the_parser_is_400(csm, hook):
    response = csm.post(
        f"{BASE}/integrations/{hook.pk}/test/", nested(100_000), content_type="application/json"
    )
    assert response.status_code == 400, response.content
