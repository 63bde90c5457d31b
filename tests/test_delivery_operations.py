"""Operator actions through the API: retry, recover, replay, pause and resume."""

import datetime as dt

import pytest
import responses
from django.db import OperationalError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from integrations.delivery import tasks as tasks_module
from integrations.delivery.operations import replay_events
from integrations.delivery.tasks import (
    IDS_PER_TASK,
    _by_events,
    enqueue_dispatches,
    take_over_waiting,
)
from integrations.models import Delivery, Dispatch, EventRule, Workspace, WorkspaceMembership
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, route, send

BASE = "/api/v1/workspaces/acme"


@pytest.fixture
def hook(workspace):
    return make_integration(workspace)


@pytest.fixture
def csm(member_client):
    return member_client(WorkspaceMembership.Role.CSM)


def tasks(trigger=None, kind="deliveries"):
    """The arguments of the waiting tasks of deliver_<kind> (with this trigger)."""
    ready = DBTaskResult.objects.filter(status="READY", task_path__endswith=f"deliver_{kind}")
    found = [t.args_kwargs["args"] for t in ready]
    return [args for args in found if trigger is None or args[2:] == [trigger]]


@pytest.fixture(autouse=True)
def vendor():
    """The vendor fails every request for good: first attempts end failed."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post("https://hooks.example.com/in", status=400)
        yield mock


def delivery_for(source, message_id="m1", status=Delivery.Status.FAILED) -> Delivery:
    send(source, type="track", userId="u", event="E", messageId=message_id)
    deliver_due()
    delivery = Delivery.objects.get(event__message_id=message_id)
    Delivery.objects.filter(pk=delivery.pk).update(status=status, next_attempt_at=None)
    delivery.refresh_from_db()
    return delivery


def test_retry_enqueues_one_manual_attempt(csm, source, hook, django_capture_on_commit_callbacks):
    delivery = delivery_for(source)
    with django_capture_on_commit_callbacks(execute=True):
        response = csm.post(f"{BASE}/deliveries/{delivery.pk}/retry/")
    assert response.status_code == 202, response.json()
    assert tasks("manual") == [[hook.pk, [delivery.pk], "manual"]]


def test_retry_of_a_delivered_delivery_is_refused(csm, source, hook):
    delivery = delivery_for(source, status=Delivery.Status.DELIVERED)
    response = csm.post(f"{BASE}/deliveries/{delivery.pk}/retry/")
    assert response.status_code == 409
    assert "replay" in response.json()["message"]


def test_retry_while_paused_is_refused(csm, source, hook):
    delivery = delivery_for(source)
    hook.paused = True
    hook.save()
    response = csm.post(f"{BASE}/deliveries/{delivery.pk}/retry/")
    assert response.status_code == 409
    assert "paused" in response.json()["message"]


def test_viewer_cannot_retry(member_client, source, hook):
    viewer = member_client(WorkspaceMembership.Role.VIEWER, username="viewer")
    delivery = delivery_for(source)
    assert viewer.post(f"{BASE}/deliveries/{delivery.pk}/retry/").status_code == 403


def test_recover_retries_failed_deliveries_in_the_range(csm, source, hook):
    old = delivery_for(source, "old")
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=2))
    recent = [delivery_for(source, f"m{i}") for i in range(3)]
    delivery_for(source, "fine", status=Delivery.Status.DELIVERED)
    since = (timezone.now() - dt.timedelta(hours=1)).isoformat()
    response = csm.post(f"{BASE}/integrations/{hook.pk}/recover/", {"since": since})
    assert response.status_code == 202
    assert response.json() == {"deliveries": 3}
    (args,) = tasks("manual")
    assert sorted(args[1]) == sorted(d.pk for d in recent)


@pytest.mark.parametrize(
    "body",
    [{}, {"since": "yesterday"}, {"since": "2024-01-02T00:00Z", "until": "2024-01-01T00:00Z"}],
)
def test_recover_needs_a_valid_range(csm, hook, body):
    response = csm.post(f"{BASE}/integrations/{hook.pk}/recover/", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_replay_makes_replay_deliveries_that_follow_the_rules(csm, source, workspace, hook):
    for name in ("Kept", "Kept", "Muted"):
        send(source, type="track", userId="u", event=name)
    route()
    other = make_integration(workspace, name="New tool")
    EventRule.objects.create(integration=other, event="Muted", enabled=False)
    since = (timezone.now() - dt.timedelta(hours=1)).isoformat()
    response = csm.post(f"{BASE}/integrations/{other.pk}/replay/", {"since": since})
    assert response.status_code == 202
    assert response.json()["events"] == 3
    task = DBTaskResult.objects.get(pk=response.json()["task"])
    assert task.task_path == replay_events.module_path
    summary = replay_events.call(*task.args_kwargs["args"])
    assert summary == {"events": 3, "deliveries": 2}
    (dispatch,) = Dispatch.objects.filter(integration=other, origin=Delivery.Origin.REPLAY)
    assert dispatch.size == 2
    deliver_due(other)
    replayed = Delivery.objects.filter(integration=other)
    assert {d.origin for d in replayed} == {Delivery.Origin.REPLAY}
    assert sorted(replayed.values_list("event__event", flat=True)) == ["Kept", "Kept"]


def test_pause_holds_and_resume_enqueues_waiting_deliveries(csm, source, hook):
    response = csm.post(f"{BASE}/integrations/{hook.pk}/pause/")
    assert response.status_code == 200
    assert response.json()["paused"] is True
    send(source, type="track", userId="u", event="E", messageId="waits")
    deliver_due()
    assert not Delivery.objects.exists()
    waiting = Dispatch.objects.get()
    DBTaskResult.objects.all().delete()
    response = csm.post(f"{BASE}/integrations/{hook.pk}/resume/")
    assert response.json()["paused"] is False
    assert tasks(kind="dispatches") == [[hook.pk, [waiting.pk], "scheduled"]]


def test_resume_spreads_a_backlog_over_tasks_for_every_worker_to_share(csm, hook):
    """A backlog resumed as one task would be delivered by one worker at a time."""
    sizes = [600, 300, 200, 2500, 50, 0]
    created = [
        Dispatch.objects.create(
            integration=hook, event_ids=[str(i)] * size, size=size, done=size // 3
        )
        for i, size in enumerate(sizes)
    ]
    hook.paused = True
    hook.save()
    DBTaskResult.objects.all().delete()
    response = csm.post(f"{BASE}/integrations/{hook.pk}/resume/")
    assert response.json()["paused"] is False
    left = [size - size // 3 for size in sizes]
    assert left == [400, 200, 134, 1667, 34, 0]
    first, second, third, fourth, fifth, sixth = (d.pk for d in created)
    # About EVENTS_PER_TASK (1,000) events a task, in order; a bigger dispatch alone.
    assert sorted(args[1] for args in tasks(kind="dispatches")) == [
        [first, second, third],
        [fourth],
        [fifth, sixth],
    ]


def test_dispatches_enqueued_with_their_sizes_are_grouped_by_events_and_count():
    assert _by_events([1, 2, 3], [1000, 1, 999]) == [[1], [2, 3]]
    assert _by_events([1, 2], [0, 5000]) == [[1, 2]]
    many = list(range(IDS_PER_TASK + 1))
    assert _by_events(many, [1] * len(many)) == [many[:IDS_PER_TASK], many[IDS_PER_TASK:]]
    assert _by_events([], []) == []


def test_operations_are_scoped_to_the_workspace(django_user_model, source, hook):
    other = Workspace.objects.create(name="Other", slug="other")
    stranger = django_user_model.objects.create_user("stranger")
    WorkspaceMembership.objects.create(user=stranger, workspace=other, role="admin")
    client = APIClient()
    client.force_authenticate(stranger)
    delivery = delivery_for(source)
    assert client.post(f"{BASE}/deliveries/{delivery.pk}/retry/").status_code == 404
    assert (
        client.post(f"/api/v1/workspaces/other/deliveries/{delivery.pk}/retry/").status_code == 404
    )
    assert client.post(f"/api/v1/workspaces/other/integrations/{hook.pk}/pause/").status_code == 404


def routed_in_passes(source, passes: int, per_pass: int = 3) -> list[int]:
    """Dispatches of ``per_pass`` events each, one routing pass (and task) apiece."""
    for start in range(0, passes * per_pass, per_pass):
        for number in range(start, start + per_pass):
            send(source, type="track", userId=f"u{number}", event="E", messageId=f"p{number}")
        route()
    return list(Dispatch.objects.order_by("pk").values_list("pk", flat=True))


def waiting_task_ids(integration) -> dict[tuple[int, ...], str]:
    ready = DBTaskResult.objects.filter(status="READY", task_path__endswith="deliver_dispatches")
    return {
        tuple(t.args_kwargs["args"][1]): str(t.pk)
        for t in ready
        if t.args_kwargs["args"][0] == integration.pk
    }


def test_a_run_takes_over_the_small_tasks_waiting_for_its_integration(source, hook, workspace):
    first, second, third = routed_in_passes(source, 3)
    other = make_integration(workspace, name="Other")
    enqueue_dispatches(other.pk, [third + 100])
    enqueue_dispatches(hook.pk, [third + 200], trigger="manual")
    tasks_before = waiting_task_ids(hook)
    own = tasks_before[(first,)]
    assert take_over_waiting(own, hook.pk, [first]) == [second, third]
    # Their tasks are gone; the run's own, another integration's and a manual one stay.
    assert set(waiting_task_ids(hook)) == {(first,), (third + 200,)}
    assert len(waiting_task_ids(other)) == 1


def test_a_run_takes_over_no_more_than_a_tasks_worth_of_events(source, hook, monkeypatch):
    first, second, third = routed_in_passes(source, 3)
    monkeypatch.setattr(tasks_module, "EVENTS_PER_TASK", 7)
    own = waiting_task_ids(hook)[(first,)]
    assert take_over_waiting(own, hook.pk, [first]) == [second]  # 3 + 3 events; 9 > 7
    assert set(waiting_task_ids(hook)) == {(first,), (third,)}


def test_a_run_does_without_the_take_over_when_sqlite_is_busy(hook, monkeypatch):
    def busy(*args):
        raise OperationalError("database is locked")

    monkeypatch.setattr(tasks_module, "_take_over", busy)
    assert take_over_waiting("any", hook.pk, [1]) == []
