"""Integrations (destination tools) with their settings, event rules and property rules."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from django.core.validators import URLValidator
from django.db import models, transaction
from django.utils import timezone
from simple_history.models import HistoricalRecords

from integrations.destinations import registry
from integrations.destinations.base import Destination
from integrations.fields import EncryptedJSONField
from integrations.models.secret_stamp import SecretChangeStamp
from integrations.models.workspaces import Workspace

# Deliveries go out over HTTP(S) only: no ftp:// (which Django's URLField allows).
http_url = URLValidator(schemes=["http", "https"])


class Integration(SecretChangeStamp, models.Model):
    """A destination tool a workspace delivers events to, with its credentials and rules."""

    sensitive_field = "secret_settings"
    changed_at_field = "secrets_changed_at"
    #: Secrets the last ``set_settings`` generated, by name (never stored apart).
    generated_secrets: Mapping[str, str] = MappingProxyType({})
    #: The reason django-simple-history records with the next save's history row.
    _change_reason: str

    class EventMode(models.TextChoices):
        ALL_EXCEPT_DISABLED = "all", "Send every event except those switched off"
        ONLY_ENABLED = "only_enabled", "Send only the events switched on"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="integrations")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=registry.kind_choices)
    enabled = models.BooleanField(default=True)
    settings = models.JSONField(default=dict, blank=True, help_text="Non-secret settings.")
    secret_settings = EncryptedJSONField(default=dict, blank=True, editable=False)
    field_mappings = models.JSONField(
        default=dict,
        blank=True,
        help_text="Which part of the message fills each vendor field, by field name "
        "(the destination's mapped fields); a field left out keeps its preset.",
    )
    api_base_url = models.URLField(
        blank=True,
        validators=[http_url],
        help_text="Overrides the vendor's API host (regional hosts, proxies, tests).",
    )
    event_mode = models.CharField(
        max_length=16, choices=EventMode.choices, default=EventMode.ALL_EXCEPT_DISABLED
    )
    paused = models.BooleanField(
        default=False, help_text="While paused, deliveries wait; nothing is dropped."
    )
    flagged_reason = models.TextField(
        blank=True, help_text="Set when the vendor says the endpoint is gone (HTTP 410)."
    )
    flagged_at = models.DateTimeField(null=True, blank=True)
    # The earliest time the next request may go, for vendors with a rate limit.
    next_request_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set when the vendor did not answer or rate limited us: until then, scheduled runs on
    # every worker leave this integration's deliveries waiting instead of trying again.
    deferred_until = models.DateTimeField(null=True, blank=True, editable=False)
    deferral_reason = models.TextField(blank=True, editable=False)
    # Unanswered or rate-limited requests in a row: the deferral doubles with each.
    backoff_failures = models.PositiveIntegerField(default=0, editable=False)
    secrets_changed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When a secret setting last changed."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Secrets are never kept in the history; secrets_changed_at tells when they changed.
    # The delivery throttle's bookkeeping is not configuration.
    history = HistoricalRecords(
        excluded_fields=[
            "secret_settings",
            "next_request_at",
            "deferred_until",
            "deferral_reason",
            "backoff_failures",
        ]
    )

    class Meta:
        ordering = ["workspace", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("update_fields") is None:
            # Edited by a person (new settings, say): try the vendor again at once, and
            # forget a 410 flag (the next 410 raises it again).
            self.deferred_until = None
            self.deferral_reason = ""
            self.backoff_failures = 0
            self.flagged_reason = ""
            self.flagged_at = None
        super().save(*args, **kwargs)

    def change_state(self, reason: str, **values: Any) -> None:
        """Set state fields (paused, the 410 flag...) with an entry in the audit trail.

        The row is read afresh and locked, so the history snapshot holds the current
        configuration rather than this instance's; only the given fields (and
        ``updated_at``) are written.
        """
        with transaction.atomic():
            current = Integration.objects.select_for_update().get(pk=self.pk)
            for name, value in values.items():
                setattr(current, name, value)
                setattr(self, name, value)
            current._change_reason = reason  # kept in the history record
            current.save(update_fields=[*values, "updated_at"])
        self.updated_at = current.updated_at

    @property
    def destination(self) -> type[Destination]:
        return registry.get(self.kind)

    def is_deferred(self) -> bool:
        return self.deferred_until is not None and self.deferred_until > timezone.now()

    def set_settings(self, data: dict[str, Any]) -> None:
        """Validate settings for this kind and split them into public and secret parts
        (credentials within settings, such as header values, go with the secrets).

        The secrets generated for settings left empty are kept in ``generated_secrets``
        until the instance is gone, for the answer to show them once.
        Raises ``ValidationError`` (a dict of setting name to problem).
        """
        cleaned = self.destination.clean_settings(data, self.secret_settings or {})
        self.settings = cleaned.public
        self.secret_settings = cleaned.secrets
        self.generated_secrets = MappingProxyType(cleaned.generated)

    def set_field_mappings(self, data: Any) -> None:
        """Validate field mappings against this kind's declared fields and keep them.

        Raises ``ValidationError`` (a dict of field name to problem).
        """
        self.field_mappings = self.destination.clean_mappings(data)

    def config(self) -> dict[str, Any]:
        """All settings, secrets included: for building requests, never for display."""
        return {**self.settings, **(self.secret_settings or {})}


class EventRule(models.Model):
    """The enabled-event toggle and event-name override of one event for one integration.

    ``event`` is a track event's name; for other calls it is the call type (``identify``,
    ``page``, ``group``...).
    """

    # Indexed by ``unique_event_rule`` (integration, event).
    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="event_rules", db_index=False
    )
    event = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    send_as = models.CharField(
        max_length=200, blank=True, help_text="Name sent to the vendor (empty: unchanged)."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["event"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "event"], name="unique_event_rule"),
        ]

    def __str__(self) -> str:
        return self.event


class PropertyRule(models.Model):
    """Whether a trait/property is sent to an integration, and under which name."""

    # Indexed by ``unique_property_rule`` (integration, name).
    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="property_rules", db_index=False
    )
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    send_as = models.CharField(
        max_length=200, blank=True, help_text="Name sent to the vendor (empty: unchanged)."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "name"], name="unique_property_rule"),
        ]

    def __str__(self) -> str:
        return self.name
