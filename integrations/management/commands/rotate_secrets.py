"""Re-encrypt every stored secret with the newest key of SECRETS_ENCRYPTION_KEYS."""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from integrations.models import Integration, Source


class Command(BaseCommand):
    help = (
        "Re-encrypt integration secret settings and source webhook secrets with the first "
        "(newest) key of SECRETS_ENCRYPTION_KEYS; run it after putting a new key first."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            # Reading decrypts with any listed key; saving encrypts with the newest.
            integrations = list(Integration.objects.select_for_update())
            for integration in integrations:
                integration.save(update_fields=["secret_settings"])
            sources = list(Source.objects.select_for_update())
            for source in sources:
                source.save(update_fields=["webhook_secret"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted the secrets of {len(integrations)} integrations "
                f"and {len(sources)} sources."
            )
        )
