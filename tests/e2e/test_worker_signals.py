"""Stopping a worker: SIGINT/SIGTERM end it cleanly, without a traceback (``make run``
stops its worker with Ctrl-C, then SIGTERM if it takes long)."""

import signal
import subprocess

import pytest

from integrations.models import Delivery
from tests.e2e.fake_vendor import Reply
from tests.e2e.harness import WorkerProcess, make_webhook, track, wait_for_status, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def exit_code(process: subprocess.Popen) -> int:
    return process.wait(timeout=30)


def wait_until_started(process: WorkerProcess) -> None:
    wait_until(lambda: "Starting worker" in process.output(), what="the worker to start")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_idle_worker_stops_at_once(worker, signum):
    process = worker.start()
    wait_until_started(process)

    process.process.send_signal(signum)

    assert exit_code(process.process) == 0
    output = process.output()
    assert "Traceback" not in output, output
    assert f"Received {signal.strsignal(signum)}: stopping" in output


def test_a_busy_worker_finishes_its_task_then_stops(fake_vendor, worker, ingest, workspace, source):
    fake_vendor.set_default("/slow", Reply(200, delay=1.5))
    hook = make_webhook(workspace, fake_vendor.url("/slow"))
    process = worker.start()
    ingest(source, track("m-1"))
    fake_vendor.wait_for_requests(1, "/slow")

    process.process.send_signal(signal.SIGINT)

    assert exit_code(process.process) == 0
    output = process.output()
    assert "Traceback" not in output, output
    assert "stopping after the current task" in output
    (delivery,) = wait_for_status(hook.deliveries.all(), Delivery.Status.DELIVERED, timeout=5)
    assert delivery.attempt_count == 1


def test_a_second_signal_stops_the_task_at_once_without_a_traceback(
    fake_vendor, worker, ingest, workspace, source
):
    # What `make run` does on Ctrl-C: SIGINT, then SIGTERM if the worker is still busy.
    fake_vendor.set_default("/stuck", Reply(200, delay=60))
    make_webhook(workspace, fake_vendor.url("/stuck"))
    process = worker.start(DELIVERY_READ_TIMEOUT=60.0, DELIVERY_LEASE_SECONDS=90.0)
    ingest(source, track("m-1"))
    fake_vendor.wait_for_requests(1, "/stuck")

    process.process.send_signal(signal.SIGINT)
    process.process.send_signal(signal.SIGTERM)

    code = exit_code(process.process)
    output = process.output()
    assert "Traceback" not in output, output  # before: SystemExit's, from the task's log
    assert code == 1
    assert "stopping now" in output
    assert "interrupted" in output
