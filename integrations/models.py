"""Configuration (workspaces, sources, integrations, rules) and traffic (events, deliveries)."""

import copy
import datetime as dt
import secrets
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from simple_history.models import HistoricalRecords

from integrations.destinations import registry
from integrations.destinations.base import Destination
from integrations.fields import EncryptedJSONField, EncryptedTextField


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


def new_webhook_token() -> str:
    return secrets.token_urlsafe(18)


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


_UNKNOWN = object()


class SecretChangeStamp(models.Model):
    """Stamps ``changed_at_field`` with the time whenever ``sensitive_field`` changes.

    The history of a model never stores its secrets (they are excluded from it); the stamp,
    which is tracked, shows in the history who changed a secret and when, without the value.
    """

    sensitive_field: ClassVar[str]
    changed_at_field: ClassVar[str]

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if (update_fields is None or self.sensitive_field in update_fields) and (
            self._sensitive_changed()
        ):
            setattr(self, self.changed_at_field, timezone.now())
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, self.changed_at_field}
        super().save(*args, **kwargs)
        self._remember_sensitive()

    @classmethod
    def from_db(cls, db: str, field_names: Any, values: Any) -> Any:
        instance = super().from_db(db, field_names, values)
        instance._remember_sensitive()
        return instance

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        super().refresh_from_db(*args, **kwargs)
        self._remember_sensitive()

    def _remember_sensitive(self) -> None:
        # A copy: a dict of secrets may be changed in place.
        value = self.__dict__.get(self.sensitive_field, _UNKNOWN)
        self._stored_sensitive = value if value is _UNKNOWN else copy.deepcopy(value)

    def _sensitive_changed(self) -> bool:
        if self.sensitive_field not in self.__dict__:  # deferred, so not saved
            return False
        stored = getattr(self, "_stored_sensitive", None if self._state.adding else _UNKNOWN)
        current = self.__dict__[self.sensitive_field]
        return stored is not _UNKNOWN and bool(current or stored) and current != stored


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def for_user(self, user: Any) -> "WorkspaceQuerySet":
        """The workspaces a user may see: all for superusers, else those they belong to."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user)


class Workspace(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WorkspaceQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def can_be_created_by(user: Any) -> bool:
        """Superusers, and staff users given the ``integrations.add_workspace`` permission,
        create workspaces (in the admin and through the API)."""
        return user.is_active and (
            user.is_superuser or (user.is_staff and user.has_perm("integrations.add_workspace"))
        )


class WorkspaceMembership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        CSM = "csm", "CSM"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workspace_memberships"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CSM)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    LAST_ADMIN_MESSAGE = (
        "A workspace must keep at least one admin: make another member an admin first."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.get_role_display()})"

    @classmethod
    def keeps_an_admin(
        cls, workspace_id: int, *, removed: Iterable[int] = (), added: int = 0, lock: bool = True
    ) -> bool:
        """Whether the workspace still has an admin after the admin memberships ``removed``
        (ids; deleted or demoted) stop being admins and ``added`` new admins join.

        A workspace that has no admin at all stays allowed. With ``lock`` (inside a
        transaction), the workspace's admin memberships are locked until it ends, so that
        two admins cannot demote each other at the same time.
        """
        admins = cls.objects.filter(workspace_id=workspace_id, role=cls.Role.ADMIN)
        if lock:
            admins = admins.select_for_update()
        ids = set(admins.values_list("pk", flat=True))
        return not ids or bool(ids - set(removed)) or added > 0


class Source(SecretChangeStamp, models.Model):
    """Where events come from: a write key for the Segment HTTP API and a webhook URL."""

    sensitive_field = "webhook_secret"
    changed_at_field = "keys_rotated_at"

    class Kind(models.TextChoices):
        SEGMENT = "segment", "Segment"
        PURCHASELY = "purchasely", "Purchasely"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.SEGMENT)
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
        return reverse(f"{self.kind}-webhook", kwargs={"token": self.webhook_token})

    def regenerate_keys(self) -> None:
        """Replace the write key, webhook token and webhook secret (old ones stop working)."""
        self.write_key = new_write_key()
        self.webhook_token = new_webhook_token()
        self.webhook_secret = new_webhook_secret()
        self.save(update_fields=["write_key", "webhook_token", "webhook_secret"])


class Integration(SecretChangeStamp, models.Model):
    """A destination tool a workspace delivers events to, with its credentials and rules."""

    sensitive_field = "secret_settings"
    changed_at_field = "secrets_changed_at"

    class EventMode(models.TextChoices):
        ALL_EXCEPT_DISABLED = "all", "Send every event except those switched off"
        ONLY_ENABLED = "only_enabled", "Send only the events switched on"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="integrations")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=registry.kind_choices)
    enabled = models.BooleanField(default=True)
    settings = models.JSONField(default=dict, blank=True, help_text="Non-secret settings.")
    secret_settings = EncryptedJSONField(default=dict, blank=True, editable=False)
    api_base_url = models.URLField(
        blank=True,
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
    secrets_changed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When a secret setting last changed."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Secrets are never kept in the history; secrets_changed_at tells when they changed.
    # The delivery throttle's bookkeeping is not configuration.
    history = HistoricalRecords(
        excluded_fields=["secret_settings", "next_request_at", "deferred_until", "deferral_reason"]
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
        """Validate settings for this kind and split them into public and secret parts.

        Raises ``ValidationError`` (a dict of setting name to problem).
        """
        cleaned = self.destination.clean_settings(data, self.secret_settings or {})
        self.settings = cleaned.public
        self.secret_settings = cleaned.secrets

    def config(self) -> dict[str, Any]:
        """All settings, secrets included: for building requests, never for display."""
        return {**self.settings, **(self.secret_settings or {})}


class EventRule(models.Model):
    """The enabled-event toggle and event-name override of one event for one integration.

    ``event`` is a track event's name; for other calls it is the call type (``identify``,
    ``page``, ``group``...).
    """

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="event_rules"
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

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="property_rules"
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


class Event(models.Model):
    """One accepted message, normalised as Segment stores it."""

    class Type(models.TextChoices):
        IDENTIFY = "identify"
        TRACK = "track"
        PAGE = "page"
        SCREEN = "screen"
        GROUP = "group"
        ALIAS = "alias"

    # Generated by the server before the insert, so a bulk insert that skips duplicates
    # can tell which rows it wrote.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by the unique constraint and the indexes below, all led by the workspace.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    source = models.ForeignKey(
        Source, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    message_id = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=Type.choices)
    event = models.CharField(max_length=200, blank=True, help_text="Track event name.")
    user_id = models.CharField(max_length=255, blank=True)
    anonymous_id = models.CharField(max_length=255, blank=True)
    group_id = models.CharField(max_length=255, blank=True)
    original_timestamp = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    timestamp = models.DateTimeField(help_text="Corrected for client clock skew.")
    payload = models.JSONField()
    is_test = models.BooleanField(default=False, help_text="Sent from the event tester.")

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "message_id"], name="unique_message_id"),
        ]
        indexes = [
            models.Index(fields=["workspace", "-received_at"], name="event_ws_received"),
            models.Index(fields=["workspace", "event"], name="event_ws_name"),
            models.Index(fields=["workspace", "user_id"], name="event_ws_user"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event or ''} {self.message_id}".replace("  ", " ")

    @property
    def rule_name(self) -> str:
        """The name event rules match: the event name of a track call, else the call type."""
        return self.event if self.type == self.Type.TRACK else self.type


class UserProfile(models.Model):
    """The profile store: a user's traits merged from identify calls, and the group a
    group call last put them in, so vendors get context a track call does not carry."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="profiles")
    user_id = models.CharField(max_length=255)
    traits = models.JSONField(default=dict)
    group_id = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user_id"], name="unique_profile"),
        ]

    def __str__(self) -> str:
        return self.user_id


class GroupProfile(models.Model):
    """A group's (account's, company's) traits merged from group calls."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="groups")
    group_id = models.CharField(max_length=255)
    traits = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "group_id"], name="unique_group"),
        ]

    def __str__(self) -> str:
        return self.group_id


class SeenEvent(models.Model):
    """An event name seen in a workspace's traffic, so a CSM can toggle or rename it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="seen_events")
    name = models.CharField(max_length=200)
    count = models.PositiveBigIntegerField(default=0)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="unique_seen_event"),
        ]

    def __str__(self) -> str:
        return self.name


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def waiting(self) -> "DeliveryQuerySet":
        """Deliveries the schedule will still attempt."""
        return self.filter(status__in=[Delivery.Status.PENDING, Delivery.Status.RETRYING])

    def due(self, now: dt.datetime | None = None) -> "DeliveryQuerySet":
        """Waiting deliveries whose time has come and that no live worker holds."""
        now = now or timezone.now()
        return (
            self.waiting()
            .filter(next_attempt_at__lte=now)
            .filter(models.Q(leased_until__isnull=True) | models.Q(leased_until__lt=now))
        )


class Delivery(models.Model):
    """One event on its way to one integration."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    class Origin(models.TextChoices):
        LIVE = "live", "Live traffic"
        REPLAY = "replay", "Replay"
        TEST = "test", "Event tester"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="deliveries"
    )
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.LIVE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    manual_attempt_count = models.PositiveIntegerField(
        default=0, help_text="Attempts an operator asked for; they do not move the schedule."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    last_error = models.TextField(blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    # A worker holds a delivery while it sends it; an expired lease means the worker died.
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["integration", "status", "-created_at"], name="delivery_int_st"),
            models.Index(fields=["-created_at"], name="delivery_created"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.integration}"

    @property
    def scheduled_attempt_count(self) -> int:
        return self.attempt_count - self.manual_attempt_count

    @property
    def latency(self) -> dt.timedelta | None:
        """From receipt of the event to its delivery."""
        if self.delivered_at is None:
            return None
        return self.delivered_at - self.event.received_at


class DeliveryAttempt(models.Model):
    """One HTTP exchange with a vendor, as sent and as answered (secrets redacted)."""

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        MANUAL = "manual", "Manual"
        TEST = "test", "Event tester"

    RESPONSE_BODY_LIMIT = 20 * 1024

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULED)
    request_method = models.CharField(max_length=8, blank=True)
    request_url = models.TextField(blank=True)
    request_headers = models.JSONField(default=dict, blank=True)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    # Earlier exchanges of a multi-step attempt (a lookup before a write), in brief.
    steps = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["delivery", "number"]
        indexes = [models.Index(fields=["-started_at"], name="attempt_started")]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="unique_attempt_number"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
