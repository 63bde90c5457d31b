"""Retention: prune_events deletes old traffic in batches and keeps what still waits."""

import datetime as dt
import re
from io import StringIO

import pytest
import responses
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations import deletion as deletions
from integrations import retention
from integrations.models import (
    DeletionRequest,
    Delivery,
    DeliveryAttempt,
    Dispatch,
    Event,
    Exchange,
    Integration,
    RoutingJob,
    Source,
    Workspace,
)
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, route, send

URL = "https://hooks.example.com/in"
CIO_BATCH = "https://track.customer.io/api/v2/batch"
CHARTMOGUL = "https://api.chartmogul.com/v1"


def age(message_id: str, days: int) -> None:
    then = timezone.now() - dt.timedelta(days=days)
    Event.objects.filter(message_id=message_id).update(received_at=then)


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_events", "--days", "30", *args, stdout=out)
    return out.getvalue()


def message_ids() -> list[str]:
    return sorted(Event.objects.values_list("message_id", flat=True))


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
    out = prune("--batch-size", "2", "--verbosity", "2")
    assert message_ids() == ["recent"]
    assert Delivery.objects.count() == 1
    assert DeliveryAttempt.objects.count() == 1
    assert Exchange.objects.count() == 2
    # Progress, batch by batch.
    assert f"{workspace.slug}: 5 events to delete" in out
    for done in ("2/5", "4/5", "5/5"):
        assert f"{workspace.slug}: {done} events deleted" in out
    assert "Deleted 5 events, 5 deliveries, 5 earlier attempts, 10 exchanges" in out


def test_progress_at_the_default_verbosity_is_not_a_line_per_batch(source, workspace):
    make_integration(workspace, paused=True)
    for number in range(4):
        send(source, type="track", userId="u", event="E", messageId=f"old-{number}")
        age(f"old-{number}", 40)
    RoutingJob.objects.all().delete()  # routed long ago, and paused: nothing waits
    out = prune("--batch-size", "1")
    assert out.count("events deleted") == 1  # the workspace's last line
    assert f"{workspace.slug}: 4/4 events deleted" in out


def test_a_batch_exchange_stays_while_a_delivery_it_carried_stays(source, workspace):
    make_integration(workspace, kind="customerio")
    with responses.RequestsMock() as vendor:
        vendor.post(CIO_BATCH, status=200, json={})
        for message_id in ("old", "new"):
            send(source, type="track", userId="u", event="E", messageId=message_id)
        deliver_due()
    age("old", 40)
    prune()
    assert message_ids() == ["new"]
    assert Delivery.objects.get().exchange_id == Exchange.objects.get().pk
    # Once the last delivery it carried goes, the exchange goes too.
    age("new", 40)
    prune()
    assert (Event.objects.count(), Delivery.objects.count(), Exchange.objects.count()) == (0, 0, 0)


def test_a_multi_step_attempt_goes_with_every_step(source, workspace):
    chartmogul = Integration(workspace=workspace, name="ChartMogul", kind="chartmogul")
    chartmogul.set_settings({"mode": "rest", "api_key": "k", "data_source_uuid": "ds_1"})
    chartmogul.save()
    with responses.RequestsMock() as vendor:
        vendor.get(f"{CHARTMOGUL}/customers", json={"entries": [], "has_more": False})
        vendor.post(f"{CHARTMOGUL}/customers", status=201, json={"uuid": "cus_1"})
        send(source, type="group", anonymousId="a", groupId="acme", messageId="g1")
        deliver_due(chartmogul)
    assert Exchange.objects.filter(head__isnull=False).count() == 1  # a chain of two
    age("g1", 40)
    out = prune()
    assert (Delivery.objects.count(), Exchange.objects.count()) == (0, 0)
    assert "2 exchanges" in out


def test_events_waiting_in_a_dispatch_are_kept_and_hold_only_their_workspace(source, workspace):
    make_integration(workspace, paused=True)
    send(source, type="track", userId="u", event="E", messageId="waiting")
    route()
    age("waiting", 40)
    Dispatch.objects.update(created_at=Event.objects.get().received_at)
    other = Workspace.objects.create(name="Other", slug="other")
    other_source = Source.objects.create(workspace=other, name="Other source")
    send(other_source, type="track", userId="u", event="E", messageId="elsewhere")
    age("elsewhere", 40)
    out = prune()
    assert message_ids() == ["waiting"]
    assert "waits in a dispatch of Hook (paused)" in out


def test_events_received_after_the_earliest_waiting_one_are_kept(source, workspace):
    make_integration(workspace, paused=True)
    send(source, type="track", userId="u", event="E", messageId="waiting")
    route()
    age("waiting", 45)
    Dispatch.objects.update(created_at=Event.objects.get().received_at)
    for message_id, days in (("before", 50), ("after", 40)):
        send(source, type="track", userId="u", event="E", messageId=message_id)
        age(message_id, days)
    RoutingJob.objects.all().delete()  # as if routed elsewhere long ago
    prune()
    assert message_ids() == ["after", "waiting"]


def test_events_not_routed_yet_are_kept(source, workspace):
    make_integration(workspace)
    send(source, type="track", userId="u", event="E", messageId="unrouted")
    age("unrouted", 40)
    RoutingJob.objects.update(created_at=Event.objects.get().received_at)
    out = prune()
    assert message_ids() == ["unrouted"]
    assert "is not routed yet" in out


def test_events_with_a_delivery_to_retry_are_kept_with_their_log(source, workspace):
    make_integration(workspace)
    with responses.RequestsMock() as vendor:
        vendor.post(URL, status=503)
        vendor.post(URL, status=200)
        send(source, type="track", userId="u", event="E", messageId="retrying")
        send(source, type="track", userId="v", event="E", messageId="delivered")
        deliver_due()
    retrying = Delivery.objects.get(status=Delivery.Status.RETRYING)
    age("retrying", 40)
    age("delivered", 40)
    out = prune("--batch-size", "1")
    assert message_ids() == ["retrying"]
    assert Delivery.objects.get() == retrying
    assert Exchange.objects.get().pk == retrying.exchange_id
    assert "1 kept (retrying or being sent)" in out
    assert "kept 1 old events with a delivery retrying or being sent" in out


def test_an_event_a_worker_is_sending_is_kept(source, workspace):
    make_integration(workspace)
    with responses.RequestsMock() as vendor:
        vendor.post(URL, status=400)  # failed: no retry scheduled
        send(source, type="track", userId="u", event="E", messageId="resent")
        deliver_due()
    # An operator's manual retry, claimed by a worker that is sending it now.
    Delivery.objects.update(leased_until=timezone.now() + dt.timedelta(seconds=30))
    age("resent", 40)
    prune()
    assert message_ids() == ["resent"]
    Delivery.objects.update(leased_until=timezone.now() - dt.timedelta(seconds=1))
    prune()  # an expired lease holds nothing
    assert message_ids() == []


def test_events_a_replay_will_send_are_kept(source, workspace):
    hook = make_integration(workspace, paused=True)
    for message_id, days in (("before", 50), ("replayed", 45), ("after", 40)):
        send(source, type="track", userId="u", event="E", messageId=message_id)
        age(message_id, days)
    RoutingJob.objects.all().delete()  # routed long ago
    replayed = Event.objects.get(message_id="replayed")
    Dispatch.objects.create(integration=hook, origin="replay", event_ids=[str(replayed.pk)], size=1)
    out = prune()
    assert message_ids() == ["after", "replayed"]
    assert "waits in a replay of Hook (paused)" in out


def test_a_replay_holds_from_its_first_event_not_yet_attempted(source, workspace):
    hook = make_integration(workspace, paused=True)
    for message_id, days in (("sent", 50), ("next", 45)):
        send(source, type="track", userId="u", event="E", messageId=message_id)
        age(message_id, days)
    RoutingJob.objects.all().delete()
    ids = [str(Event.objects.get(message_id=m).pk) for m in ("sent", "next")]
    Dispatch.objects.create(integration=hook, origin="replay", event_ids=ids, size=2, done=1)
    prune()
    assert message_ids() == ["next"]


def test_a_deletion_request_outlives_its_internal_event(source, workspace):
    customerio = make_integration(workspace, kind="customerio")
    with responses.RequestsMock() as vendor:
        vendor.post("https://track.customer.io/api/v2/entity", status=200, json={})
        deletion = deletions.submit(
            workspace,
            deletions.deletion_message("delete", "u1", received_at=timezone.now()),
            via=DeletionRequest.Via.API,
        )
        deliver_due(customerio)
    Event.objects.update(received_at=timezone.now() - dt.timedelta(days=40))
    assert retention.links_deletions(workspace.pk, timezone.now())
    prune()
    assert not retention.links_deletions(workspace.pk, timezone.now())
    deletion.refresh_from_db()
    assert deletion.event is None
    assert Event.objects.count() == 0


def test_events_received_at_the_same_instant_are_walked_past_those_kept(source, workspace):
    make_integration(workspace)
    with responses.RequestsMock() as vendor:
        vendor.post(URL, status=503)
        for number in range(3):
            send(source, type="track", userId=f"r{number}", event="E", messageId=f"r{number}")
        deliver_due()
    RoutingJob.objects.all().delete()
    for number in range(3):
        send(source, type="track", userId=f"d{number}", event="E", messageId=f"d{number}")
    RoutingJob.objects.all().delete()
    Event.objects.update(received_at=timezone.now() - dt.timedelta(days=40))  # one instant
    prune("--batch-size", "2")
    assert message_ids() == ["r0", "r1", "r2"]


def test_a_batch_costs_the_same_queries_whatever_its_size(
    source, workspace, django_assert_num_queries
):
    make_integration(workspace)
    with responses.RequestsMock() as vendor:
        vendor.post(URL, status=200)
        for number in range(6):
            send(source, type="track", userId="u", event="E", messageId=f"m{number}")
        deliver_due()
    ids = list(Event.objects.order_by("message_id").values_list("pk", flat=True))
    with django_assert_num_queries(QUERIES_PER_BATCH):
        assert retention.prune_batch(ids[:1]).events == 1
    with django_assert_num_queries(QUERIES_PER_BATCH):
        assert retention.prune_batch(ids[1:3]).events == 2
    # Without deletion requests to unlink, one query less.
    with django_assert_num_queries(QUERIES_PER_BATCH - 1):
        assert retention.prune_batch(ids[3:], deletions=False).events == 3


# SAVEPOINT/RELEASE, deliveries locked, attempts' exchanges, attempts, deliveries,
# deletion requests, search entries, events, exchanges checked, steps, exchanges.
QUERIES_PER_BATCH = 12


def test_every_row_that_refers_to_what_is_pruned_is_handled():
    """prune_batch deletes with plain DELETEs: a new relation to these models (a foreign
    key Django would cascade to, or set null) must be handled there too."""

    def relations(model):
        return sorted(
            (r.related_model.__name__, r.field.name, r.on_delete.__name__)
            for r in model._meta.related_objects
        )

    assert relations(Event) == [
        ("DeletionRequest", "event", "SET_NULL"),
        ("Delivery", "event", "CASCADE"),
        ("EventSearchEntry", "event", "CASCADE"),
    ]
    assert relations(Delivery) == [("DeliveryAttempt", "delivery", "CASCADE")]
    assert relations(Exchange) == [
        ("Delivery", "exchange", "DO_NOTHING"),
        ("DeliveryAttempt", "exchange", "DO_NOTHING"),
        ("Exchange", "head", "CASCADE"),
    ]


def finished_task(status: str, days: int) -> DBTaskResult:
    then = timezone.now() - dt.timedelta(days=days)
    return DBTaskResult.objects.create(
        args_kwargs={"args": [], "kwargs": {}},
        task_path="integrations.delivery.tasks.deliver_dispatches",
        backend_name="default",
        run_after=then,
        status=status,
        finished_at=then if status != "READY" else None,
    )


def test_finished_task_rows_are_pruned_in_batches(db):
    for status in ("SUCCESSFUL", "FAILED", "READY"):
        finished_task(status, 45)
    finished_task("SUCCESSFUL", 40)
    recent = finished_task("SUCCESSFUL", 1)
    out = prune("--batch-size", "2", "--verbosity", "2")
    assert sorted(DBTaskResult.objects.values_list("status", flat=True)) == [
        "READY",
        "SUCCESSFUL",
    ]
    assert DBTaskResult.objects.filter(pk=recent.pk).exists()
    assert "finished task rows: 2 deleted" in out
    assert "finished task rows: 3 deleted" in out
    assert "and 3 finished task rows" in out


def test_finished_task_rows_have_their_index(db):
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, DBTaskResult._meta.db_table)
    assert indexes["integrations_task_finished"]["columns"] == ["finished_at"]


@pytest.mark.parametrize(
    "args",
    [("--days", "0"), ("--batch-size", "0"), ("--batch-size", "10001"), ("--pause", "-1")],
)
def test_bad_options_are_refused(db, args):
    with pytest.raises(CommandError):
        call_command("prune_events", *args, stdout=StringIO())


def plan(queryset) -> str:
    """The PostgreSQL plan of a query with sequential scans and full sorts off: what the
    planner does on tables large enough (on the tiny test tables, a scan or a sort of
    everything wins)."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_batches_walk_indexes(workspace):
    now = timezone.now()
    after = (now - dt.timedelta(days=40), Event().pk)
    for events in (
        retention.old_events(workspace.pk, now),
        retention.old_events(workspace.pk, now, after),
    ):
        shown = plan(events.values_list("received_at", "pk")[:1000])
        # Along the index from ``after`` on; only events received at the same instant are
        # sorted by id.
        assert "Index Scan Backward using event_ws_received" in shown
        assert "Presorted Key: received_at" in shown
        assert not re.search(r"(^|->  )Sort  \(", shown, re.MULTILINE)
    tasks = plan(retention.finished_tasks(now).values("pk")[:1000])
    assert "Index Scan using integrations_task_finished" in tasks
