"""End-to-end fixtures: a fake vendor on 127.0.0.1, real ``db_worker`` processes, ingest.

Worker processes are separate programs that open the test database themselves, so the
tests that use them are transactional (their data is committed) and, on SQLite, the test
database is a file rather than the default in-memory database (see ``pytest_configure``).
"""

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings

from tests.e2e.fake_vendor import FakeVendor
from tests.e2e.harness import WorkerPool

_SQLITE_DIR = pytest.StashKey[str]()
_WORKERS = pytest.StashKey[WorkerPool]()
_VENDOR = pytest.StashKey[FakeVendor]()


# -- the test database must be one that other processes can open ----------------------


def pytest_configure(config: pytest.Config) -> None:
    """On SQLite, make the test database a file: workers cannot see an in-memory one.

    This runs when this conftest is loaded, before any database is set up. It cannot be a
    ``django_db_modify_db_settings`` override here: that session fixture (and the test
    database) is set up once, by the first test that needs a database, which is
    usually not an e2e test (pytest-django runs transactional tests last). So whenever
    the e2e tests are collected, the session's SQLite test database is a file; the other
    tests do not notice (measured: the suite's run time is unchanged).
    """
    database = django_settings.DATABASES["default"]
    if (
        not database["ENGINE"].endswith("sqlite3")
        and database["ENGINE"] != "console.sqlite_backend"
    ):
        return
    test = database.setdefault("TEST", {})
    if test.get("NAME") and test["NAME"] != ":memory:":
        return  # already a file
    directory = tempfile.mkdtemp(prefix="console-e2e-")
    config.stash[_SQLITE_DIR] = directory
    test["NAME"] = os.path.join(directory, "test.sqlite3")


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_SQLITE_DIR, None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def worker(request, settings, transactional_db, tmp_path) -> Iterator[WorkerPool]:
    """``worker.start(**timing)`` starts a ``db_worker`` process on the test database.

    Requesting this fixture applies ``DEFAULT_TIMING`` to the test's settings; timing
    passed to ``start`` (or ``configure``) applies to the test process too.
    """
    pool = WorkerPool(settings, tmp_path)
    request.node.stash[_WORKERS] = pool
    yield pool
    pool.stop_all()


@pytest.fixture
def fake_vendor(request) -> Iterator[FakeVendor]:
    with FakeVendor() as vendor:
        request.node.stash[_VENDOR] = vendor
        yield vendor


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """On failure, show what the workers printed and what the fake vendor received."""
    report = yield
    if report.failed:
        pool = item.stash.get(_WORKERS, None)
        if pool is not None and pool.workers:
            report.sections.append(("worker output", pool.output()))
        vendor = item.stash.get(_VENDOR, None)
        if vendor is not None:
            lines = [
                f"{r.at:%H:%M:%S.%f} {r.method} {r.path} webhook-id={r.headers.get('webhook-id')}"
                for r in vendor.requests
            ]
            report.sections.append(("fake vendor requests", "\n".join(lines) or "(none)"))
    return report


@pytest.fixture
def ingest(live_server) -> Iterator[Callable[..., None]]:
    """Post messages to the real tracking API as a source: all in one ``/v1/batch``
    request, or one request each (``one_by_one``, to ``/v1/<type>``)."""
    http = requests.Session()
    http.trust_env = False  # no proxies from the environment for 127.0.0.1

    def post(source, *messages: dict, one_by_one: bool = False) -> None:
        if one_by_one:
            calls = [(f"/v1/{message['type']}", message) for message in messages]
        else:
            calls = [("/v1/batch", {"batch": list(messages)})]
        for path, body in calls:
            response = http.post(
                live_server.url + path, json=body, auth=(source.write_key, ""), timeout=30
            )
            assert response.status_code == 200, response.text

    yield post
    http.close()
