"""Workers outlive their database: a private PostgreSQL restarted under load.

Events go in through the console's web process (gunicorn, as in production), three real
``db_worker`` processes deliver them to a fake vendor, and meanwhile PostgreSQL is
restarted with ``pg_ctl restart -m immediate`` (every connection cut, as in a crash)
several times, and once stopped for a few seconds. Every worker must still be running at
the end, and every event the web process acknowledged must have reached the vendor.
"""

import collections
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.e2e.fake_vendor import FakeVendor
from tests.e2e.harness import REPO_ROOT, WorkerPool
from tests.e2e.private_postgres import PrivatePostgres
from tests.e2e.web_process import WebProcess, local_session

pytestmark = [pytest.mark.e2e]

WORKERS = 3
RESTARTS = 4
BATCH_SIZE = 10
MAX_BATCHES = 400  # the load stops by itself, whatever happens to the test
DELIVERY_TIMEOUT = 60.0
# Log lines of errors from the worker loop, the recovery sweep thread and django-tasks
# (which logs a failed task with its traceback).
LOOP_ERRORS = r"^.* (?:ERROR|CRITICAL) (?:integrations\.delivery\.worker|django_tasks\w*) .*$"

SETUP = """
from integrations.models import Integration, Source, Workspace
workspace = Workspace.objects.create(name="Acme", slug="acme")
source = Source.objects.create(workspace=workspace, name="Website")
hook = Integration(workspace=workspace, name="Hook", kind="webhook")
hook.set_settings({{"url": {url!r}}})
hook.save()
print(source.write_key)
"""

UNDELIVERED = """
from integrations.models import Delivery
print(Delivery.objects.exclude(status=Delivery.Status.DELIVERED).count())
"""


def manage(database_url: str, *args: str) -> str:
    env = {"DJANGO_SETTINGS_MODULE": "console.test_settings", "DATABASE_URL": database_url}
    result = subprocess.run(  # noqa: S603 (our own command line)
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


class Load(threading.Thread):
    """Posts batches of track calls until stopped; a batch that is not acknowledged (the
    database is away) is sent again later with the same message ids, as Segment's
    libraries do."""

    def __init__(self, url: str, write_key: str) -> None:
        super().__init__(name="load", daemon=True)
        self.url = f"{url}/v1/batch"
        self.write_key = write_key
        self.stopping = threading.Event()
        self.acknowledged: set[str] = set()
        self.refused = 0

    def run(self) -> None:
        http = local_session()
        unacknowledged: collections.deque[list[dict]] = collections.deque()
        for _ in range(MAX_BATCHES):
            if self.stopping.is_set():
                break
            batch = unacknowledged.popleft() if unacknowledged else self.new_batch()
            try:
                response = http.post(
                    self.url, json={"batch": batch}, auth=(self.write_key, ""), timeout=10
                )
                ok = response.status_code == 200
            except OSError:  # requests' connection errors are OSErrors
                ok = False
            if ok:
                self.acknowledged.update(message["messageId"] for message in batch)
            else:
                self.refused += 1
                unacknowledged.append(batch)
                self.stopping.wait(0.2)
            self.stopping.wait(0.02)

    @staticmethod
    def new_batch() -> list[dict]:
        return [
            {
                "type": "track",
                "userId": f"user-{index % 4}",
                "event": "Signed Up",
                "messageId": f"msg-{uuid.uuid4()}",
            }
            for index in range(BATCH_SIZE)
        ]


@pytest.fixture
def postgres():
    server = PrivatePostgres()
    yield server
    server.destroy()


def test_workers_ride_out_postgresql_restarts_under_load(postgres, settings, tmp_path):
    database_url = postgres.create_database("console")
    manage(database_url, "migrate", "--noinput", "-v0")
    with FakeVendor() as vendor:
        write_key = manage(database_url, "shell", "-c", SETUP.format(url=vendor.url("/hook")))
        web = WebProcess(database_url, tmp_path / "web.log", "--workers", "2")
        pool = WorkerPool(settings, tmp_path, database_url=database_url)
        # Short leases and frequent sweeps: what a lost connection left behind comes back
        # within seconds rather than minutes.
        pool.configure(
            DELIVERY_LEASE_SECONDS=3.0,
            DELIVERY_TASK_TIME_BUDGET=2.0,
            DELIVERY_RECOVERY_INTERVAL=1.0,
        )
        workers = [pool.start() for _ in range(WORKERS)]
        load = Load(web.url, write_key)
        try:
            load.start()
            for _ in range(RESTARTS):
                time.sleep(2)
                postgres.restart()
            time.sleep(2)
            postgres.stop()  # a longer outage: workers back off
            time.sleep(4)
            postgres.start()
            time.sleep(2)
            load.stopping.set()
            load.join(timeout=30)

            assert len(load.acknowledged) >= 100, "the load generator barely ran"
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while time.monotonic() < deadline:
                received = {r.headers.get("webhook-id") for r in vendor.requests_to("/hook")}
                if load.acknowledged <= received:
                    break
                time.sleep(0.5)
            missing = load.acknowledged - received
            details = f"{pool.output()}\n---- web ----\n{web.output()}\n{postgres.server_log()}"
            assert not missing, (
                f"{len(missing)} of {len(load.acknowledged)} acknowledged events never "
                f"reached the vendor\n{details}"
            )
            assert all(w.alive for w in workers), f"a worker exited\n{details}"
            wait_for_nothing_undelivered(database_url, details)
            for worker in workers:
                output = worker.output()
                # The worker loop and the task machinery take the outage in stride: no
                # errors of theirs (the engine logs what it was doing when it broke).
                errors = re.findall(LOOP_ERRORS, output, flags=re.MULTILINE)
                assert not errors, f"{worker.name} logged errors: {errors}\n{output}"
                # Once per outage at most (the load sees every one of them).
                outages = output.count("database unavailable")
                assert outages <= RESTARTS + 1, f"{worker.name} logged {outages} outages\n{output}"
                assert output.count("database available again") == outages, output
            assert any("database unavailable" in w.output() for w in workers), details
        finally:
            load.stopping.set()
            pool.stop_all()
            web.stop()


def wait_for_nothing_undelivered(database_url: str, details: str) -> None:
    """Deliveries repeated after a lost outcome settle as delivered too."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        undelivered = int(manage(database_url, "shell", "-c", UNDELIVERED))
        if undelivered == 0:
            return
        assert time.monotonic() < deadline, f"{undelivered} deliveries not delivered\n{details}"
        time.sleep(1)
