"""The ingest path's storage and caches: the one-statement insert (PostgreSQL), dedupe and
races settled by the database, seen-event counts after commit, per-process config caches
and the event indexes."""

import datetime as dt
import threading
import time
import uuid

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations import ingest
from integrations.delivery import routing
from integrations.delivery.routing import Router
from integrations.models import Event, EventRule, SeenEvent, Source, Workspace
from integrations.sources import http_api
from integrations.sources.segment_spec import normalize
from tests.test_fanout import make_integration
from tests.test_tracking_api import post, track

RECEIVED_AT = dt.datetime(2024, 3, 1, 12, 0, 0, 987654, tzinfo=dt.UTC)
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement insert is PostgreSQL's"
)


def messages(**overrides) -> list[dict]:
    """Messages whose columns and payloads exercise every type the insert converts."""
    raw = [
        {
            "type": "track",
            "event": 'Say "hi" \\ to José 😀',
            "userId": 42,
            "anonymousId": "anon\u2028line",
            "timestamp": "2024-03-01T17:29:56.123456+05:30",
            "sentAt": "2024-03-01T12:00:00.5",  # no offset: UTC
            "properties": {
                "price": 0.1,
                "tiny": 1e-7,
                "big": 2**63 + 1,
                "none": None,
                "flag": False,
                "list": [1, "two", {"three": [3.5]}],
                "ключ": "значение",
                "empty": "",
            },
        },
        {
            "type": "identify",
            "userId": "u-2",
            "traits": {"email": "a@example.com"},
            "originalTimestamp": "2024-03-01T11:59:59.123456789Z",  # beyond microseconds
            "timestamp": "2024-02-29T23:00:00-01:00",
        },
        {"type": "group", "userId": "u-3", "groupId": "g-1", "traits": {"plan": "team"}},
        {"type": "page", "anonymousId": "a-4", "name": "Home"},
        {"type": "alias", "userId": "u-5", "previousId": "a-5"},
    ]
    return [
        normalize({"messageId": f"m-{i}", **m, **overrides}, received_at=RECEIVED_AT)
        for i, m in enumerate(raw)
    ]


def tracked(**fields) -> dict:
    return normalize(track(**fields), received_at=RECEIVED_AT, message_type="track")


def columns(event: Event) -> dict:
    return {f.attname: getattr(event, f.attname) for f in Event._meta.concrete_fields}


# --- the insert: exact round trip, dedupe ------------------------------------------------


def test_accepted_events_equal_the_stored_rows(source):
    result = ingest.accept(source, messages())
    assert len(result.accepted) == 5
    for event in result.accepted:
        assert not event._state.adding
        assert columns(Event.objects.get(pk=event.pk)) == columns(event)
    stored = Event.objects.get(type="track")
    assert stored.user_id == "42"
    assert stored.event == 'Say "hi" \\ to José 😀'
    # receivedAt - (sentAt - timestamp), to the millisecond as Segment writes it
    assert stored.timestamp == dt.datetime(2024, 3, 1, 11, 59, 56, 611000, tzinfo=dt.UTC)
    assert stored.received_at == RECEIVED_AT.replace(microsecond=987000)  # as receivedAt says
    assert stored.sent_at == dt.datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=dt.UTC)
    assert stored.payload["properties"]["big"] == 2**63 + 1
    assert stored.source_id == source.pk and stored.workspace_id == source.workspace_id
    identify = Event.objects.get(type="identify")
    assert identify.original_timestamp.microsecond == 123456


@postgresql_only
def test_the_one_statement_insert_stores_what_the_orm_stores(source):
    """Column by column and payload by payload, as ``bulk_create`` would have."""
    fast = ingest.accept(source, messages()).accepted
    other = Workspace.objects.create(name="Other", slug="other")
    orm = [ingest.event_from_message(m, workspace_id=other.pk, source=source) for m in messages()]
    Event.objects.bulk_create(orm)
    for a, b in zip(fast, orm, strict=True):
        stored_a, stored_b = Event.objects.get(pk=a.pk), Event.objects.get(pk=b.pk)
        assert {**columns(stored_a), "id": None, "workspace_id": None} == {
            **columns(stored_b),
            "id": None,
            "workspace_id": None,
        }


@postgresql_only
def test_the_insert_is_one_statement(source):
    with CaptureQueriesContext(connection) as queries:
        ingest.accept(source, messages())
    inserts = [q["sql"] for q in queries if "integrations_event" in q["sql"]]
    assert len(inserts) == 1
    assert "jsonb_to_recordset" in inserts[0] and "RETURNING" in inserts[0]
    # The rows are bound on the server, not written into the statement's text.
    assert "jsonb_to_recordset($1::jsonb)" in inserts[0]
    assert messages()[0]["event"] not in inserts[0]


def test_duplicates_in_the_call_and_in_the_table_are_skipped(source):
    first = ingest.accept(source, messages())
    again = messages()[:2] + [tracked(messageId="new")] * 2
    result = ingest.accept(source, again)
    assert [e.message_id for e in result.accepted] == ["new"]
    assert result.duplicates == 3
    assert Event.objects.count() == 6
    assert Event.objects.get(message_id="new").pk == result.accepted[0].pk
    assert {e.pk for e in first.accepted} < set(Event.objects.values_list("pk", flat=True))


def test_the_same_message_id_in_another_workspace_is_new(source):
    other = Source.objects.create(
        workspace=Workspace.objects.create(name="Other", slug="other"), name="S"
    )
    ingest.accept(source, messages())
    assert len(ingest.accept(other, messages()).accepted) == 5


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first_commits", [True, False])
def test_concurrent_requests_store_each_message_once(first_commits):
    """The second insert waits for the first transaction; the database tells it which of
    its rows it wrote: none of the shared ones if the first committed, all if not."""
    workspace = Workspace.objects.create(name="Race", slug="race")
    source = Source.objects.create(workspace=workspace, name="S")
    shared = [str(uuid.uuid4()) for _ in range(3)]
    batch_a = [tracked(messageId=m) for m in shared]
    batch_b = [*batch_a, tracked(messageId="b-only")]
    inserted, results = threading.Event(), {}

    def first() -> None:
        try:
            with transaction.atomic():
                results["a"] = ingest.accept(source, batch_a)
                inserted.set()
                threading.Event().wait(0.5)  # the second request is now blocked on our rows
                if not first_commits:
                    transaction.set_rollback(True)
        finally:
            inserted.set()
            connection.close()

    def second() -> None:
        try:
            inserted.wait(5)
            results["b"] = ingest.accept(source, batch_b)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    accepted_b = sorted(e.message_id for e in results["b"].accepted)
    assert len(results["a"].accepted) == 3
    assert accepted_b == (["b-only"] if first_commits else sorted([*shared, "b-only"]))
    assert Event.objects.filter(workspace=workspace).count() == 4


# --- seen events: counted by the router, one upsert after its commit --------------------


def test_seen_events_are_counted_after_commit(source, django_capture_on_commit_callbacks):
    ingest.accept(source, messages())
    assert not SeenEvent.objects.exists()  # nothing written in the request
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        routing.route_pending()
    assert not SeenEvent.objects.exists()  # nor in the router's transaction
    for callback in callbacks:
        callback()
    row = SeenEvent.objects.get()
    assert (row.name, row.count) == ('Say "hi" \\ to José 😀', 1)


def test_seen_counts_add_up_and_first_seen_stays(source, django_capture_on_commit_callbacks):
    earlier = timezone.now() - dt.timedelta(days=3)
    SeenEvent.objects.create(
        workspace=source.workspace, name="B", count=5, first_seen_at=earlier, last_seen_at=earlier
    )
    batch = [
        tracked(event=name, messageId=f"{name}-{i}")
        for i, name in enumerate(["B", "A", "B", "C", "A", "B"])
    ]
    batch.append(tracked(event="B", messageId="B-0"))  # dup
    ingest.accept(source, batch)
    with CaptureQueriesContext(connection) as q, django_capture_on_commit_callbacks(execute=True):
        routing.route_pending()
    counts = dict(SeenEvent.objects.values_list("name", "count"))
    assert counts == {"A": 2, "B": 8, "C": 1}
    b = SeenEvent.objects.get(name="B")
    assert b.first_seen_at == earlier and b.last_seen_at > earlier
    upserts = [x["sql"] for x in q if "integrations_seenevent" in x["sql"]]
    assert len(upserts) == 1  # one statement, names in sorted order (no deadlocks)
    assert upserts[0].index("'A'") < upserts[0].index("'B'") < upserts[0].index("'C'")


def test_no_count_when_the_transaction_rolls_back(source, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        ingest.accept(source, messages())
        routing.route_pending()
        transaction.set_rollback(True)
    assert not SeenEvent.objects.exists()


# --- per-process configuration caches ---------------------------------------------------


@pytest.fixture
def cache_on(settings):
    """The production behaviour: a 5-second cache (the suite runs with none)."""
    settings.INGEST_CONFIG_CACHE_SECONDS = 5
    http_api._sources.clear()
    routing._routers.clear()
    yield
    http_api._sources.clear()
    routing._routers.clear()


def later(monkeypatch, seconds: float) -> None:
    now = time.monotonic() + seconds
    monkeypatch.setattr("integrations.config_cache.time.monotonic", lambda: now)


def source_queries(api_client, source, write_key=None) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = post(api_client, "/v1/track", track(), write_key=write_key or source.write_key)
    return response.status_code, sum("integrations_source" in q["sql"] for q in queries)


def test_the_source_of_a_write_key_is_cached(cache_on, api_client, source, monkeypatch):
    assert source_queries(api_client, source) == (200, 1)
    assert source_queries(api_client, source) == (200, 0)
    later(monkeypatch, 6)
    assert source_queries(api_client, source) == (200, 1)


def test_source_changes_in_this_process_apply_at_once(cache_on, api_client, source):
    assert source_queries(api_client, source) == (200, 1)
    source.enabled = False
    source.save()
    assert source_queries(api_client, source) == (403, 1)
    source.enabled = True
    source.save()
    old_key = source.write_key
    source.regenerate_keys()
    assert source_queries(api_client, source, old_key)[0] == 401
    assert source_queries(api_client, source)[0] == 200
    source.delete()
    assert source_queries(api_client, source)[0] == 401


def test_changes_by_other_processes_apply_within_the_ttl(cache_on, api_client, source, monkeypatch):
    """``update()`` sends no signal, as a change made by another process."""
    assert source_queries(api_client, source)[0] == 200
    Source.objects.filter(pk=source.pk).update(enabled=False)
    assert source_queries(api_client, source)[0] == 200
    later(monkeypatch, 6)
    assert source_queries(api_client, source)[0] == 403


def test_unknown_write_keys_are_not_cached(cache_on, api_client, source):
    key = "k" * 32
    assert source_queries(api_client, source, key)[0] == 401
    Source.objects.filter(pk=source.pk).update(write_key=key)
    assert source_queries(api_client, source, key)[0] == 200


def test_the_router_is_cached_and_cleared_on_change(cache_on, workspace):
    hook = make_integration(workspace)
    with CaptureQueriesContext(connection) as queries:
        first = Router.for_workspace(workspace.pk)
        assert Router.for_workspace(workspace.pk) is first
    assert len(queries) == 2  # integrations, then their rules, once
    rule = EventRule.objects.create(integration=hook, event="Signed Up", enabled=False)
    assert Router.for_workspace(workspace.pk).targets[0][1] == {"Signed Up": rule}
    rule.delete()
    assert Router.for_workspace(workspace.pk).targets[0][1] == {}
    hook.enabled = False
    hook.save()
    assert Router.for_workspace(workspace.pk).targets == []
    make_integration(workspace, name="Second")
    assert [i.name for i, _ in Router.for_workspace(workspace.pk).targets] == ["Second"]


def test_rules_replaced_through_the_api_route_at_once(cache_on, member_client, workspace):
    hook = make_integration(workspace)
    Router.for_workspace(workspace.pk)
    url = f"/api/v1/workspaces/{workspace.slug}/integrations/{hook.pk}/"
    rules = [{"event": "Signed Up", "enabled": False}]
    assert member_client().patch(url, {"event_rules": rules}, format="json").status_code == 200
    assert list(Router.for_workspace(workspace.pk).targets[0][1]) == ["Signed Up"]


def test_without_a_ttl_nothing_is_cached(api_client, source):
    assert source_queries(api_client, source) == (200, 1)
    assert source_queries(api_client, source) == (200, 1)


# --- indexes -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_event_indexes_are_led_by_the_workspace():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Event._meta.db_table)
    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"] or c["unique"]}
    assert ("workspace_id", "user_id") in indexed
    assert ("workspace_id",) not in indexed
    assert ("user_id",) not in indexed


@pytest.mark.django_db
def test_no_index_is_covered_by_another():
    """An index whose columns lead another index (or unique constraint) costs every write
    and serves no query the longer one does not."""
    covered = []
    for model in apps.get_app_config("integrations").get_models():
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
        # A partial index or constraint covers only some rows.
        partial = {
            index.name
            for index in [*model._meta.indexes, *model._meta.constraints]
            if getattr(index, "condition", None) is not None
        }
        indexes = {
            name: tuple(c["columns"])
            for name, c in constraints.items()
            if (c["index"] or c["unique"]) and c["columns"] and name not in partial
        }
        for name, columns in indexes.items():
            if constraints[name]["unique"] or constraints[name]["primary_key"]:
                continue
            for other, longer in indexes.items():
                if (
                    other != name
                    and len(longer) > len(columns)
                    and longer[: len(columns)] == columns
                ):
                    covered.append(f"{model._meta.db_table}.{name} {columns} by {other} {longer}")
    assert not covered
