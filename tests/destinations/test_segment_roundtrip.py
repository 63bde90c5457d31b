"""The Segment destination forwarding to our own Segment-compatible ingest.

Our ``/v1/batch`` computes timestamps, dedupes on ``messageId`` and enforces Segment's size
limits as Segment documents them, so a live console server stands in for Segment: what
the first workspace received (here Chargebee Retention's samples and a client with a
skewed clock) must arrive in the second workspace's source as the same messages, with
the same ``timestamp``, with only the integration's rules applied.
"""

import json

import pytest
import requests

from integrations.delivery import engine
from integrations.delivery.http import send
from integrations.delivery.tasks import QUEUE
from integrations.destinations.segment import MAX_MESSAGE_BYTES, Segment
from integrations.models import (
    Delivery,
    Event,
    EventRule,
    Exchange,
    Integration,
    PropertyRule,
    Source,
    Trigger,
    Workspace,
)
from integrations.sources.segment_spec import compact_json
from tests.destinations.fixtures import FIXTURES, build
from tests.traffic import deliver_due

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHARGEBEE = json.loads((FIXTURES / "segment" / "chargebee_retention.json").read_text())
SKEWED_CLIENT = [
    # The client's clock is 30 s ahead of the send: the ingest corrects the timestamp.
    {
        "type": "track",
        "userId": "u-2",
        "event": "Report Exported",
        "messageId": "skewed-1",
        "originalTimestamp": "2024-01-01T11:00:00.000Z",
        "properties": {"format": "csv", "field.cancel.email": "x@example.com"},
        "context": {"traits": {"field.cancel.email": "x@example.com", "plan": "pro"}},
        "integrations": {"Intercom": False},
    },
    {
        "type": "page",
        "anonymousId": "anon-3",
        "messageId": "skewed-2",
        "originalTimestamp": "2024-01-01T11:00:10.000Z",
        "name": "Pricing",
        "properties": {"path": "/pricing"},
    },
]


@pytest.fixture
def console(live_server):
    """An origin workspace forwarding to Segment, here the target workspace's source."""
    origin = Workspace.objects.create(name="Origin", slug="origin")
    target = Workspace.objects.create(name="Target", slug="target")
    inbound = Source.objects.create(workspace=origin, name="Chargebee Retention")
    outbound = Source.objects.create(workspace=target, name="HTTP API")
    integration = Integration(
        workspace=origin, name="Segment", kind="segment", api_base_url=live_server.url
    )
    integration.set_settings({"write_key": outbound.write_key})
    integration.save()
    EventRule.objects.create(
        integration=integration, event="accept_offer", send_as="Offer Accepted"
    )
    PropertyRule.objects.create(
        integration=integration, name="survey.brightback_reason", send_as="cancel_reason"
    )
    PropertyRule.objects.create(integration=integration, name="field.cancel.email", enabled=False)
    return live_server, inbound, outbound, integration


def without_email(context: dict) -> dict:
    """The context as the rules send it: the switched-off trait left out."""
    if "traits" not in context:
        return context
    traits = {k: v for k, v in context["traits"].items() if k != "field.cancel.email"}
    return {**context, "traits": traits}


def post_batch(url: str, write_key: str, body: dict) -> dict:
    response = requests.post(f"{url}/v1/batch", json=body, auth=(write_key, ""), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def deliver_all(integration: Integration) -> list[Delivery]:
    deliver_due(integration)
    return list(Delivery.objects.filter(integration=integration).select_related("event"))


def test_messages_arrive_with_the_same_ids_timestamps_and_rules_applied(console):
    server, inbound, outbound, integration = console
    post_batch(server.url, inbound.write_key, {"batch": CHARGEBEE["events"]})
    post_batch(
        server.url,
        inbound.write_key,
        {
            "batch": SKEWED_CLIENT,
            "sentAt": "2024-01-01T11:00:30.000Z",
            "context": {"ip": "1.2.3.4"},
        },
    )

    deliveries = deliver_all(integration)
    assert len(deliveries) == 4
    assert {d.status for d in deliveries} == {Delivery.Status.DELIVERED}
    # One request carried all four: it is stored once, and each delivery refers to it.
    (exchange,) = Exchange.objects.filter(integration=integration)
    assert {d.exchange_id for d in deliveries} == {exchange.pk}
    assert exchange.url == f"{server.url}/v1/batch"
    assert exchange.request_headers["Authorization"] == "[REDACTED]"
    assert outbound.write_key not in exchange.request_body
    assert json.loads(exchange.response_body)["accepted"] == 4

    arrived = {e.message_id: e for e in Event.objects.filter(source=outbound)}
    assert set(arrived) == {d.event.message_id for d in deliveries}
    for delivery in deliveries:
        sent, got = delivery.event, arrived[delivery.event.message_id]
        assert got.workspace_id == outbound.workspace_id
        assert (got.type, got.user_id, got.anonymous_id) == (
            sent.type,
            sent.user_id,
            sent.anonymous_id,
        )
        assert got.timestamp == sent.timestamp
        # Segment's reading of a given timestamp: it is also the original one, uncorrected.
        assert got.payload["originalTimestamp"] == sent.payload["timestamp"]
        assert "sentAt" not in got.payload
        assert got.payload["integrations"] == sent.payload["integrations"]
        assert got.payload["context"] == without_email(sent.payload["context"])

    offer = arrived[CHARGEBEE["events"][1]["messageId"]]
    assert offer.event == "Offer Accepted"
    original = CHARGEBEE["events"][1]["properties"]
    expected = {k: v for k, v in original.items() if k != "field.cancel.email"}
    expected["cancel_reason"] = expected.pop("survey.brightback_reason")
    assert offer.payload["properties"] == expected
    assert "survey.reason_for_leaving[0].value" in offer.payload["properties"]
    assert offer.payload["timestamp"] == "2020-11-06T00:53:10.886Z"

    identify = arrived[CHARGEBEE["events"][0]["messageId"]]
    assert identify.payload["traits"] == CHARGEBEE["events"][0]["traits"]

    skewed = arrived["skewed-1"]
    assert skewed.event == "Report Exported"
    assert skewed.payload["properties"] == {"format": "csv"}
    assert skewed.payload["context"] == {"ip": "1.2.3.4", "traits": {"plan": "pro"}}
    origin = Event.objects.get(source=inbound, message_id="skewed-1")
    # Corrected at the origin: 30 s before it was received; the same instant downstream.
    assert (origin.received_at - origin.timestamp).total_seconds() == pytest.approx(30, abs=0.002)
    assert skewed.timestamp == origin.timestamp


def test_a_second_delivery_is_deduplicated_by_message_id(console):
    """At-least-once: a batch sent again (its outcome was lost) is stored once downstream."""
    server, inbound, outbound, integration = console
    post_batch(server.url, inbound.write_key, {"batch": SKEWED_CLIENT})
    sent = deliver_all(integration)
    # Sent again, as after an outcome that was lost (here: an operator's retry).
    Delivery.objects.filter(integration=integration).update(status=Delivery.Status.FAILED)
    engine.deliver_deliveries(integration.pk, [d.pk for d in sent], Trigger.MANUAL, QUEUE)
    deliveries = list(Delivery.objects.filter(integration=integration))
    assert {d.status for d in deliveries} == {Delivery.Status.DELIVERED}
    assert {d.attempt_count for d in deliveries} == {2}
    assert Event.objects.filter(source=outbound).count() == 2
    assert json.loads(deliveries[0].exchange.response_body) == {
        "success": True,
        "accepted": 0,
        "duplicates": 2,
        "errors": [],
    }


def test_size_limits_agree_with_the_ingest(console):
    """Split batches fit our ingest's 500 KB limit; 32 KB is the same limit on both sides."""
    server, _, outbound, _ = console

    def message(number: int, size: int) -> dict:
        base = {"type": "track", "userId": "u", "event": "Big", "messageId": f"big-{number}"}
        base["timestamp"] = "2024-01-01T11:00:00.000Z"
        base["properties"] = {"blob": ""}
        forwarded = {**base, "anonymousId": None, "context": {}, "integrations": {}}
        base["properties"]["blob"] = "x" * (size - len(compact_json(forwarded)))
        return base

    events = [message(n, 30_000) for n in range(18)]
    events += [message(18, MAX_MESSAGE_BYTES), message(19, MAX_MESSAGE_BYTES + 1)]
    case = {
        "integration": {"settings": {"write_key": outbound.write_key}, "api_base_url": server.url},
        "events": events,
    }
    config, planned, context = build("segment", case)
    plan = Segment.plan(config, planned, context)
    assert list(plan.failures) == [19]
    assert len(plan.requests) == 2
    accepted = 0
    for request in plan.requests:
        exchange = send(request)
        assert exchange.status == 200, exchange.body
        answer = json.loads(exchange.body)
        assert answer["errors"] == []
        accepted += answer["accepted"]
    assert accepted == 19
    stored = Event.objects.get(source=outbound, message_id="big-18")
    assert len(stored.payload["properties"]["blob"]) > 32_000
    # The one we refused is one the ingest refuses too.
    too_big = {**events[19], "anonymousId": None, "context": {}, "integrations": {}}
    response = requests.post(
        f"{server.url}/v1/batch",
        json={"batch": [too_big]},
        auth=(outbound.write_key, ""),
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "message_too_large"
