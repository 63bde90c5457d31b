"""Searching the delivery log as a CSM does: by email, by part of an id, by event name,
whatever the case; index-backed on PostgreSQL (EXPLAIN), bounded on SQLite; scoped to the
user's workspaces."""

import importlib

import pytest
import responses
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from integrations import event_search
from integrations.models import Delivery, Event, Source, Workspace
from tests.admin_clients import Role, member
from tests.test_fanout import make_integration
from tests.traffic import deliver_due, send

EVENTS = reverse("admin:integrations_event_changelist")
DELIVERIES = reverse("admin:integrations_delivery_changelist")
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's"
)
sqlite_only = pytest.mark.skipif(
    connection.vendor == "postgresql", reason="the bounded scan is the fallback's"
)
MIGRATION = importlib.import_module("integrations.migrations.0014_event_search")


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


def found(client, url: str, query: str) -> set[str]:
    """The message ids (events list) or users (deliveries list) a search shows."""
    text = client.get(url, {"q": query}).content.decode()
    return {m for m in ("msg-alpha-001", "msg-bravo-002", "msg-charlie-003") if m in text}


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


def test_the_delivery_list_finds_deliveries_by_their_events_email(csm, source, events):
    hook = make_integration(source.workspace)
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
            [MIGRATION.INDEX],
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
        cursor.execute("ANALYZE integrations_event")
        cursor.execute("ANALYZE integrations_delivery")


@postgresql_only
@pytest.mark.parametrize("lists", ["events", "deliveries"])
def test_the_search_is_answered_by_the_trigram_index(events, workspace, lists):
    """EXPLAIN of the very query the admin runs, on a table of 20,000 events."""
    many_events(workspace, 20_000)
    matched = event_search.search_events(Event.objects.filter(workspace=workspace), "alice")
    if lists == "deliveries":
        matched = Delivery.objects.filter(event_id__in=matched.values("pk"))
    plan = matched.explain()
    assert f"Bitmap Index Scan on {MIGRATION.INDEX}" in plan, plan


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
