"""The delivery engine with the vendor faked by ``responses``: outcomes, retries, log."""

import base64
import datetime as dt
import json
from unittest import mock

import pytest
import requests
import responses
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from standardwebhooks.webhooks import Webhook as StandardWebhook

from integrations.delivery import engine, http, schedule
from integrations.delivery.engine import INTERRUPTED
from integrations.delivery.tasks import QUEUE
from integrations.destinations.base import OutboundRequest
from integrations.models import (
    Delivery,
    DeliveryAttempt,
    Dispatch,
    Exchange,
    Integration,
    Outcome,
    Trigger,
)
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, exchanges_of, route, send

URL = "https://hooks.example.com/in"


@pytest.fixture
def hook(workspace):
    integration = make_integration(workspace)
    integration.set_settings({"url": URL, "headers": {"X-Api-Key": "custom-header-secret"}})
    integration.save()
    return integration


def accept(source, **fields) -> None:
    message = {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m1"}
    send(source, **{**message, **fields})


def one_delivery(source, **fields) -> Delivery:
    """Accept a message and make its first attempt: its delivery."""
    accept(source, **fields)
    deliver_due()
    return Delivery.objects.get(event__message_id=fields.get("messageId", "m1"))


def run(delivery: Delivery, trigger: str = Trigger.SCHEDULED) -> Delivery:
    """Another attempt of a delivery, as its task would make it."""
    engine.deliver_deliveries(delivery.integration_id, [delivery.pk], trigger, QUEUE)
    delivery.refresh_from_db()
    return delivery


def make_due(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    Integration.objects.filter(pk=delivery.integration_id).update(deferred_until=None)


@responses.activate
def test_2xx_delivers_and_logs_the_exchange(source, hook):
    responses.post(URL, status=202, json={"ok": True}, headers={"X-Request-Id": "r1"})
    delivery = one_delivery(source)
    assert delivery.status == Delivery.Status.DELIVERED
    assert delivery.attempt_count == 1
    assert delivery.delivered_at is not None
    assert delivery.latency > dt.timedelta(0)
    (attempt,) = delivery.attempt_log()
    assert attempt.number == 1
    assert attempt.trigger == Trigger.SCHEDULED
    assert attempt.outcome == Outcome.DELIVERED
    exchange = delivery.exchange
    assert exchange.method == "POST"
    assert exchange.url == URL
    assert json.loads(exchange.request_body)["event"] == "Signed Up"
    assert exchange.response_status == 202
    assert exchange.response_headers["X-Request-Id"] == "r1"
    assert json.loads(exchange.response_body) == {"ok": True}
    assert exchange.duration_ms >= 0


@responses.activate
def test_a_first_try_success_writes_the_delivery_once(source, hook):
    """One insert for the delivery (none for an attempt row, no update), one exchange."""
    responses.post(URL, status=200)
    accept(source)
    route()
    with CaptureQueriesContext(connection) as queries:
        deliver_due(hook)
    delivery_table = Delivery._meta.db_table
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if delivery_table in q["sql"] and not q["sql"].lstrip().upper().startswith("SELECT")
    ]
    assert len(writes) == 1 and writes[0].lstrip().upper().startswith("INSERT"), writes
    assert Delivery.objects.count() == 1
    assert DeliveryAttempt.objects.count() == 0
    assert Exchange.objects.count() == 1
    assert not Dispatch.objects.exists()


@responses.activate
def test_webhook_is_signed_per_standard_webhooks(source, hook):
    responses.post(URL, status=200)
    one_delivery(source)
    sent = responses.calls[0].request
    secret = hook.secret_settings["secret"]
    payload = StandardWebhook(secret).verify(sent.body, dict(sent.headers))
    assert payload["messageId"] == "m1"
    assert sent.headers["webhook-id"] == "m1"
    assert sent.headers["X-Api-Key"] == "custom-header-secret"
    assert sent.headers["User-Agent"].startswith("integration-console/")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
@responses.activate
def test_retryable_statuses_schedule_a_retry(
    source, hook, status, django_capture_on_commit_callbacks
):
    responses.post(URL, status=status, body="busy")
    with django_capture_on_commit_callbacks(execute=True):
        delivery = one_delivery(source)
    assert delivery.status == Delivery.Status.RETRYING
    assert delivery.next_attempt_at > timezone.now() - dt.timedelta(seconds=1)
    assert delivery.last_error == f"HTTP {status}: busy"
    assert delivery.last_status_code == status
    (retry_task,) = [
        task
        for task in DBTaskResult.objects.filter(status="READY", task_path__endswith="deliveries")
        if task.args_kwargs["args"][1] == [delivery.pk]
        and task.run_after == delivery.next_attempt_at
    ]
    assert retry_task.args_kwargs["args"][2] == "scheduled"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 301, 302])
@responses.activate
def test_other_4xx_and_3xx_fail_at_once(source, hook, status):
    responses.post(URL, status=status, headers={"Location": "https://elsewhere.example.com"})
    delivery = one_delivery(source)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_count == 1
    assert str(status) in delivery.last_error
    assert delivery.next_attempt_at is None
    if status in (301, 302):
        assert "redirects are not followed" in delivery.last_error


@responses.activate
def test_410_fails_and_flags_the_integration(source, hook):
    responses.post(URL, status=410)
    delivery = one_delivery(source)
    assert delivery.status == Delivery.Status.FAILED
    hook.refresh_from_db()
    assert "gone" in hook.flagged_reason
    assert hook.flagged_at is not None
    record = hook.history.first()
    assert record.history_change_reason.startswith("Flagged by the delivery worker")
    assert (record.flagged_reason, record.history_user) == (hook.flagged_reason, None)


@responses.activate
def test_a_later_success_clears_the_410_flag(source, hook):
    responses.post(URL, status=410)
    one_delivery(source)
    responses.replace(responses.POST, URL, status=200)
    one_delivery(source, messageId="m2")
    hook.refresh_from_db()
    assert (hook.flagged_reason, hook.flagged_at) == ("", None)
    assert hook.history.first().history_change_reason.startswith("Flag cleared")


@responses.activate
def test_editing_the_integration_clears_the_410_flag(source, hook):
    responses.post(URL, status=410)
    one_delivery(source)
    hook.refresh_from_db()
    hook.set_settings({"url": "https://hooks.example.com/v2"})
    hook.save()
    hook.refresh_from_db()
    assert (hook.flagged_reason, hook.flagged_at) == ("", None)


@responses.activate
def test_connection_error_retries(source, hook):
    responses.post(URL, body=requests.ConnectionError("refused"))
    delivery = one_delivery(source)
    assert delivery.status == Delivery.Status.RETRYING
    assert "connection failed (hooks.example.com): refused" in delivery.last_error


@responses.activate
def test_retries_until_the_schedule_is_used_up(source, hook, settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 0
    responses.post(URL, status=500)
    delivery = one_delivery(source)
    for _ in range(schedule.MAX_ATTEMPTS - 1):
        make_due(delivery)
        delivery = run(delivery)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_count == schedule.MAX_ATTEMPTS
    assert delivery.last_error.startswith(f"Gave up after {schedule.MAX_ATTEMPTS} attempts")
    assert [a.number for a in delivery.attempt_log()] == list(range(1, schedule.MAX_ATTEMPTS + 1))
    # Each attempt refers to its own exchange.
    assert len({a.exchange_id for a in delivery.attempt_log()}) == schedule.MAX_ATTEMPTS


def test_default_schedule_covers_four_hours(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 1
    assert sum(schedule.RETRY_DELAYS) * (1 - schedule.JITTER) > 4 * 3600


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120), ("0", 0), ("999999", 3600), ("soon", None), (None, None)],
)
def test_retry_after_is_parsed_and_clamped(header, expected):
    assert schedule.retry_after_seconds(header) == expected


def test_retry_after_http_date():
    now = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert schedule.retry_after_seconds("Mon, 01 Jan 2024 12:01:00 GMT", now) == 60


@responses.activate
def test_retry_after_is_honoured(source, hook):
    responses.post(URL, status=429, headers={"Retry-After": "300"})
    before = timezone.now()
    delivery = one_delivery(source)
    assert delivery.next_attempt_at >= before + dt.timedelta(seconds=300)


@responses.activate
def test_not_due_delivery_is_left_alone(source, hook):
    responses.post(URL, status=500)
    delivery = one_delivery(source)
    delivery = run(delivery)
    assert delivery.attempt_count == 1


@responses.activate
def test_manual_retry_of_failed_delivery_is_marked_and_keeps_schedule(source, hook):
    responses.post(URL, status=400)
    responses.post(URL, status=400)
    responses.post(URL, status=200)
    delivery = one_delivery(source)
    assert delivery.status == Delivery.Status.FAILED
    delivery = run(delivery, "manual")
    assert delivery.status == Delivery.Status.FAILED
    assert (delivery.attempt_count, delivery.manual_attempt_count) == (2, 1)
    delivery = run(delivery, "manual")
    assert delivery.status == Delivery.Status.DELIVERED
    triggers = [a.trigger for a in delivery.attempt_log()]
    assert triggers == ["scheduled", "manual", "manual"]


@responses.activate
def test_manual_attempt_does_not_move_the_automatic_schedule(source, hook):
    responses.post(URL, status=500)
    delivery = one_delivery(source)
    scheduled_at = delivery.next_attempt_at
    delivery = run(delivery, "manual")
    assert delivery.status == Delivery.Status.RETRYING
    assert delivery.next_attempt_at == scheduled_at
    assert delivery.scheduled_attempt_count == 1


@responses.activate
def test_expired_lease_is_logged_as_interrupted_and_sent_again(source, hook):
    responses.post(URL, status=500)
    responses.post(URL, status=200)
    delivery = one_delivery(source)
    # A worker claimed it for a retry, then died: the lease ran out.
    Delivery.objects.filter(pk=delivery.pk).update(
        leased_until=timezone.now() - dt.timedelta(seconds=1), next_attempt_at=timezone.now()
    )
    delivery = run(delivery)
    assert delivery.status == Delivery.Status.DELIVERED
    first, lost, third = delivery.attempt_log()
    assert first.status_code == 500
    assert (lost.outcome, lost.error, lost.exchange_id) == (Outcome.INTERRUPTED, INTERRUPTED, None)
    assert third.status_code == 200
    assert delivery.attempt_count == 3


@responses.activate
def test_a_dispatch_whose_worker_died_is_taken_over(source, hook):
    """Events the stopped worker had handed to requests are logged as interrupted, those
    it had recorded are not sent again, those it had not reached go out as usual."""
    responses.post(URL, status=200)
    for number in range(4):
        accept(source, messageId=f"m{number}")
    route()
    dispatch = Dispatch.objects.get()
    deliver_due()  # everything delivered: now pretend the worker died after two events
    recorded = list(Delivery.objects.order_by("pk"))
    Delivery.objects.filter(pk__in=[d.pk for d in recorded[2:]]).delete()
    Dispatch.objects.create(
        pk=dispatch.pk,
        integration=hook,
        event_ids=dispatch.event_ids,
        size=4,
        done=1,
        started=3,
        taken=True,
        created_at=dispatch.created_at,
        leased_until=timezone.now() - dt.timedelta(seconds=1),
    )
    responses.calls.reset()
    deliver_due()
    by_message = {d.event.message_id: d for d in Delivery.objects.select_related("event")}
    assert sorted(by_message) == ["m0", "m1", "m2", "m3"]
    assert [by_message[m].attempt_count for m in ("m0", "m1", "m2", "m3")] == [1, 1, 2, 1]
    assert by_message["m2"].attempt_log()[0].outcome == Outcome.INTERRUPTED
    sent = [json.loads(call.request.body)["messageId"] for call in responses.calls]
    assert sent == ["m2", "m3"]
    assert not Dispatch.objects.exists()


@responses.activate
def test_an_interrupted_event_written_before_its_new_attempt_is_not_handed_to_another_run(
    source, hook, monkeypatch
):
    """The interrupted attempt is written (a flush) before the run sends the event again:
    the delivery stays this run's, not a retry that another worker would send too."""
    monkeypatch.setattr(engine, "FLUSH_EVERY", 1)
    responses.post(URL, status=200)
    accept(source, messageId="m0")
    accept(source, messageId="m1")
    route()
    dispatch = Dispatch.objects.get()
    Dispatch.objects.filter(pk=dispatch.pk).update(
        started=2, taken=True, leased_until=timezone.now() - dt.timedelta(seconds=1)
    )
    with mock.patch.object(
        engine.Run, "flush", autospec=True, side_effect=engine.Run.flush
    ) as flush:
        deliver_due()
    assert flush.call_count > 1  # written between the two sends
    assert not DBTaskResult.objects.filter(task_path__endswith="deliver_deliveries").exists()
    deliveries = Delivery.objects.order_by("pk")
    assert [(d.status, d.attempt_count) for d in deliveries] == [(Delivery.Status.DELIVERED, 2)] * 2
    sent = [json.loads(call.request.body)["messageId"] for call in responses.calls]
    assert sent == ["m0", "m1"]


def test_an_interrupted_event_being_sent_again_keeps_its_lease_renewed(source, hook):
    """Written as interrupted, it is held by the run's lease, renewed like the run's
    dispatches, until the new attempt's outcome is recorded."""
    accept(source, messageId="m0")
    route()
    dispatch = Dispatch.objects.get()
    run = engine.Run(hook, Trigger.SCHEDULED, QUEUE)
    (items,) = run.dispatch_chunks(dispatch, expired=False)
    run.interrupted(items[0], since=None)
    run.flush()
    written = Delivery.objects.get()
    assert written.lease_token == run.lease_token
    Delivery.objects.update(leased_until=timezone.now() + dt.timedelta(seconds=1))
    run.renew()
    renewed = Delivery.objects.get().leased_until
    assert renewed > timezone.now() + dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS - 5)


@responses.activate
def test_live_lease_is_not_taken(source, hook):
    accept(source)
    route()
    dispatch = Dispatch.objects.get()
    Dispatch.objects.update(leased_until=timezone.now() + dt.timedelta(seconds=30))
    engine.deliver_dispatches(hook.pk, [dispatch.pk], Trigger.SCHEDULED, QUEUE)
    assert not Delivery.objects.exists()
    assert len(responses.calls) == 0


@responses.activate
def test_paused_integration_holds_deliveries(source, hook):
    hook.paused = True
    hook.save()
    accept(source)
    deliver_due()
    assert not Delivery.objects.exists()
    assert Dispatch.objects.get().size == 1
    assert len(responses.calls) == 0


@responses.activate
def test_disabled_integration_fails_waiting_deliveries_with_a_reason(source, hook):
    accept(source)
    route()
    Integration.objects.filter(pk=hook.pk).update(enabled=False)
    deliver_due()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.FAILED
    assert "disabled" in delivery.last_error
    assert len(responses.calls) == 0


@responses.activate
def test_secrets_are_redacted_in_the_log(source, workspace):
    integration = make_integration(workspace)
    secret = integration.secret_settings["secret"]
    integration.set_settings(
        {
            "url": f"{URL}?token=query-secret-value&keep=1",
            "headers": {"Authorization": "Bearer header-secret", "X-Trace": "visible"},
        }
    )
    integration.save()
    responses.post(URL, status=500, body=f"echo {secret} header-secret")
    delivery = one_delivery(source)
    (exchange,) = exchanges_of(delivery)
    stored = json.dumps([exchange, delivery.last_error])
    for value in (secret, "header-secret", "query-secret-value"):
        assert value not in stored
    assert exchange["request_headers"]["Authorization"] == "[REDACTED]"
    assert exchange["request_headers"]["X-Trace"] == "visible"
    assert "keep=1" in exchange["url"]


@responses.activate
def test_cookies_a_vendor_sets_are_not_kept(source, hook):
    responses.post(URL, status=200, headers={"Set-Cookie": "sid=abc; Path=/"})
    first = one_delivery(source)
    second = one_delivery(source, messageId="m2")
    assert (first.status, second.status) == ("delivered", "delivered")
    assert "Cookie" not in responses.calls[1].request.headers
    assert "sid=abc" not in second.exchange.request_headers.get("Cookie", "")


def test_a_request_goes_out_as_the_session_would_send_it():
    request = OutboundRequest(
        method="POST",
        url="https://user:p%40ss@hooks.example.com/in path",
        headers={"Content-Type": "application/json", "accept": "application/json"},
        body='{"a": 1}',
    )
    prepared = http.prepare(request)
    expected = http.session().prepare_request(
        requests.Request(
            request.method, request.url, headers=dict(request.headers), data=b'{"a": 1}'
        )
    )
    assert (prepared.method, prepared.url, prepared.body) == (
        expected.method,
        expected.url,
        expected.body,
    )
    assert dict(prepared.headers) == dict(expected.headers)
    assert prepared.headers["Authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert prepared.headers["User-Agent"] == http.user_agent()


def test_private_addresses_are_refused_without_the_setting(source, hook, settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_URLS = False
    hook.set_settings({"url": "http://127.0.0.1:9/in"})
    hook.save()
    delivery = one_delivery(source)
    assert delivery.status == Delivery.Status.FAILED
    assert "127.0.0.1" in delivery.last_error
    assert "INTEGRATIONS_ALLOW_PRIVATE_URLS" in delivery.last_error


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104
        ("::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1%eth0", False),
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
    ],
)
def test_address_classification(address, public):
    from integrations.delivery.http import is_public

    assert is_public(address) is public


@responses.activate
def test_customerio_207_fails_only_the_rejected_operation(source, workspace):
    make_integration(workspace, kind="customerio")
    for number in (1, 2):
        send(source, type="track", userId=f"u{number}", event="E", messageId=f"m{number}")
    responses.post(
        "https://track.customer.io/api/v2/batch",
        status=207,
        json={"errors": [{"batch_index": 0, "reason": "invalid", "message": "bad name"}]},
    )
    deliver_due()
    first, second = Delivery.objects.order_by("event__message_id")
    assert first.status == Delivery.Status.FAILED
    assert "bad name" in first.last_error
    assert second.status == Delivery.Status.DELIVERED
    assert len(responses.calls) == 1
    # One exchange, carried by both, each with its own outcome.
    assert first.exchange_id == second.exchange_id
    assert first.exchange.carried_delivery_ids() == sorted([first.pk, second.pk])


@responses.activate
def test_a_batch_request_is_stored_once_for_all_the_deliveries_it_carried(source, workspace):
    integration = make_integration(workspace, kind="customerio")
    responses.post("https://track.customer.io/api/v2/batch", status=200, json={})
    for number in range(100):
        send(source, type="track", userId=f"u{number}", event="E", messageId=f"m{number}")
    deliver_due()
    assert Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() == 100
    (exchange,) = Exchange.objects.filter(integration=integration)
    assert set(Delivery.objects.values_list("exchange_id", flat=True)) == {exchange.pk}
    sent = len(responses.calls[0].request.body)
    assert len(exchange.request_body) <= sent  # stored once: not 100 times
    assert len(exchange.carried_delivery_ids()) == 100


def two_dispatches(source, integration) -> list[int]:
    """Two dispatches of three events each (two routing passes)."""
    for start in (0, 3):
        for number in range(start, start + 3):
            send(source, type="track", userId=f"u{number}", event="E", messageId=f"m{number}")
        route()
    ids = list(Dispatch.objects.filter(integration=integration).values_list("pk", flat=True))
    assert len(ids) == 2
    return ids


@responses.activate
def test_a_run_sends_the_events_of_its_dispatches_together(source, workspace):
    """Routing passes make small dispatches; a run's chunks do not stop at their ends."""
    integration = make_integration(workspace, kind="customerio")
    responses.post("https://track.customer.io/api/v2/batch", status=200, json={})
    ids = two_dispatches(source, integration)
    engine.deliver_dispatches(integration.pk, ids, Trigger.SCHEDULED, QUEUE)
    (call,) = responses.calls
    assert len(json.loads(call.request.body)["batch"]) == 6
    assert Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() == 6
    assert not Dispatch.objects.exists()


@responses.activate
def test_a_halted_run_gives_back_every_dispatch_with_events_left(source, hook):
    responses.post(URL, status=429, headers={"Retry-After": "60"})
    ids = two_dispatches(source, hook)
    DBTaskResult.objects.all().delete()  # routing's tasks: this run stands for them
    engine.deliver_dispatches(hook.pk, ids, Trigger.SCHEDULED, QUEUE)
    assert len(responses.calls) == 1
    left = Dispatch.objects.order_by("pk").values_list("size", "done", "leased_until")
    assert list(left) == [(3, 1, None), (3, 0, None)]
    assert all(
        d.next_attempt_at >= timezone.now() + dt.timedelta(seconds=55)
        for d in Dispatch.objects.all()
    )
    handed_on = [
        task.args_kwargs["args"][1]
        for task in DBTaskResult.objects.filter(status="READY", task_path__endswith="dispatches")
    ]
    assert handed_on == [ids]


def test_rate_limited_vendor_gets_spaced_slots(workspace, monkeypatch):
    from integrations.delivery import throttle

    integration = make_integration(workspace)
    frozen = timezone.now()
    sleeps: list[float] = []
    monkeypatch.setattr(throttle.timezone, "now", lambda: frozen)
    monkeypatch.setattr(throttle.time, "sleep", sleeps.append)
    for _ in range(3):
        throttle.wait_for_slot(integration.pk, per_second=10)
    integration.refresh_from_db()
    # Three slots 100 ms apart: the first at once, the others waited for.
    assert sleeps == pytest.approx([0.1, 0.2])
    assert integration.next_request_at == frozen + dt.timedelta(seconds=0.3)


@responses.activate
def test_429_defers_the_rest_of_the_run(source, hook):
    responses.post(URL, status=429, headers={"Retry-After": "60"})
    for number in range(3):
        send(source, type="track", userId="u", event="E", messageId=f"r{number}")
    deliver_due()
    assert len(responses.calls) == 1
    (first,) = Delivery.objects.all()
    assert first.attempt_count == 1
    # The other two wait in their dispatch until the vendor's Retry-After.
    dispatch = Dispatch.objects.get()
    assert (dispatch.size - dispatch.done, dispatch.leased_until) == (2, None)
    assert dispatch.next_attempt_at >= timezone.now() + dt.timedelta(seconds=55)
    assert "rate limited" in dispatch.waiting_reason


@responses.activate
def test_an_exception_in_follow_up_retries_visibly(source, workspace, monkeypatch):
    from integrations.destinations.webhook import Webhook

    integration = make_integration(workspace)
    responses.post(URL, status=200)

    def broken(*args):
        raise ValueError("bad answer")

    monkeypatch.setattr(Webhook, "follow_up", classmethod(broken))
    delivery = one_delivery(source)
    assert delivery.integration == integration
    assert delivery.status == Delivery.Status.RETRYING
    assert "internal error building the next request" in delivery.last_error


@responses.activate
def test_an_unanswered_vendor_defers_later_runs_on_every_worker(source, hook, settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 1  # a back-off of seconds, not milliseconds
    responses.post(URL, body=requests.ConnectTimeout("no answer"))
    one_delivery(source)
    hook.refresh_from_db()
    assert hook.is_deferred()
    # Another run (any worker) for a fresh event sends nothing and waits as long.
    accept(source, messageId="m2")
    deliver_due()
    assert len(responses.calls) == 1
    dispatch = Dispatch.objects.get()
    assert dispatch.next_attempt_at == hook.deferred_until
    assert dispatch.waiting_reason.startswith("Deferred")
    # Editing the integration (a fixed URL, say) ends the deferral.
    hook.save()
    assert not Integration.objects.get(pk=hook.pk).is_deferred()


@responses.activate
def test_fresh_events_flow_soon_after_the_vendor_recovers(source, hook, settings):
    """The integration's pause is a short back-off about the vendor, not the retry time
    of the oldest delivery: an old delivery deep in its schedule holds nothing back."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 1
    responses.post(URL, body=requests.ConnectTimeout("no answer"))
    old = one_delivery(source, messageId="old")
    # The old delivery has failed many times: its own next try is hours away.
    Delivery.objects.filter(pk=old.pk).update(attempt_count=7)
    make_due(old)
    run(old)
    old.refresh_from_db()
    assert old.next_attempt_at > timezone.now() + dt.timedelta(hours=1)
    hook.refresh_from_db()
    pause = (hook.deferred_until - timezone.now()).total_seconds()
    assert 0 < pause <= 2 * settings.DELIVERY_BACKOFF_SECONDS * (1 + schedule.JITTER)
    # The vendor recovers; once the short back-off ends, a fresh event goes out.
    responses.replace(responses.POST, URL, status=200)
    accept(source, messageId="fresh")
    Integration.objects.filter(pk=hook.pk).update(deferred_until=timezone.now())
    route()
    Dispatch.objects.update(next_attempt_at=timezone.now())
    deliver_due()
    fresh = Delivery.objects.get(event__message_id="fresh")
    assert fresh.status == Delivery.Status.DELIVERED
    hook.refresh_from_db()
    assert (hook.backoff_failures, hook.deferred_until) == (0, None)
    old.refresh_from_db()
    assert old.status == Delivery.Status.RETRYING  # still on its own schedule


def test_the_back_off_grows_only_while_the_vendor_keeps_failing(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 1
    now = timezone.now()
    pauses = [
        (schedule.backoff_until(failures, now=now) - now).total_seconds()
        for failures in (1, 2, 3, 10)
    ]
    low, high = 1 - schedule.JITTER, 1 + schedule.JITTER
    base, cap = settings.DELIVERY_BACKOFF_SECONDS, settings.DELIVERY_BACKOFF_MAX_SECONDS
    assert base * low <= pauses[0] <= base * high
    assert 2 * base * low <= pauses[1] <= 2 * base * high
    assert 4 * base * low <= pauses[2] <= 4 * base * high
    assert pauses[3] <= cap * high
    # A Retry-After replaces it.
    assert (schedule.backoff_until(3, retry_after=120, now=now) - now).total_seconds() == 120
