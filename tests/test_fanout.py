"""Routing: each event goes to every enabled integration that the rules and the message
allow, decided by the router after ingest (one dispatch per integration)."""

import pytest

from integrations.delivery.routing import integrations_object_allows
from integrations.models import Dispatch, Event, EventRule, Integration, RoutingJob, Workspace
from tests.traffic import route, send


def make_integration(workspace, kind="webhook", name="Hook", **fields):
    settings = {
        "webhook": {"url": "https://hooks.example.com/in"},
        "churnzero": {"app_key": "k"},
        "customerio": {"site_id": "s", "api_key": "k"},
        "chartmogul": {"mode": "rest", "api_key": "k", "data_source_uuid": "ds_1"},
        "segment": {"write_key": "k"},
    }[kind]
    integration = Integration(workspace=workspace, name=name, kind=kind, **fields)
    integration.set_settings(settings)
    integration.save()
    return integration


def delivered_to(source, **message) -> set[str]:
    """The integrations the router dispatches this message to."""
    send(source, **message)
    route()
    event_id = str(Event.objects.get(message_id=message["messageId"]).pk)
    return {
        dispatch.integration.name
        for dispatch in Dispatch.objects.select_related("integration")
        if event_id in dispatch.event_ids
    }


@pytest.mark.parametrize(
    ("value", "names", "allowed"),
    [
        (None, ["ChurnZero"], True),
        ({}, ["ChurnZero"], True),
        ({"All": False}, ["ChurnZero"], False),
        ({"All": False, "ChurnZero": True}, ["ChurnZero", "Churnzero"], True),
        ({"All": False, "Churnzero": True}, ["ChurnZero", "Churnzero"], True),
        ({"ChurnZero": False}, ["ChurnZero"], False),
        ({"All": True, "Customer.io": False}, ["Customer.io"], False),
        ({"All": False, "Customer.io": {"option": 1}}, ["Customer.io"], True),
        ({"Segment": False}, ["ChartMogul"], True),
    ],
)
def test_integrations_object(value, names, allowed):
    assert integrations_object_allows(value, names) is allowed


def test_every_enabled_integration_gets_a_delivery(source, workspace):
    make_integration(workspace, name="A")
    make_integration(workspace, kind="customerio", name="B")
    make_integration(workspace, name="Off", enabled=False)
    targets = delivered_to(source, type="track", userId="u", event="E", messageId="m1")
    assert targets == {"A", "B"}


def test_integrations_object_selects_destinations(source, workspace):
    make_integration(workspace, kind="churnzero", name="CZ")
    make_integration(workspace, kind="customerio", name="CIO")
    only_cz = {"All": False, "Churnzero": True}
    targets = delivered_to(
        source, type="track", userId="u", event="E", messageId="m1", integrations=only_cz
    )
    assert targets == {"CZ"}
    targets = delivered_to(
        source, type="track", userId="u", event="E", messageId="m2", integrations={"CZ": False}
    )
    assert targets == {"CZ", "CIO"}


@pytest.mark.parametrize("name", ["Webhooks", "Webhook"])
def test_the_webhook_answers_to_segments_names(source, workspace, name):
    """Segment's classic destination is "Webhooks", its Actions one "Webhook"."""
    make_integration(workspace, kind="webhook", name="Hook")
    make_integration(workspace, kind="customerio", name="CIO")
    only = {"All": False, name: True}
    assert delivered_to(
        source, type="track", userId="u", event="E", messageId=f"{name}-on", integrations=only
    ) == {"Hook"}
    off = {name: False}
    assert delivered_to(
        source, type="track", userId="u", event="E", messageId=f"{name}-off", integrations=off
    ) == {"CIO"}


def test_unsupported_call_types_get_no_delivery(source, workspace):
    make_integration(workspace, kind="churnzero", name="CZ")
    make_integration(workspace, kind="customerio", name="CIO")
    assert delivered_to(source, type="page", userId="u", messageId="m1") == {"CIO"}


def test_switched_off_event_is_not_delivered(source, workspace):
    integration = make_integration(workspace, name="A")
    EventRule.objects.create(integration=integration, event="Noise", enabled=False)
    assert delivered_to(source, type="track", userId="u", event="Noise", messageId="m1") == set()
    assert delivered_to(source, type="track", userId="u", event="Other", messageId="m2") == {"A"}


def test_only_enabled_mode_sends_only_switched_on_track_events(source, workspace):
    integration = make_integration(
        workspace, name="A", event_mode=Integration.EventMode.ONLY_ENABLED
    )
    EventRule.objects.create(integration=integration, event="TRIAL_CONVERTED", enabled=True)
    EventRule.objects.create(integration=integration, event="identify", enabled=True)
    assert delivered_to(source, type="track", userId="u", event="TRIAL_CONVERTED", messageId="m1")
    assert not delivered_to(source, type="track", userId="u", event="OTHER", messageId="m2")
    # Calls other than track are governed by their own rule only when one exists.
    assert delivered_to(source, type="identify", userId="u", messageId="m3") == {"A"}
    assert delivered_to(source, type="group", userId="u", groupId="g", messageId="m4") == {"A"}


def test_call_type_rule_switches_off_identify(source, workspace):
    integration = make_integration(workspace, name="A")
    EventRule.objects.create(integration=integration, event="identify", enabled=False)
    assert delivered_to(source, type="identify", userId="u", messageId="m1") == set()


def test_other_workspaces_integrations_are_not_used(source, workspace):
    other = Workspace.objects.create(name="Other", slug="other")
    make_integration(other, name="Theirs")
    make_integration(workspace, name="Ours")
    assert delivered_to(source, type="track", userId="u", event="E", messageId="m1") == {"Ours"}


def test_ingest_writes_one_routing_job_and_no_delivery(source, workspace):
    make_integration(workspace, name="A")
    make_integration(workspace, kind="customerio", name="B")
    result = send(source, type="track", userId="u", event="E", messageId="m1")
    assert len(result.accepted) == 1
    (job,) = RoutingJob.objects.all()
    assert job.entries == [[str(result.accepted[0].pk), "track", "E", None]]
    assert not Dispatch.objects.exists()
    assert route() == 1
    assert not RoutingJob.objects.exists()
    assert sorted(d.integration.name for d in Dispatch.objects.all()) == ["A", "B"]


def test_the_router_writes_one_dispatch_per_integration_for_many_requests(source, workspace):
    make_integration(workspace, name="A")
    for number in range(5):
        send(source, type="track", userId="u", event="E", messageId=f"m{number}")
    route()
    (dispatch,) = Dispatch.objects.all()
    assert dispatch.size == 5
    order = list(Event.objects.order_by("received_at", "message_id").values_list("pk", flat=True))
    assert dispatch.event_ids == [str(pk) for pk in order]


def test_a_duplicate_message_id_is_not_routed_again(source, workspace):
    make_integration(workspace, name="A")
    send(source, type="track", userId="u", event="E", messageId="m1")
    assert send(source, type="track", userId="u", event="E", messageId="m1").duplicates == 1
    assert RoutingJob.objects.count() == 1
