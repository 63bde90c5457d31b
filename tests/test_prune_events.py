"""Retention: prune_events deletes old traffic in batches and keeps what still waits."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations.models import Delivery, DeliveryAttempt, Event
from tests.test_fanout import make_integration, send


def age(message_id: str, days: int) -> None:
    then = timezone.now() - dt.timedelta(days=days)
    Event.objects.filter(message_id=message_id).update(received_at=then)


def test_old_events_go_with_their_deliveries_and_attempts(source, workspace):
    make_integration(workspace)
    for number in range(5):
        send(source, type="track", userId="u", event="E", messageId=f"old-{number}")
        age(f"old-{number}", 40)
    send(source, type="track", userId="u", event="E", messageId="recent")
    Delivery.objects.update(status=Delivery.Status.DELIVERED)
    for delivery in Delivery.objects.all():
        DeliveryAttempt.objects.create(delivery=delivery, number=1, response_status=200)
    out = StringIO()
    call_command("prune_events", "--days", "30", "--batch-size", "2", stdout=out)
    assert list(Event.objects.values_list("message_id", flat=True)) == ["recent"]
    assert Delivery.objects.count() == 1
    assert DeliveryAttempt.objects.count() == 1
    # Progress, batch by batch.
    assert "2/5 events deleted" in out.getvalue()
    assert "5/5 events deleted" in out.getvalue()


def test_events_whose_deliveries_still_wait_are_kept(source, workspace):
    make_integration(workspace)
    send(source, type="track", userId="u", event="E", messageId="waiting")
    age("waiting", 40)
    call_command("prune_events", "--days", "30", stdout=StringIO())
    assert Event.objects.filter(message_id="waiting").exists()


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
