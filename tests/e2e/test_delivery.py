"""The delivery engine end to end: real ``db_worker`` processes, a fake vendor on 127.0.0.1.

Events come in through the real tracking API (the live server); workers deliver them to
webhook integrations pointing at the fake vendor. The unit counterpart, with ``responses``
in place of the network, is ``tests/test_delivery_engine.py``.
"""

import json
import socket
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from standardwebhooks.webhooks import Webhook as StandardWebhook

from integrations.delivery import operations
from integrations.delivery.engine import INTERRUPTED
from integrations.models import (
    Delivery,
    DeliveryAttempt,
    Dispatch,
    Event,
    EventRule,
    Exchange,
    Outcome,
    RoutingJob,
)
from tests.e2e.fake_vendor import Reply
from tests.e2e.harness import REPO_ROOT, make_webhook, track, wait_for_status, wait_until
from tests.traffic import route

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DELIVERED = Delivery.Status.DELIVERED
FAILED = Delivery.Status.FAILED
RETRYING = Delivery.Status.RETRYING


@dataclass
class Attempt:
    """One attempt as the log shows it, with its (last) exchange's request and answer."""

    number: int
    trigger: str
    outcome: str
    error: str
    started_at: Any
    request_method: str = ""
    request_url: str = ""
    request_headers: Any = None
    request_body: str = ""
    response_status: int | None = None
    response_headers: Any = None
    response_body: str = ""


def attempts_of(delivery: Delivery) -> list[Attempt]:
    attempts = []
    for record, chain in delivery.attempts_with_exchanges():
        attempt = Attempt(
            record.number, record.trigger, record.outcome, record.error, record.started_at
        )
        if chain:
            last = chain[-1]
            attempt.request_method, attempt.request_url = last.method, last.url
            attempt.request_headers, attempt.request_body = last.request_headers, last.request_body
            attempt.response_status = last.response_status
            attempt.response_headers, attempt.response_body = (
                last.response_headers,
                last.response_body,
            )
        attempts.append(attempt)
    return attempts


def webhook_ids(requests) -> list[str]:
    return [r.headers["webhook-id"] for r in requests]


# -- outcomes of one exchange ---------------------------------------------------------


def test_500_500_200_is_delivered_on_the_third_attempt(
    fake_vendor, worker, ingest, workspace, source
):
    fake_vendor.script(
        "/hook", Reply(500, body="oops"), Reply(500, body="still down"), Reply(200, body="ok")
    )
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    worker.start()

    ingest(source, track("m-1"))

    (delivery,) = wait_for_status(hook.deliveries.all(), DELIVERED)
    assert delivery.attempt_count == 3
    assert delivery.last_error == ""
    assert delivery.last_status_code == 200
    assert delivery.delivered_at is not None
    attempts = attempts_of(delivery)
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [a.response_status for a in attempts] == [500, 500, 200]
    assert {a.trigger for a in attempts} == {DeliveryAttempt.Trigger.SCHEDULED}
    assert [a.error for a in attempts] == ["HTTP 500: oops", "HTTP 500: still down", ""]
    assert attempts[0].started_at < attempts[1].started_at < attempts[2].started_at
    # The vendor saw the same message three times, each signed, with one webhook-id.
    received = fake_vendor.requests_to("/hook")
    assert webhook_ids(received) == ["m-1", "m-1", "m-1"]
    signer = StandardWebhook(hook.secret_settings["secret"])
    for request in received:
        assert signer.verify(request.body, request.headers)["messageId"] == "m-1"


def test_429_retry_after_is_honoured(fake_vendor, worker, ingest, workspace, source):
    fake_vendor.script("/hook", Reply(429, headers={"Retry-After": "2"}, body="slow down"))
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    # The schedule alone would retry after 5 * 0.01 s (+/- 20 %).
    worker.start(DELIVERY_RETRY_BASE_SECONDS=0.01)

    ingest(source, track("m-1"))

    (delivery,) = wait_for_status(hook.deliveries.all(), DELIVERED)
    first, second = attempts_of(delivery)
    assert first.response_status == 429
    assert first.response_headers["Retry-After"] == "2"
    assert first.error == "HTTP 429: slow down"
    assert second.response_status == 200
    before, after = fake_vendor.requests_to("/hook")
    waited = after.monotonic - before.monotonic
    assert waited >= 1.95, f"retried {waited:.2f} s after a 429 with Retry-After: 2"


def test_read_timeout_retries_until_the_vendor_answers(
    fake_vendor, worker, ingest, workspace, source
):
    fake_vendor.set_default("/hook", Reply(200, delay=5))  # longer than the read timeout
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    worker.start(DELIVERY_READ_TIMEOUT=0.5)

    ingest(source, track("m-1"))

    (delivery,) = wait_for_status(hook.deliveries.all(), RETRYING)
    assert delivery.last_error.startswith("timed out")
    assert delivery.last_status_code is None
    fake_vendor.set_default("/hook", Reply(200))  # the vendor recovers

    (delivery,) = wait_for_status(hook.deliveries.all(), DELIVERED)
    *timed_out, success = attempts_of(delivery)
    assert timed_out, "the first attempt timed out"
    for attempt in timed_out:
        assert attempt.error.startswith("timed out"), attempt.error
        assert attempt.response_status is None
        assert attempt.request_method == "POST"  # the request is logged even unanswered
    assert success.response_status == 200
    assert len(fake_vendor.requests_to("/hook")) == len(timed_out) + 1


def test_connection_refused_retries(fake_vendor, worker, ingest, workspace, source):
    # Bound but not listening: connecting to it is refused, and no one else can take it.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        hook = make_webhook(workspace, f"http://127.0.0.1:{port}/hook")
        worker.start()

        ingest(source, track("m-1"))

        (delivery,) = wait_for_status(hook.deliveries.all(), RETRYING)
        assert delivery.last_error.startswith("connection failed"), delivery.last_error
        assert delivery.next_attempt_at is not None
        first = attempts_of(delivery)[0]
        assert first.error.startswith("connection failed")
        assert first.response_status is None

        # Pointed at a vendor that answers, the next scheduled retry delivers it.
        hook.set_settings({"url": fake_vendor.url("/hook")})
        hook.save()
        (delivery,) = wait_for_status(hook.deliveries.all(), DELIVERED)
    *refused, success = attempts_of(delivery)
    assert all(a.error.startswith("connection failed") for a in refused)
    assert success.response_status == 200
    assert webhook_ids(fake_vendor.requests_to("/hook")) == ["m-1"]


def test_400_fails_at_once(fake_vendor, worker, ingest, workspace, source):
    fake_vendor.set_default("/hook", Reply(400, body='{"error": "bad payload"}'))
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    worker.start()

    ingest(source, track("m-1"))

    (delivery,) = wait_for_status(hook.deliveries.all(), FAILED)
    assert delivery.attempt_count == 1
    assert delivery.next_attempt_at is None
    assert delivery.last_error == 'HTTP 400: {"error": "bad payload"}'
    (attempt,) = attempts_of(delivery)
    assert attempt.response_status == 400
    assert len(fake_vendor.requests_to("/hook")) == 1


# -- crashes and a lost queue ---------------------------------------------------------

# Short leases and a frequent sweep so that a dead worker's deliveries come back quickly:
# the lease (2 s) exceeds one request (0.5 s connect + 1 s read), and a RUNNING task is
# presumed dead after the time budget + 2 leases (5 s).
CRASH_TIMING = {
    "DELIVERY_LEASE_SECONDS": 2.0,
    "DELIVERY_CONNECT_TIMEOUT": 0.5,
    "DELIVERY_READ_TIMEOUT": 1.0,
    "DELIVERY_TASK_TIME_BUDGET": 1.0,
    "DELIVERY_RECOVERY_INTERVAL": 0.25,
}


def test_worker_killed_mid_request_is_taken_over(fake_vendor, worker, ingest, workspace, source):
    # The first request hangs (until the vendor stops); the worker dies while waiting.
    fake_vendor.script("/hook", Reply(200, delay=60))
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    first_worker = worker.start(**CRASH_TIMING)

    ingest(source, track("m-1"))
    fake_vendor.wait_for_requests(1, "/hook")
    first_worker.kill()

    assert not hook.deliveries.exists()  # nothing recorded yet
    dispatch = hook.dispatches.get()
    assert dispatch.leased_until is not None  # held by the dead worker
    assert dispatch.started == 1  # which had handed the event to a request
    running = DBTaskResult.objects.filter(status="RUNNING", task_path__endswith="dispatches")
    assert running.count() == 1  # and so is its task

    first_worker.restart()

    (delivery,) = wait_for_status(hook.deliveries.all(), DELIVERED)
    interrupted, success = attempts_of(delivery)
    assert (interrupted.outcome, interrupted.error) == (Outcome.INTERRUPTED, INTERRUPTED)
    assert interrupted.response_status is None
    assert success.response_status == 200
    assert success.error == ""
    assert delivery.attempt_count == 2
    assert webhook_ids(fake_vendor.requests_to("/hook")) == ["m-1", "m-1"]
    # The sweep gave up on the dead worker's task.
    lost = DBTaskResult.objects.get(exception_class_path__endswith="WorkerLost")
    assert lost.status == "FAILED"


def test_worker_killed_with_many_deliveries_in_flight_loses_nothing(
    fake_vendor, worker, ingest, workspace, source
):
    # The worker sends the 20 deliveries of its run one by one; the fifth request hangs.
    fake_vendor.script("/hook", *[Reply(200, delay=0.02)] * 4, Reply(200, delay=60))
    fake_vendor.set_default("/hook", Reply(200, delay=0.02))
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    first_worker = worker.start(**CRASH_TIMING)
    message_ids = [f"m-{i:02}" for i in range(20)]

    ingest(source, *[track(m) for m in message_ids])
    fake_vendor.wait_for_requests(5, "/hook")
    first_worker.kill()
    assert hook.dispatches.exclude(leased_until=None).exists()  # held by the dead worker
    first_worker.restart()

    deliveries = wait_for_status(hook.deliveries.all(), DELIVERED, count=20)
    assert sorted(d.event.message_id for d in deliveries) == message_ids
    assert Event.objects.count() == 20
    for delivery in deliveries:
        *earlier, last = attempts_of(delivery)
        # Delivered exactly once in the log; anything before was cut short by the crash.
        assert last.response_status == 200
        assert [a.error for a in earlier] == [INTERRUPTED] * len(earlier)
        assert [a.number for a in [*earlier, last]] == list(range(1, delivery.attempt_count + 1))
    # At least once: the vendor got every message, some maybe twice.
    seen = Counter(webhook_ids(fake_vendor.requests_to("/hook")))
    assert set(seen) == set(message_ids)
    interrupted = DeliveryAttempt.objects.filter(outcome=Outcome.INTERRUPTED).count()
    assert interrupted >= 1  # the request in flight when the worker died, at least
    assert sum(seen.values()) <= 20 + interrupted


def test_recovery_sweep_requeues_deliveries_when_the_task_table_is_lost(
    fake_vendor, worker, ingest, workspace, source
):
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    ingest(source, *[track(f"m-{i}") for i in range(5)])
    route()  # what a router did before the queue was lost
    assert DBTaskResult.objects.filter(status="READY").count() == 1
    DBTaskResult.objects.all().delete()

    worker.start(DELIVERY_RECOVERY_INTERVAL=0.25)

    wait_for_status(hook.deliveries.all(), DELIVERED, count=5)
    assert len(fake_vendor.requests_to("/hook")) == 5


def test_events_accepted_by_a_process_that_died_at_once_are_delivered(
    fake_vendor, worker, workspace, source
):
    """A 200 means durable: the accepting process is killed right after the commit,
    before anything routed the events; a worker started later delivers them."""
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    script = (
        "import os, signal, django; django.setup()\n"
        "from django.utils import timezone\n"
        "from integrations.ingest import accept\n"
        "from integrations.models import Source\n"
        "from integrations.sources.segment_spec import normalize\n"
        f"source = Source.objects.get(pk={source.pk})\n"
        "now = timezone.now()\n"
        "messages = [normalize({'type': 'track', 'userId': 'u', 'event': 'E',"
        " 'messageId': f'crash-{i}'}, received_at=now) for i in range(3)]\n"
        "accept(source, messages)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    died = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=worker.env(), check=False
    )
    assert died.returncode == -9
    assert Event.objects.filter(message_id__startswith="crash-").count() == 3
    assert RoutingJob.objects.count() == 1 and not Dispatch.objects.exists()

    worker.start()

    deliveries = wait_for_status(hook.deliveries.all(), DELIVERED, count=3)
    assert sorted(d.event.message_id for d in deliveries) == ["crash-0", "crash-1", "crash-2"]
    assert not RoutingJob.objects.exists()


def test_recover_deliveries_command_requeues_them(fake_vendor, worker, ingest, workspace, source):
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    ingest(source, *[track(f"m-{i}") for i in range(5)])
    route()
    DBTaskResult.objects.all().delete()

    result = worker.manage("recover_deliveries")
    assert result.stdout.strip() == "Routed 0 events; re-enqueued 1 dispatches and deliveries."
    out = StringIO()
    call_command("recover_deliveries", stdout=out)  # it has a task now
    assert out.getvalue().strip() == "Routed 0 events; re-enqueued 0 dispatches and deliveries."

    worker.start(DELIVERY_RECOVERY_INTERVAL=0)  # no sweep: the command's task delivers them
    wait_for_status(hook.deliveries.all(), DELIVERED, count=5)
    assert len(fake_vendor.requests_to("/hook")) == 5


# -- operations -----------------------------------------------------------------------


def test_paused_integration_sends_nothing_until_resumed(
    fake_vendor, worker, ingest, workspace, source
):
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    operations.pause(hook)
    worker.start(DELIVERY_RECOVERY_INTERVAL=0.25)

    ingest(source, *[track(f"m-{i}") for i in range(5)])

    def tasks_done() -> bool:
        tasks = DBTaskResult.objects.all()
        return tasks.exists() and not tasks.filter(status__in=["READY", "RUNNING"]).exists()

    wait_until(tasks_done, what="the worker to run the paused integration's tasks")
    assert not hook.deliveries.exists()
    assert [d.size - d.done for d in hook.dispatches.all()] == [5]
    assert fake_vendor.requests == []

    assert operations.resume(hook) == 5

    wait_for_status(hook.deliveries.all(), DELIVERED, count=5)
    assert sorted(webhook_ids(fake_vendor.requests)) == [f"m-{i}" for i in range(5)]


def test_replay_sends_the_range_again_through_current_rules(
    fake_vendor, worker, ingest, workspace, source
):
    hook = make_webhook(workspace, fake_vendor.url("/hook"))
    worker.start()
    ingest(source, track("before"))
    since = timezone.now()
    ingest(
        source,
        track("in-1"),
        track("in-2"),
        track("in-ignored", event="Ignored"),
        {"type": "identify", "userId": "user-1", "messageId": "in-identify"},
    )
    until = timezone.now()
    ingest(source, track("after"))
    wait_for_status(hook.deliveries.all(), DELIVERED, count=6)
    assert len(fake_vendor.requests) == 6
    # Switched off since: replay leaves it out.
    EventRule.objects.create(integration=hook, event="Ignored", enabled=False)

    result = operations.replay(hook, since, until)

    assert (result.events, result.deliveries) == (4, 3)
    replayed = wait_for_status(
        hook.deliveries.filter(origin=Delivery.Origin.REPLAY), DELIVERED, count=3
    )
    assert sorted(d.event.message_id for d in replayed) == ["in-1", "in-2", "in-identify"]
    assert all(d.attempt_count == 1 for d in replayed)
    sent = Counter(webhook_ids(fake_vendor.requests))
    assert sent == {
        "before": 1,
        "in-1": 2,
        "in-2": 2,
        "in-ignored": 1,
        "in-identify": 2,
        "after": 1,
    }


# -- what is stored, and what may be reached ------------------------------------------


def test_secrets_never_reach_the_delivery_log(fake_vendor, worker, ingest, workspace, source):
    token = "header-token-5d1f3a9c2b7e4f60"
    query_token = "query-token-8e2a6b4c1d9f3e75"
    hook = make_webhook(
        workspace,
        fake_vendor.url("/hook") + f"?token={query_token}&keep=1",
        headers={"Authorization": f"Bearer {token}", "X-Trace": "visible"},
    )
    secret = hook.secret_settings["secret"]
    assert secret.startswith("whsec_")
    # A vendor that repeats everything it was sent, and even the signing secret.
    fake_vendor.script(
        "/hook",
        Reply(500, body=f"bad signature for secret {secret}, token {token}"),
        Reply(200, echo=True),
    )
    worker.start()

    ingest(source, track("m-1"))

    (delivery,) = wait_for_status(hook.deliveries.all(), DELIVERED)
    # The credentials did travel: the vendor got them and echoed them back.
    for request in fake_vendor.requests_to("/hook"):
        assert request.headers["Authorization"] == f"Bearer {token}"
        assert request.query == f"token={query_token}&keep=1"
    # None of them is in the log, in any field of any exchange, attempt or delivery.
    stored = json.dumps(
        [
            list(Exchange.objects.values()),
            list(DeliveryAttempt.objects.values()),
            list(Delivery.objects.values()),
        ],
        default=str,
    )
    for value in (secret, secret.removeprefix("whsec_"), token, query_token):
        assert value not in stored
    failed, echoed = attempts_of(delivery)
    assert failed.response_status == 500
    assert "[REDACTED]" in failed.response_body
    assert failed.request_headers["Authorization"] == "[REDACTED]"
    assert failed.request_headers["X-Trace"] == "visible"
    assert "keep=1" in failed.request_url
    assert echoed.response_status == 200
    assert "[REDACTED]" in echoed.response_body
    assert json.loads(echoed.request_body)["messageId"] == "m-1"


def test_private_addresses_are_refused_without_the_setting(
    fake_vendor, worker, ingest, workspace, source
):
    by_ip = make_webhook(workspace, fake_vendor.url("/hook"), name="By IP")
    by_name = make_webhook(workspace, f"http://localhost:{fake_vendor.port}/hook", name="By name")
    worker.start(INTEGRATIONS_ALLOW_PRIVATE_URLS=False)

    ingest(source, track("m-1"))

    (refused,) = wait_for_status(by_ip.deliveries.all(), FAILED)
    assert refused.attempt_count == 1
    assert "127.0.0.1" in refused.last_error
    assert "INTEGRATIONS_ALLOW_PRIVATE_URLS" in refused.last_error
    (attempt,) = attempts_of(refused)
    assert attempt.error == refused.last_error
    assert attempt.response_status is None
    (refused,) = wait_for_status(by_name.deliveries.all(), FAILED)
    assert refused.attempt_count == 1
    assert "refused: localhost resolves to" in refused.last_error
    assert "INTEGRATIONS_ALLOW_PRIVATE_URLS" in refused.last_error
    assert fake_vendor.requests == []


# -- fairness -------------------------------------------------------------------------


@pytest.mark.parametrize("one_by_one", [False, True], ids=["one-batch", "one-call-each"])
def test_a_timing_out_integration_does_not_hold_back_another(
    fake_vendor, worker, ingest, workspace, source, one_by_one
):
    """One worker, two integrations with 10 events each; A's vendor never answers.

    A request to A times out and pauses A — the rest of its own run and the runs that
    start before the pause ends (``Integration.deferred_until``) — for A's back-off. So A
    makes one unanswered request per back-off window, whether the events came in one
    batch or one call each (the router gives each integration one dispatch either way,
    A's first). The window is made longer than the test can last (the back-off at 10
    times its production scale: 50 s, +/- 20 %), so that on a loaded machine too, all of
    B's deliveries are sent while A has made exactly one request.
    """
    fake_vendor.set_default("/slow", Reply(200, delay=30))
    fake_vendor.set_default("/fast", Reply(200))
    slow = make_webhook(workspace, fake_vendor.url("/slow"), name="A slow")
    fast = make_webhook(workspace, fake_vendor.url("/fast"), name="B fast")
    ingest(source, *[track(f"m-{i}") for i in range(10)], one_by_one=one_by_one)
    route()
    tasks = list(DBTaskResult.objects.all())  # in the order the worker takes them
    assert len(tasks) == 2
    assert tasks[0].args_kwargs["args"][0] == slow.pk

    worker.start(DELIVERY_READ_TIMEOUT=0.5, DELIVERY_RETRY_BASE_SECONDS=10.0)

    fast_deliveries = wait_for_status(fast.deliveries.all(), DELIVERED, count=10)
    # In order of arrival at the vendor: at most one request to A before B's last one.
    paths = [r.path for r in fake_vendor.requests]
    assert paths.count("/fast") == 10
    assert paths.count("/slow") == 1, paths
    assert paths[0] == "/slow"  # A went first, and B was not held back beyond that
    # The log agrees: one attempt of A, which started before B's deliveries.
    (timed_out,) = slow.deliveries.all()
    (slow_attempt,) = attempts_of(timed_out)
    assert slow_attempt.error.startswith("timed out")
    assert slow_attempt.started_at < min(d.delivered_at for d in fast_deliveries)
    assert timed_out.status == RETRYING
    # The others wait, unsent, in their dispatch, until A's back-off ends.
    (waiting,) = slow.dispatches.all()
    assert (waiting.size - waiting.done, waiting.leased_until) == (9, None)
    slow.refresh_from_db()
    assert waiting.next_attempt_at == slow.deferred_until <= timed_out.next_attempt_at
    assert waiting.waiting_reason.startswith("Deferred: ")
