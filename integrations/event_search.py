"""Searching events as a CSM does: by part of a user id or event name, or of an email in
the payload (``traits.email``, ``context.traits.email``, ``properties.email``), whatever
the case; and by a whole message id, user id or event name.

On PostgreSQL every term is matched against one text made of the user id, the event name
and the emails (``search_text_sql``) with ``ILIKE '%term%'``. That text is stored apart,
one ``EventSearchEntry`` per event, under a GIN trigram index (``pg_trgm``, migration
``0020_event_search_entries``): a search of a 10-million-event table reads only the
matching rows. The router writes the entries (``index``) in the transaction that routes
the events, so the index's upkeep is not paid in the ingest request: an event is found by
part once routed, a moment after it is accepted, and by a whole id at once, through the
events' own B-tree indexes (``_matching_entries`` says how both make one plan).
``tests/test_event_search.py`` checks with ``EXPLAIN`` that the index is used.

Message ids and anonymous ids are not in the trigram text: they are random strings, whose
trigrams made the index cost every insert three times as much (``benchmarks/search.py``:
174 µs an event with them, 56 µs without, on the development machine). A message id is
found whole.

Elsewhere (SQLite) there is no trigram index and no entries: a part is looked for in the
same text computed from the newest ``EVENT_SEARCH_SCAN_LIMIT`` events of the list (a
bounded scan, never the whole table), while whole ids are still found in every event
through their indexes.

Terms are separated by spaces and must all match. A term shorter than three characters
has no trigram to look up: it matches whole ids only.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import F, Func, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.lookups import IContains

from integrations.models import Event, EventSearchEntry

MIN_PART = 3
# Whole-id matches of a term that join its trigram subquery as a list, at most.
FEW = 1000
# The fields of the search text, and the JSON paths of the emails in the payload.
FIELDS = ("user_id", "event")
EMAIL_PATHS = (("traits", "email"), ("context", "traits", "email"), ("properties", "email"))


def _json_path_postgresql(column: str, path: tuple[str, ...]) -> str:
    *parents, leaf = path
    expression = column
    for key in parents:
        expression = f"({expression} -> '{key}')"
    return f"COALESCE(({expression} ->> '{leaf}'), '')"


def _json_path_sqlite(column: str, path: tuple[str, ...]) -> str:
    return f"COALESCE(json_extract({column}, '$.{'.'.join(path)}'), '')"


def _joined(columns: list[str], payload: str, json_path: Any) -> str:
    parts = [*columns, *(json_path(payload, path) for path in EMAIL_PATHS)]
    return "(" + " || ' ' || ".join(parts) + ")"


def search_text_sql() -> str:
    """The text of an event's ``EventSearchEntry``, from a row of the events table
    (PostgreSQL, unqualified columns)."""
    return _joined([f'"{name}"' for name in FIELDS], '"payload"', _json_path_postgresql)


def index(event_ids: list[Any]) -> None:
    """Write the search entries of these events (PostgreSQL; those that have one are
    left as they are): one statement, the text computed by the database."""
    database = connections[EventSearchEntry.objects.db]
    if not event_ids or database.vendor != "postgresql":
        return
    with database.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EventSearchEntry._meta.db_table} (event_id, text) "  # noqa: S608
            f"SELECT id, {search_text_sql()} FROM {Event._meta.db_table} "
            "WHERE id = ANY(%s::uuid[]) ON CONFLICT (event_id) DO NOTHING",
            [[str(pk) for pk in event_ids]],
        )


class SearchText(Func):
    """The text a search term is looked for in where there are no entries (SQLite): the
    user id, the event name and the emails, separated by spaces, computed from each row."""

    output_field = TextField()

    def __init__(self) -> None:
        super().__init__(*(F(name) for name in (*FIELDS, "payload")))

    def _columns(self, compiler: Any, connection: Any) -> tuple[list[str], str]:
        compiled = [compiler.compile(expression)[0] for expression in self.source_expressions]
        return compiled[:-1], compiled[-1]

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra: Any,
    ) -> tuple[str, list]:
        """SQLite's JSON1 functions."""
        columns, payload = self._columns(compiler, connection)
        return _joined(columns, payload, _json_path_sqlite), []


def terms(query: str) -> list[str]:
    return [term for term in query.split() if term]


def whole_id(term: str) -> Q:
    """Indexed exact matches: (workspace, message_id), (workspace, user_id), (workspace,
    event)."""
    return Q(message_id=term) | Q(user_id=term) | Q(event=term)


def indexed(queryset: QuerySet) -> bool:
    return connections[queryset.db].vendor == "postgresql"


def search_events(events: QuerySet[Event], query: str) -> QuerySet[Event]:
    """The events of ``events`` that every term of ``query`` matches, whole or in part."""
    found = terms(query)
    if not found:
        return events
    matching = _matching_entries if indexed(events) else _matching_newest(events)
    for term in found:
        condition = whole_id(term) if len(term) < MIN_PART else matching(events, term)
        events = events.filter(condition)
    return events


def _matching_entries(events: QuerySet[Event], term: str) -> Q:
    """Events of ``events`` that ``term`` matches, whole or in part (PostgreSQL).

    One ``IN`` subquery, which PostgreSQL answers from the trigram index when the matches
    are few and by walking the newest events when they are many: an ``OR`` of it with the
    whole-id conditions would defeat both plans. So the whole-id matches, found first
    through their B-tree indexes, join the subquery as a list (they include events not yet
    routed, which have no entry yet); when they are many (a frequent event name), the
    newest events are walked anyway and the ``OR`` costs nothing."""
    whole = whole_id(term)
    found = list(events.filter(whole).order_by().values_list("pk", flat=True)[: FEW + 1])
    if len(found) > FEW:
        return whole | Q(pk__in=_entries(term))
    return Q(pk__in=_entries(term, also=found))


def _entries(term: str, also: Sequence[Any] = ()) -> RawSQL:
    """The ids of the events whose search entry holds ``term`` (the trigram index's
    ``ILIKE``), and ``also`` these."""
    database = connections[EventSearchEntry.objects.db]
    sql = (
        f"SELECT event_id FROM {EventSearchEntry._meta.db_table} "  # noqa: S608 (its own name)
        "WHERE text ILIKE %s ESCAPE '\\'"
    )
    params: list[Any] = [f"%{database.ops.prep_for_like_query(term)}%"]
    if also:
        sql += " UNION ALL SELECT unnest(%s::uuid[])"
        params.append([str(pk) for pk in also])
    return RawSQL(sql, params)  # noqa: S611 (the term is a parameter)


def _matching_newest(events: QuerySet[Event]) -> Callable[[QuerySet[Event], str], Q]:
    """Events of ``events`` that a term matches whole, or in part among the newest."""
    newest = events.order_by("-received_at").values("pk")[: settings.EVENT_SEARCH_SCAN_LIMIT]
    return lambda _, term: whole_id(term) | (Q(pk__in=newest) & Q(IContains(SearchText(), term)))


def help_text(for_what: Iterable[str] = ("events",), *, partial_limit: bool) -> str:
    text = (
        "Part of a user id, event name or email (traits, context.traits or properties), "
        "whatever the case, 3 characters or more; or a whole message id, user id or event "
        "name. Several terms: all must match."
    )
    if partial_limit:
        text += (
            f" On this database, parts are looked for among the newest "
            f"{settings.EVENT_SEARCH_SCAN_LIMIT:,} {' and '.join(for_what)}; whole ids in all."
        )
    return text
