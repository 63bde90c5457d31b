"""Credentials within settings become secrets: custom header values and URL credentials.

For every integration, the values of its ``headers`` settings move from ``settings`` to the
encrypted ``secret_settings`` (``settings`` keeps the header names), and a ``url`` setting
holding credentials (user info, ``?api_key=``…) is kept whole with the secrets, ``settings``
keeping it with the credentials masked. The history (``HistoricalIntegration.settings``)
is scrubbed the same way: it keeps the names and the masked URLs, never the values.

Undoing it moves the live integrations' values back into ``settings``; the scrubbed history
stays scrubbed.
"""

from typing import Any

from django.db import migrations

from integrations.credentials import has_credentials, masked_url

# The settings of each kind holding credentials, as the schemas stood at this migration.
HEADERS = {"webhook": ["headers"]}
URLS = {"webhook": ["url"], "churnzero": ["instance_url"]}
KINDS = sorted({*HEADERS, *URLS})
BATCH = 500


def public_and_secret(kind: str, settings: dict) -> tuple[dict, dict]:
    """The settings without their credentials, and the secret settings to add."""
    public = dict(settings)
    secret: dict[str, Any] = {}
    for name in HEADERS.get(kind, []):
        headers = public.get(name)
        if isinstance(headers, dict):
            public[name], secret[name] = list(headers), headers
    for name in URLS.get(kind, []):
        url = public.get(name)
        if isinstance(url, str) and has_credentials(url):
            public[name], secret[name] = masked_url(url), url
    return public, secret


def in_batches(queryset):
    batch = []
    for row in queryset.filter(kind__in=KINDS).order_by("pk").iterator(chunk_size=BATCH):
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def move_credentials_to_secrets(apps, schema_editor):
    Integration = apps.get_model("integrations", "Integration")
    for batch in in_batches(Integration.objects.all()):
        changed = []
        for integration in batch:
            public, secret = public_and_secret(integration.kind, integration.settings)
            if secret:
                integration.settings = public
                integration.secret_settings = {**(integration.secret_settings or {}), **secret}
                changed.append(integration)
        Integration.objects.bulk_update(changed, ["settings", "secret_settings"])

    History = apps.get_model("integrations", "HistoricalIntegration")
    for batch in in_batches(History.objects.all()):
        changed = []
        for record in batch:
            public, secret = public_and_secret(record.kind, record.settings)
            if secret:
                record.settings = public
                changed.append(record)
        History.objects.bulk_update(changed, ["settings"])


def move_credentials_back(apps, schema_editor):
    Integration = apps.get_model("integrations", "Integration")
    names = {kind: HEADERS.get(kind, []) + URLS.get(kind, []) for kind in KINDS}
    for batch in in_batches(Integration.objects.all()):
        changed = []
        for integration in batch:
            secrets = dict(integration.secret_settings or {})
            moved = {name: secrets.pop(name) for name in names[integration.kind] if name in secrets}
            if moved:
                integration.settings = {**integration.settings, **moved}
                integration.secret_settings = secrets
                changed.append(integration)
        Integration.objects.bulk_update(changed, ["settings", "secret_settings"])


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0008_exchange_log_cleanup"),
    ]

    operations = [
        migrations.RunPython(move_credentials_to_secrets, move_credentials_back),
    ]
