"""The one-statement insert of the hot paths: what it stores reads back as the ORM wrote it."""

import datetime as dt
import uuid

from django.db import connection

from integrations import bulk_insert
from integrations.models import Delivery, Event, Exchange, Integration
from tests.test_fanout import make_integration

MOMENT = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)


def test_primary_keys_come_back_in_the_order_of_the_rows(workspace):
    hook = make_integration(workspace)
    rows = [
        Exchange(integration=hook, method="POST", url=f"https://x.example.com/{n}")
        for n in range(700)
    ]
    keys = bulk_insert.insert(rows)
    assert keys == [row.pk for row in rows]
    stored = dict(Exchange.objects.values_list("pk", "url"))
    assert all(stored[row.pk] == row.url for row in rows)


def test_every_type_reads_back_as_written(workspace):
    hook = make_integration(workspace)
    payload = {"text": 'Say "hi" \\ José 😀', "n": 1.5, "ok": True, "none": None, "list": [1]}
    event = Event(
        id=uuid.uuid4(),
        workspace=workspace,
        message_id="m-1",
        type="track",
        event="E",
        timestamp=MOMENT,
        received_at=MOMENT,
        payload=payload,
        is_test=True,
    )
    assert bulk_insert.insert([event]) == [event.pk]
    stored = Event.objects.get(pk=event.pk)
    assert (stored.timestamp, stored.payload, stored.is_test) == (MOMENT, payload, True)
    assert (stored.sent_at, stored.source_id) == (None, None)
    exchange = Exchange(
        integration=hook,
        method="POST",
        url="https://x.example.com",
        request_headers={"A": "1"},
        response_status=207,
        duration_ms=1.25,
        started_at=MOMENT,
    )
    bulk_insert.insert([exchange])
    token = uuid.uuid4()
    delivery = Delivery(
        event=event,
        integration=hook,
        status="retrying",
        last_outcome="retry",
        next_attempt_at=MOMENT,
        exchange=exchange,
        lease_token=token,
    )
    delivery.exchange_id = exchange.pk
    bulk_insert.insert([delivery])
    stored = Delivery.objects.get(pk=delivery.pk)
    assert (stored.next_attempt_at, stored.exchange_id, stored.lease_token) == (
        MOMENT,
        exchange.pk,
        token,
    )
    assert Exchange.objects.get().request_headers == {"A": "1"}
    assert Integration.objects.get().pk == hook.pk


def test_conflicting_rows_are_skipped_and_only_written_keys_returned(workspace):
    def event(message_id: str) -> Event:
        return Event(
            id=uuid.uuid4(),
            workspace=workspace,
            message_id=message_id,
            type="track",
            timestamp=MOMENT,
            received_at=MOMENT,
            payload={},
        )

    first = event("same")
    bulk_insert.insert([first])
    again, other = event("same"), event("other")
    written = bulk_insert.insert([again, other], conflict="(workspace_id, message_id)")
    assert written == [other.pk]
    assert Event.objects.count() == 2


def test_timestamps_are_stored_as_the_orm_stores_them(workspace):
    """Compared as stored (SQLite compares timestamps as text): whole seconds, another
    offset and the same instant in many rows, beside rows the ORM wrote."""
    moments = [
        MOMENT,
        MOMENT.replace(microsecond=0),
        MOMENT.astimezone(dt.timezone(dt.timedelta(hours=-5))),
        MOMENT,
    ]

    def event(number: int, moment: dt.datetime) -> Event:
        return Event(
            id=uuid.uuid4(),
            workspace=workspace,
            message_id=f"m-{number}",
            type="track",
            timestamp=moment,
            received_at=moment,
            payload={},
        )

    ours = [event(n, moment) for n, moment in enumerate(moments)]
    bulk_insert.insert(ours)
    theirs = [event(n + 10, moment) for n, moment in enumerate(moments)]
    Event.objects.bulk_create(theirs)
    with connection.cursor() as cursor:
        table = Event._meta.db_table
        cursor.execute(f"SELECT message_id, CAST(received_at AS TEXT) FROM {table}")  # noqa: S608
        stored = dict(cursor.fetchall())
    for n in range(len(moments)):
        assert stored[f"m-{n}"] == stored[f"m-{n + 10}"]
