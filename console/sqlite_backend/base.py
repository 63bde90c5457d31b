"""Django's SQLite backend, with write transactions queued on a lock file.

SQLite lets one writer at a time. A connection that finds the write lock taken sleeps
in steps (1, 2, 5 … 100 ms) and tries again, so with several processes writing — the
web server's workers and the delivery worker — a writer often sleeps long after the
lock was released: throughput drops and the slowest requests wait hundreds of
milliseconds for nothing. Here every write transaction first takes an exclusive
``flock`` on ``<database>.writelock``; the kernel wakes the next writer the moment the
previous one commits, and SQLite's own lock is then always free. Reads do not take it
(with WAL they never wait for a writer). An in-memory database needs no lock.

WAL checkpoints (copying committed pages into the database file, and its fsync) run after
the lock is released: SQLite's automatic checkpoint would run inside the commit, with
every other writer queued behind it (``PRAGMA wal_autocheckpoint=0`` in the settings).
A connection that commits checkpoints at most once every ``CHECKPOINT_SECONDS``, in
PASSIVE mode: it never waits for readers or writers, and a checkpoint that another
process is running is left to it.
"""

import fcntl
import logging
import sqlite3
import time
from typing import Any

from django.db.backends.sqlite3 import base

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_lock: Any = None  # the lock file, while a transaction holds it
        self._checkpointed_at = 0.0  # time.monotonic() of this connection's last checkpoint

    def _lock_path(self) -> str | None:
        name = str(self.settings_dict["NAME"])
        if self.is_in_memory_db() or not name:
            return None
        return f"{name}.writelock"

    def _start_transaction_under_autocommit(self) -> None:
        path = self._lock_path()
        if path is not None and self._write_lock is None:
            lock = open(path, "a")  # noqa: SIM115 (held until the transaction ends)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
            except BaseException:
                lock.close()
                raise
            self._write_lock = lock
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # private: not in the stubs
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self) -> None:
        lock, self._write_lock = self._write_lock, None
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]  # private: not in the stubs
        finally:
            self._release_write_lock()
        if self._lock_path() is not None:
            self._checkpoint_now_and_then()

    def _checkpoint_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._checkpointed_at < CHECKPOINT_SECONDS:
            return
        self._checkpointed_at = now
        try:
            self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:  # the commit stands; the next checkpoint takes these pages
            log.warning("SQLite WAL checkpoint failed", exc_info=True)

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]  # private: not in the stubs
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]  # private: not in the stubs
        finally:
            self._release_write_lock()
