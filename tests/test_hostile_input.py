"""Hostile input at the ingest endpoints: a clear 400 naming the message, never a 5xx,
and in a batch the bad message costs only itself.

One test (or parametrised group) per cause found by the hostile-input audit.
"""

import base64
import datetime as dt
import hashlib
import hmac
import json
import time

import pytest

from integrations.models import Event, Source
from integrations.sources.body import MAX_NESTING_DEPTH


def post(client, path: str, raw: bytes | str, write_key: str | None = None, **headers):
    if write_key is not None:
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        headers["HTTP_AUTHORIZATION"] = f"Basic {token}"
    return client.post(path, data=raw, content_type="application/json", **headers)


def track(**fields) -> dict:
    return {"type": "track", "userId": "u1", "event": "Signed Up", **fields}


def single(client, source, message: dict | str | bytes, call: str = "track"):
    raw = message if isinstance(message, str | bytes) else json.dumps(message)
    return post(client, f"/v1/{call}", raw, source.write_key)


def batch_with_bad(client, source, bad: str) -> dict:
    """A batch of a good message, ``bad`` (raw JSON text), another good one: 200, the bad
    one reported at index 1, both good ones stored."""
    first = json.dumps(track(messageId="good-1"))
    last = json.dumps(track(messageId="good-2", userId="u2"))
    response = post(client, "/v1/batch", f'{{"batch": [{first}, {bad}, {last}]}}', source.write_key)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["accepted"] == 2
    [error] = body["errors"]
    assert error["index"] == 1
    assert set(Event.objects.values_list("message_id", flat=True)) == {"good-1", "good-2"}
    return error


# --- 1. impossible dates -------------------------------------------------------------------

IMPOSSIBLE = [
    "2024-02-30T00:00:00Z",
    "2024-01-01T25:00:00Z",
    "2024-01-01T00:00:60Z",
    "0000-01-01T00:00:00Z",
    "2024-01-01T00:00:00+24:00",
    "2024-01-01T00:00:00-25:30",
]
FIELDS = ["timestamp", "originalTimestamp", "sentAt"]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", IMPOSSIBLE)
def test_an_impossible_date_is_400_naming_the_field(api_client, source, field, value):
    response = single(api_client, source, track(**{field: value}))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_timestamp"
    assert response.json()["message"].startswith(field)
    assert not Event.objects.exists()


@pytest.mark.parametrize("value", IMPOSSIBLE)
def test_an_impossible_date_in_a_batch_costs_only_its_message(api_client, source, value):
    error = batch_with_bad(api_client, source, json.dumps(track(originalTimestamp=value)))
    assert error["code"] == "invalid_timestamp"
    assert "originalTimestamp" in error["message"]


def test_an_impossible_batch_sent_at_is_400(api_client, source):
    body = {"batch": [track()], "sentAt": "2024-02-30T00:00:00Z"}
    response = post(api_client, "/v1/batch", json.dumps(body), source.write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_timestamp"


# --- 2. dates that overflow, and the range every stored timestamp keeps to -----------------

OUT_OF_RANGE = [
    ("timestamp", "0001-01-01T00:00:00+05:00"),
    ("originalTimestamp", "0001-01-01T00:00:00Z"),
    ("sentAt", "9999-12-31T23:59:59-05:00"),
    ("sentAt", "9999-12-31T23:59:59Z"),
    ("timestamp", "1899-12-31T23:59:59.999Z"),
    ("timestamp", "1900-01-01T04:59:59+05:00"),
    ("sentAt", "2200-01-01T00:00:00Z"),
    ("originalTimestamp", "2199-12-31T19:00:00-05:00"),
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE)
def test_a_timestamp_out_of_range_is_400(api_client, source, field, value):
    response = single(api_client, source, track(**{field: value}))
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_timestamp"
    assert response.json()["message"].startswith(f"{field} is outside the accepted range")


@pytest.mark.parametrize(
    "value",
    [
        "1900-01-01T00:00:00Z",
        "1900-01-01T14:00:00+14:00",
        "1899-12-31T10:00:00-14:00",
        "2199-12-31T23:59:59.999Z",
        "2199-12-31T18:59:59.999-05:00",
        "2200-01-01T13:59:59.999+14:00",
    ],
)
def test_the_edges_of_the_range_are_stored(api_client, source, value):
    response = single(api_client, source, track(timestamp=value, sentAt=value))
    assert response.status_code == 200, response.content
    event = Event.objects.get()
    assert event.payload["sentAt"] == value
    assert event.sent_at.year in (1900, 2199)


@pytest.mark.parametrize("offset", ["+16:00", "-15:59", "+23:59", "-23:59"])
@pytest.mark.parametrize("field", FIELDS)
def test_offsets_beyond_what_postgresql_takes_are_stored_in_utc(api_client, source, field, offset):
    # PostgreSQL takes offsets up to 15:59; any offset under 24 h is a valid time.
    response = single(api_client, source, track(**{field: f"2024-06-01T12:00:00{offset}"}))
    assert response.status_code == 200, response.content
    event = Event.objects.get()
    hours, minutes = int(offset[1:3]), int(offset[4:])
    sign = 1 if offset[0] == "+" else -1
    expected = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC) - sign * dt.timedelta(
        hours=hours, minutes=minutes
    )
    stored = event.sent_at if field == "sentAt" else event.original_timestamp
    assert stored == expected
    kept_as = "originalTimestamp" if field == "timestamp" else field  # as Segment does
    assert event.payload[kept_as] == f"2024-06-01T12:00:00{offset}"


def test_a_skew_between_years_1_and_9999_is_400(api_client, source):
    message = track(originalTimestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T00:00:00Z")
    response = single(api_client, source, message)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_timestamp"


def test_a_skew_that_corrects_out_of_range_is_400(api_client, source):
    # Both in range, but receivedAt - (sentAt - originalTimestamp) is in the 1700s.
    message = track(originalTimestamp="1900-01-01T00:00:00Z", sentAt="2199-12-31T00:00:00Z")
    response = single(api_client, source, message)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_timestamp"
    assert response.json()["message"].startswith("timestamp corrected for clock skew")


def test_an_out_of_range_timestamp_in_a_batch_costs_only_its_message(api_client, source):
    error = batch_with_bad(api_client, source, json.dumps(track(sentAt="9999-12-31T23:59:59Z")))
    assert error["code"] == "invalid_timestamp"


# --- 3. non-finite numbers -----------------------------------------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1E+400", "1" + "0" * 400 + ".0"]


@pytest.mark.parametrize("number", NON_FINITE)
def test_a_non_finite_number_is_400(api_client, source, number):
    raw = '{"userId": "u1", "event": "E", "properties": {"n": ' + number + "}}"
    response = single(api_client, source, raw)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_number"
    assert not Event.objects.exists()


@pytest.mark.parametrize("number", NON_FINITE)
def test_a_non_finite_number_in_a_batch_costs_only_its_message(api_client, source, number):
    bad = '{"type": "track", "userId": "u3", "event": "E", "properties": {"n": [' + number + "]}}"
    assert batch_with_bad(api_client, source, bad)["code"] == "invalid_number"


def test_a_non_finite_number_in_the_batch_context_refuses_the_batch(api_client, source):
    raw = '{"context": {"n": NaN}, "batch": [' + json.dumps(track()) + "]}"
    response = post(api_client, "/v1/batch", raw, source.write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_number"


@pytest.mark.parametrize(
    ("raw_number", "stored"),
    [("1e308", 1e308), ("-1.5E+300", -1.5e300), ("1" + "0" * 300, 10**300), ("1e-999", 0.0)],
)
def test_large_finite_numbers_and_lookalike_strings_are_stored(
    api_client, source, raw_number, stored
):
    raw = (
        '{"userId": "u1", "event": "E", "properties": {"n": '
        + raw_number
        + ', "s": "NaN Infinity 1e999"}}'
    )
    response = single(api_client, source, raw)
    assert response.status_code == 200, response.content
    properties = Event.objects.get().payload["properties"]
    # PostgreSQL's jsonb keeps numbers as numeric, and gives 1e308 back as an integer.
    assert float(properties["n"]) == float(stored)
    assert properties["s"] == "NaN Infinity 1e999"


# --- 4. surrogates written as UTF-8, and bodies that are not UTF-8 -------------------------

RAW_SURROGATE = b'"a\xed\xa0\x80b"'


def test_a_raw_utf8_surrogate_is_400(api_client, source):
    raw = b'{"userId": "u1", "event": "E", "properties": {"x": ' + RAW_SURROGATE + b"}}"
    response = single(api_client, source, raw)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_string"
    assert "surrogate" in response.json()["message"]


def test_a_raw_utf8_surrogate_in_a_batch_costs_only_its_message(api_client, source):
    bad = b'{"type": "track", "userId": "u3", "event": ' + RAW_SURROGATE + b"}"
    first = json.dumps(track(messageId="good-1")).encode()
    raw = b'{"batch": [' + first + b", " + bad + b"]}"
    response = post(api_client, "/v1/batch", raw, source.write_key)
    assert response.status_code == 200
    assert [e["index"] for e in response.json()["errors"]] == [1]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["good-1"]


def test_a_raw_surrogate_in_a_signed_webhook_array_costs_only_its_message(api_client, source):
    bad = b'{"type": "track", "userId": "u3", "event": "E", "messageId": ' + RAW_SURROGATE + b"}"
    good = json.dumps(track(messageId="seg-ok")).encode()
    raw = b"[" + bad + b"," + good + b"]"
    signature = hmac.new(source.webhook_secret.encode(), bad, hashlib.sha1).hexdigest()
    response = post(
        api_client, f"/hooks/segment/{source.webhook_token}/", raw, HTTP_X_SIGNATURE=signature
    )
    assert response.status_code == 200, response.content
    assert [e["code"] for e in response.json()["errors"]] == ["invalid_string"]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["seg-ok"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_body_that_is_not_utf8_is_400(api_client, source, encoding):
    raw = json.dumps(track(properties={"x": "\\ud800"})).encode(encoding)
    response = single(api_client, source, raw)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert "UTF-8" in response.json()["message"]


def test_a_utf8_byte_order_mark_is_skipped(api_client, source):
    response = single(api_client, source, b"\xef\xbb\xbf" + json.dumps(track()).encode())
    assert response.status_code == 200


# --- 5. nesting ----------------------------------------------------------------------------


def nested(levels: int) -> str:
    """A message whose properties make it ``levels`` deep (the message itself is one)."""
    inner = "[" * (levels - 2) + "]" * (levels - 2)
    return '{"type": "track", "userId": "u1", "event": "E", "properties": {"x": ' + inner + "}}"


def test_nesting_up_to_the_limit_is_stored(api_client, source):
    assert single(api_client, source, nested(MAX_NESTING_DEPTH)).status_code == 200


@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 500, 5000, 15_000])
def test_nesting_deeper_than_the_limit_is_400(api_client, source, levels):
    response = single(api_client, source, nested(levels))
    assert response.status_code == 400
    assert response.json()["code"] == "nesting_too_deep"
    assert str(MAX_NESTING_DEPTH) in response.json()["message"]


@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 500])
def test_deep_nesting_in_a_batch_costs_only_its_message(api_client, source, levels):
    assert batch_with_bad(api_client, source, nested(levels))["code"] == "nesting_too_deep"


def test_a_batch_message_with_many_brackets_is_walked_and_stored_if_shallow(api_client, source):
    """A message holding more ``{`` and ``[`` than the limit (here in a string, and in many
    shallow lists) is walked, not refused; one at the limit is stored unwalked."""
    wide = track(
        messageId="wide",
        properties={"text": "{[" * MAX_NESTING_DEPTH, "lists": [[]] * MAX_NESTING_DEPTH},
    )
    raw = f'{{"batch": [{json.dumps(wide)}, {nested(MAX_NESTING_DEPTH)}]}}'
    response = post(api_client, "/v1/batch", raw, source.write_key)
    assert response.status_code == 200, response.content
    assert (response.json()["accepted"], response.json()["errors"]) == (2, [])


def test_deep_nesting_in_a_large_batch_costs_only_its_message(api_client, source):
    # Over 32 KB, each message is measured: the deep one must be refused before that.
    filler = json.dumps(track(messageId="good-2", userId="u2", properties={"p": "x" * 40_000}))
    first = json.dumps(track(messageId="good-1"))
    raw = f'{{"batch": [{first}, {nested(500)}, {filler}]}}'
    response = post(api_client, "/v1/batch", raw, source.write_key)
    assert response.status_code == 200
    assert [(e["index"], e["code"]) for e in response.json()["errors"]] == [
        (1, "nesting_too_deep"),
        (2, "message_too_large"),
    ]


# --- 6. empty objects and arrays as timestamps ---------------------------------------------


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", [{}, [], 0, False, {"a": 1}])
def test_a_timestamp_that_is_not_a_string_is_400(api_client, source, field, value):
    response = single(api_client, source, track(**{field: value}))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_timestamp"
    assert response.json()["message"].startswith(field)


@pytest.mark.parametrize("field", FIELDS)
def test_an_empty_object_as_timestamp_in_a_batch_costs_only_its_message(api_client, source, field):
    error = batch_with_bad(api_client, source, json.dumps(track(**{field: {}})))
    assert error["code"] == "invalid_timestamp"


# --- 7. stored columns' limits for every call ----------------------------------------------


@pytest.mark.parametrize("call", ["identify", "track", "page", "screen", "group", "alias"])
def test_a_group_id_over_255_characters_is_400_on_every_call(api_client, source, call):
    message = track(previousId="p1", groupId="g" * 256)
    response = single(api_client, source, message, call=call)
    assert response.status_code == 400
    assert response.json() == {
        "code": "identifier_too_long",
        "message": "groupId is longer than 255 characters",
    }


@pytest.mark.parametrize("call", ["identify", "track", "page", "screen", "group", "alias"])
@pytest.mark.parametrize(
    ("field", "length", "code"),
    [
        ("userId", 256, "identifier_too_long"),
        ("anonymousId", 256, "identifier_too_long"),
        ("groupId", 256, "identifier_too_long"),
        ("previousId", 256, "identifier_too_long"),
        ("messageId", 101, "message_id_too_long"),
    ],
)
def test_column_limits_hold_for_every_call(api_client, source, call, field, length, code):
    message = {**track(previousId="p1", groupId="g1"), field: "é" * length}
    response = single(api_client, source, message, call=call)
    if field == "previousId" and call != "alias":
        assert response.status_code == 200  # not stored in a column
        return
    assert response.status_code == 400
    assert response.json()["code"] == code
    at_limit = {**message, field: "é" * (length - 1)}
    assert single(api_client, source, at_limit, call=call).status_code == 200


def test_a_group_id_on_a_track_call_is_stored_as_a_string(api_client, source):
    assert single(api_client, source, track(groupId=42)).status_code == 200
    event = Event.objects.get()
    assert (event.group_id, event.payload["groupId"]) == ("42", "42")


@pytest.mark.parametrize("value", [{"id": 1}, ["g"], True, "NaN"])
def test_a_group_id_of_the_wrong_type_is_400(api_client, source, value):
    raw = json.dumps(track(groupId=value)).replace('"NaN"', "NaN")
    response = single(api_client, source, raw)
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_identifier", "invalid_number")


# --- 8. Purchasely's event_created_at_ms ---------------------------------------------------

PURCHASELY_EVENT = {
    "event_name": "SUBSCRIPTION_STARTED",
    "event_id": "evt-1",
    "event_created_at_ms": 1709287200000,
    "user_id": "user-1",
}


@pytest.fixture
def purchasely(workspace) -> Source:
    return Source.objects.create(
        workspace=workspace, name="App", kind="purchasely", webhook_secret="foobar"
    )


def purchasely_post(client, source, raw: str):
    stamp = str(int(time.time()))
    signature = hmac.new(b"foobar", stamp.encode() + raw.encode(), hashlib.sha256).hexdigest()
    return post(
        client,
        f"/hooks/purchasely/{source.webhook_token}/",
        raw,
        HTTP_X_PURCHASELY_REQUEST_SIGNATURE=signature,
        HTTP_X_PURCHASELY_TIMESTAMP=stamp,
    )


@pytest.mark.parametrize(
    "millis",
    [
        str(10**30),
        str(-(10**30)),
        "1e300",
        "NaN",
        "Infinity",
        "-Infinity",
        "253402300800000",  # year 10000
        "-62135596800001",  # year 0
        "7258118400000",  # 2200-01-01
    ],
)
def test_an_impossible_purchasely_time_is_400(api_client, purchasely, millis):
    raw = json.dumps({**PURCHASELY_EVENT, "event_created_at_ms": 0}).replace(
        '"event_created_at_ms": 0', f'"event_created_at_ms": {millis}'
    )
    response = purchasely_post(api_client, purchasely, raw)
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_timestamp", "invalid_number")
    assert not Event.objects.exists()


def test_purchasely_times_at_the_edges_are_stored(api_client, purchasely):
    for event_id, millis in [("first", -2208988800000), ("last", 7258118399999)]:
        event = {**PURCHASELY_EVENT, "event_id": event_id, "event_created_at_ms": millis}
        assert purchasely_post(api_client, purchasely, json.dumps(event)).status_code == 200
    stamps = dict(Event.objects.filter(type="track").values_list("message_id", "timestamp"))
    assert stamps["first"].isoformat() == "1900-01-01T00:00:00+00:00"
    assert stamps["last"].isoformat() == "2199-12-31T23:59:59.999000+00:00"


@pytest.mark.parametrize(
    ("field", "length", "code"),
    [("event_id", 92, "event_id_too_long"), ("event_name", 201, "event_name_too_long")],
)
def test_purchasely_fields_over_their_columns_are_400(api_client, purchasely, field, length, code):
    event = {**PURCHASELY_EVENT, field: "E" * length}
    response = purchasely_post(api_client, purchasely, json.dumps(event))
    assert response.status_code == 400
    assert response.json()["code"] == code
    event[field] = "E" * (length - 1)
    assert purchasely_post(api_client, purchasely, json.dumps(event)).status_code == 200


@pytest.mark.parametrize("bad", [RAW_SURROGATE, b'"\\udfff"', b"NaN", b"1e999"])
def test_an_unstorable_value_in_a_large_batch_costs_only_its_message(api_client, source, bad):
    # Over 32 KB, each message is measured before it is checked: measuring must not fail.
    first, last = (
        json.dumps(track(messageId=f"good-{n}", properties={"p": "x" * 20_000})).encode()
        for n in (1, 2)
    )
    bad_message = b'{"type": "track", "userId": "u3", "event": "E", "properties": {"x": ' + bad
    raw = b'{"batch": [' + first + b", " + bad_message + b"}}, " + last + b"]}"
    assert len(raw) > 32 * 1024
    response = post(api_client, "/v1/batch", raw, source.write_key)
    assert response.status_code == 200, response.content
    assert [e["index"] for e in response.json()["errors"]] == [1]
    assert set(Event.objects.values_list("message_id", flat=True)) == {"good-1", "good-2"}


# --- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", ["é", "\x80\x81", "A" * 5001, "=="])
def test_basic_auth_that_is_not_base64_ascii_is_401(api_client, source, credentials):
    response = post(
        api_client, "/v1/track", json.dumps(track()), HTTP_AUTHORIZATION=f"Basic {credentials}"
    )
    assert response.status_code == 401
    assert response.json()["code"] == "missing_write_key"


@pytest.mark.parametrize("stamp", ["²", "١٧٠٩٢٨٧٢٠٠", "9" * 400, "9" * 5000])
def test_a_purchasely_timestamp_that_is_not_ascii_digits_is_401(api_client, purchasely, stamp):
    raw = json.dumps(PURCHASELY_EVENT).encode()
    signature = hmac.new(b"foobar", stamp.encode() + raw, hashlib.sha256).hexdigest()
    response = post(
        api_client,
        f"/hooks/purchasely/{purchasely.webhook_token}/",
        raw,
        HTTP_X_PURCHASELY_REQUEST_SIGNATURE=signature,
        HTTP_X_PURCHASELY_TIMESTAMP=stamp,
    )
    assert response.status_code == 401
    assert response.json()["message"] == "X-PURCHASELY-TIMESTAMP is not a unix timestamp."


@pytest.mark.parametrize("status", [{"a": 1}, ["AUTO_RENEWING"], 5, None])
def test_a_purchasely_status_of_the_wrong_type_is_stored_as_is(api_client, purchasely, status):
    event = {**PURCHASELY_EVENT, "subscription_status": status}
    response = purchasely_post(api_client, purchasely, json.dumps(event))
    assert response.status_code == 200, response.content
    traits = Event.objects.get(type="identify").payload["traits"]
    assert traits["subscription_status"] == status
    assert traits["has_active_subscription"] is False
