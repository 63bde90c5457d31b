"""Sources: where a workspace's events come from, with their keys."""

import secrets

from django.db import models
from django.urls import reverse
from simple_history.models import HistoricalRecords

from integrations.fields import EncryptedTextField
from integrations.models.secret_stamp import SecretChangeStamp
from integrations.models.workspaces import Workspace
from integrations.sources import registry
from integrations.sources.base import WebhookSource


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


def new_webhook_token() -> str:
    return secrets.token_urlsafe(18)


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class Source(SecretChangeStamp, models.Model):
    """Where events come from: a write key for the Segment HTTP API and a webhook URL."""

    sensitive_field = "webhook_secret"
    changed_at_field = "keys_rotated_at"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=200)
    # The kinds are the registry's (a callable: a new source kind needs no migration).
    kind = models.CharField(
        max_length=32, choices=registry.kind_choices, default=registry.DEFAULT_KIND
    )
    write_key = models.CharField(max_length=64, unique=True, default=new_write_key)
    webhook_token = models.CharField(max_length=64, unique=True, default=new_webhook_token)
    webhook_secret = EncryptedTextField(
        blank=True,
        default=new_webhook_secret,
        help_text="Shared secret that signs webhook calls (empty: signatures are not checked).",
    )
    accept_legacy_signatures = models.BooleanField(
        default=False,
        help_text="Purchasely only: also accept the older signature scheme (HMAC of the "
        "secret and the body, without a timestamp).",
    )
    enabled = models.BooleanField(default=True)
    keys_rotated_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the webhook secret last changed (regenerated keys, or a new secret).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # The secret itself is never kept in the history; keys_rotated_at tells when it changed.
    history = HistoricalRecords(excluded_fields=["webhook_secret"])

    class Meta:
        ordering = ["workspace", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def webhook_path(self) -> str:
        return reverse(registry.url_name(self.kind), kwargs={"token": self.webhook_token})

    @property
    def source_class(self) -> type[WebhookSource]:
        return registry.get(self.kind)

    def regenerate_keys(self) -> None:
        """Replace the write key, webhook token and webhook secret (old ones stop working)."""
        self.write_key = new_write_key()
        self.webhook_token = new_webhook_token()
        self.webhook_secret = new_webhook_secret()
        self.save(update_fields=["write_key", "webhook_token", "webhook_secret"])
