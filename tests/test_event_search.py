"""Searching the delivery log as a CSM does: by email, by part of an id, by event name,
whatever the case; index-backed on PostgreSQL (EXPLAIN), bounded on SQLite; scoped to the
user's workspaces."""

import datetime as dt
import importlib
import io

import pytest
import responses
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from integrations import event_search
from integrations.models import Delivery, Event, EventSearchEntry, Source, Workspace
from tests.admin_clients import Role, member
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, route, send

EVENTS = reverse("admin:integrations_event_changelist")
DELIVERIES = reverse("admin:integrations_delivery_changelist")
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's"
)
sqlite_only = pytest.mark.skipif(
    connection.vendor == "postgresql", reason="the bounded scan is the fallback's"
)
MIGRATION = importlib.import_module("integrations.migrations.0014_event_search")
ENTRIES_MIGRATION = ("integrations", "0020_event_search_entries")
ENTRIES = importlib.import_module("integrations.migrations.0020_event_search_entries")
FINE = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def events(source):
    send(
        source,
        type="identify",
        userId="usr_8f3a21",
        messageId="msg-alpha-001",
        traits={"email": "Alice.Martin@Example.com"},
    )
    send(
        source,
        type="track",
        anonymousId="anon-77c2",
        event="Subscription Renewed",
        messageId="msg-bravo-002",
        context={"traits": {"email": "bob@globex.test"}},
    )
    send(
        source,
        type="track",
        userId="u-carol",
        event="Trial Converted",
        messageId="msg-charlie-003",
        properties={"email": "carol@initech.test"},
    )
    route()  # which writes the search entries


def found(
    client,
    url: str,
    query: str,
    among: tuple[str, ...] = ("msg-alpha-001", "msg-bravo-002", "msg-charlie-003"),
) -> set[str]:
    """The message ids (events list) or users (deliveries list) a search shows."""
    text = client.get(url, {"q": query}).content.decode()
    return {m for m in among if m in text}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("alice.martin@example.com", {"msg-alpha-001"}),  # traits.email, another case
        ("ALICE", {"msg-alpha-001"}),
        ("globex", {"msg-bravo-002"}),  # context.traits.email
        ("initech.test", {"msg-charlie-003"}),  # properties.email
        ("8f3a", {"msg-alpha-001"}),  # part of a user id
        ("renewed", {"msg-bravo-002"}),  # part of an event name
        ("msg-bravo-002", {"msg-bravo-002"}),  # a whole message id
        ("bravo-00", set()),  # part of a message id: random strings, not indexed
        ("anon-77c2", set()),  # nor anonymous ids
        ("test", {"msg-bravo-002", "msg-charlie-003"}),  # two emails
        ("test trial", {"msg-charlie-003"}),  # every term must match
        ("msg-charlie-003 converted", {"msg-charlie-003"}),  # a whole id and a part
        ("nobody@nowhere", set()),
        ("u-", set()),  # too short for a part: whole ids only
        ("%%%", set()),  # a LIKE wildcard is a character like any other
        ("___", set()),
    ],
)
def test_the_event_list_finds_by_part_email_and_name(csm, events, query, expected):
    assert found(csm, EVENTS, query) == expected


def test_a_short_term_finds_a_whole_id(csm, source, events):
    send(source, type="track", userId="u7", event="Tiny", messageId="msg-tiny-004")
    assert "msg-tiny-004" in csm.get(EVENTS, {"q": "u7"}).content.decode()


@pytest.fixture
def hook(source):
    return make_integration(source.workspace)


def test_the_delivery_list_finds_deliveries_by_their_events_email(csm, hook, events):
    with responses.RequestsMock() as mock:
        mock.post("https://hooks.example.com/in", status=200)
        deliver_due(hook)
    text = csm.get(DELIVERIES, {"q": "ALICE.MARTIN"}).content.decode()
    assert "usr_8f3a21" in text and "u-carol" not in text and "anon-77c2" not in text
    text = csm.get(DELIVERIES, {"q": "converted"}).content.decode()
    assert "u-carol" in text and "usr_8f3a21" not in text


def test_a_csm_finds_only_their_workspaces_events(django_user_model, csm, events):
    other = Workspace.objects.create(name="Other", slug="other")
    send(
        Source.objects.create(workspace=other, name="Theirs"),
        type="identify",
        userId="their-user",
        messageId="msg-theirs",
        traits={"email": "alice.other@example.com"},
    )
    route()
    text = csm.get(EVENTS, {"q": "alice"}).content.decode()
    assert "msg-alpha-001" in text and "msg-theirs" not in text
    outsider = member(django_user_model, other, Role.CSM, "outsider")
    text = outsider.get(EVENTS, {"q": "alice"}).content.decode()
    assert "msg-theirs" in text and "msg-alpha-001" not in text


def test_the_search_box_says_what_it_finds(csm, events):
    text = csm.get(EVENTS).content.decode()
    assert "Part of a user id, event name or email" in text


@sqlite_only
def test_without_trigram_indexes_parts_are_looked_for_in_the_newest_events(
    csm, events, source, settings
):
    for minutes, message_id in enumerate(("msg-alpha-001", "msg-bravo-002", "msg-charlie-003")):
        # Apart in time: the three sends can share a clock tick, and the newest of a tie
        # is any of them.
        Event.objects.filter(message_id=message_id).update(
            received_at=FINE + dt.timedelta(minutes=minutes)
        )
    settings.EVENT_SEARCH_SCAN_LIMIT = 2  # the two newest: bravo and charlie
    assert found(csm, EVENTS, "alice") == set()
    assert found(csm, EVENTS, "globex") == {"msg-bravo-002"}
    assert found(csm, EVENTS, "msg-alpha-001") == {"msg-alpha-001"}  # a whole id: found
    assert "newest 2 events" in csm.get(EVENTS).content.decode()


@postgresql_only
def test_the_index_is_there_and_valid(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_index.indisvalid, pg_get_indexdef(pg_index.indexrelid) FROM pg_index "
            "JOIN pg_class ON pg_class.oid = pg_index.indexrelid WHERE relname = %s",
            [ENTRIES.INDEX],
        )
        ((valid, definition),) = cursor.fetchall()
    assert valid
    assert "gin" in definition and "gin_trgm_ops" in definition


def test_the_migration_indexes_the_expression_the_search_names():
    assert event_search.search_text_sql() == MIGRATION.SEARCH_TEXT


def many_events(workspace: Workspace, count: int) -> None:
    """``count`` events of one workspace, each delivered to a webhook, inserted by the
    database, then analysed: the planner judges the indexes on what real tables hold."""
    hook = make_integration(workspace, name="Bulk hook")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO integrations_event (id, workspace_id, message_id, type, event, "
            "user_id, anonymous_id, group_id, received_at, timestamp, payload, is_test) "
            "SELECT gen_random_uuid(), %s, 'bulk-' || n, 'track', 'Page Viewed', "
            "'user-' || n, '', '', now(), now(), "
            "jsonb_build_object('traits', jsonb_build_object('email', 'user' || n || "
            "'@example.com')), false FROM generate_series(1, %s) AS n",
            [workspace.pk, count],
        )
        cursor.execute(
            "INSERT INTO integrations_delivery (event_id, integration_id, origin, status, "
            "attempt_count, manual_attempt_count, last_trigger, last_outcome, last_error, "
            "last_attempt_at, created_at) SELECT id, %s, 'live', 'delivered', 1, 0, "
            "'scheduled', 'delivered', '', now(), now() FROM integrations_event "
            "WHERE message_id LIKE 'bulk-%%'",
            [hook.pk],
        )
        cursor.execute(
            f"INSERT INTO {ENTRIES.TABLE} (event_id, text) SELECT id, "  # noqa: S608
            f"{event_search.search_text_sql()} FROM integrations_event "
            "WHERE message_id LIKE 'bulk-%%'"
        )
        cursor.execute("ANALYZE integrations_event")
        cursor.execute(f"ANALYZE {ENTRIES.TABLE}")
        cursor.execute("ANALYZE integrations_delivery")


@postgresql_only
@pytest.mark.parametrize("lists", ["events", "deliveries"])
def test_the_search_is_answered_by_the_trigram_index(events, workspace, lists):
    """EXPLAIN of the very query the admin runs, on a table of 20,000 events. The entries
    are narrow: at this size reading them all is cheaper, so sequential scans are priced
    out, which leaves the index if (and only if) it answers the query's expression;
    ``benchmarks/search.py`` shows the plans at millions of events."""
    many_events(workspace, 20_000)
    matched = event_search.search_events(Event.objects.filter(workspace=workspace), "alice")
    if lists == "deliveries":
        matched = Delivery.objects.filter(event_id__in=matched.values("pk"))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = matched.explain()
    assert f"Bitmap Index Scan on {ENTRIES.INDEX}" in plan, plan
    assert "Seq Scan on integrations_event " not in plan, plan


@pytest.mark.django_db(transaction=True)
def test_the_migration_goes_back_and_forth():
    executor = MigrationExecutor(connection)
    executor.migrate([("integrations", "0013_deletion_requests")])
    executor.loader.build_graph()
    executor.migrate([("integrations", "0014_event_search")])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s", [MIGRATION.INDEX])
            assert cursor.fetchone()
    # Leave the schema as the rest of the suite expects it.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@postgresql_only
def test_an_event_is_found_by_part_once_routed_and_by_a_whole_id_at_once(csm, source):
    send(source, type="track", userId="u-dave", event="Plan Upgraded", messageId="msg-delta")
    assert found(csm, EVENTS, "upgraded", among=("msg-delta",)) == set()  # not yet routed
    assert found(csm, EVENTS, "msg-delta", among=("msg-delta",)) == {"msg-delta"}
    assert route() == 1
    assert found(csm, EVENTS, "upgraded", among=("msg-delta",)) == {"msg-delta"}
    (entry,) = EventSearchEntry.objects.all()
    assert entry.text == "u-dave Plan Upgraded   "


@sqlite_only
def test_without_trigram_indexes_routing_writes_no_entries(source):
    send(source, type="track", userId="u-dave", event="Plan Upgraded")
    route()
    assert not EventSearchEntry.objects.exists()


@postgresql_only
def test_a_pruned_event_takes_its_entry_with_it(source, events):
    assert EventSearchEntry.objects.count() == 3
    Event.objects.update(received_at=FINE)  # long before the retention cutoff
    call_command("prune_events", "--days", "30", stdout=io.StringIO())
    assert not Event.objects.exists() and not EventSearchEntry.objects.exists()


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_every_existing_event_its_entry():
    """On a database filled by the previous schema: the entries written, the index moved
    from the events table to them, and back."""
    executor = MigrationExecutor(connection)
    before, after = ("integrations", "0019_event_search_statistics"), ENTRIES_MIGRATION
    executor.migrate([before])
    old = executor.loader.project_state([before]).apps
    workspace = old.get_model("integrations", "Workspace").objects.create(name="W", slug="w")
    old_event = old.get_model("integrations", "Event")
    for n, payload in enumerate(
        [{"traits": {"email": "ann@a.test"}}, {"properties": {"email": "bo@b.test"}}, {}]
    ):
        old_event.objects.create(
            workspace=workspace,
            message_id=f"m{n}",
            type="track",
            event="Signed Up",
            user_id=f"user-{n}",
            timestamp=FINE,
            payload=payload,
        )
    executor.loader.build_graph()
    executor.migrate([after])

    texts = dict(EventSearchEntry.objects.values_list("event__message_id", "text"))
    assert texts == {
        "m0": "user-0 Signed Up ann@a.test  ",
        "m1": "user-1 Signed Up   bo@b.test",
        "m2": "user-2 Signed Up   ",
    }
    assert indexes() == {ENTRIES.INDEX}
    events = Event.objects.filter(workspace_id=workspace.pk)
    assert {e.message_id for e in event_search.search_events(events, "B.TEST")} == {"m1"}

    executor.loader.build_graph()
    executor.migrate([before])
    assert indexes() == {MIGRATION.INDEX}
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s)",
            [[MIGRATION.INDEX, ENTRIES.INDEX]],
        )
        return {name for (name,) in cursor.fetchall()}
