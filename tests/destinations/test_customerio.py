"""Customer.io destination: the fixtures, plus the stable event id, date conversion, size
limits and 207 handling built here (big messages do not belong in JSON fixtures)."""

import datetime as dt
import hashlib
import json

import pytest

from integrations.destinations import registry
from integrations.destinations.base import OutboundRequest
from integrations.destinations.customerio import (
    BATCH_PATH,
    ENTITY_PATH,
    MAX_BATCH_BYTES,
    MAX_BATCH_OPERATIONS,
    MAX_OPERATION_BYTES,
    CustomerIO,
    convert_dates,
    pack,
    parse_iso_date,
    person_identifiers,
    stable_event_id,
)
from tests.destinations.fixtures import build

SETTINGS = {"site_id": "site123", "api_key": "key456"}
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MOMENT = dt.datetime(2024, 1, 1, 11, 59, 0, 123000, tzinfo=dt.UTC)


def test_registered():
    assert registry.get("customerio") is CustomerIO
    assert CustomerIO.max_batch_size >= 100


def plan_for(events, settings=SETTINGS, **integration):
    case = {"integration": {"settings": settings, **integration}, "events": events}
    config, events, context = build("customerio", case)
    return CustomerIO.plan(config, events, context)


def track(number, blob=""):
    return {
        "type": "track",
        "userId": "u1",
        "event": "Big",
        "messageId": f"m{number}",
        "timestamp": "2024-01-01T11:00:00Z",
        "properties": {"blob": blob},
    }


def sized(number, size):
    """A track message whose operation is exactly ``size`` bytes."""
    base = len(plan_for([track(number)]).requests[0].body)
    assert size >= base
    return track(number, "x" * (size - base))


def decode(ulid):
    value = 0
    for char in ulid:
        value = value * 32 + CROCKFORD.index(char)
    return value


# -- the stable event id --------------------------------------------------------------


def test_event_id_is_a_ulid_of_the_event_time_and_the_message_id():
    event_id = stable_event_id("msg-1", MOMENT)
    assert len(event_id) == 26
    assert set(event_id) <= set(CROCKFORD)
    value = decode(event_id)
    assert value < 1 << 128
    assert value >> 80 == int(MOMENT.timestamp() * 1000)
    entropy = int.from_bytes(hashlib.sha256(b"msg-1").digest()[:10], "big")
    assert value & ((1 << 80) - 1) == entropy


def test_event_id_is_deterministic():
    assert stable_event_id("msg-1", MOMENT) == stable_event_id("msg-1", MOMENT)
    same_moment = MOMENT.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert stable_event_id("msg-1", same_moment) == stable_event_id("msg-1", MOMENT)
    assert stable_event_id("msg-2", MOMENT) != stable_event_id("msg-1", MOMENT)
    later = MOMENT + dt.timedelta(milliseconds=1)
    assert stable_event_id("msg-1", later) > stable_event_id("msg-1", MOMENT)


def test_event_id_clamps_times_outside_the_ulid_range():
    before_epoch = dt.datetime(1969, 12, 31, tzinfo=dt.UTC)
    assert decode(stable_event_id("m", before_epoch)) >> 80 == 0


def test_a_retry_sends_the_same_event_id():
    message = track(1)
    first = json.loads(plan_for([message]).requests[0].body)
    again = json.loads(plan_for([message, track(2)]).requests[0].body)["batch"][0]
    assert (
        first["id"]
        == again["id"]
        == stable_event_id("m1", dt.datetime(2024, 1, 1, 11, tzinfo=dt.UTC))
    )


# -- dates and identifiers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01T00:00:00Z", 1704067200),
        ("2024-01-01T01:00:00+01:00", 1704067200),
        ("2024-01-01T01:00:00+0100", 1704067200),
        ("2024-01-01 00:00:00", 1704067200),
        ("2024-01-01T00:00", 1704067200),
        ("2024-01-01T00:00:00.999999999Z", 1704067200),
        ("2024-01-01", 1704067200),
        ("1969-12-31T23:59:59.5Z", -1),
    ],
)
def test_iso_dates_become_unix_seconds(value, expected):
    assert convert_dates(value) == expected


@pytest.mark.parametrize(
    "value",
    ["2024-02-30", "2024.1", "20240101", "2024-W01-1", "Jan 1 2024", "2024-01-01T25:00:00Z", ""],
)
def test_other_strings_are_not_dates(value):
    assert parse_iso_date(value) is None
    assert convert_dates(value) == value


def test_dates_are_converted_at_any_depth_and_other_values_kept():
    value = {"a": [{"at": "2024-01-01"}], "n": 3, "b": True, "none": None}
    assert convert_dates(value) == {"a": [{"at": 1704067200}], "n": 3, "b": True, "none": None}


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [
        ("42", {"id": "42"}),
        ("cio_a3000001", {"cio_id": "a3000001"}),
        ("jane@example.com", {"email": "jane@example.com"}),
        ("not@an-email", {"id": "not@an-email"}),
    ],
)
def test_person_identifiers(user_id, expected):
    assert person_identifiers(user_id) == expected


def test_identifier_over_150_bytes_fails():
    plan = plan_for([{**track(1), "userId": "é" * 76}])
    assert plan.requests == []
    assert "150 bytes" in plan.failures[0]


def test_event_name_over_100_bytes_fails():
    plan = plan_for([{**track(1), "event": "e" * 101}])
    assert "100 bytes" in plan.failures[0]


# -- sizes ----------------------------------------------------------------------------


def test_operation_at_the_limit_is_sent_one_byte_more_fails():
    plan = plan_for([sized(1, MAX_OPERATION_BYTES)])
    assert [r.url for r in plan.requests] == ["https://track.customer.io" + ENTITY_PATH]
    assert len(plan.requests[0].body) == MAX_OPERATION_BYTES
    plan = plan_for([sized(1, MAX_OPERATION_BYTES + 1)])
    assert plan.requests == []
    assert f"{MAX_OPERATION_BYTES + 1:,} bytes" in plan.failures[0]


def test_batches_are_split_to_stay_under_500_kb():
    events = [sized(n, 30_000) for n in range(40)]  # 1.2 MB in all
    plan = plan_for(events)
    assert len(plan.requests) == 3
    assert all(len(r.body) <= MAX_BATCH_BYTES for r in plan.requests)
    assert all(r.url.endswith(BATCH_PATH) for r in plan.requests)
    covered = [i for r in plan.requests for i in r.covers]
    assert covered == list(range(40))
    for request in plan.requests:
        operations = json.loads(request.body)["batch"]
        assert len(operations) == len(request.covers)
        assert request.state["batch"] == list(request.covers)
        assert [op["id"] for op in operations] == [
            stable_event_id(f"m{i}", dt.datetime(2024, 1, 1, 11, tzinfo=dt.UTC))
            for i in request.covers
        ]


def test_pack_fills_a_batch_exactly_to_the_limit():
    ops = [(0, "a" * 10), (1, "b" * 10), (2, "c" * 10)]
    envelope = len('{"batch":[]}')
    # Two operations and one comma fit exactly; the third starts a new batch.
    groups = pack(ops, max_bytes=envelope + 21)
    assert [[i for i, _ in g] for g in groups] == [[0, 1], [2]]
    groups = pack(ops, max_bytes=envelope + 20)
    assert [[i for i, _ in g] for g in groups] == [[0], [1], [2]]


def test_pack_caps_operations_per_batch():
    ops = [(i, "{}") for i in range(MAX_BATCH_OPERATIONS * 2 + 1)]
    assert [len(g) for g in pack(ops)] == [MAX_BATCH_OPERATIONS, MAX_BATCH_OPERATIONS, 1]


def test_a_lone_operation_left_by_splitting_goes_to_the_entity_endpoint():
    plan = plan_for([sized(n, 30_000) for n in range(17)])
    assert [r.url.rsplit("/", 1)[-1] for r in plan.requests] == ["batch", "entity"]
    assert plan.requests[1].covers == (16,)
    assert json.loads(plan.requests[1].body)["action"] == "event"


# -- 207 ------------------------------------------------------------------------------


def batch_request(covers):
    return OutboundRequest(
        "POST", "https://track.customer.io/api/v2/batch", covers=covers, state={"batch": covers}
    )


def test_partial_failures_map_batch_indexes_to_deliveries():
    body = json.dumps(
        {
            "errors": [
                {"batch_index": 0, "reason": "invalid", "field": "identifiers", "message": "bad"},
                {"batch_index": 0, "reason": "invalid", "field": "name", "message": "empty"},
                {"batch_index": 2, "message": "too big"},
            ]
        }
    )
    failures = CustomerIO.partial_failures(batch_request([3, 5, 9]), 207, body)
    assert sorted(failures) == [3, 9]
    assert "invalid: identifiers: bad" in failures[3].reason
    assert "invalid: name: empty" in failures[3].reason
    assert "too big" in failures[9].reason
    # Named operations were rejected as invalid: sending them again would not help.
    assert not failures[3].retry
    assert not failures[9].retry


def test_only_a_207_has_partial_failures():
    body = json.dumps({"errors": [{"batch_index": 0}]})
    assert CustomerIO.partial_failures(batch_request([0, 1]), 200, body) == {}


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", json.dumps({"errors": []}), json.dumps({"errors": [{"batch_index": 9}]})],
)
def test_an_unreadable_207_marks_every_delivery_it_carried(body):
    failures = CustomerIO.partial_failures(batch_request([1, 2]), 207, body)
    assert sorted(failures) == [1, 2]
    assert "without saying which" in failures[1].reason
    assert failures[1].retry


def test_booleans_are_not_batch_indexes():
    body = json.dumps({"errors": [{"batch_index": True}, {"batch_index": 1, "reason": "x"}]})
    assert sorted(CustomerIO.partial_failures(batch_request([4, 7]), 207, body)) == [7]


# -- settings -------------------------------------------------------------------------


def test_api_key_is_secret_and_region_defaults_to_us():
    cleaned = CustomerIO.clean_settings(SETTINGS)
    assert cleaned.secrets == {"api_key": "key456"}
    assert cleaned.public == {"site_id": "site123", "region": "us"}
