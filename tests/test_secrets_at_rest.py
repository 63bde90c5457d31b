"""Secrets are encrypted at rest, and keys can be rotated."""

from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from integrations.models import Integration, Source
from tests.test_fanout import make_integration


def raw_column(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def test_secrets_are_not_stored_in_clear(workspace, source):
    integration = make_integration(workspace, kind="customerio")
    integration.set_settings({"site_id": "site", "api_key": "plaintext-api-key"})
    integration.save()
    stored = raw_column("integrations_integration", "secret_settings", integration.pk)
    assert "plaintext-api-key" not in stored
    assert Integration.objects.get().secret_settings["api_key"] == "plaintext-api-key"
    assert source.webhook_secret not in raw_column(
        "integrations_source", "webhook_secret", source.pk
    )


def test_rotation_re_encrypts_with_the_new_key(workspace, source, settings):
    integration = make_integration(workspace, kind="segment")
    old_key = settings.SECRETS_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_secrets")
    settings.SECRETS_ENCRYPTION_KEYS = [new_key]
    assert Integration.objects.get(pk=integration.pk).secret_settings == {"write_key": "k"}
    assert Source.objects.get(pk=source.pk).webhook_secret == source.webhook_secret
    token = raw_column("integrations_integration", "secret_settings", integration.pk)
    assert Fernet(new_key).decrypt(token.encode())
