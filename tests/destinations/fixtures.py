"""Fixture-driven destination tests, in the spirit of Zulip's webhook tests.

Each ``tests/fixtures/<kind>/<case>.json`` holds::

    {
      "description": "what the case shows",
      "integration": {"settings": {...}, "api_base_url": "", "event_mode": "all",
                      "event_rules": [{"event", "enabled", "send_as"}],
                      "property_rules": [{"name", "enabled", "send_as"}],
                      "mappings": {"<mapped field>": "<expression or template>"}},
      "profiles": {"<user id>": {"traits": {...}, "group_id": "..."}},
      "groups": {"<group id>": {...traits}},
      "events": [<Segment messages, normalised as the ingest does, received 2024-01-01 12:00Z;
                  {"type": "delete" | "suppress", "userId", "messageId"}: a deletion request>],
      "expected": {
        "requests": [{"method", "url", "headers": {<subset>; "*" = any value},
                      "json": <body as JSON; "*" = any value> | "body": "<raw body>",
                      "covers": [0, ...]}],
        "failures": {"<event index>": "<substring of the reason>"},
        "skipped": {"<event index>": "<substring of the reason>"}
      },
      "response": {"status": 207, "body": ...},          # optional: the vendor's answer
      "expected_partial_failures": {"<index>": "<substring>"
                                    | {"reason": "<substring>", "retry": false}}
    }

The planner is pure, so these tests need no database and no network.
"""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from integrations import deletion
from integrations.delivery import planning
from integrations.destinations import registry
from integrations.destinations.base import Plan
from integrations.destinations.context import PlanContext, Profile, Rules
from integrations.destinations.values import EventData, IntegrationConfig
from integrations.ingest import event_from_message
from integrations.models import Integration
from integrations.sources.segment_spec import normalize

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RECEIVED_AT = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
ANY = "*"


def cases(kind: str) -> list[Any]:
    paths = sorted((FIXTURES / kind).glob("*.json"))
    assert paths, f"no fixtures in {FIXTURES / kind}"
    return [pytest.param(path, id=path.stem) for path in paths]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def build(
    kind: str, case: dict[str, Any]
) -> tuple[IntegrationConfig, list[EventData], PlanContext]:
    """A destination's inputs for a case: its settings, its events and the plan context."""
    spec = case.get("integration", {})
    integration = Integration(
        pk=1,
        workspace_id=1,
        name=f"Test {kind}",
        kind=kind,
        api_base_url=spec.get("api_base_url", ""),
        event_mode=spec.get("event_mode", Integration.EventMode.ALL_EXCEPT_DISABLED),
    )
    integration.set_settings(spec.get("settings", {}))
    integration.set_field_mappings(spec.get("mappings", {}))
    events = [
        planning.event_data(event_from_message(normalised(message), workspace_id=1))
        for message in case["events"]
    ]
    context = PlanContext(
        rules=Rules.from_rules(spec.get("event_rules", []), spec.get("property_rules", [])),
        profiles={
            user_id: Profile(traits=p.get("traits", {}), group_id=p.get("group_id", ""))
            for user_id, p in case.get("profiles", {}).items()
        },
        groups=case.get("groups", {}),
    )
    return planning.integration_config(integration), events, context


def normalised(message: dict[str, Any]) -> dict[str, Any]:
    """A fixture's message as stored: a Segment call as ingest normalises it, a deletion
    request as the deletion module writes its event."""
    if message.get("type") in deletion.Action.values:
        return deletion.deletion_message(
            message["type"],
            message["userId"],
            received_at=RECEIVED_AT,
            message_id=message.get("messageId", ""),
            context=message.get("context"),
        )
    return normalize(message, received_at=RECEIVED_AT)


def _matches(expected: Any, actual: Any) -> bool:
    return expected in (ANY, actual)


def _json_matches(expected: Any, actual: Any) -> bool:
    """Equal, where ``"*"`` in the expected JSON matches any value (an event id...)."""
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(_json_matches(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_json_matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return expected == actual and type(expected) is type(actual)


def assert_plan(plan: Plan, expected: dict[str, Any]) -> None:
    wanted = expected.get("requests", [])
    assert len(plan.requests) == len(wanted), [r.url for r in plan.requests]
    for number, (request, want) in enumerate(zip(plan.requests, wanted, strict=True)):
        where = f"request {number}"
        assert request.method == want["method"], where
        assert request.url == want["url"], where
        assert list(request.covers) == want.get("covers", [0]), where
        for name, value in want.get("headers", {}).items():
            assert name in request.headers, f"{where}: header {name} missing"
            assert _matches(value, request.headers[name]), f"{where}: header {name}"
        if "json" in want:
            body = json.loads(request.body)
            assert _json_matches(want["json"], body), (where, body)
        if "body" in want:
            assert request.body == want["body"], where
    for outcome in ("failures", "skipped"):
        wanted_reasons = expected.get(outcome, {})
        reasons = getattr(plan, outcome)
        assert sorted(reasons) == sorted(int(i) for i in wanted_reasons), (outcome, reasons)
        for index, text in wanted_reasons.items():
            assert text in reasons[int(index)], (outcome, index)


def check_case(kind: str, path: Path) -> None:
    case = load(path)
    config, events, context = build(kind, case)
    destination = registry.get(kind)
    plan = destination.plan(config, events, context)
    assert_plan(plan, case["expected"])
    if "response" in case:
        response = case["response"]
        body = response.get("body", "")
        text = body if isinstance(body, str) else json.dumps(body)
        partial = destination.partial_failures(plan.requests[0], response["status"], text)
        wanted = case.get("expected_partial_failures", {})
        assert sorted(partial) == sorted(int(i) for i in wanted), partial
        for index, expectation in wanted.items():
            failure = partial[int(index)]
            substring, retry = (
                (expectation["reason"], expectation.get("retry", True))
                if isinstance(expectation, dict)
                else (expectation, failure.retry)
            )
            assert substring in failure.reason
            assert failure.retry is retry
