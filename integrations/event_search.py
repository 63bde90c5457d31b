"""Searching events as a CSM does: by part of a user id or event name, or of an email in
the payload (``traits.email``, ``context.traits.email``, ``properties.email``), whatever
the case; and by a whole message id, user id or event name.

On PostgreSQL every term is matched against one text made of the user id, the event name
and the emails, ``SearchText`` below, with ``ILIKE '%term%'``: a GIN trigram index on that
expression (``pg_trgm``, created by the migration ``0014_event_search``) answers it, so a
search of a 10-million-event table reads only the matching rows; whole ids are matched
through their B-tree indexes (PostgreSQL combines both in one bitmap scan). The index and
the query must name the very same expression; ``tests/test_event_search.py`` checks with
``EXPLAIN`` that the index is used.

Message ids and anonymous ids are not in the trigram text: they are random strings, whose
trigrams made the index cost every insert three times as much (``benchmarks/search.py``:
174 µs an event with them, 56 µs without, on the development machine). A message id is
found whole.

Elsewhere (SQLite) there is no trigram index: a part is looked for only among the newest
``EVENT_SEARCH_SCAN_LIMIT`` events of the list (a bounded scan, never the whole table),
while whole ids are still found in every event through their indexes.

Terms are separated by spaces and must all match. A term shorter than three characters
has no trigram to look up: it matches whole ids only.
"""

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import F, Func, Q, QuerySet, TextField
from django.db.models.lookups import Lookup

from integrations.models import Event

MIN_PART = 3
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
    """The indexed expression as the index defines it (PostgreSQL, unqualified columns)."""
    return _joined([f'"{name}"' for name in FIELDS], '"payload"', _json_path_postgresql)


class SearchText(Func):
    """The text a search term is looked for in: the user id, the event name and the emails,
    separated by spaces (one expression, one index). The keys are constants written into
    the SQL, so that the query names the index's very expression."""

    output_field = TextField()

    def __init__(self) -> None:
        super().__init__(*(F(name) for name in (*FIELDS, "payload")))

    def _columns(self, compiler: Any, connection: Any) -> tuple[list[str], str]:
        compiled = [compiler.compile(expression)[0] for expression in self.source_expressions]
        return compiled[:-1], compiled[-1]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        columns, payload = self._columns(compiler, connection)
        return _joined(columns, payload, _json_path_postgresql), []

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


class ContainsIgnoringCase(Lookup):
    """``lhs`` contains ``rhs``, whatever the case: ``ILIKE '%rhs%'`` on PostgreSQL, which a
    trigram index on ``lhs`` answers (Django's ``icontains`` writes ``UPPER(lhs) LIKE``,
    which it does not); ``LIKE`` elsewhere (SQLite's is case-insensitive for ASCII)."""

    lookup_name = "contains_ignoring_case"
    prepare_rhs = False

    def get_db_prep_lookup(self, value: Any, connection: Any) -> tuple[str, list]:
        return "%s", [f"%{connection.ops.prep_for_like_query(value)}%"]

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        operator = "ILIKE" if connection.vendor == "postgresql" else "LIKE"
        return f"{lhs} {operator} {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]


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
    window = Q()  # where parts are looked for: everywhere, with the trigram index
    if not indexed(events):
        newest = events.order_by("-received_at").values("pk")
        window = Q(pk__in=newest[: settings.EVENT_SEARCH_SCAN_LIMIT])
    for term in found:
        condition = whole_id(term)
        if len(term) >= MIN_PART:
            condition |= window & Q(ContainsIgnoringCase(SearchText(), term))
        events = events.filter(condition)
    return events


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
