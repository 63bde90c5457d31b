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
from integrations.destinations.mapping import FieldKind
from tests.destinations.fixtures import FIXTURES, build, load

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


def fixture_settings(kind: str) -> list[dict[str, Any]]:
    """Every distinct settings of the destination's fixtures (its modes, regions, signing
    schemes…), so that a destination added with its fixtures is checked here too."""
    distinct: dict[str, dict[str, Any]] = {}
    for path in sorted((FIXTURES / kind).glob("*.json")):
        settings = load(path).get("integration", {}).get("settings", {})
        distinct.setdefault(json.dumps(settings, sort_keys=True), settings)
    return list(distinct.values())


SETTINGS = {d.kind: fixture_settings(d.kind) for d in registry.all_destinations()}


def serialised(request: OutboundRequest) -> str:
    """All a request sends or will send: URL, body, and the state a chain's later steps
    are built from."""
    return " ".join([request.url, request.body, json.dumps(request.state, default=str)])


def planned(kind: str, variant: int, call: str, mappings: dict[str, Any] | None = None) -> str:
    message = {"type": call, "userId": "u1", "messageId": f"m-{call}", **CALLS[call]}
    spec = {"settings": SETTINGS[kind][variant], "mappings": mappings or {}, **RULES}
    case = {"integration": spec, "events": [message], "profiles": PROFILES, "groups": GROUPS}
    config, events, context = build(kind, case)
    plan = registry.get(kind).plan(config, events, context)
    assert not plan.failures, plan.failures
    assert plan.requests or plan.skipped
    return " ".join(serialised(request) for request in plan.requests)


def variants() -> list[tuple[str, int]]:
    return [(kind, n) for kind in sorted(SETTINGS) for n in range(len(SETTINGS[kind]))]


def cases() -> list[Any]:
    return [
        pytest.param(kind, variant, call, id=f"{kind}{variant}-{call}")
        for kind, variant in variants()
        for call in sorted(CALLS)
        if call in registry.get(kind).supported_types
    ]


def test_every_destination_has_settings_from_its_fixtures():
    assert all(SETTINGS[d.kind] for d in registry.all_destinations())


@pytest.mark.parametrize(("kind", "variant", "call"), cases())
def test_switched_off_and_renamed_properties_and_event_names(kind, variant, call):
    sent = planned(kind, variant, call)
    assert "internal_score" not in sent
    assert str(SECRET_SCORE) not in sent
    assert '"plan"' not in sent
    assert "Plan Changed" not in sent


@pytest.mark.parametrize(("kind", "variant"), variants())
def test_renamed_properties_are_reachable_under_their_new_name(kind, variant):
    """Not vacuous: each destination sends the renamed property for some call, or, when
    it sends no free-form properties at all (ChartMogul's Segment source takes fixed
    fields, Slack only what its templates say), a mapping reads it under its new name (a
    key-value field, such as Slack's messages by event, maps every call)."""
    destination = registry.get(kind)
    calls = [call for call in sorted(CALLS) if call in destination.supported_types]
    if any("plan_tier" in planned(kind, variant, call) for call in calls):
        return
    spec = destination.mapped_fields[0]
    reading = "traits.plan_tier || traits.plan"
    mapped = dict.fromkeys(calls, reading) if spec.kind is FieldKind.KEYVALUE else reading
    mappings = {spec.name: mapped}
    assert any("gold" in planned(kind, variant, call, mappings) for call in calls)
