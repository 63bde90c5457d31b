import json

import pytest
import responses

from integrations.delivery.redact import REDACTED, Redactor
from integrations.destinations.churnzero import (
    MAX_ACTIONS_PER_REQUEST,
    MAX_DESCRIPTION_LENGTH,
    ChurnZero,
    attribute_value,
    endpoint,
    number,
)
from integrations.models import Delivery, Integration
from tests.destinations.fixtures import build
from tests.traffic import deliver_due, exchanges_of, send

APP_KEY = "cz-app-key-1234"
# ChurnZero's answer to every request: HTTP 200 and a 1x1 transparent GIF.
GIF = bytes.fromhex(
    "47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b"
)


def plan_for(events, **case):
    config, events, context = build(
        "churnzero",
        {"integration": {"settings": {"app_key": APP_KEY}}, "events": events, **case},
    )
    return config, ChurnZero.plan(config, events, context)


def track(number, **fields):
    ids = {"accountExternalId": "A-1", "contactExternalId": "C-1"}
    return {
        "type": "track",
        "userId": "u1",
        "event": "Login",
        "messageId": f"m{number}",
        "properties": ids,
        **fields,
    }


def test_app_key_is_in_every_action_and_redacted_in_the_log():
    """The app key is ChurnZero's only authentication, so it travels in the body; the
    log's redactor hides it (field name appKey, and the secret setting's value)."""
    events = [
        track(1),
        {
            "type": "identify",
            "userId": "u1",
            "messageId": "m2",
            "traits": {"accountExternalId": "A-1", "contactExternalId": "C-1", "plan": "pro"},
        },
    ]
    config, plan = plan_for(events)
    (request,) = plan.requests
    actions = json.loads(request.body)
    assert [a["appKey"] for a in actions] == [APP_KEY, APP_KEY]
    assert APP_KEY not in request.url
    assert not any(APP_KEY in value for value in request.headers.values())
    logged = Redactor.for_settings({}, config.settings)
    stored = logged.body(request.body)
    assert APP_KEY not in stored
    assert [a["appKey"] for a in json.loads(stored)] == [REDACTED, REDACTED]


def test_requests_carry_at_most_max_batch_size_events():
    _, plan = plan_for([track(i) for i in range(250)])
    assert [len(r.covers) for r in plan.requests] == [100, 100, 50]
    assert [i for r in plan.requests for i in r.covers] == list(range(250))
    assert all(len(json.loads(r.body)) == len(r.covers) for r in plan.requests)


def test_actions_per_request_are_capped_but_an_event_is_never_split():
    def identify(number, traits):
        ids = {"accountExternalId": "A-1", "contactExternalId": "C-1"}
        traits = {**ids, **{f"t{i}": i for i in range(traits)}}
        return {"type": "identify", "userId": "u1", "messageId": f"m{number}", "traits": traits}

    big = MAX_ACTIONS_PER_REQUEST + 100
    _, plan = plan_for([identify(0, 300), identify(1, 150), identify(2, 300), identify(3, big)])
    assert [r.covers for r in plan.requests] == [(0, 1), (2,), (3,)]
    assert [len(json.loads(r.body)) for r in plan.requests] == [450, 300, big]


def test_description_is_cut_to_255_characters():
    _, plan = plan_for([track(1, properties={**track(1)["properties"], "description": "x" * 300})])
    (action,) = json.loads(plan.requests[0].body)
    assert action["description"] == "x" * MAX_DESCRIPTION_LENGTH


def test_a_call_type_without_churnzero_equivalent_fails_rather_than_vanishes():
    # Routing never sends these (supported_types), but a plan must not lose one.
    page = {"type": "page", "userId": "u1", "name": "Home", "messageId": "m1"}
    _, plan = plan_for([page, track(2)])
    assert plan.failures == {
        0: "ChurnZero takes identify, track and group calls; a page call has no ChurnZero "
        "equivalent"
    }
    assert [r.covers for r in plan.requests] == [(1,)]


def test_every_delivery_is_either_sent_or_failed():
    events = [
        track(0),
        track(1, userId="nobody", properties={}),
        {"type": "identify", "userId": "u1", "messageId": "m2", "traits": {}},
    ]
    _, plan = plan_for(events, profiles={"u1": {"traits": {"contactExternalId": "C-1"}}})
    covered = [i for r in plan.requests for i in r.covers]
    assert sorted(covered + list(plan.failures)) == [0, 1, 2]
    assert not set(covered) & set(plan.failures)


def test_traits_or_properties_that_are_not_objects_count_as_empty():
    profile = {"u1": {"traits": {"accountExternalId": "A-1", "contactExternalId": "C-1"}}}
    events = [
        {"type": "identify", "userId": "u1", "messageId": "m1", "traits": ["oops"]},
        track(2, properties="oops", context={"traits": 3}),
        {"type": "group", "userId": "u1", "groupId": "g", "messageId": "m3", "traits": "x"},
    ]
    _, plan = plan_for(events, profiles=profile)
    assert plan.failures == {}
    (request,) = plan.requests
    assert [a["action"] for a in json.loads(request.body)] == ["trackEvent"]


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://analytics.churnzero.net", "https://analytics.churnzero.net/i"),
        ("https://analytics.churnzero.net/", "https://analytics.churnzero.net/i"),
        # The endpoint as ChurnZero's Application Keys page shows it, /i included.
        ("https://eu1analytics.churnzero.net/i", "https://eu1analytics.churnzero.net/i"),
        ("https://acme.app.churnzero.net/i/", "https://acme.app.churnzero.net/i"),
    ],
)
def test_endpoint(base, url):
    assert endpoint(base) == url


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (True, "True"),
        (False, "False"),
        (0, 0),
        (1234567.89, 1234567.89),
        ("", ""),
        (["a", "b", "c"], "a, b, c"),
        ([1, True], "1, True"),
        ([], ""),
        (None, None),
        ({"city": "Lyon"}, None),
        ([{"id": 1}], None),
        (["a", ["b"]], None),
    ],
)
def test_attribute_value(value, sent):
    assert attribute_value(value) == sent


@pytest.mark.parametrize(
    ("value", "quantity"),
    [
        (3, 3),
        (2.5, 2.5),
        ("4", 4),
        (" 1.5 ", 1.5),
        ("lots", None),
        (True, None),
        ("nan", None),
        ("1e999", None),
        (None, None),
        ([1], None),
    ],
)
def test_quantity_is_a_number(value, quantity):
    assert number(value) == quantity


def test_settings_keep_the_app_key_secret():
    cleaned = ChurnZero.clean_settings({"app_key": APP_KEY})
    assert cleaned.secrets == {"app_key": APP_KEY}
    assert cleaned.public == {"instance_url": "https://analytics.churnzero.net"}


# -- through the engine -------------------------------------------------------------


@pytest.fixture
def churnzero(workspace):
    integration = Integration(workspace=workspace, name="CZ", kind="churnzero")
    integration.set_settings({"app_key": APP_KEY})
    integration.save()
    return integration


def send_identify_then_track(source, churnzero):
    ids = {"accountExternalId": "A-1", "contactExternalId": "C-1"}
    send(source, type="identify", userId="u1", messageId="m1", traits={**ids, "plan": "pro"})
    send(source, type="track", userId="u1", event="Login", messageId="m2")
    deliver_due(churnzero)
    return list(Delivery.objects.filter(integration=churnzero).order_by("event__message_id"))


@responses.activate
def test_churnzero_200_delivers_with_the_profile_and_a_redacted_log(source, churnzero):
    """One request for both events; the track call's account and contact come from the
    profile store the identify filled; the log does not show the app key."""
    responses.post("https://analytics.churnzero.net/i", status=200, content_type="image/gif")
    deliveries = send_identify_then_track(source, churnzero)
    assert [d.status for d in deliveries] == [Delivery.Status.DELIVERED] * 2
    (call,) = responses.calls
    sent = json.loads(call.request.body)
    assert [a["action"] for a in sent] == ["setAttribute", "trackEvent"]
    assert {(a["appKey"], a["accountExternalId"], a["contactExternalId"]) for a in sent} == {
        (APP_KEY, "A-1", "C-1")
    }
    (exchange,) = exchanges_of(deliveries[1])
    assert APP_KEY not in exchange["request_body"]
    assert [a["appKey"] for a in json.loads(exchange["request_body"])] == [REDACTED, REDACTED]
    assert deliveries[0].exchange_id == deliveries[1].exchange_id  # one request, stored once


@responses.activate
def test_churnzero_gif_answer_is_logged_as_storable_text(source, churnzero):
    responses.post(
        "https://analytics.churnzero.net/i", status=200, body=GIF, content_type="image/gif"
    )
    deliveries = send_identify_then_track(source, churnzero)
    assert [d.status for d in deliveries] == [Delivery.Status.DELIVERED] * 2
    (exchange,) = exchanges_of(deliveries[0])
    assert exchange["response_body"] == f"[{len(GIF)}-byte image/gif body]"
