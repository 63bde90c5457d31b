"""Statistics on the search index's expression, for the planner.

PostgreSQL keeps statistics on an expression index's expression, but gathers them only at
the next ``ANALYZE`` of the table, and autovacuum analyzes a table only after a tenth of it
has changed. Until then the planner guesses how many events a term matches. For a
frequent term ("renewed" in a million events' names), that guess made it read every
match through the trigram index and sort them (9.5 s at 10 million events), where walking
the newest events answers at once. ``ANALYZE`` samples a fixed number of rows: seconds,
whatever the table's size, and it blocks no reads or writes.
"""

from django.db import migrations


def analyze(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ANALYZE integrations_event")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("integrations", "0018_source_kinds_from_registry")]

    operations = [migrations.RunPython(analyze, migrations.RunPython.noop, elidable=True)]
