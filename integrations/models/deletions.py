"""Requests to delete (or delete and suppress) a user's data at the vendors, and how far
each has been carried out, per integration (``integrations/deletion.py``)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models.events import Event
from integrations.models.integrations import Integration
from integrations.models.sources import Source
from integrations.models.workspaces import Workspace


class DeletionRequestQuerySet(models.QuerySet["DeletionRequest"]):
    def open(self) -> "DeletionRequestQuerySet":
        """Requests whose outcome can still change (their deliveries are still kept)."""
        return self.filter(
            state__in=[DeletionRequest.State.IN_PROGRESS, DeletionRequest.State.NEEDS_ATTENTION],
            event__isnull=False,
        )


class DeletionRequest(models.Model):
    """A request to delete a user's data from the workspace's integrations, kept as the
    record of who asked, when, and what became of it.

    The request travels as an internal event of type ``delete`` or ``suppress`` (its
    ``event``), dispatched to the integrations whose destination takes that call, so it
    is delivered, retried and logged like any event; ``targets`` follow each one's
    outcome. The event and its deliveries are pruned with other traffic; the request and
    its targets stay.
    """

    class Action(models.TextChoices):
        DELETE = "delete", "Delete"
        SUPPRESS = "suppress", "Delete and suppress"

    class Via(models.TextChoices):
        API = "api", "Configuration API"
        SEGMENT = "segment_webhook", "Segment Webhooks delete notice"

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done at every integration"
        NEEDS_ATTENTION = "needs_attention", "Not done everywhere: see the integrations"
        NO_INTEGRATION = "no_integration", "No integration takes it"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="deletion_requests", db_index=False
    )
    user_id = models.CharField(max_length=255)
    action = models.CharField(max_length=16, choices=Action.choices)
    via = models.CharField(max_length=16, choices=Via.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who asked through the API (empty for a Segment notice).",
    )
    requested_by_name = models.CharField(
        max_length=150, blank=True, help_text="Their user name when they asked."
    )
    source = models.ForeignKey(
        Source,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The source whose Segment notice it was.",
    )
    message_id = models.CharField(max_length=100)
    event = models.OneToOneField(
        Event,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deletion_request",
        help_text="The internal event it travels as (gone once pruned).",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    created_at = models.DateTimeField(default=timezone.now)
    settled_at = models.DateTimeField(null=True, blank=True)

    objects = DeletionRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "message_id"], name="unique_deletion_message_id"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="deletion_ws_created"),
            models.Index(fields=["workspace", "user_id"], name="deletion_ws_user"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} user {self.user_id}"


class DeletionTarget(models.Model):
    """One integration a deletion request was dispatched to, and its outcome there."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        RETRYING = "retrying", "Retrying"
        DONE = "done", "Done"
        NOT_SUPPORTED = "not_supported", "Not supported by the vendor"
        FAILED = "failed", "Failed"

    deletion = models.ForeignKey(DeletionRequest, on_delete=models.CASCADE, related_name="targets")
    integration = models.ForeignKey(
        Integration, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=200, help_text="The integration's name then.")
    kind = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    detail = models.TextField(blank=True, help_text="The vendor's answer, or why not.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["deletion", "name", "pk"]

    def __str__(self) -> str:
        return f"{self.name}: {self.get_status_display()}"
