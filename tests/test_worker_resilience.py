"""The worker loop in-process: database errors are waited out, never the end of it.

The real thing, worker processes and a PostgreSQL restarted under load, is
``tests/e2e/test_database_restarts.py``.
"""

import json
import logging
import signal
import threading
from unittest import mock

import pytest
import responses
from django.core.management import load_command_class
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django_tasks import task
from django_tasks_db.models import DBTaskResult

from integrations.delivery import lanes
from integrations.delivery.worker import (
    DatabaseOutage,
    Periodic,
    ResilientWorker,
    is_transient,
)
from integrations.models import Delivery
from tests.test_fanout import make_integration
from tests.traffic import route, send

WORKER_LOG = "integrations.delivery.worker"

# The worker closes connections between tasks, as it must: its tests run outside the test
# transaction (``transaction=True``).


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def explode() -> None:
    raise ValueError("a bug in the task")


def make_worker(outage: DatabaseOutage | None = None, **options) -> ResilientWorker:
    return ResilientWorker(
        outage=outage or DatabaseOutage(first_delay=0, max_delay=0),
        queue_names=["default"],
        interval=0,
        batch=True,  # return when the queue is empty
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
        **options,
    )


def outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == WORKER_LOG]


def test_errors_that_waiting_fixes_are_transient():
    assert is_transient(OperationalError("server closed the connection unexpectedly"))
    assert is_transient(InterfaceError("connection already closed"))
    assert not is_transient(IntegrityError("duplicate key"))
    assert not is_transient(ValueError("not a database error"))


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(caplog):
    outage = DatabaseOutage(first_delay=0.5, max_delay=4)
    with caplog.at_level(logging.INFO, logger=WORKER_LOG):
        delays = [outage.failed(OperationalError("connection refused")) for _ in range(8)]
        outage.succeeded()
        outage.succeeded()
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unavailable (OperationalError: connection refused)")
    assert lines[1].startswith("database available again after")
    # Exponential, jittered (50-100 %), capped.
    assert 0.25 <= delays[0] <= 0.5
    assert 1 <= delays[2] <= 2
    assert all(delay <= 4 for delay in delays)
    assert delays[-1] >= 2


def test_a_thread_that_slept_through_an_outage_does_not_log_another(caplog):
    """The router slept while the worker loop saw the outage come and go: the router's
    first query fails on its cut connection, which is dropped, not logged as an outage."""
    outage = DatabaseOutage(first_delay=0.5, max_delay=4)
    dropped = []
    sleeper_failure = []

    def sleeper() -> None:
        outage.prepare()  # connected before the outage
        started.wait()
        sleeper_failure.append(outage.failed(OperationalError("server closed the connection")))
        outage.prepare()

    started = threading.Event()
    thread = threading.Thread(target=sleeper)
    with (
        mock.patch("integrations.delivery.worker.drop_connections", lambda: dropped.append(1)),
        caplog.at_level(logging.INFO, logger=WORKER_LOG),
    ):
        thread.start()
        outage.prepare()
        outage.failed(OperationalError("connection refused"))
        outage.prepare()
        outage.succeeded()
        started.set()
        thread.join()
        # A later outage is logged again, by any thread.
        outage.failed(OperationalError("connection refused"))
    lines = outage_lines(caplog)
    assert [line.split(" (")[0].split(" after")[0] for line in lines] == [
        "database unavailable",
        "database available again",
        "database unavailable",
    ], lines
    assert sleeper_failure == [0.0]  # retried at once, on a new connection
    assert len(dropped) == 2  # the loop's failed connection and the sleeper's cut one


def test_a_second_failure_on_the_failed_connection_is_the_same_outage(caplog):
    """A task lost the database; before its thread replaces the connection, another
    thread sees the database back; recording the task's outcome on the broken
    connection fails too: still the one outage."""
    outage = DatabaseOutage(first_delay=0.5, max_delay=4)
    with (
        mock.patch("integrations.delivery.worker.drop_connections"),
        caplog.at_level(logging.INFO, logger=WORKER_LOG),
    ):
        outage.prepare()
        outage.failed(OperationalError("the connection is lost"))
        outage.succeeded()  # another thread
        assert outage.failed(InterfaceError("the connection is closed")) == 0.0
        outage.prepare()
        outage.succeeded()
    assert len(outage_lines(caplog)) == 2, outage_lines(caplog)


def test_a_long_outage_keeps_the_backoff_capped():
    outage = DatabaseOutage(first_delay=0.5, max_delay=30)
    delays = [outage.failed(OperationalError("refused")) for _ in range(5000)]  # days
    assert 15 <= delays[-1] <= 30


@pytest.mark.django_db(transaction=True)
def test_the_worker_waits_out_errors_while_claiming(caplog):
    add.enqueue(2, 3)
    worker = make_worker()
    real_claim = worker.claim
    failures = iter([OperationalError("the connection is lost"), InterfaceError("closed")])

    def flaky_claim():
        error = next(failures, None)
        if error is not None:
            raise error
        return real_claim()

    with (
        mock.patch.object(worker, "claim", side_effect=flaky_claim),
        caplog.at_level(logging.INFO, logger=WORKER_LOG),
    ):
        worker.run()

    (result,) = DBTaskResult.objects.all()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == 5
    lines = outage_lines(caplog)
    assert sum("database unavailable" in line for line in lines) == 1, lines
    assert sum("database available again" in line for line in lines) == 1, lines


@pytest.mark.django_db(transaction=True)
def test_an_outcome_the_database_did_not_take_is_recorded_when_it_is_back():
    add.enqueue(20, 22)
    worker = make_worker()
    real_set_successful = DBTaskResult.set_successful
    calls = []

    def set_successful(self, value):
        calls.append(value)
        if len(calls) == 1:
            # set_successful retries itself; the error it gives up with is what counts.
            raise OperationalError("server closed the connection unexpectedly")
        return real_set_successful(self, value)

    with mock.patch.object(DBTaskResult, "set_successful", set_successful):
        worker.run()  # before: the OperationalError ended the process

    (result,) = DBTaskResult.objects.all()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == 42
    assert calls == [42, 42]  # ran once, recorded on the second try
    assert worker.unrecorded == []


@pytest.mark.django_db(transaction=True)
def test_an_owed_outcome_is_dropped_if_the_sweep_took_the_task_over():
    add.enqueue(1, 1)
    worker = make_worker()

    def set_successful(self, value):
        raise OperationalError("the connection is lost")

    with mock.patch.object(DBTaskResult, "set_successful", set_successful):
        worker.batch = False
        worker.max_tasks = 1
        worker.run()
    assert len(worker.unrecorded) == 1
    # Meanwhile the recovery sweep marked the task lost.
    DBTaskResult.objects.update(status="FAILED")

    worker.record_unrecorded()

    assert worker.unrecorded == []
    assert DBTaskResult.objects.get().status == "FAILED"


@pytest.mark.django_db(transaction=True)
def test_a_failing_task_is_recorded_failed_and_the_worker_goes_on(caplog):
    explode.enqueue()
    add.enqueue(1, 2)
    worker = make_worker()

    with caplog.at_level(logging.INFO):
        worker.run()

    statuses = dict(DBTaskResult.objects.values_list("task_path", "status"))
    assert statuses == {
        "tests.test_worker_resilience.explode": "FAILED",
        "tests.test_worker_resilience.add": "SUCCESSFUL",
    }
    failed = DBTaskResult.objects.get(status="FAILED")
    assert failed.exception_class_path == "builtins.ValueError"
    # A real failure keeps its traceback in the log (error monitoring reads it).
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_non_transient_database_errors_are_not_swallowed():
    worker = make_worker()
    with (
        mock.patch.object(worker, "claim", side_effect=IntegrityError("a bug")),
        pytest.raises(IntegrityError),
    ):
        worker.run()


def test_the_sweeper_retries_sooner_during_an_outage_and_logs_it_once(caplog):
    outage = DatabaseOutage(first_delay=0, max_delay=0)
    results = iter([OperationalError("refused"), OperationalError("refused"), 0])
    sweeper: Periodic

    def sweep() -> int:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        sweeper.stop.set()
        return result

    sweeper = Periodic("recovery sweep", interval=3600, outage=outage, job=sweep)
    with caplog.at_level(logging.INFO, logger=WORKER_LOG):
        sweeper.start()
        sweeper.join(timeout=10)

    assert not sweeper.is_alive()  # the hour-long interval was not waited between tries
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines


def test_a_busy_job_runs_again_at_once_and_an_idle_one_waits():
    outage = DatabaseOutage()
    runs: list[int] = []
    router: Periodic

    def route() -> int:
        runs.append(1)
        if len(runs) == 3:
            router.stop.set()
        return 10  # found work: look again at once

    router = Periodic("router", interval=3600, outage=outage, job=route, busy_again=True)
    router.start()
    router.join(timeout=10)
    assert not router.is_alive() and len(runs) == 3
    idle = Periodic("alert check", interval=3600, outage=outage, job=lambda: 10)
    idle.start()
    idle.join(timeout=0.5)
    assert idle.is_alive()  # waiting out its hour, not spinning
    idle.stop.set()


def test_the_worker_s_threads_leave_stop_signals_to_the_main_thread():
    # A SIGTERM taken by a helper thread would leave the main thread waiting out a slow
    # vendor before it hears of it.
    outage = DatabaseOutage()
    masks: list[set[signal.Signals]] = []
    job: Periodic

    def record_mask() -> None:
        masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        job.stop.set()

    job = Periodic("router", interval=3600, outage=outage, job=record_mask)
    job.start()
    job.join(timeout=10)
    lane_masks = list(
        lanes.run(
            2,
            keys=lambda i: [i],
            work=lambda i: signal.pthread_sigmask(signal.SIG_BLOCK, []),
            proceed=lambda: True,
            lanes=2,
        )
    )

    assert {signal.SIGINT, signal.SIGTERM} <= masks[0]
    for outcome in lane_masks:
        assert outcome is not None and {signal.SIGINT, signal.SIGTERM} <= outcome.result
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_stop_signal_inside_the_loops_wait_does_not_hang_it():
    """Python runs a signal handler between two bytecodes of the main thread, which may be
    inside ``Event.wait`` holding the event's lock: the handler must not take that lock."""
    worker = make_worker()
    worker.running = True
    done = threading.Event()

    def signal_arrives_inside_the_wait() -> None:
        with worker.stopping._cond:  # where Event.wait holds it
            worker.shutdown(signal.SIGTERM, None)
        done.set()

    thread = threading.Thread(target=signal_arrives_inside_the_wait, daemon=True)
    thread.start()
    assert done.wait(5), "the handler deadlocked on the event's lock"
    assert worker.stopping.wait(5)
    assert not worker.running


@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_in_the_process_wakes_the_worker_once_committed():
    worker = make_worker()
    with transaction.atomic():
        add.enqueue(1, 2)
        assert not worker.wake.is_set()  # not visible to the worker before the commit
    assert worker.wake.is_set()
    worker.wake.clear()
    worker.stop_waiting()
    assert worker.wake.is_set() and worker.stopping.is_set()


def test_an_idle_worker_looks_at_the_queue_ten_times_a_second_by_default():
    parser = load_command_class("integrations", "db_worker").create_parser("manage.py", "db_worker")
    assert parser.parse_args([]).interval == 0.1


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_a_worker_sends_the_small_dispatches_waiting_for_an_integration_in_one_run(
    workspace, source
):
    make_integration(workspace, kind="customerio")
    responses.post("https://track.customer.io/api/v2/batch", status=200, json={})
    for start in (0, 3, 6):  # three routing passes: three dispatches, three tasks
        for number in range(start, start + 3):
            send(source, type="track", userId=f"u{number}", event="E", messageId=f"m{number}")
        route()
    assert DBTaskResult.objects.filter(status="READY").count() == 3
    make_worker().run()
    (call,) = responses.calls  # the first task's run took the others over
    assert len(json.loads(call.request.body)["batch"]) == 9
    assert Delivery.objects.filter(status="delivered").count() == 9
    assert not DBTaskResult.objects.filter(status="READY").exists()
