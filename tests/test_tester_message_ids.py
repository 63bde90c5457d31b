"""A test send always gets a fresh messageId: a sample or a pasted event may be sent again
and again, and never collides with live events or earlier tests."""

import json

import pytest
import responses
from django.urls import reverse

from integrations.models import Delivery, Event, WorkspaceMembership
from integrations.sources.purchasely import SAMPLE_EVENT as PURCHASELY_EVENT
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, send

URL = "https://hooks.example.com/in"
SAMPLE = "SUBSCRIPTION_STARTED"


@pytest.fixture
def hook(workspace):
    integration = make_integration(workspace)
    integration.set_settings({"url": URL})
    integration.save()
    return integration


@pytest.fixture
def api(member_client):
    return member_client(WorkspaceMembership.Role.CSM, username="api-csm")


@pytest.fixture
def live_event(source, hook) -> Event:
    """A live event, delivered."""
    with responses.RequestsMock() as vendor:
        vendor.post(URL, status=200)
        send(source, type="track", userId="u-1", event="Live Thing", messageId="live-1")
        deliver_due()
    return Event.objects.get(message_id="live-1")


def api_send(client, hook, **body):
    url = f"/api/v1/workspaces/{hook.workspace.slug}/integrations/{hook.pk}/test/"
    return client.post(url, {**body, "send": True}, format="json")


def admin_send(client, hook, **data):
    url = reverse("admin:integrations_integration_test", args=[hook.pk])
    return client.post(url, {**data, "action": "send"})


def message_ids_of_tests() -> list[str]:
    return list(Event.objects.filter(is_test=True).values_list("message_id", flat=True))


def original_ids() -> list:
    return [
        event.payload["context"]["eventTester"]["originalMessageId"]
        for event in Event.objects.filter(is_test=True)
    ]


def assert_live_untouched(live_event: Event) -> None:
    again = Event.objects.get(pk=live_event.pk)
    assert (again.is_test, again.payload) == (False, live_event.payload)
    assert list(again.deliveries.values_list("origin", flat=True)) == [Delivery.Origin.LIVE]


@responses.activate
def test_the_api_sends_the_same_purchasely_sample_twice(api, hook):
    responses.post(URL, status=200)
    for _ in range(2):
        response = api_send(api, hook, sample=SAMPLE)
        assert response.status_code == 200, response.content
        assert response.json()["sent"] is True
    ids = message_ids_of_tests()
    assert len(set(ids)) == 2 and all(i.startswith("test-") for i in ids)
    assert original_ids() == [PURCHASELY_EVENT["event_id"]] * 2


@responses.activate
def test_the_admin_sends_the_same_purchasely_sample_twice(csm, hook):
    responses.post(URL, status=200)
    for _ in range(2):
        response = admin_send(csm, hook, sample=SAMPLE)
        assert response.status_code == 200
        assert "Test event sent" in response.content.decode()
    assert Delivery.objects.filter(origin=Delivery.Origin.TEST).count() == 2
    assert len(set(message_ids_of_tests())) == 2


@responses.activate
def test_a_pasted_live_event_is_sent_as_a_new_test_through_the_api(api, hook, live_event):
    responses.post(URL, status=200)
    pasted = {**live_event.payload}
    for _ in range(2):
        response = api_send(api, hook, event=pasted)
        assert response.status_code == 200, response.content
        assert response.json()["delivery"]["message_id"].startswith("test-")
    assert original_ids() == ["live-1", "live-1"]
    assert_live_untouched(live_event)


@responses.activate
def test_a_pasted_live_event_is_sent_as_a_new_test_from_the_admin(csm, hook, live_event):
    responses.post(URL, status=200)
    pasted = json.dumps(live_event.payload)
    for _ in range(2):
        response = admin_send(csm, hook, event=pasted)
        assert response.status_code == 200
        text = response.content.decode()
        assert "Test event sent" in text and "originalMessageId" in text
    assert original_ids() == ["live-1", "live-1"]
    assert_live_untouched(live_event)


def test_an_event_without_a_message_id_has_no_original(api, hook):
    with responses.RequestsMock() as mock:
        mock.post(URL, status=200)
        response = api_send(api, hook, event={"type": "identify", "userId": "u"})
    assert response.status_code == 200
    (event,) = Event.objects.filter(is_test=True)
    assert event.message_id.startswith("test-")
    assert "eventTester" not in event.payload["context"]
