"""The webhook's mapped fields (URL, method, headers, body) and batching: what is refused
when saved, how batches are signed and identified, and a batch through the engine."""

import hashlib
import hmac
import json

import pytest
import responses
from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from integrations.delivery import planning
from integrations.destinations.context import PlanContext
from integrations.destinations.values import EventData, IntegrationConfig
from integrations.destinations.webhook import (
    MAX_BATCH_BYTES,
    Webhook,
    batch_webhook_id,
    webhook_id,
)
from integrations.models import Delivery, Exchange, Integration
from tests.destinations.fixtures import RECEIVED_AT
from tests.traffic import deliver_due, send

URL = "https://hooks.example.com/in"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def config_of(mappings: dict | None = None, **settings) -> IntegrationConfig:
    integration = Integration(kind="webhook")
    integration.set_settings({"url": URL, "secret": WHSEC, **settings})
    integration.set_field_mappings(mappings or {})
    return planning.integration_config(integration)


def events(count: int, **properties) -> list[EventData]:
    return [
        EventData(
            message_id=f"m{n}",
            type="track",
            timestamp=RECEIVED_AT,
            payload={
                "type": "track",
                "event": "Signed Up",
                "userId": f"u{n}",
                "messageId": f"m{n}",
                "properties": {"n": n, **properties},
            },
            event="Signed Up",
            user_id=f"u{n}",
        )
        for n in range(count)
    ]


def plan(config: IntegrationConfig, items: list[EventData]):
    return Webhook.plan(config, items, PlanContext())


# --- what is refused when saved ------------------------------------------------------


@pytest.mark.parametrize(
    ("mappings", "field", "problem"),
    [
        ({"url": "properties.url"}, "url", "starts with the scheme and host"),
        ({"url": "https://hooks.example.com/in"}, "url", "set the URL setting instead"),
        ({"url": "https://{{ properties.host }}/in"}, "url", "starts with the scheme and host"),
        ({"url": "https://hooks{{ properties.x }}.example.com/"}, "url", "scheme and host"),
        ({"url": "ftp://hooks.example.com/{{ userId }}"}, "url", "scheme and host"),
        (
            {"url": "https://user:pass@hooks.example.com/{{ userId }}"},
            "url",
            "holds credentials",
        ),
        ({"url": "https://hooks.example.com/{{ userId }}?api_key=k1"}, "url", "credentials"),
        ({"method": '"DELETE"'}, "method", "'DELETE' is not one of POST, PUT, PATCH"),
        ({"method": 'properties.method || "GET"'}, "method", "'GET' is not one of"),
        ({"headers": {"Bad Name": "userId"}}, "headers", "'Bad Name' is not a valid header"),
        ({"headers": {"X-A": "userId", "x-a": "userId"}}, "headers", "listed twice"),
        ({"headers": "userId"}, "headers", "must be an object"),
        ({"body": '{"email": "{{ traits.email }}"}'}, "body", "does not give JSON"),
        ({"body": '{"email": {{ traits.email }}'}, "body", "does not give JSON"),
        ({"body": "traits..email"}, "body", "expected a key"),
    ],
)
def test_mappings_the_webhook_cannot_send_are_refused_with_the_field(mappings, field, problem):
    with pytest.raises(ValidationError) as caught:
        Webhook.clean_mappings(mappings)
    assert list(caught.value.message_dict) == [field]
    assert problem in caught.value.message_dict[field][0]


def test_several_problems_are_reported_together():
    with pytest.raises(ValidationError) as caught:
        Webhook.clean_mappings({"url": "userId", "method": '"GET"', "nope": "userId"})
    assert set(caught.value.message_dict) == {"url", "method", "nope"}


def test_good_mappings_are_kept():
    mappings = {
        "url": "https://hooks.example.com/users/{{ userId }}?plan={{ traits.plan }}",
        "method": '"put"',
        "headers": {"X-User-Id": "userId", "X-Plan": "Plan: {{ traits.plan }}"},
        "body": '{"email": {{ traits.email }}, "tags": [{{ traits.a }}, {{ traits.b }}]}',
    }
    assert Webhook.clean_mappings(mappings) == mappings


def test_a_substitution_cannot_move_the_request_to_another_host():
    config = config_of({"url": "https://hooks.example.com/u/{{ userId }}"})
    item = EventData(
        message_id="m1",
        type="identify",
        timestamp=RECEIVED_AT,
        payload={"type": "identify", "userId": "x@evil.example/../?#"},
        user_id="x@evil.example/../?#",
    )
    (request,) = plan(config, [item]).requests
    assert request.url == "https://hooks.example.com/u/x%40evil.example%2F..%2F%3F%23"


def test_the_connection_test_uses_the_url_setting_whatever_the_mappings():
    config = config_of({"url": "https://other.example.com/{{ userId }}", "method": '"PUT"'})
    request = Webhook.connection_test(config)
    assert (request.method, request.url) == ("POST", URL)


# --- the batch_size setting ------------------------------------------------------------


def test_batching_is_off_unless_set_and_takes_a_number_or_its_text():
    assert "batch_size" not in Webhook.clean_settings({"url": URL}).public
    assert Webhook.clean_settings({"url": URL, "batch_size": 100}).public["batch_size"] == "100"
    assert Webhook.clean_settings({"url": URL, "batch_size": "7"}).public["batch_size"] == "7"
    for wrong in ("0", "1001", "ten", "2.5", -3):
        with pytest.raises(ValidationError) as caught:
            Webhook.clean_settings({"url": URL, "batch_size": wrong})
        assert "from 1 to 1,000" in caught.value.message_dict["batch_size"][0]


def test_a_batch_size_of_one_sends_each_event_alone_as_before():
    one = plan(config_of(batch_size="1"), events(3))
    unset = plan(config_of(), events(3))
    assert [r.covers for r in one.requests] == [(0,), (1,), (2,)]
    assert [r.body for r in one.requests] == [r.body for r in unset.requests]
    assert json.loads(one.requests[0].body)["messageId"] == "m0"


# --- batches: bodies, ids and signatures ------------------------------------------------


def test_a_batch_is_an_array_of_the_bodies_cut_at_the_batch_size():
    sent = plan(config_of(batch_size="2"), events(5)).requests
    assert [r.covers for r in sent] == [(0, 1), (2, 3), (4,)]
    bodies = [json.loads(r.body) for r in sent]
    assert [[m["messageId"] for m in body] for body in bodies] == [
        ["m0", "m1"],
        ["m2", "m3"],
        ["m4"],
    ]


def test_a_batch_stays_under_the_byte_limit():
    big = "x" * (MAX_BATCH_BYTES // 3)
    sent = plan(config_of(batch_size="100"), events(5, big=big)).requests
    assert [len(r.covers) for r in sent] == [2, 2, 1]
    assert all(len(r.body.encode()) <= MAX_BATCH_BYTES for r in sent)


def test_standard_webhooks_signs_the_exact_array_sent_with_an_id_from_its_events():
    (request,) = plan(config_of(batch_size="10"), events(3)).requests
    verified = StandardWebhook(WHSEC).verify(request.body, dict(request.headers))
    assert [m["messageId"] for m in verified] == ["m0", "m1", "m2"]
    assert request.headers["webhook-id"] == batch_webhook_id(["m0", "m1", "m2"])
    again = plan(config_of(batch_size="10"), events(3)).requests[0]
    assert again.headers["webhook-id"] == request.headers["webhook-id"]
    other = plan(config_of(batch_size="10"), events(2)).requests[0]
    assert other.headers["webhook-id"] != request.headers["webhook-id"]
    assert request.headers["webhook-id"] not in {webhook_id(f"m{n}") for n in range(3)}


def test_segment_signing_of_a_batch_is_the_hmac_of_its_first_element():
    config = config_of(batch_size="10", signing="segment", secret="abc123")
    (request,) = plan(config, events(2)).requests
    first = json.dumps(json.loads(request.body)[0], separators=(",", ":"))
    expected = hmac.new(b"abc123", first.encode(), hashlib.sha1).hexdigest()
    assert request.headers["X-Signature"] == expected


@pytest.mark.django_db
@responses.activate
def test_a_batch_goes_through_the_engine_and_its_retry_carries_the_same_id(source, workspace):
    hook = Integration(workspace=workspace, name="Batched", kind="webhook")
    hook.set_settings({"url": URL, "batch_size": "50"})
    hook.save()
    responses.post(URL, status=503)
    responses.post(URL, status=200)
    for n in range(3):
        send(source, type="track", userId=f"u{n}", event="Signed Up", messageId=f"m{n}")
    deliver_due(hook)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.RETRYING}
    Delivery.objects.update(next_attempt_at=timezone.now())
    deliver_due(hook)

    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.DELIVERED}
    first, retry = (call.request for call in responses.calls)
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]
    assert first.headers["webhook-id"] == batch_webhook_id(["m0", "m1", "m2"])
    secret = hook.secret_settings["secret"]
    for request in (first, retry):
        verified = StandardWebhook(secret).verify(request.body, dict(request.headers))
        assert [m["messageId"] for m in verified] == ["m0", "m1", "m2"]
    # One exchange per attempt, shared by the three deliveries it carried.
    assert Exchange.objects.count() == 2
    assert all(len(e.carried_delivery_ids()) == 3 for e in Exchange.objects.all())
