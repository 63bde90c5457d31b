"""The migration to the exchange log keeps every event, delivery and attempt.

A database is filled with the previous schema (0005: attempts holding their requests and
responses, deliveries holding no attempt of their own), then migrated forward.
"""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("integrations", "0005_event_indexes")]
AFTER = [("integrations", "0008_exchange_log_cleanup")]
INTERRUPTED = "Interrupted: the worker sending this attempt stopped before it finished."
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_apps(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    migrate(executor_leaf())


def executor_leaf():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def fill(apps):
    """One workspace, a webhook and a ChartMogul integration, and deliveries in every
    state the old code left them in."""
    Workspace = apps.get_model("integrations", "Workspace")
    Integration = apps.get_model("integrations", "Integration")
    Event = apps.get_model("integrations", "Event")
    Delivery = apps.get_model("integrations", "Delivery")
    Attempt = apps.get_model("integrations", "DeliveryAttempt")
    workspace = Workspace.objects.create(name="Acme", slug="acme")
    hook = Integration.objects.create(workspace=workspace, name="Hook", kind="webhook")
    cm = Integration.objects.create(workspace=workspace, name="CM", kind="chartmogul")
    events = [
        Event.objects.create(
            workspace=workspace,
            message_id=f"m{n}",
            type="track",
            event="E",
            timestamp=T0,
            received_at=T0 + dt.timedelta(seconds=n),
            payload={"messageId": f"m{n}"},
        )
        for n in range(5)
    ]

    def attempt(delivery, number, status, body="", error="", steps=()):
        return Attempt.objects.create(
            delivery=delivery,
            number=number,
            request_method="POST" if status or error.startswith("timed") else "",
            request_url="https://hooks.example.com/in",
            request_headers={"Authorization": "[REDACTED]"},
            request_body='{"messageId":"x"}',
            response_status=status,
            response_body=body,
            error=error,
            duration_ms=12.5,
            steps=list(steps),
            started_at=T0 + dt.timedelta(minutes=number),
        )

    # Delivered on the third attempt: 500, timed out, 200.
    delivered = Delivery.objects.create(
        event=events[0],
        integration=hook,
        status="delivered",
        attempt_count=3,
        last_status_code=200,
        delivered_at=T0 + dt.timedelta(minutes=4),
        created_at=T0,
    )
    attempt(delivered, 1, 500, "oops", "HTTP 500: oops")
    attempt(delivered, 2, None, error="timed out: read")
    attempt(delivered, 3, 200, "ok")
    # Retrying after an interrupted attempt and a 503.
    retrying = Delivery.objects.create(
        event=events[1],
        integration=hook,
        status="retrying",
        attempt_count=2,
        last_status_code=503,
        last_error="HTTP 503",
        next_attempt_at=T0 + dt.timedelta(hours=1),
        created_at=T0,
    )
    attempt(retrying, 1, None, error=INTERRUPTED)
    attempt(retrying, 2, 503, "busy", "HTTP 503")
    # Failed for good on a 400, from a ChartMogul chain: lookup then write.
    failed = Delivery.objects.create(
        event=events[2],
        integration=cm,
        status="failed",
        attempt_count=1,
        last_status_code=400,
        last_error="HTTP 400: bad",
        created_at=T0,
    )
    attempt(
        failed,
        1,
        400,
        "bad",
        "HTTP 400: bad",
        steps=[
            {
                "request": "GET https://api.chartmogul.com/v1/customers?x=1",
                "status": 200,
                "response": '{"entries":[]}',
                "duration_ms": 3.0,
            }
        ],
    )
    # Never attempted: two for the webhook (one replayed), one paused-and-deferred.
    for event, origin in ((events[3], "live"), (events[4], "replay")):
        Delivery.objects.create(
            event=event,
            integration=hook,
            origin=origin,
            status="pending",
            attempt_count=0,
            next_attempt_at=T0,
            created_at=T0 + dt.timedelta(seconds=3),
            last_error="Deferred: later",
        )
    return workspace


def test_every_event_delivery_and_attempt_is_kept(old_apps):
    fill(old_apps)
    apps = migrate(AFTER)
    Event = apps.get_model("integrations", "Event")
    Delivery = apps.get_model("integrations", "Delivery")
    Attempt = apps.get_model("integrations", "DeliveryAttempt")
    Exchange = apps.get_model("integrations", "Exchange")
    Dispatch = apps.get_model("integrations", "Dispatch")
    assert Event.objects.count() == 5

    by_message = {d.event.message_id: d for d in Delivery.objects.select_related("event")}
    assert sorted(by_message) == ["m0", "m1", "m2"]

    delivered = by_message["m0"]
    assert (delivered.status, delivered.attempt_count, delivered.last_outcome) == (
        "delivered",
        3,
        "delivered",
    )
    assert delivered.exchange.response_status == 200
    earlier = list(Attempt.objects.filter(delivery=delivered).order_by("number"))
    assert [(a.number, a.outcome, a.status_code) for a in earlier] == [
        (1, "retry", 500),
        (2, "retry", None),
    ]
    assert earlier[0].exchange.response_body == "oops"
    assert earlier[1].exchange.error == "timed out: read"

    retrying = by_message["m1"]
    assert (retrying.status, retrying.last_outcome, retrying.attempt_count) == (
        "retrying",
        "retry",
        2,
    )
    assert retrying.next_attempt_at == T0 + dt.timedelta(hours=1)
    (lost,) = Attempt.objects.filter(delivery=retrying)
    assert (lost.outcome, lost.exchange_id) == ("interrupted", None)

    failed = by_message["m2"]
    assert (failed.status, failed.last_outcome, failed.last_error) == (
        "failed",
        "failed",
        "HTTP 400: bad",
    )
    lookup, write = Exchange.objects.filter(pk=failed.exchange_id) | Exchange.objects.filter(
        head_id=failed.exchange_id
    )
    assert sorted([(lookup.step, lookup.method), (write.step, write.method)]) == [
        (0, "GET"),
        (1, "POST"),
    ]
    head = Exchange.objects.get(pk=failed.exchange_id)
    assert head.method == "GET" and head.response_body == '{"entries":[]}'
    assert Exchange.objects.get(head_id=head.pk).response_body == "bad"

    # Never attempted: waiting in dispatches now, by origin.
    dispatches = {d.origin: d for d in Dispatch.objects.all()}
    assert sorted(dispatches) == ["live", "replay"]
    events = {str(e.pk): e.message_id for e in Event.objects.all()}
    assert [events[i] for i in dispatches["live"].event_ids] == ["m3"]
    assert [events[i] for i in dispatches["replay"].event_ids] == ["m4"]
    assert dispatches["live"].waiting_reason == "Deferred: later"
    assert (dispatches["live"].size, dispatches["live"].done) == (1, 0)
    # Every old attempt's request survives as an exchange: 3 + 1 + 2 (a chain).
    assert Exchange.objects.count() == 6


def test_it_can_be_undone(old_apps):
    fill(old_apps)
    migrate(AFTER)
    apps = migrate(BEFORE)
    Delivery = apps.get_model("integrations", "Delivery")
    Attempt = apps.get_model("integrations", "DeliveryAttempt")
    by_message = {d.event.message_id: d for d in Delivery.objects.select_related("event")}
    assert sorted(by_message) == ["m0", "m1", "m2", "m3", "m4"]
    assert {by_message[m].status for m in ("m3", "m4")} == {"pending"}
    attempts = Attempt.objects.filter(delivery=by_message["m0"]).order_by("number")
    assert [(a.number, a.response_status) for a in attempts] == [(1, 500), (2, None), (3, 200)]
    (chain,) = Attempt.objects.filter(delivery=by_message["m2"])
    assert (chain.request_method, chain.response_body) == ("POST", "bad")
    assert chain.steps[0]["request"].startswith("GET https://api.chartmogul.com/v1/customers")
