"""Segment destination: the fixtures, plus the size limits built here (big messages do not
belong in JSON fixtures)."""

import json

import pytest
from django.core.exceptions import ValidationError

from integrations.destinations import registry
from integrations.destinations.segment import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    Segment,
    batch_url,
    serialize,
)
from integrations.sources.segment_spec import compact_json
from tests.destinations.fixtures import build

SETTINGS = {"write_key": "wk_live_abc123"}


def plan_for(events, settings=SETTINGS, **integration):
    case = {"integration": {"settings": settings, **integration}, "events": events}
    config, events, context = build("segment", case)
    return Segment.plan(config, events, context)


def track(number, **properties):
    return {
        "type": "track",
        "userId": "u1",
        "event": "Big",
        "messageId": f"m{number}",
        "timestamp": "2024-01-01T11:00:00Z",
        "properties": properties,
    }


def sized(number, size):
    """A track message whose forwarded JSON is exactly ``size`` bytes."""
    message = track(number, blob="")
    planned = json.loads(plan_for([message]).requests[0].body)["batch"][0]
    padding = size - len(compact_json(planned))
    assert padding >= 0
    return track(number, blob="x" * padding)


def batches(plan):
    return [json.loads(request.body)["batch"] for request in plan.requests]


def test_registered():
    assert registry.get("segment") is Segment
    assert Segment.max_batch_size == MAX_BATCH_MESSAGES == 2500


def test_message_over_32_kb_fails_and_the_others_are_sent():
    events = [track(0, a=1), sized(1, MAX_MESSAGE_BYTES + 1), track(2, b=2)]
    plan = plan_for(events)
    assert list(plan.failures) == [1]
    reason = plan.failures[1]
    assert f"{MAX_MESSAGE_BYTES + 1:,} bytes" in reason
    assert "32 KB" in reason
    assert len(plan.requests) == 1
    assert plan.requests[0].covers == (0, 2)
    assert [m["messageId"] for m in batches(plan)[0]] == ["m0", "m2"]


def test_message_of_exactly_32_kb_is_sent():
    plan = plan_for([sized(0, MAX_MESSAGE_BYTES)])
    assert plan.failures == {}
    assert len(compact_json(batches(plan)[0][0])) == MAX_MESSAGE_BYTES


def test_size_is_measured_after_property_rules():
    """A message too big as received goes once a rule leaves the big property out."""
    message = sized(0, MAX_MESSAGE_BYTES + 100)
    rules = [{"name": "blob", "enabled": False}]
    plan = plan_for([message], property_rules=rules)
    assert plan.failures == {}
    assert batches(plan)[0][0]["properties"] == {}


def test_size_counts_utf8_bytes():
    planned = sized(0, MAX_MESSAGE_BYTES - 10)
    # 11 two-byte characters instead of 11 ASCII ones: one byte over, still 10 characters under.
    planned["properties"]["blob"] = planned["properties"]["blob"][:-11] + "é" * 11
    plan = plan_for([planned])
    assert list(plan.failures) == [0]


def test_batches_split_to_stay_under_500_kb():
    events = [sized(n, 30_000) for n in range(40)]  # 1.2 MB in all
    plan = plan_for(events)
    assert plan.failures == {}
    assert len(plan.requests) == 3
    covered = [i for request in plan.requests for i in request.covers]
    assert covered == list(range(40))
    for request, batch in zip(plan.requests, batches(plan), strict=True):
        assert len(request.body.encode()) <= MAX_BATCH_BYTES
        assert [m["messageId"] for m in batch] == [f"m{i}" for i in request.covers]
        assert request.headers["Authorization"].startswith("Basic ")
    # Full batches: the next message would not have fit.
    first = plan.requests[0]
    assert len(first.body.encode()) + 1 + 30_000 > MAX_BATCH_BYTES


def test_batch_of_exactly_the_byte_limit():
    # The body is {"batch":[m1,...,m20]}: 12 bytes of envelope and 19 commas.
    small = [sized(n, 25_000) for n in range(20)]  # 20 x 25,000 + 19 + 12 = 500,031
    plan = plan_for(small)
    assert [len(r.covers) for r in plan.requests] == [19, 1]
    fitting = [sized(n, 25_000) for n in range(19)] + [sized(19, 25_000 - 31)]
    plan = plan_for(fitting)
    assert [len(r.covers) for r in plan.requests] == [20]
    assert len(plan.requests[0].body.encode()) == MAX_BATCH_BYTES


def test_at_most_2500_messages_per_batch():
    events = [track(n) for n in range(MAX_BATCH_MESSAGES + 3)]
    plan = plan_for(events)
    assert [len(r.covers) for r in plan.requests] == [MAX_BATCH_MESSAGES, 3]
    assert plan.requests[1].covers == (2500, 2501, 2502)


def test_write_key_only_in_the_authorization_header():
    plan = plan_for([track(0)])
    request = plan.requests[0]
    body = json.loads(request.body)
    assert set(body) == {"batch"}  # no writeKey, no batch-level sentAt
    assert "wk_live_abc123" not in request.body
    assert request.headers["Authorization"] == "Basic d2tfbGl2ZV9hYmMxMjM6"


def test_plan_is_deterministic():
    events = [
        {
            **track(0, a=1),
            "sentAt": "2024-01-01T11:00:05Z",
            "originalTimestamp": "2024-01-01T11:00:00Z",
        }
    ]
    first, second = plan_for(events), plan_for(events)
    assert first.requests[0].body == second.requests[0].body
    message = batches(first)[0][0]
    assert "sentAt" not in message and "originalTimestamp" not in message
    assert "receivedAt" not in message
    # Received 12:00:00, sent 5 s after the event by the client's clock.
    assert message["timestamp"] == "2024-01-01T11:59:55.000Z"


def test_properties_that_are_not_objects_are_left_alone():
    event = {**track(0), "properties": None, "context": {"traits": None}}
    plan = plan_for([event], property_rules=[{"name": "a", "enabled": False}])
    message = batches(plan)[0][0]
    assert message["properties"] is None
    assert message["context"] == {"traits": None}


def test_lone_surrogate_is_escaped_rather_than_breaking_the_request():
    text, size = serialize({"name": "bad \ud800 text", "ok": "é"})
    text.encode()  # sendable
    assert size == len(text.encode())
    assert json.loads(text) == {"name": "bad \ud800 text", "ok": "é"}


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://api.segment.io", "https://api.segment.io/v1/batch"),
        ("https://proxy.example.com/segment/", "https://proxy.example.com/segment/v1/batch"),
        ("https://proxy.example.com/v1", "https://proxy.example.com/v1/batch"),
        ("https://proxy.example.com/v1/batch", "https://proxy.example.com/v1/batch"),
    ],
)
def test_batch_url(base, url):
    assert batch_url(base) == url


def test_settings():
    cleaned = Segment.clean_settings({"write_key": " wk "})
    assert cleaned.public == {"region": "us"}
    assert cleaned.secrets == {"write_key": "wk"}
    with pytest.raises(ValidationError) as error:
        Segment.clean_settings({"region": "apac"})
    assert set(error.value.message_dict) == {"write_key", "region"}
    kept = Segment.clean_settings({"region": "eu"}, existing_secrets={"write_key": "wk"})
    assert kept.secrets == {"write_key": "wk"}
    assert kept.public == {"region": "eu"}
