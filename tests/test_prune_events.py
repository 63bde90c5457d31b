"""Retention: prune_events deletes old traffic in batches and keeps what still waits."""

import datetime as dt
from io import StringIO

import pytest
import responses
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations.models import (
    Delivery,
    DeliveryAttempt,
    Dispatch,
    Event,
    Exchange,
    RoutingJob,
)
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, route, send

URL = "https://hooks.example.com/in"


def age(message_id: str, days: int) -> None:
    then = timezone.now() - dt.timedelta(days=days)
    Event.objects.filter(message_id=message_id).update(received_at=then)


def delivered_twice(source, message_id: str) -> None:
    """An event delivered on its second attempt: two exchanges, one earlier attempt."""
    with responses.RequestsMock() as vendor:
        vendor.post(URL, status=500)
        vendor.post(URL, status=200)
        send(source, type="track", userId="u", event="E", messageId=message_id)
        deliver_due()
        Delivery.objects.update(next_attempt_at=timezone.now())
        deliver_due()


def test_old_events_go_with_their_deliveries_attempts_and_exchanges(source, workspace):
    make_integration(workspace)
    for number in range(5):
        delivered_twice(source, f"old-{number}")
        age(f"old-{number}", 40)
    delivered_twice(source, "recent")
    assert (Delivery.objects.count(), DeliveryAttempt.objects.count()) == (6, 6)
    assert Exchange.objects.count() == 12
    out = StringIO()
    call_command("prune_events", "--days", "30", "--batch-size", "2", stdout=out)
    assert list(Event.objects.values_list("message_id", flat=True)) == ["recent"]
    assert Delivery.objects.count() == 1
    assert DeliveryAttempt.objects.count() == 1
    assert Exchange.objects.count() == 2
    # Progress, batch by batch.
    assert "2/5 events deleted" in out.getvalue()
    assert "5/5 events deleted" in out.getvalue()
    assert "Deleted 5 events, 5 deliveries, 10 exchanges" in out.getvalue()


def test_a_batch_exchange_stays_while_a_delivery_it_carried_stays(source, workspace):
    make_integration(workspace, kind="customerio")
    with responses.RequestsMock() as vendor:
        vendor.post("https://track.customer.io/api/v2/batch", status=200, json={})
        for message_id in ("old", "new"):
            send(source, type="track", userId="u", event="E", messageId=message_id)
        deliver_due()
    age("old", 40)
    call_command("prune_events", "--days", "30", stdout=StringIO())
    assert list(Event.objects.values_list("message_id", flat=True)) == ["new"]
    assert Delivery.objects.get().exchange_id == Exchange.objects.get().pk


def test_events_waiting_in_a_dispatch_are_kept(source, workspace):
    make_integration(workspace, paused=True)
    send(source, type="track", userId="u", event="E", messageId="waiting")
    route()
    age("waiting", 40)
    Dispatch.objects.update(created_at=Event.objects.get().received_at)
    call_command("prune_events", "--days", "30", stdout=StringIO())
    assert Event.objects.filter(message_id="waiting").exists()


def test_events_with_a_delivery_to_retry_are_kept(source, workspace):
    make_integration(workspace)
    with responses.RequestsMock() as vendor:
        vendor.post(URL, status=503)
        send(source, type="track", userId="u", event="E", messageId="retrying")
        deliver_due()
    assert Delivery.objects.get().status == Delivery.Status.RETRYING
    age("retrying", 40)
    call_command("prune_events", "--days", "30", stdout=StringIO())
    assert Event.objects.filter(message_id="retrying").exists()


def test_events_a_replay_will_send_are_kept(source, workspace):
    hook = make_integration(workspace, paused=True)
    for message_id in ("replayed", "not-replayed"):
        send(source, type="track", userId="u", event="E", messageId=message_id)
        age(message_id, 40)
    RoutingJob.objects.all().delete()  # routed long ago
    replayed = Event.objects.get(message_id="replayed")
    Dispatch.objects.create(integration=hook, origin="replay", event_ids=[str(replayed.pk)], size=1)
    call_command("prune_events", "--days", "30", stdout=StringIO())
    assert list(Event.objects.values_list("message_id", flat=True)) == ["replayed"]


def test_finished_task_rows_are_pruned(db, settings):
    old = timezone.now() - dt.timedelta(days=45)
    for status in ("SUCCESSFUL", "FAILED", "READY"):
        DBTaskResult.objects.create(
            args_kwargs={"args": [], "kwargs": {}},
            task_path="integrations.delivery.tasks.deliver",
            backend_name="default",
            run_after=old,
            status=status,
            finished_at=old if status != "READY" else None,
        )
    call_command("prune_events", stdout=StringIO())
    assert list(DBTaskResult.objects.values_list("status", flat=True)) == ["READY"]


def test_days_must_be_positive(db):
    with pytest.raises(SystemExit):
        call_command("prune_events", "--days", "0", stdout=StringIO(), stderr=StringIO())
