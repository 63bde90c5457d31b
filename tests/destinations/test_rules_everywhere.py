"""Every destination applies every plan-side rule kind to every call it takes.

Event toggles are routing's (tested there); event-name overrides and property rules are
applied when a destination plans. A property a CSM switches off must not reach the vendor
by any way (traits, properties, ``context.traits``, the profile store, a later step of a
chain), a renamed one only under its new name, an overridden event name never as sent.
"""

import json
from typing import Any

import pytest

from integrations.destinations import registry
from integrations.destinations.base import OutboundRequest
from tests.destinations.fixtures import build

RULES = {
    "event_rules": [{"event": "Plan Changed", "enabled": True, "send_as": "Plan Updated"}],
    "property_rules": [
        {"name": "internal_score", "enabled": False},
        {"name": "plan", "enabled": True, "send_as": "plan_tier"},
    ],
}
# A value the leaked property holds, to find it whatever it was sent as.
SECRET_SCORE = 91357
DATA = {
    "internal_score": SECRET_SCORE,
    "plan": "gold",
    "accountExternalId": "A-1",
    "contactExternalId": "C-1",
}
PROFILES = {
    "u1": {"traits": {**DATA, "email": "ada@acme.example"}, "group_id": "acme"},
}
GROUPS = {"acme": {"internal_score": SECRET_SCORE, "plan": "gold", "name": "Acme"}}
CALLS: dict[str, dict[str, Any]] = {
    "identify": {"traits": {**DATA, "email": "ada@acme.example", "name": "Ada Lovelace"}},
    "track": {
        "event": "Plan Changed",
        "properties": {**DATA, "description": "upgraded"},
        "context": {"traits": {"internal_score": SECRET_SCORE, "email": "ada@acme.example"}},
    },
    "page": {"name": "Pricing", "properties": {**DATA, "url": "https://acme.example/pricing"}},
    "screen": {"name": "Pricing", "properties": DATA},
    "group": {"groupId": "acme", "traits": DATA},
}
# Settings per destination; a destination registered without an entry fails below.
SETTINGS: dict[str, dict[str, Any]] = {
    "chartmogul": {"api_key": "cm_key", "data_source_uuid": "ds_1"},
    "churnzero": {"app_key": "cz_key"},
    "customerio": {"site_id": "site", "api_key": "cio_key"},
    "segment": {"write_key": "wk_key"},
    "webhook": {"url": "https://hooks.example.com/in"},
}


def serialised(request: OutboundRequest) -> str:
    """All a request sends or will send: URL, body, and the state a chain's later steps
    are built from."""
    return " ".join([request.url, request.body, json.dumps(request.state, default=str)])


def planned(kind: str, call: str) -> str:
    message = {"type": call, "userId": "u1", "messageId": f"m-{call}", **CALLS[call]}
    spec = {"settings": SETTINGS[kind], **RULES}
    case = {"integration": spec, "events": [message], "profiles": PROFILES, "groups": GROUPS}
    config, events, context = build(kind, case)
    plan = registry.get(kind).plan(config, events, context)
    assert not plan.failures, plan.failures
    assert plan.requests or plan.skipped
    return " ".join(serialised(request) for request in plan.requests)


def cases() -> list[Any]:
    return [
        pytest.param(destination.kind, call, id=f"{destination.kind}-{call}")
        for destination in registry.all_destinations()
        for call in sorted(CALLS)
        if call in destination.supported_types
    ]


def test_every_destination_has_settings_here():
    assert {d.kind for d in registry.all_destinations()} <= set(SETTINGS)


@pytest.mark.parametrize(("kind", "call"), cases())
def test_switched_off_and_renamed_properties_and_event_names(kind, call):
    sent = planned(kind, call)
    assert "internal_score" not in sent
    assert str(SECRET_SCORE) not in sent
    assert '"plan"' not in sent
    assert "Plan Changed" not in sent


@pytest.mark.parametrize("kind", sorted(SETTINGS))
def test_renamed_properties_are_sent_under_their_new_name(kind):
    """Not vacuous: each destination sends the renamed property for some call."""
    destination = registry.get(kind)
    calls = [call for call in sorted(CALLS) if call in destination.supported_types]
    assert any("plan_tier" in planned(kind, call) for call in calls)
