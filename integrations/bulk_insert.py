"""Inserting many rows at once, fast: the hot paths' one-statement insert.

Django 5.2's ``bulk_create`` spends most of an ingest request or a delivery flush in its
SQL compiler; on PostgreSQL it also binds one array per column (``UNNEST``) whose values
psycopg escapes for the array literal in pure Python. Here the rows are turned into the
statement's parameters in one pass, ahead of the transaction when the caller wants
(``Insert``), and inserted in as few statements as the database allows:

* PostgreSQL: one JSON document, unpacked by ``jsonb_to_recordset``, one statement, its
  document bound on the server;
* SQLite: a multi-row ``VALUES`` with each value bound, as many rows a statement as its
  limit on parameters allows (SQLite's own JSON functions would re-parse each row for
  each column, inside the write lock).

The new primary keys come back through ``RETURNING``, in the order of the rows (as
``bulk_create`` takes them too).
"""

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from django.db import connections, models, router


class Insert:
    """One insert of unsaved model instances of one model, prepared (the rows turned into
    parameters) ahead of running it: a caller about to take a lock prepares first."""

    def __init__(self, objs: Sequence[models.Model], *, conflict: str = "") -> None:
        """``conflict`` is an ``ON CONFLICT`` target such as ``(workspace_id,
        message_id)``: rows that would conflict are skipped."""
        self.objs = objs
        self.conflict = conflict
        self.statements: list[tuple[str, list[Any]]] = []
        if not objs:
            return
        self.model = type(objs[0])
        self.connection = connections[router.db_for_write(self.model)]
        vendor = self.connection.vendor
        if vendor == "postgresql":
            self.statements = [self._postgresql()]
        elif vendor == "sqlite":
            self.statements = self._sqlite()
        elif conflict:
            raise NotImplementedError("ON CONFLICT inserts are PostgreSQL's and SQLite's")

    def execute(self) -> list[Any]:
        """Insert the rows; set and return the primary keys of those written."""
        if not self.objs:
            return []
        if not self.statements:
            self.model._default_manager.bulk_create(self.objs)
            return [obj.pk for obj in self.objs]
        pk = self.model._meta.pk
        returned = []
        with self._cursor() as cursor:
            for sql, params in self.statements:
                cursor.execute(sql, params)
                returned += [row[0] for row in cursor.fetchall()]
        if pk.attname in {f.attname for f in _fields(self.model)}:
            # Keys of our own (as the database returns them, then as we made them).
            ours = {pk.get_db_prep_value(obj.pk, self.connection): obj.pk for obj in self.objs}
            keys = [ours[key] if key in ours else pk.to_python(key) for key in returned]
        else:  # made by the database
            keys = [pk.to_python(key) for key in returned]
            for obj, key in zip(self.objs, keys, strict=True):
                obj.pk = key
        for obj in self.objs:
            obj._state.adding, obj._state.db = False, self.connection.alias
        return keys

    def _cursor(self) -> Any:
        """The connection's cursor; on PostgreSQL one that binds the parameters on the
        server. Django's binds them in the statement's text, so that the JSON document
        (a batch's every row) would be escaped into it here and read back out of it by
        PostgreSQL's parser: about a tenth of PostgreSQL's work on an ingest insert."""
        if self.connection.vendor != "postgresql":
            return self.connection.cursor()
        self.connection.ensure_connection()
        self.connection.validate_thread_sharing()
        # Wrapped as Django wraps its own cursors: errors as Django's, queries logged.
        cursor: Any = psycopg.Cursor(self.connection.connection)
        if self.connection.queries_logged:
            return self.connection.make_debug_cursor(cursor)
        return self.connection.make_cursor(cursor)

    def _postgresql(self) -> tuple[str, list[Any]]:
        columns = _postgresql_columns(self.model)
        texts: dict[Any, str] = {}  # a batch's rows share timestamps: each written once
        rows = []
        for obj in self.objs:
            values = obj.__dict__
            row = {column: values[attname] for column, attname in columns.plain}
            for column in columns.as_text:
                value = row[column]
                if value is not None:
                    text = texts.get(value)
                    if text is None:
                        text = texts[value] = _text(value)
                    row[column] = text
            for field in columns.computed:
                row[field.column] = field.pre_save(obj, add=True)
            rows.append(row)
        # ASCII, as JSONField writes; ``default``: any other value the encoder does not
        # know, as text.
        document = json.dumps(rows, separators=(",", ":"), default=_text)
        return _postgresql_sql(self.model, self.connection.alias, self.conflict), [document]

    def _sqlite(self) -> list[tuple[str, list[Any]]]:
        fields = _fields(self.model)
        converters = [_sqlite_converter(f, self.connection) for f in fields]
        getters = [_getter(f) for f in fields]
        per_statement = max(1, _sqlite_parameter_limit(self.connection) // len(fields))
        statements = []
        for start in range(0, len(self.objs), per_statement):
            chunk = self.objs[start : start + per_statement]
            params = [
                convert(get(obj))
                for obj in chunk
                for get, convert in zip(getters, converters, strict=True)
            ]
            sql = _sqlite_sql(self.model, self.connection.alias, self.conflict, len(chunk))
            statements.append((sql, params))
        return statements


def insert(objs: Sequence[models.Model], *, conflict: str = "") -> list[Any]:
    """Insert unsaved model instances of one model at once; set and return the primary
    keys of the rows written (with ``conflict``, see ``Insert``, the others are skipped
    and their objects keep their keys as they were)."""
    return Insert(objs, conflict=conflict).execute()


def _fields(model: type[models.Model]) -> list[models.Field]:
    """The concrete fields an insert writes (not a database-generated primary key)."""
    return [
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and isinstance(f, models.AutoField))
    ]


def _computed(field: models.Field) -> bool:
    """Whether the field computes its value on save (``auto_now``)."""
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


def _getter(field: models.Field) -> Callable[[models.Model], Any]:
    if _computed(field):
        return lambda obj: field.pre_save(obj, add=True)
    name = field.attname
    return lambda obj: obj.__dict__[name]


# -- PostgreSQL ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    """How a model's fields go into the JSON document: ``plain``, the (column, attribute)
    of each field whose value is the object's own; ``as_text``, the columns among them
    whose values are datetimes or uuids; ``computed``, the fields that compute their
    value on save (``auto_now``)."""

    plain: list[tuple[str, str]]
    as_text: list[str]
    computed: list[models.Field]


@cache
def _postgresql_columns(model: type[models.Model]) -> _Columns:
    fields = _fields(model)
    plain = [f for f in fields if not _computed(f)]
    return _Columns(
        [(f.column, f.attname) for f in plain],
        [
            f.column
            for f in plain
            if isinstance(_stored(f), models.DateTimeField | models.UUIDField)
        ],
        [f for f in fields if _computed(f)],
    )


def _stored(field: models.Field) -> models.Field:
    """The field whose type the column has (a foreign key's target)."""
    return _stored(field.target_field) if isinstance(field, models.ForeignKey) else field


def _text(value: Any) -> str:
    """A value as text PostgreSQL reads back exactly: ISO 8601 with microseconds and
    offset for a datetime, the canonical form of a uuid."""
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


@cache
def _postgresql_sql(model: type[models.Model], alias: str, conflict: str) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = _fields(model)
    columns = ", ".join(quote(f.column) for f in fields)
    selected = ", ".join(f"r.{quote(f.column)}" for f in fields)
    types = ", ".join(f"{quote(f.column)} {_type(f, connection)}" for f in fields)
    table = quote(model._meta.db_table)
    on_conflict = f" ON CONFLICT {conflict} DO NOTHING" if conflict else ""
    return (
        f"INSERT INTO {table} ({columns}) "  # noqa: S608 (the model's own names)
        f"SELECT {selected} FROM jsonb_to_recordset(%s::jsonb) AS r({types})"
        f"{on_conflict} RETURNING {quote(model._meta.pk.column)}"
    )


def _type(field: models.Field, connection: Any) -> str:
    """The column's type, without the constraints some ``db_type`` carry (``CHECK``)."""
    db_type = field.db_type(connection)
    if db_type is None:  # not a column (the fields inserted are concrete)
        raise ValueError(f"{field} has no column type")
    return db_type.split(" CHECK")[0]


# -- SQLite -------------------------------------------------------------------------------


# Field classes whose values SQLite takes as they are.
AS_IS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
    models.BooleanField,
    models.FloatField,
    models.AutoField,
    models.BigAutoField,
)


def _sqlite_converter(field: models.Field, connection: Any) -> Callable[[Any], Any]:
    """A value as Django binds it for SQLite: the common types directly, the others (a
    custom field, say) by the field itself."""
    if isinstance(field, models.ForeignKey):  # as the key it refers to
        return _sqlite_converter(field.target_field, connection)
    if type(field) is models.DateTimeField:
        return _sqlite_datetime(connection)
    if type(field) is models.UUIDField:
        return lambda value: None if value is None else field.to_python(value).hex
    if type(field) in AS_IS:
        return lambda value: value
    return lambda value: field.get_db_prep_save(value, connection)


def _sqlite_datetime(connection: Any) -> Callable[[dt.datetime | None], str | None]:
    """Django's text for a datetime on SQLite (naive, in the connection's time zone), with
    UTC values written directly and each distinct value formatted once per insert: a batch's
    rows share their ``received_at``, and this runs for every timestamp of every row."""
    adapt = connection.ops.adapt_datetimefield_value
    utc = connection.timezone == dt.UTC
    texts: dict[dt.datetime, str] = {}

    def convert(value: dt.datetime | None) -> str | None:
        if value is None:
            return None
        text = texts.get(value)
        if text is None:
            if utc and value.tzinfo is dt.UTC:
                text = value.replace(tzinfo=None).isoformat(" ")
            else:
                text = adapt(value)
            texts[value] = text
        return text

    return convert


def _sqlite_parameter_limit(connection: Any) -> int:
    connection.ensure_connection()
    try:
        return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except AttributeError:  # Python before 3.11
        return connection.features.max_query_params


@cache
def _sqlite_sql(model: type[models.Model], alias: str, conflict: str, rows: int) -> str:
    quote = connections[alias].ops.quote_name
    fields = _fields(model)
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    table = quote(model._meta.db_table)
    on_conflict = f" ON CONFLICT {conflict} DO NOTHING" if conflict else ""
    return (
        f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * rows)}"  # noqa: S608
        f"{on_conflict} RETURNING {quote(model._meta.pk.column)}"
    )
