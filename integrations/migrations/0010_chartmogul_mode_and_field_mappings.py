"""Field mappings per integration, and ChartMogul's new ``mode`` setting.

ChartMogul integrations made before ChartMogul's Segment source became the default
(webhook mode) were written through the REST API: they get ``mode = rest`` so they keep
sending exactly what they sent.
"""

from django.db import migrations, models

HELP = (
    "Which part of the message fills each vendor field, by field name (the destination's "
    "mapped fields); a field left out keeps its preset."
)


def keep_chartmogul_on_the_rest_api(apps, schema_editor):
    Integration = apps.get_model("integrations", "Integration")
    for integration in Integration.objects.filter(kind="chartmogul").only("settings"):
        if "mode" not in (integration.settings or {}):
            integration.settings = {**(integration.settings or {}), "mode": "rest"}
            integration.save(update_fields=["settings"])


def forget_the_mode(apps, schema_editor):
    Integration = apps.get_model("integrations", "Integration")
    for integration in Integration.objects.filter(kind="chartmogul").only("settings"):
        settings = dict(integration.settings or {})
        if settings.pop("mode", None) is not None:
            integration.settings = settings
            integration.save(update_fields=["settings"])


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0009_credentials_in_secret_settings"),
    ]

    operations = [
        migrations.AddField(
            model_name="historicalintegration",
            name="field_mappings",
            field=models.JSONField(blank=True, default=dict, help_text=HELP),
        ),
        migrations.AddField(
            model_name="integration",
            name="field_mappings",
            field=models.JSONField(blank=True, default=dict, help_text=HELP),
        ),
        migrations.RunPython(keep_chartmogul_on_the_rest_api, forget_the_mode),
    ]
