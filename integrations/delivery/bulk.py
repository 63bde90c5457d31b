"""Writing many delivery rows at once, fast.

Django's ``bulk_update`` builds an ORM expression for every value of every row (about a
millisecond a value on this path); the worker writes up to fifty deliveries a flush, most
with the same values. This writes them in one ``UPDATE``: a column that has one value for
every row is set to it, a column that differs gets a ``CASE`` on the primary key.
"""

from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models, router


def update_rows(rows: Sequence[models.Model], fields: Sequence[str]) -> None:
    if not rows:
        return
    model = type(rows[0])
    # The router always answers an alias (the default one at worst); the stubs allow None.
    connection = connections[router.db_for_write(model) or DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    pk = quote(model._meta.pk.column)
    casted = connection.features.requires_casted_case_in_updates
    assignments: list[str] = []
    params: list[Any] = []
    for name in fields:
        field = model._meta.get_field(name)
        if not isinstance(field, models.Field) or not field.concrete:
            raise TypeError(f"{model.__name__}.{name} is not a column")
        values = [field.get_db_prep_save(getattr(row, field.attname), connection) for row in rows]
        column = quote(field.column)
        if all(value == values[0] for value in values):
            assignments.append(f"{column} = %s")
            params.append(values[0])
            continue
        then = f"CAST(%s AS {field.db_type(connection)})" if casted else "%s"
        cases = " ".join(f"WHEN %s THEN {then}" for _ in rows)
        assignments.append(f"{column} = CASE {pk} {cases} END")
        for row, value in zip(rows, values, strict=True):
            params += [row.pk, value]
    placeholders = ", ".join(["%s"] * len(rows))
    # Only quoted identifiers are interpolated; every value is a parameter.
    table = quote(model._meta.db_table)
    sql = f"UPDATE {table} SET {', '.join(assignments)} WHERE {pk} IN ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *(row.pk for row in rows)])
