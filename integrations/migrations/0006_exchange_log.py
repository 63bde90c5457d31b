"""The data path's new tables and columns, added beside the old ones.

``0007`` moves the data (attempts' requests into ``Exchange`` rows, each delivery's latest
attempt onto its own row, deliveries never attempted into dispatches); ``0008`` then
drops what the old shape needed.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0005_event_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="integration",
            name="backoff_failures",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.CreateModel(
            name="Exchange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("step", models.PositiveSmallIntegerField(default=0)),
                ("method", models.CharField(max_length=8)),
                ("url", models.TextField()),
                ("request_headers", models.JSONField(blank=True, default=dict)),
                ("request_body", models.TextField(blank=True)),
                ("response_status", models.PositiveIntegerField(blank=True, null=True)),
                ("response_headers", models.JSONField(blank=True, default=dict)),
                ("response_body", models.TextField(blank=True)),
                ("error", models.TextField(blank=True)),
                ("duration_ms", models.FloatField(blank=True, null=True)),
                (
                    "head",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="steps",
                        to="integrations.exchange",
                    ),
                ),
                (
                    "integration",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="exchanges",
                        to="integrations.integration",
                    ),
                ),
            ],
            options={
                "ordering": ["started_at", "pk"],
                "indexes": [
                    models.Index(
                        fields=["integration", "-started_at"], name="exchange_int_started"
                    ),
                    models.Index(
                        condition=models.Q(("head__isnull", False)),
                        fields=["head"],
                        name="exchange_head",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="Dispatch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "origin",
                    models.CharField(
                        choices=[
                            ("live", "Live traffic"),
                            ("replay", "Replay"),
                            ("test", "Event tester"),
                        ],
                        default="live",
                        max_length=8,
                    ),
                ),
                (
                    "event_ids",
                    models.JSONField(
                        help_text="The events, as uuid strings, in the order received."
                    ),
                ),
                ("size", models.PositiveIntegerField(help_text="How many events it holds.")),
                (
                    "done",
                    models.PositiveIntegerField(
                        default=0, help_text="How many of them are recorded."
                    ),
                ),
                ("started", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("waiting_reason", models.TextField(blank=True)),
                ("leased_until", models.DateTimeField(blank=True, null=True)),
                ("lease_token", models.UUIDField(blank=True, editable=False, null=True)),
                ("taken", models.BooleanField(default=False)),
                (
                    "integration",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="dispatches",
                        to="integrations.integration",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "dispatches",
            },
        ),
        migrations.CreateModel(
            name="RoutingJob",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("entries", models.JSONField()),
                ("size", models.PositiveIntegerField(help_text="How many events it holds.")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "workspace",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="integrations.workspace",
                    ),
                ),
            ],
        ),
        # Delivery: its latest attempt moves onto its own row.
        migrations.AddField(
            model_name="delivery",
            name="last_trigger",
            field=models.CharField(
                choices=[
                    ("scheduled", "Scheduled"),
                    ("manual", "Manual"),
                    ("test", "Event tester"),
                ],
                default="scheduled",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="delivery",
            name="last_outcome",
            field=models.CharField(
                choices=[
                    ("delivered", "Delivered"),
                    ("retry", "To be retried"),
                    ("failed", "Failed"),
                    ("gone", "Gone (HTTP 410)"),
                    ("interrupted", "Interrupted"),
                ],
                default="",
                max_length=16,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="delivery",
            name="last_attempt_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="delivery",
            name="exchange",
            field=models.ForeignKey(
                blank=True,
                help_text="The first HTTP exchange of the latest attempt (its chain holds the rest).",
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="deliveries",
                to="integrations.exchange",
            ),
        ),
        # DeliveryAttempt: an earlier attempt, pointing at its exchange.
        migrations.AddField(
            model_name="deliveryattempt",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("delivered", "Delivered"),
                    ("retry", "To be retried"),
                    ("failed", "Failed"),
                    ("gone", "Gone (HTTP 410)"),
                    ("interrupted", "Interrupted"),
                ],
                default="",
                max_length=16,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="deliveryattempt",
            name="status_code",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="deliveryattempt",
            name="exchange",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="earlier_attempts",
                to="integrations.exchange",
            ),
        ),
    ]
