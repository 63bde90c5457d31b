"""Event search moves off the events table: one ``EventSearchEntry`` per event holds the
text a search looks in, under the trigram index, and the router writes it (see the model).

On PostgreSQL, in this order:

1. every existing event gets its entry, by one ``INSERT ... SELECT`` of the same
   expression the old index had (``0014_event_search.SEARCH_TEXT``);
2. the trigram index is built on the filled table (``CONCURRENTLY``: ingest and routing go
   on meanwhile; building on a filled table is much quicker than filling an indexed one);
3. the old index on the events table (``0014_event_search``) is dropped, and the new table
   analyzed, so the planner knows how often a term matches (see ``0019``).

Events that a worker of the previous version routes while this runs get no entry: stop
the workers for the migration, as for any other. Nothing happens on other databases, which
have no trigram index. Backwards, the old index is built again and the table dropped.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models

OLD = importlib.import_module("integrations.migrations.0014_event_search")
INDEX = "event_search_entry_trgm"
TABLE = "integrations_eventsearchentry"


def fill_and_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"INSERT INTO {TABLE} (event_id, text) "  # noqa: S608 (the models' own names)
        f"SELECT id, {OLD.SEARCH_TEXT} FROM {OLD.TABLE} ON CONFLICT (event_id) DO NOTHING"
    )
    OLD.build_trigram_index(schema_editor, INDEX, TABLE, "text")
    OLD.drop_index(apps, schema_editor)
    schema_editor.execute(f"ANALYZE {TABLE}")


def index_events_again(apps, schema_editor):
    OLD.create_index(apps, schema_editor)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("integrations", "0019_event_search_statistics")]

    operations = [
        migrations.CreateModel(
            name="EventSearchEntry",
            fields=[
                (
                    "event",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="search_entry",
                        serialize=False,
                        to="integrations.event",
                    ),
                ),
                ("text", models.TextField()),
            ],
        ),
        migrations.RunPython(fill_and_index, index_events_again, elidable=False),
    ]
