"""Drop what the old delivery log needed, once ``0007`` has moved its data.

The attempts' own copies of requests and responses go (they live in ``Exchange`` now), as
do indexes no query of the product uses any more: the old retry-queue index (replaced by a
partial one holding only deliveries that wait) and the attempts' time index. The
delivery's own integration index is dropped, not altered: its (integration, status,
created) index leads with the same column, and ``AlterField`` would also drop and
re-validate the foreign key on PostgreSQL.
"""

import django.db.models.deletion
from django.db import migrations, models


def drop_integration_index(apps, schema_editor):
    table = apps.get_model("integrations", "Delivery")._meta.db_table
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for name, info in constraints.items():
        if info["index"] and not info["unique"] and info["columns"] == ["integration_id"]:
            schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def create_integration_index(apps, schema_editor):
    model = apps.get_model("integrations", "Delivery")  # the state before: db_index on
    for sql in schema_editor._field_indexes_sql(model, model._meta.get_field("integration")):
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0007_exchange_log_data"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="deliveryattempt", name="attempt_started"),
        *(
            migrations.RemoveField(model_name="deliveryattempt", name=name)
            for name in (
                "request_method",
                "request_url",
                "request_headers",
                "request_body",
                "response_status",
                "response_headers",
                "response_body",
                "duration_ms",
                "steps",
            )
        ),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RemoveIndex(model_name="delivery", name="delivery_due"),
        migrations.RemoveField(model_name="delivery", name="updated_at"),
        migrations.AlterField(
            model_name="delivery",
            name="status",
            field=models.CharField(
                choices=[
                    ("delivered", "Delivered"),
                    ("retrying", "Retrying"),
                    ("failed", "Failed"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="attempt_count",
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("status", "retrying")),
                fields=["next_attempt_at"],
                name="delivery_due",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="integration",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="integrations.integration",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(drop_integration_index, create_integration_index)
            ],
        ),
    ]
