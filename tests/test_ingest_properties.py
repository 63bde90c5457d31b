"""Property-based tests of every ingest endpoint with hostile input.

Hypothesis builds messages that break a rule each (impossible or out-of-range dates,
non-finite numbers, surrogates, deep nesting, wrong types, over-long ids ...), mixes them
with good messages, and posts them, signed where the endpoint needs it; odd headers and
whole bodies that are not JSON too. Whatever the input: no answer is a 5xx, every good
message of a batch is stored, every other one is either reported by index or stored, and
every stored event reads back (timestamps in the accepted range, columns within their
limits, a JSON payload).

The number of examples comes from the Hypothesis profile (``tests/conftest.py``): bounded
for CI, larger with ``HYPOTHESIS_PROFILE=thorough``.
"""

import base64
import copy
import datetime as dt
import gzip
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import models
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from integrations.models import Event, Integration, Source, Workspace
from integrations.sources.segment_spec import MAX_TIMESTAMP, MIN_TIMESTAMP

CALLS = ("identify", "track", "page", "screen", "group", "alias")


@dataclass(frozen=True)
class Raw:
    """JSON text written as is: what ``json.dumps`` cannot produce (``1e999``, raw bytes)."""

    data: bytes


def dump(value: Any) -> bytes:
    """``value`` as compact JSON (UTF-8), ``Raw`` parts as they are."""
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, dict):
        items = (dump(str(key)) + b":" + dump(item) for key, item in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(dump(item) for item in value) + b"]"
    return json.dumps(value, ensure_ascii=False).encode()


# --- good messages -----------------------------------------------------------------------

text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12
)
identifier = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
# Any offset under 24 h is valid (PostgreSQL itself takes up to 15:59 only).
offsets = st.integers(-24 * 60 + 1, 24 * 60 - 1).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
good_instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=offsets
).map(lambda d: d.isoformat())


@st.composite
def good_messages(draw: st.DrawFn, call: str | None = None) -> dict[str, Any]:
    call = call or draw(st.sampled_from(CALLS))
    message: dict[str, Any] = {
        "type": call,
        "messageId": f"good-{uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))}",
        "userId": draw(identifier),
    }
    if draw(st.booleans()):
        message["anonymousId"] = draw(identifier)
    if call == "track":
        message["event"] = draw(identifier.filter(str.strip))
    if call == "group":
        message["groupId"] = draw(identifier)
    if call == "alias":
        message["previousId"] = draw(identifier)
    if draw(st.booleans()):
        message["timestamp"] = draw(good_instants)
    key = {"identify": "traits", "group": "traits"}.get(call, "properties")
    message[key] = draw(st.dictionaries(text, json_values, max_size=4))
    if draw(st.booleans()):
        message["context"] = {"library": {"name": "hypothesis", "version": "1"}}
    return message


# --- what breaks a rule ------------------------------------------------------------------

bad_timestamps = st.one_of(
    st.sampled_from(
        [
            "2024-02-30T00:00:00Z",
            "2024-01-01T25:00:00Z",
            "2024-01-01T00:00:60Z",
            "0000-01-01T00:00:00Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00-99:99",
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "1899-12-31T23:59:59Z",
            "2200-01-01T00:00:00Z",
            "not a date",
            "",
        ]
    ),
    st.sampled_from([{}, [], {"a": 1}, [1], 0, 1.5, True]),
    st.datetimes(
        timezones=st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
            lambda m: dt.timezone(dt.timedelta(minutes=m))
        )
    ).map(lambda d: d.isoformat()),
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
        r"(Z|[+-][0-9]{2}:?[0-9]{2})\Z"
    ),
)
non_finite = st.sampled_from(
    [
        Raw(b"NaN"),
        Raw(b"Infinity"),
        Raw(b"-Infinity"),
        Raw(b"1e999"),
        Raw(b"-1E+400"),
        Raw(b"1" + b"0" * 400 + b".5"),
    ]
)
unstorable_strings = st.sampled_from(
    [
        Raw(b'"a\xed\xa0\x80b"'),  # a surrogate half, UTF-8-encoded
        Raw(b'"\xed\xbf\xbf"'),
        Raw(b'"\\ud800"'),
        Raw(b'"x\\udfff"'),
        Raw(b'"\\u0000"'),
    ]
)
# Deeper than the documented limit, but not so deep that the body cannot be parsed.
deep = st.integers(70, 400).map(lambda n: Raw(b"[" * n + b"]" * n))
odd_values = st.one_of(
    st.sampled_from([10**400, -(10**300), 1e308, -0.0, 5e-324, ""]),
    st.text(max_size=30),
    json_values,
)
payload_poison = st.one_of(non_finite, unstorable_strings, deep, odd_values)
long_ids = st.integers(1, 400).map(lambda n: "x" * n)
# Copied: sampled_from gives the very objects of its list, which a test that puts one in a
# message and changes the message would change for every later example (or make circular).
wrong_types = st.sampled_from([{}, {"a": 1}, [], ["a"], True, False, 1.5, -1, 10**300, ""]).map(
    copy.deepcopy
)
ID_FIELDS = ("userId", "anonymousId", "groupId", "previousId", "messageId", "event", "type")
TIMESTAMP_FIELDS = ("timestamp", "originalTimestamp", "sentAt")
PAYLOAD_FIELDS = ("properties", "traits", "context", "integrations")


def _in_payload(values: st.SearchStrategy) -> st.SearchStrategy[tuple[str, Any]]:
    """A value put somewhere in a message's objects, or as a field of its own."""
    return st.one_of(
        st.tuples(st.sampled_from(PAYLOAD_FIELDS), values.map(lambda value: {"x": value})),
        st.tuples(st.sampled_from(["properties", "traits"]), values.map(lambda v: {"a": [v]})),
        st.tuples(text, values),
    )


# What breaks a rule, by kind: each kind has its own test, so that each is found.
MUTATIONS = {
    "timestamps": st.tuples(st.sampled_from(TIMESTAMP_FIELDS), bad_timestamps),
    "numbers": _in_payload(non_finite | st.sampled_from([10**400, -(10**300), 1e308, 5e-324])),
    "strings": st.one_of(
        st.tuples(st.sampled_from(ID_FIELDS), unstorable_strings),
        _in_payload(unstorable_strings),
    ),
    "nesting": _in_payload(deep),
    "identifiers": st.tuples(st.sampled_from(ID_FIELDS), long_ids | wrong_types | odd_values),
    "types": st.tuples(st.sampled_from(PAYLOAD_FIELDS), wrong_types | odd_values),
}
MUTATIONS["anything"] = st.one_of(*MUTATIONS.values())


@st.composite
def hostile_messages(draw: st.DrawFn, kind: str = "anything") -> dict[str, Any]:
    message = {**draw(good_messages()), "messageId": f"bad-{draw(st.integers(0, 9))}"}
    for field, value in draw(st.lists(MUTATIONS[kind], min_size=1, max_size=3)):
        message[field] = value
    return message


@st.composite
def mixed_batches(draw: st.DrawFn, kind: str = "anything") -> list[tuple[bool, dict[str, Any]]]:
    """(is good, message) pairs, at least one of them hostile; the good ones have distinct
    message ids."""
    items = draw(
        st.lists(
            st.tuples(st.just(True), good_messages())
            | st.tuples(st.just(False), hostile_messages(kind)),
            min_size=1,
            max_size=6,
        )
    )
    hostile = draw(st.tuples(st.just(False), hostile_messages(kind)))
    items.insert(draw(st.integers(0, len(items))), hostile)
    seen, unique = set(), []
    for good, message in items:
        if good:
            if message["messageId"] in seen:
                continue
            seen.add(message["messageId"])
        unique.append((good, message))
    return unique


ENDPOINTS = ("single", "batch", "segment")
# Two good messages that take a batch over 32 KB, each under it.
PADDING = [
    {"type": "track", "userId": "pad", "event": "Pad", "messageId": f"good-pad-{number}"}
    | {"properties": {"blob": "x" * 17_000}}
    for number in (1, 2)
]
batch_fields = st.one_of(
    st.tuples(st.just("sentAt"), bad_timestamps),
    st.tuples(st.sampled_from(["context", "integrations"]), payload_poison | wrong_types),
)


# Whole bodies that are not a list of messages, or not JSON at all: no 5xx is all we ask.
whole_bodies = st.one_of(
    st.binary(max_size=200),
    st.integers(1000, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1000, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.just(b'{"userId": "u", "event": "E", "n": ' + b"9" * 5000 + b"}"),
    st.sampled_from([b"null", b"[]", b"{}", b'"text"', b"1e999", b"NaN", b"[1,2]", b"{"]),
    good_messages().map(lambda m: json.dumps(m).encode("utf-16")),
    good_messages().map(lambda m: b"\xef\xbb\xbf" + json.dumps(m).encode()),
    st.lists(good_messages(), min_size=1, max_size=3).map(
        lambda ms: json.dumps(ms).encode("utf-32")
    ),
)


# --- purchasely --------------------------------------------------------------------------


PURCHASELY_FIELDS = (
    "event_created_at_ms",
    "event_created_at",
    "user_id",
    "anonymous_user_id",
    "event_id",
    "event_name",
    "plan",
    "purchased_at",
    "subscription_status",
)


unix_millis = st.one_of(
    st.integers(),
    st.floats(),
    st.sampled_from(
        [
            Raw(b"1e999"),
            10**30,
            -(10**30),
            1e300,
            253402300800000,  # the first millisecond of year 10000
            -62135596800001,  # the last millisecond of year 0
            True,
        ]
    ),
)
purchasely_values = st.one_of(bad_timestamps, long_ids, wrong_types, payload_poison, unix_millis)


@st.composite
def purchasely_events(draw: st.DrawFn) -> tuple[bool, dict[str, Any]]:
    payload: dict[str, Any] = {
        "api_version": 3,
        "event_name": draw(st.sampled_from(["SUBSCRIPTION_STARTED", "TRIAL_STARTED"])),
        "event_id": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "event_created_at_ms": draw(st.integers(946684800000, 4102444800000)),
        "user_id": draw(identifier),
        "store": "APPLE_APP_STORE",
        "subscription_status": "AUTO_RENEWING",
        "plan_price_in_eur": draw(st.floats(0, 1000)),
    }
    if not draw(st.booleans()):
        return True, payload
    mutations = draw(st.lists(st.tuples(st.sampled_from(PURCHASELY_FIELDS), purchasely_values)))
    if not mutations or draw(st.booleans()):
        mutations.append(("event_created_at_ms", draw(unix_millis)))
    for field, value in mutations:
        payload[field] = value
    return False, payload


# Before api_version 3: name, user and nested properties; wrong types anywhere in them.
PURCHASELY_V2_PATHS = (
    ("name",),
    ("user",),
    ("user", "vendor_id"),
    ("received_at",),
    ("properties",),
    ("properties", "product"),
    ("properties", "product", "plan"),
    ("properties", "product", "plan", "vendor_id"),
    ("properties", "app"),
    ("properties", "period_type"),
    ("properties", "purchase_id"),
)


@st.composite
def purchasely_v2_events(draw: st.DrawFn) -> tuple[bool, dict[str, Any]]:
    payload: dict[str, Any] = {
        "name": draw(st.sampled_from(["PURCHASE_VALIDATED", "SUBSCRIPTION_EXPIRED"])),
        "user": {"vendor_id": draw(identifier)},
        "properties": {
            "store": "GOOGLE_PLAY_STORE",
            "product": {"plan": {"type": "RENEWING_SUBSCRIPTION", "vendor_id": "p"}},
            "purchase_id": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        },
        "api_version": 2,
        "received_at": "2021-05-21T12:52:03.968Z",
    }
    if not draw(st.booleans()):
        return True, payload
    for path, value in draw(
        st.lists(st.tuples(st.sampled_from(PURCHASELY_V2_PATHS), purchasely_values), min_size=1)
    ):
        parent = payload
        for key in path[:-1]:
            parent = parent[key] if isinstance(parent.get(key), dict) else {}
        parent[path[-1]] = value
    return False, payload


# --- chargebee retention -----------------------------------------------------------------

CHARGEBEE_RETENTION_FIELDS = (
    "event",
    "event_type",
    "id",
    "messageId",
    "timestamp",
    "properties",
    "user_id",
    "client_timestamp",
    "field.cancel.account.internal_id",
    "field.cancel.email",
)


@st.composite
def chargebee_retention_events(draw: st.DrawFn) -> tuple[bool, dict[str, Any]]:
    payload: dict[str, Any] = {
        "event": draw(st.sampled_from(["cancel", "save", "Offer Accepted", "page_loaded"])),
        "id": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "app_id": "9Nyv3KZvQJ",
        "field.cancel.account.internal_id": draw(identifier),
        "field.cancel.email": "jane@example.com",
        "user_id": "KD21akKyAZ",
    }
    if not draw(st.booleans()):
        return True, payload
    for field, value in draw(
        st.lists(
            st.tuples(st.sampled_from(CHARGEBEE_RETENTION_FIELDS), purchasely_values), min_size=1
        )
    ):
        payload[field] = value
    return False, payload


# Headers as a WSGI server hands them over: any Latin-1 text.
header_values = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=255), max_size=40),
    st.sampled_from(["Basic é", "Basic " + "A" * 5000, "gzip", "²", "9" * 5000, "-1", " 1 "]),
    st.integers(0, 10**20).map(str),
    st.integers().map(str),
)
HEADERS = (
    "HTTP_AUTHORIZATION",
    "HTTP_CONTENT_ENCODING",
    "HTTP_X_SIGNATURE",
    "HTTP_X_PURCHASELY_REQUEST_SIGNATURE",
    "HTTP_X_PURCHASELY_TIMESTAMP",
    "HTTP_X_HUB_SIGNATURE",
)


ENDPOINTS = ["/v1/track", "/v1/batch", "segment", "purchasely", "chargebee_retention"]


def _expected_id(message: dict[str, Any]) -> object:
    """What a stored message's id will be: its messageId as text, or a fresh one."""
    value = message.get("messageId")
    return object() if value is None or value == "" else str(value)


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


class IngestProperties(TestCase):
    """No 5xx from any ingest endpoint; good messages survive bad neighbours."""

    @classmethod
    def setUpTestData(cls) -> None:
        cls.workspace = Workspace.objects.create(name="Fuzz", slug="fuzz")
        cls.source = Source.objects.create(workspace=cls.workspace, name="Website")
        cls.purchasely = Source.objects.create(
            workspace=cls.workspace, name="App", kind="purchasely"
        )
        cls.chargebee = Source.objects.create(
            workspace=cls.workspace, name="Cancel flow", kind="chargebee_retention"
        )
        hook = Integration(workspace=cls.workspace, name="Hook", kind="webhook")
        hook.set_settings({"url": "https://hooks.example.com/in"})
        hook.save()

    def post(self, path: str, raw: bytes, **headers: str):
        response = self.client.post(path, data=raw, content_type="application/json", **headers)
        assert response.status_code < 500, (response.status_code, raw[:300])
        return response

    def track_api(self, path: str, raw: bytes, **headers: str):
        return self.post(path, raw, HTTP_AUTHORIZATION=_basic(self.source.write_key), **headers)

    def segment_hook(self, raw: bytes, signed: bytes):
        signature = hmac.new(self.source.webhook_secret.encode(), signed, hashlib.sha1)
        path = f"/hooks/segment/{self.source.webhook_token}/"
        return self.post(path, raw, HTTP_X_SIGNATURE=signature.hexdigest())

    def purchasely_hook(self, raw: bytes):
        stamp = str(int(time.time()))
        secret = self.purchasely.webhook_secret.encode()
        signature = hmac.new(secret, stamp.encode() + raw, hashlib.sha256).hexdigest()
        return self.post(
            f"/hooks/purchasely/{self.purchasely.webhook_token}/",
            raw,
            HTTP_X_PURCHASELY_REQUEST_SIGNATURE=signature,
            HTTP_X_PURCHASELY_TIMESTAMP=stamp,
        )

    def chargebee_hook(self, raw: bytes):
        secret = self.chargebee.webhook_secret.encode()
        signature = "sha1=" + hmac.new(secret, raw, hashlib.sha1).hexdigest()
        path = f"/hooks/chargebee-retention/{self.chargebee.webhook_token}/"
        return self.post(path, raw, HTTP_X_HUB_SIGNATURE=signature)

    def assert_stored(self, *message_ids: str) -> None:
        stored = set(
            Event.objects.filter(message_id__in=message_ids).values_list("message_id", flat=True)
        )
        assert stored == set(message_ids), set(message_ids) - stored

    def assert_readable(self) -> None:
        """Every stored event reads back: timestamps in range, columns within their
        limits (SQLite does not enforce them), a payload that is JSON."""
        for event in Event.objects.filter(workspace=self.workspace):
            for stamp in (event.timestamp, event.received_at, event.sent_at):
                assert stamp is None or MIN_TIMESTAMP <= stamp <= MAX_TIMESTAMP, stamp
            if event.original_timestamp is not None:
                assert MIN_TIMESTAMP <= event.original_timestamp <= MAX_TIMESTAMP
            for field in Event._meta.concrete_fields:
                if isinstance(field, models.CharField):
                    value = getattr(event, field.attname)
                    assert isinstance(value, str) and len(value) <= field.max_length, value
            json.dumps(event.payload, allow_nan=False).encode()

    def assert_accounted(self, response, messages: list[dict[str, Any]]) -> None:
        """Each message of a list is either reported by index or stored (once per
        messageId): nothing is lost silently."""
        stored = Event.objects.filter(workspace=self.workspace).count()
        if response.status_code != 200:
            assert stored == 0, response.json()
            return
        body = response.json()
        refused = {error["index"] for error in body["errors"]}
        kept = [message for index, message in enumerate(messages) if index not in refused]
        distinct = len({_expected_id(message) for message in kept})
        counts = (body["accepted"], body["duplicates"], stored)
        assert counts == (distinct, len(kept) - distinct, distinct), body

    def check(self, endpoint: str, items: list[tuple[bool, dict[str, Any]]], **extra: Any):
        """Post ``items`` to ``endpoint`` (the first one alone to a single-message endpoint):
        no 5xx; each message is refused or stored; the good ones are stored unless
        ``extra`` (hostile batch fields) refuses the batch."""
        messages = [message for _, message in items]
        if endpoint == "single":
            good, message = items[0]
            call = message.get("type") if message.get("type") in CALLS else "track"
            response = self.track_api(f"/v1/{call}", dump(message))
            stored = Event.objects.filter(workspace=self.workspace).count()
            assert stored == (1 if response.status_code == 200 else 0)
            good_ids = [message["messageId"]] if good else []
        elif endpoint == "batch":
            response = self.track_api("/v1/batch", dump({"batch": messages, **extra}))
            self.assert_accounted(response, messages)
            good_ids = [] if extra else [m["messageId"] for ok, m in items if ok]
        else:
            elements = [dump(message) for message in messages]
            if len(items) > 1:
                response = self.segment_hook(b"[" + b",".join(elements) + b"]", elements[0])
                self.assert_accounted(response, messages)
            else:
                response = self.segment_hook(elements[0], elements[0])
            good_ids = [m["messageId"] for ok, m in items if ok]
        if good_ids:
            assert response.status_code == 200, response.json()
            self.assert_stored(*good_ids)
        self.assert_readable()

    @given(st.sampled_from(ENDPOINTS), mixed_batches("timestamps"))
    def test_bad_timestamps(self, endpoint: str, items: list) -> None:
        self.check(endpoint, items)

    @given(st.sampled_from(ENDPOINTS), mixed_batches("numbers"))
    def test_non_finite_and_huge_numbers(self, endpoint: str, items: list) -> None:
        self.check(endpoint, items)

    @given(st.sampled_from(ENDPOINTS), mixed_batches("strings"))
    def test_unstorable_strings(self, endpoint: str, items: list) -> None:
        self.check(endpoint, items)

    @given(st.sampled_from(ENDPOINTS), mixed_batches("nesting"))
    def test_deep_nesting(self, endpoint: str, items: list) -> None:
        self.check(endpoint, items)

    @given(st.sampled_from(ENDPOINTS), mixed_batches("identifiers"))
    def test_long_and_odd_identifiers(self, endpoint: str, items: list) -> None:
        self.check(endpoint, items)

    @given(st.sampled_from(ENDPOINTS), mixed_batches("types"))
    def test_wrong_types(self, endpoint: str, items: list) -> None:
        self.check(endpoint, items)

    @given(
        st.sampled_from(ENDPOINTS),
        mixed_batches("anything"),
        st.just({}) | batch_fields.map(lambda pair: dict([pair])),
        st.booleans(),
        st.booleans(),
    )
    def test_anything(
        self, endpoint: str, items: list, extra: dict, padded: bool, gzipped: bool
    ) -> None:
        if padded:  # over 32 KB, so that each message is measured too
            items = [*items, (True, PADDING[0]), (True, PADDING[1])]
        if gzipped and endpoint == "batch":
            body = dump({"batch": [message for _, message in items], **extra})
            self.track_api("/v1/batch", gzip.compress(body), HTTP_CONTENT_ENCODING="gzip")
            self.assert_readable()
        else:
            self.check(endpoint, items, **(extra if endpoint == "batch" else {}))

    @given(
        st.sampled_from(CALLS).flatmap(lambda call: st.tuples(st.just(call), good_messages(call)))
    )
    def test_good_single_calls_are_stored(self, call_and_message: tuple[str, dict]) -> None:
        call, message = call_and_message
        response = self.track_api(f"/v1/{call}", dump(message))
        assert response.status_code == 200, response.json()
        self.assert_stored(message["messageId"])
        self.assert_readable()

    @given(purchasely_events())
    def test_purchasely(self, event: tuple[bool, dict[str, Any]]) -> None:
        good, payload = event
        response = self.purchasely_hook(dump(payload))
        if good:
            assert response.status_code == 200, response.json()
            self.assert_stored(payload["event_id"])
        self.assert_readable()

    @given(purchasely_v2_events())
    def test_purchasely_before_api_version_3(self, event: tuple[bool, dict[str, Any]]) -> None:
        good, payload = event
        response = self.purchasely_hook(dump(payload))
        if good:
            assert response.status_code == 200, response.json()
            assert Event.objects.filter(
                type="track",
                payload__properties__purchasely_subscription_id=payload["properties"][
                    "purchase_id"
                ],
            ).exists()
        self.assert_readable()

    @given(chargebee_retention_events())
    def test_chargebee_retention(self, event: tuple[bool, dict[str, Any]]) -> None:
        good, payload = event
        response = self.chargebee_hook(dump(payload))
        if good:
            assert response.status_code == 200, response.json()
            self.assert_stored(payload["id"])
        self.assert_readable()

    @given(whole_bodies, st.sampled_from(ENDPOINTS))
    def test_whole_bodies(self, raw: bytes, endpoint: str) -> None:
        if endpoint == "segment":
            self.segment_hook(raw, raw)
        elif endpoint == "purchasely":
            self.purchasely_hook(raw)
        elif endpoint == "chargebee_retention":
            self.chargebee_hook(raw)
        else:
            self.track_api(endpoint, raw)
        self.assert_readable()

    @given(
        st.sampled_from(ENDPOINTS),
        st.dictionaries(st.sampled_from(HEADERS), header_values, min_size=1),
    )
    def test_odd_headers(self, endpoint: str, headers: dict[str, str]) -> None:
        raw = dump({"type": "track", "userId": "u", "event": "E"})
        if endpoint == "segment":
            self.post(f"/hooks/segment/{self.source.webhook_token}/", raw, **headers)
        elif endpoint == "purchasely":
            self.post(f"/hooks/purchasely/{self.purchasely.webhook_token}/", raw, **headers)
        elif endpoint == "chargebee_retention":
            self.post(self.chargebee.webhook_path, raw, **headers)
        else:
            body = dump({"batch": [json.loads(raw)]}) if endpoint == "/v1/batch" else raw
            self.post(endpoint, body, **headers)
        self.assert_readable()

    @given(header_values)
    def test_odd_purchasely_timestamps(self, stamp: str) -> None:
        """An odd X-PURCHASELY-TIMESTAMP, with a signature that matches it."""
        raw = dump({"event_name": "TRIAL_STARTED", "event_id": "e1", "user_id": "u"})
        secret = self.purchasely.webhook_secret.encode()
        signature = hmac.new(secret, stamp.encode() + raw, hashlib.sha256).hexdigest()
        self.post(
            f"/hooks/purchasely/{self.purchasely.webhook_token}/",
            raw,
            HTTP_X_PURCHASELY_TIMESTAMP=stamp,
            HTTP_X_PURCHASELY_REQUEST_SIGNATURE=signature,
        )
        self.assert_readable()
