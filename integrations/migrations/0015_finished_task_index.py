"""A partial index on the finish time of finished task rows, for ``prune_events``.

django-tasks-db's table has no index on ``finished_at``: without one, every batch of
``prune_events`` scans the whole task table (a million rows a day at a few hundred events
a second). Only finished rows are in this index, so ready and running tasks, which the
workers claim, do not carry it. On PostgreSQL it is built ``CONCURRENTLY``: workers keep
writing task rows while it builds.
"""

from django.db import migrations

TABLE = "django_tasks_database_dbtaskresult"
INDEX = "integrations_task_finished"
CONDITION = "status IN ('SUCCESSFUL', 'FAILED')"


def create_index(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f"CREATE INDEX {concurrently}IF NOT EXISTS {INDEX} ON {TABLE} (finished_at) "
        f"WHERE {CONDITION}"
    )


def drop_index(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("integrations", "0014_event_search"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
