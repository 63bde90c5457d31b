"""Fewer indexes to maintain on every event insert.

The workspace's own index duplicated the leading column of the unique (workspace,
message_id) constraint; user_id's indexes (a btree and, on PostgreSQL, a varchar_pattern_ops
one) become one on (workspace, user_id), which is how events are looked up by user. The
new index is created before the old ones are dropped.

Only the indexes are dropped: ``AlterField`` would also drop and re-add the workspace
foreign key on PostgreSQL (re-validating it scans the table and blocks inserts) and
rebuild the table twice on SQLite.
"""

import django.db.models.deletion
from django.db import migrations, models

OLD_INDEXES = (["workspace_id"], ["user_id"])


def drop_old_indexes(apps, schema_editor):
    table = apps.get_model("integrations", "Event")._meta.db_table
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for name, info in constraints.items():
        if info["index"] and not info["unique"] and info["columns"] in OLD_INDEXES:
            schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def create_old_indexes(apps, schema_editor):
    model = apps.get_model("integrations", "Event")  # the state before: db_index on both
    for name in ("workspace", "user_id"):
        for sql in schema_editor._field_indexes_sql(model, model._meta.get_field(name)):
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0004_integration_deferral"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["workspace", "user_id"], name="event_ws_user"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="user_id",
                    field=models.CharField(blank=True, max_length=255),
                ),
                migrations.AlterField(
                    model_name="event",
                    name="workspace",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="integrations.workspace",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_old_indexes, create_old_indexes)],
        ),
    ]
