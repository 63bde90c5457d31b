"""Event search on PostgreSQL: the pg_trgm extension and a GIN trigram index on the text a
search looks in (``integrations.event_search.SearchText``: the user id, the event name and
the payload's emails). Nothing on other databases.

The index is built with ``CREATE INDEX CONCURRENTLY`` (so this migration is not atomic):
on a big events table it takes a while, and ingest goes on writing meanwhile. A build that
was interrupted leaves an invalid index, which the next run drops and builds again.
pg_trgm is a trusted extension (PostgreSQL 13+): the migrating role needs the CREATE
privilege on the database, or the extension created beforehand by a superuser.

The model state does not change: the index is vendor-specific, so it is not in
``Event.Meta.indexes``.
"""

from django.contrib.postgres import operations
from django.db import migrations

INDEX = "event_search_trgm"
TABLE = "integrations_event"
# integrations.event_search.search_text_sql(): the query names this very expression.
SEARCH_TEXT = (
    """("user_id" || ' ' || "event" """
    """|| ' ' || COALESCE((("payload" -> 'traits') ->> 'email'), '') """
    """|| ' ' || COALESCE(((("payload" -> 'context') -> 'traits') ->> 'email'), '') """
    """|| ' ' || COALESCE((("payload" -> 'properties') ->> 'email'), ''))"""
)


class TrigramExtension(operations.TrigramExtension):
    """pg_trgm on PostgreSQL; nothing elsewhere, forwards or backwards."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def build_trigram_index(schema_editor, index: str, table: str, expression: str) -> None:
    """A GIN trigram index, built concurrently; one left invalid by an interrupted build
    is dropped and built again."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid "
            "WHERE pg_class.relname = %s AND NOT pg_index.indisvalid",
            [index],
        )
        if cursor.fetchone():
            cursor.execute(f"DROP INDEX CONCURRENTLY {index}")
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {index} "
        f"ON {table} USING gin ({expression} gin_trgm_ops)"
    )


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        build_trigram_index(schema_editor, INDEX, TABLE, SEARCH_TEXT)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("integrations", "0013_deletion_requests")]

    operations = [
        TrigramExtension(),
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
