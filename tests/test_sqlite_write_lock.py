"""The SQLite backend queues write transactions on a lock file (console/sqlite_backend).

Without it, a writer that finds SQLite's lock taken sleeps and retries until its
``timeout`` and then fails with "database is locked"; with it, the writer waits in the
kernel for the lock file and starts the moment the other transaction ends. The busy
timeout here is 10 ms while the first transaction holds the lock for far longer: only the
lock file can make the second writer succeed.
"""

import fcntl
import threading

import pytest
from django.db.utils import ConnectionHandler

from console import sqlite_backend
from console.sqlite_backend import base

SETTINGS = {
    "ENGINE": "console.sqlite_backend",
    "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 0.01},
}


@pytest.fixture(autouse=True)
def own_databases(django_db_blocker):
    """These tests open databases of their own, not the test database."""
    with django_db_blocker.unblock():
        yield


def handler(path) -> ConnectionHandler:
    return ConnectionHandler({"default": {**SETTINGS, "NAME": str(path)}})


def begin(connection) -> None:
    """BEGIN IMMEDIATE under the lock file, as ``transaction.atomic`` starts one."""
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)


def write(connections: ConnectionHandler, text: str) -> None:
    connection = connections["default"]
    begin(connection)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO log (text) VALUES (%s)", [text])
    connection.commit()
    connection.set_autocommit(True)


def test_a_second_writer_waits_for_the_first_instead_of_failing(tmp_path):
    path = tmp_path / "db.sqlite3"
    connections = handler(path)
    first = connections["default"]
    with first.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("CREATE TABLE log (text TEXT)")
    begin(first)
    with first.cursor() as cursor:
        cursor.execute("INSERT INTO log (text) VALUES ('first')")

    started, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def second_writer() -> None:
        others = handler(path)
        try:
            started.set()
            write(others, "second")
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            done.set()
            others.close_all()

    thread = threading.Thread(target=second_writer)
    thread.start()
    started.wait()
    # Far longer than the busy timeout: the second writer is waiting, not failing.
    assert not done.wait(0.5), errors
    first.commit()
    first.set_autocommit(True)
    thread.join(10)
    assert not errors, errors
    with first.cursor() as cursor:
        cursor.execute("SELECT text FROM log ORDER BY rowid")
        assert [row[0] for row in cursor.fetchall()] == ["first", "second"]
    # Every transaction let go of the lock file.
    with open(f"{path}.writelock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    connections.close_all()


def test_a_rolled_back_transaction_releases_the_lock(tmp_path):
    path = tmp_path / "db.sqlite3"
    connections = handler(path)
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE log (text TEXT)")
    begin(connection)
    connection.rollback()
    connection.set_autocommit(True)
    with open(f"{path}.writelock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    connections.close_all()


@pytest.mark.parametrize("checkpoints", [True, False])
def test_commits_checkpoint_the_wal_after_the_lock(tmp_path, monkeypatch, checkpoints):
    """SQLite's own checkpoints are off (they would run inside the commit, every other
    writer queued behind them): the backend checkpoints after a commit, at most once a
    ``CHECKPOINT_SECONDS``. Checkpointed pages land in the database file; without the
    backend's checkpoints they stay in the WAL."""
    monkeypatch.setattr(base, "CHECKPOINT_SECONDS", 0.0 if checkpoints else float("inf"))
    path = tmp_path / "db.sqlite3"
    connections = ConnectionHandler(
        {"default": {**SETTINGS, "OPTIONS": sqlite_backend.OPTIONS, "NAME": str(path)}}
    )
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == 0
        cursor.execute("CREATE TABLE log (text TEXT)")
    for _ in range(30):
        begin(connection)
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO log (text) VALUES (%s)", [["x" * 1000]] * 20)
        connection.commit()
        connection.set_autocommit(True)
    size = path.stat().st_size
    if checkpoints:
        assert size > 500_000  # the rows are in the database file
    else:
        assert size < 100_000  # still in the WAL only
    connections.close_all()
