"""The delivery worker's loop: django-tasks-db's ``Worker``, made to outlive its database.

django-tasks-db's worker ends its process on the first database error it does not expect
(claiming a task, or recording a task's outcome with ``set_successful``/``set_failed``).
This one rides out a database restart or failover instead:

* A transient database error (connection lost or refused, server shutting down or
  starting up, a read-only former primary) anywhere in the loop closes the connection and
  waits, with capped exponential backoff, before trying again. The outage is logged once
  when it starts and once when it ends, not on every attempt.
* A task whose outcome could not be recorded keeps it in memory and records it once the
  database is back. Deliveries are the source of truth either way: what a task held when
  the database went away is leased, and once the lease expires the recovery sweep
  (a ``Periodic`` job in the same process) enqueues it again.
* SIGINT/SIGTERM stop the worker after its current task, without a traceback; a second
  signal interrupts the task (its deliveries are retried after their lease).
"""

import contextlib
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.db import (
    DatabaseError,
    Error,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    transaction,
)
from django_tasks_db.compat import (
    TaskContext,
    TaskResultStatus,
    task_enqueued,
    task_finished,
    task_started,
)
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from integrations.delivery.signal_mask import leave_stop_signals_to_the_main_thread

log = logging.getLogger(__name__)

# Backoff between attempts to reach the database: 0.5 s, 1 s, 2 s ... up to 30 s.
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
# SQLSTATE of "cannot execute ... in a read-only transaction": after a failover the old
# primary, now a standby, answers this until connections move to the new primary.
READ_ONLY_SQL_TRANSACTION = "25006"


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is one that waiting out fixes (not a bug or bad data).
    (Django's ``InterfaceError`` is not a ``DatabaseError``: both are ``Error``.)"""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DatabaseError):
        return getattr(exc.__cause__, "sqlstate", None) == READ_ONLY_SQL_TRANSACTION
    return False


def drop_connections() -> None:
    """Close this thread's database connections; the next query opens a new one."""
    for conn in connections.all(initialized_only=True):
        # Closing a broken connection can fail; Django discards it all the same.
        with contextlib.suppress(Error):
            conn.close()


class DatabaseOutage:
    """Tracks one process's view of the database being unreachable.

    Shared by the worker loop and its threads (router, recovery sweep, alert check): the
    first of them to fail logs the outage, the first to succeed afterwards logs its end.

    Each thread has its own connection. A thread that slept through an outage still holds
    a connection the server cut; its first query after the outage fails. That is the old
    outage's aftermath, not a new one: each thread calls ``prepare`` before its database
    work, which drops connections opened before the latest outage began, and a failure on
    such a connection (or again on the one that failed) is retried at once without a log
    line.
    """

    def __init__(
        self, first_delay: float = FIRST_RETRY_SECONDS, max_delay: float = MAX_RETRY_SECONDS
    ) -> None:
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0
        # Outages begun so far, and (per thread) the count when it last prepared.
        self._outages = 0
        self._seen = threading.local()

    def _seen_outages(self) -> int:
        return getattr(self._seen, "outages", 0)

    def prepare(self) -> None:
        """Before a thread's database work: drop connections from before an outage."""
        if self._seen_outages() != self._outages:
            drop_connections()
            self._seen.outages = self._outages

    def failed(self, exc: BaseException) -> float:
        """Note a failed attempt; returns how long to wait before the next one."""
        with self._lock:
            if self._since is None:
                if self._seen_outages() != self._outages:
                    # A connection from before the latest outage: ``prepare`` replaces it.
                    return 0.0
                # This thread's connection failed: until ``prepare`` replaces it, its
                # failures on it are this outage's, even after another thread saw the end.
                self._outages += 1
                self._since = time.monotonic()
                log.warning(
                    "database unavailable (%s: %s); retrying with backoff (at most every "
                    "%.0f s) until it is back",
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail",
                    self.max_delay,
                )
            self._failures += 1
            # The exponent is capped: an outage of days must not overflow a float.
            delay = min(self.max_delay, self.first_delay * 2 ** min(self._failures - 1, 20))
        # Jitter: workers that lost the database together do not all come back at once.
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 (not cryptographic)

    def succeeded(self) -> None:
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            log.warning(
                "database available again after %.1f s (%d failed attempts)",
                time.monotonic() - self._since,
                self._failures,
            )
            self._since, self._failures = None, 0


class ForcedStop(SystemExit):
    """Raised by a second SIGINT/SIGTERM: stop now, even in the middle of a task."""

    def __init__(self) -> None:
        super().__init__(1)


@dataclass
class Outcome:
    """What a task returned, or the error it raised. A quiet outcome is a task that lost
    the database or was interrupted: its failure is logged in one line, not as a
    traceback, and ``task_finished`` is not sent for it (django-tasks' receiver logs
    every failed task with a traceback)."""

    value: Any = None
    error: BaseException | None = None
    quiet: bool = False


class ResilientWorker(Worker):
    """django-tasks-db's worker loop, surviving database outages (see the module doc)."""

    def __init__(self, *, outage: DatabaseOutage, **options: Any) -> None:
        super().__init__(**options)
        self.outage = outage
        self.stopping = threading.Event()
        # Set when this process enqueues a task (its router does, for what it routed):
        # the loop does not sleep out its interval before taking it.
        self.wake = threading.Event()
        task_enqueued.connect(self.task_enqueued)
        # Tasks that ran but whose outcome the database did not take yet, oldest first.
        self.unrecorded: list[tuple[DBTaskResult, Outcome]] = []

    # -- signals -----------------------------------------------------------------------

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        name = signal.strsignal(signum)
        if self.running:
            self.running = False
            # Wakes the loop if it is waiting, from another thread: this handler may run
            # inside ``stopping.wait`` while that holds the event's lock, which ``set``
            # takes too (the worker then hung, deaf to every later signal).
            threading.Thread(target=self.stop_waiting, name="stop", daemon=True).start()
            if self.running_task:
                log.warning(
                    "Received %s: stopping after the current task (again to stop at once)", name
                )
            else:
                log.warning("Received %s: stopping", name)
            return
        log.warning(
            "Received %s again: stopping now; the deliveries of an interrupted task are "
            "retried once their lease expires",
            name,
        )
        self.reset_signals()
        raise ForcedStop

    def stop_waiting(self) -> None:
        self.stopping.set()
        self.wake.set()

    def task_enqueued(self, sender: Any, **kwargs: Any) -> None:
        """The ``task_enqueued`` receiver: wake the loop once the task is committed."""
        transaction.on_commit(self.wake.set)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        log.info(
            "Starting worker worker_id=%s queues=%s", self.worker_id, ",".join(self.queue_names)
        )
        if self.startup_delay and self.interval:
            # A random small delay so that workers started together do not poll together.
            self.stopping.wait(random.random())  # noqa: S311 (not cryptographic)
        while self.running:
            try:
                ran = self.step()
            except Error as exc:
                if not is_transient(exc):
                    raise
                drop_connections()
                self.stopping.wait(self.outage.failed(exc))
                continue
            if ran is None:
                return
            if self.running and not ran:
                self.wake.wait(self.interval)
                self.wake.clear()

    def step(self) -> bool | None:
        """Record what is owed, claim a task and run it. Returns whether a task ran, or
        None when the worker is done (``--batch`` with nothing left, ``--max-tasks``)."""
        close_old_connections()
        self.outage.prepare()
        self.record_unrecorded()
        task_result, retrieved = self.claim()
        self.outage.succeeded()
        if task_result is not None:
            self.run_task(task_result)
        if self.batch and retrieved and task_result is None:
            log.info("No more tasks to run for worker_id=%s - exiting gracefully.", self.worker_id)
            return None
        if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
            log.info(
                "Run maximum tasks (%d) on worker=%s - exiting gracefully.",
                self._run_tasks,
                self.worker_id,
            )
            return None
        return task_result is not None

    def claim(self) -> tuple[DBTaskResult | None, bool]:
        """The next ready task, claimed for this worker (None if there is none); and
        whether the queue could be read (SQLite may be locked by another writer)."""
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        if self.excluded_queue_names:
            tasks = tasks.exclude(queue_name__in=self.excluded_queue_names)
        try:
            with exclusive_transaction(tasks.db):
                task_result = tasks.get_locked()
                if task_result is not None:
                    task_result.claim(self.worker_id)
        except OperationalError as exc:
            if is_locked_database_exception(exc):
                return None, False
            raise
        return task_result, True

    # -- one task ------------------------------------------------------------------------

    def run_task(self, db_task_result: DBTaskResult) -> None:
        self.running_task = True
        try:
            self.call(db_task_result)
        finally:
            self.running_task = False
            self._run_tasks += 1

    def call(self, db_task_result: DBTaskResult) -> None:
        """Run the task and record its outcome (or keep it to record later)."""
        try:
            task = db_task_result.task
            task_result = db_task_result.task_result
            task_started.send(sender=type(task.get_backend()), task_result=task_result)
            if task.takes_context:
                value = task.call(
                    TaskContext(task_result=task_result), *task_result.args, **task_result.kwargs
                )
            else:
                value = task.call(*task_result.args, **task_result.kwargs)
        except ForcedStop as exc:
            log.warning("task id=%s interrupted", db_task_result.id)
            self.finish(db_task_result, Outcome(error=exc, quiet=True))
            raise
        except BaseException as exc:  # the task's failure is its outcome, as in django-tasks
            if is_transient(exc):
                # The database went away under the task: part of the outage, logged once.
                log.warning(
                    "task id=%s lost the database; its deliveries are retried once their "
                    "lease expires",
                    db_task_result.id,
                )
                self.outage.failed(exc)
                self.finish(db_task_result, Outcome(error=exc, quiet=True))
            else:
                # Inside the except block: django-tasks logs the task's traceback.
                self.finish(db_task_result, Outcome(error=exc))
        else:
            self.finish(db_task_result, Outcome(value=value))

    def finish(self, db_task_result: DBTaskResult, outcome: Outcome) -> None:
        """Record the outcome now, or, if the database is away, once it is back."""
        try:
            record(db_task_result, outcome)
        except Error as exc:
            if not is_transient(exc):
                raise
            if outcome.error is not None and not outcome.quiet:
                log.error(
                    "task id=%s failed (recorded once the database is back)",
                    db_task_result.id,
                    exc_info=outcome.error,
                )
                outcome.quiet = True
            self.unrecorded.append((db_task_result, outcome))
            self.outage.failed(exc)

    def record_unrecorded(self) -> None:
        """Record the outcomes owed to the database. A task that the recovery sweep has
        meanwhile marked lost (no longer RUNNING) is left as the sweep recorded it."""
        while self.unrecorded:
            db_task_result, outcome = self.unrecorded[0]
            still_running = DBTaskResult.objects.filter(
                pk=db_task_result.pk, status=TaskResultStatus.RUNNING
            )
            if still_running.exists():
                record(db_task_result, outcome)
            self.unrecorded.pop(0)


def record(db_task_result: DBTaskResult, outcome: Outcome) -> None:
    """Store a task's outcome and send ``task_finished`` unless it is quiet. Transient
    database errors propagate; a return value the database refuses fails the task."""
    if outcome.error is None:
        try:
            db_task_result.set_successful(outcome.value)
        except Error as exc:
            if is_transient(exc):
                raise
            outcome = Outcome(error=exc)
        except (TypeError, ValueError) as exc:  # a return value JSON cannot hold
            outcome = Outcome(error=exc)
    if outcome.error is not None:
        db_task_result.set_failed(outcome.error)
    if outcome.quiet:
        return
    try:
        sender = type(db_task_result.task.get_backend())
        task_result = db_task_result.task_result
    except (ImportError, SuspiciousOperation):  # the task's code is gone
        log.exception("task id=%s failed unexpectedly", db_task_result.id)
        return
    task_finished.send(sender=sender, task_result=task_result)


class Periodic(threading.Thread):
    """Runs a job of the worker's at start-up and then every ``interval`` seconds, in a
    thread of its own, until ``stop`` is set.

    With ``busy_again``, a job that returns something true has more to do at once (the
    router, after a pass that found work) and is run again without waiting. A transient
    database error is part of the process's outage (logged once) and the job is tried
    again with the outage's backoff, sooner than ``interval`` when that is long: right
    after an outage is when its work is most needed. Any other error is logged, and the
    job runs again at its time.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        outage: DatabaseOutage,
        job: Callable[[], Any],
        *,
        busy_again: bool = False,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.outage = outage
        self.job = job
        self.busy_again = busy_again
        self.stop = threading.Event()

    def run(self) -> None:
        leave_stop_signals_to_the_main_thread()
        while not self.stop.is_set():
            wait = self.interval
            try:
                close_old_connections()
                self.outage.prepare()
                if self.job() and self.busy_again:
                    wait = 0
                self.outage.succeeded()
            except Error as exc:
                drop_connections()
                if not is_transient(exc):
                    log.exception("%s failed; trying again in %.0f s", self.name, wait)
                else:
                    wait = min(self.interval, self.outage.failed(exc))
            except Exception:
                drop_connections()
                log.exception("%s failed; trying again in %.0f s", self.name, wait)
            if wait >= 1:  # idle for a while: its connection is not kept open meanwhile
                drop_connections()
            if wait:
                self.stop.wait(wait)
