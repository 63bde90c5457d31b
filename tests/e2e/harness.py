"""The e2e harness: worker processes on the test database, waiting on it, test data."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from integrations.models import Delivery, Dispatch, Integration

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_TIMEOUT = 30.0  # generous: CI is a 2-core box; tests normally take a few seconds

# What workers (and the test process) use unless a test says otherwise: retries come
# quickly (the schedule scaled down), everything else stays comfortably long.
DEFAULT_TIMING: dict[str, Any] = {
    "DELIVERY_RETRY_BASE_SECONDS": 0.01,
    "DELIVERY_CONNECT_TIMEOUT": 2.0,
    "DELIVERY_READ_TIMEOUT": 5.0,
    "DELIVERY_LEASE_SECONDS": 10.0,
    "DELIVERY_TASK_TIME_BUDGET": 10.0,
    "DELIVERY_RECOVERY_INTERVAL": 60.0,
    "INTEGRATIONS_ALLOW_PRIVATE_URLS": True,
}


def child_database_url() -> str:
    """A DATABASE_URL for other processes naming this test's database (``test_...``)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        name = db["NAME"]
        assert connection.vendor == "sqlite" and not connection.is_in_memory_db(), name
        return f"sqlite:///{Path(name).resolve()}"
    if connection.vendor == "postgresql":
        credentials = quote(db["USER"] or "", safe="")
        if db.get("PASSWORD"):
            credentials += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or ""
        port = f":{db['PORT']}" if db.get("PORT") else ""
        at = "@" if credentials else ""
        return f"postgres://{credentials}{at}{host}{port}/{quote(db['NAME'], safe='')}"
    raise NotImplementedError(f"no DATABASE_URL for {db['ENGINE']}")


def as_env(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- worker processes -----------------------------------------------------------------


class WorkerProcess:
    """One ``manage.py db_worker`` process; its output goes to a log file."""

    def __init__(self, pool: "WorkerPool", env: dict[str, str], name: str) -> None:
        self.pool = pool
        self.env = env
        self.name = name
        self.log_path = pool.log_dir / f"{name}.log"
        self.command = [
            sys.executable,
            "manage.py",
            "db_worker",
            "--no-reload",
            "--interval",
            "0.05",
            "--no-startup-delay",
            "--worker-id",
            name,
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own command line)
                self.command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, mid-request, leaving its task RUNNING."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the worker finishes its task), SIGKILL if it takes too long."""
        if not self.alive:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> "WorkerProcess":
        """A new worker with the same settings (after ``kill`` or ``stop``)."""
        self.stop()
        return self.pool.spawn(self.env)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class WorkerPool:
    """Starts workers with the test's timing settings and stops them all at teardown."""

    def __init__(self, settings: Any, log_dir: Path, database_url: str | None = None) -> None:
        self.settings = settings
        self.log_dir = log_dir
        # The test database unless another one is named (a private PostgreSQL).
        self.database_url = database_url
        self.timing = dict(DEFAULT_TIMING)
        self.workers: list[WorkerProcess] = []
        self.configure()

    def configure(self, **timing: Any) -> None:
        """Timing settings for this process and the workers started from now on."""
        unknown = set(timing) - set(DEFAULT_TIMING)
        assert not unknown, f"unknown timing settings: {unknown}"
        self.timing.update(timing)
        for name, value in self.timing.items():
            setattr(self.settings, name, value)

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "console.test_settings",
            "DATABASE_URL": self.database_url or child_database_url(),
            "PYTHONUNBUFFERED": "1",
        }
        env.update({name: as_env(value) for name, value in self.timing.items()})
        return env

    def start(self, **timing: Any) -> WorkerProcess:
        """Start a worker; ``timing`` overrides apply to it, the test and later workers."""
        self.configure(**timing)
        return self.spawn(self.env())

    def spawn(self, env: dict[str, str]) -> WorkerProcess:
        worker = WorkerProcess(self, env, f"e2e-worker-{len(self.workers) + 1}")
        self.workers.append(worker)
        return worker

    def manage(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a management command in its own process, against the test database."""
        return subprocess.run(  # noqa: S603 (our own command line)
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.alive:
                worker.process.terminate()
        for worker in self.workers:
            worker.stop()

    def output(self) -> str:
        parts = []
        for worker in self.workers:
            state = "running" if worker.alive else f"exit code {worker.process.returncode}"
            parts.append(f"---- {worker.name} ({state}) ----\n{worker.output()}")
        return "\n".join(parts)


# -- waiting for the database ---------------------------------------------------------


def describe_state() -> str:
    """Every dispatch, every delivery with its attempts, and the delivery tasks: for
    failure messages."""
    lines = []
    for dispatch in Dispatch.objects.select_related("integration").order_by("pk")[:100]:
        lines.append(
            f"dispatch {dispatch.pk} [{dispatch.integration.name}] origin={dispatch.origin} "
            f"done={dispatch.done}/{dispatch.size} started={dispatch.started} "
            f"next={dispatch.next_attempt_at} leased_until={dispatch.leased_until} "
            f"waiting_reason={dispatch.waiting_reason[:120]!r}"
        )
    deliveries = Delivery.objects.select_related("integration", "event").order_by("pk")
    for delivery in deliveries[:100]:
        lines.append(
            f"delivery {delivery.pk} [{delivery.integration.name}] {delivery.event.message_id} "
            f"origin={delivery.origin} status={delivery.status} "
            f"attempts={delivery.attempt_count} next={delivery.next_attempt_at} "
            f"leased_until={delivery.leased_until} last_error={delivery.last_error[:120]!r}"
        )
        for attempt in delivery.attempt_log():
            lines.append(
                f"    attempt {attempt.number} {attempt.trigger} at {attempt.started_at}: "
                f"{attempt.outcome} status={attempt.status_code} error={attempt.error[:120]!r}"
            )
    lines.append("tasks:")
    for task in DBTaskResult.objects.order_by("enqueued_at")[:100]:
        lines.append(
            f"    {task.status} run_after={task.run_after} worker={task.worker_ids} "
            f"args={task.args_kwargs.get('args')}"
        )
    return "\n".join(lines)


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT_TIMEOUT, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy (and return that).

    Between polls the connection is closed if it has errored (a worker may hold the
    database while it writes). On timeout, fail with the deliveries' state and attempts.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout} s waiting for {what or predicate.__name__}\n"
                f"{describe_state()}",
                pytrace=False,
            )
        time.sleep(0.05)
        connection.close_if_unusable_or_obsolete()


def wait_for_status(
    deliveries, status: str, count: int = 1, timeout: float = WAIT_TIMEOUT
) -> list[Delivery]:
    """Wait until the queryset holds ``count`` deliveries (or more), every one of them
    with ``status``; return them (by pk). Deliveries appear as their first attempts are
    recorded."""

    def reached() -> list[Delivery] | None:
        rows = list(deliveries.order_by("pk"))
        return rows if len(rows) >= count and all(d.status == status for d in rows) else None

    return wait_until(reached, timeout, f"{count} deliveries to be {status}")


# -- events and integrations ----------------------------------------------------------


def track(message_id: str | None = None, event: str = "Signed Up", **fields: Any) -> dict:
    return {
        "type": "track",
        "userId": "user-1",
        "event": event,
        "messageId": message_id or f"msg-{uuid.uuid4()}",
        "properties": {"plan": "pro"},
        **fields,
    }


def make_webhook(workspace, url: str, name: str = "Hook", **settings: Any) -> Integration:
    """A webhook integration to ``url`` (its whsec_ signing secret is generated)."""
    integration = Integration(workspace=workspace, name=name, kind="webhook")
    integration.set_settings({"url": url, **settings})
    integration.save()
    return integration
