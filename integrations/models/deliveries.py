"""Deliveries of events to integrations, and the log of their attempts."""

import datetime as dt

from django.db import models
from django.utils import timezone

from integrations.models.events import Event
from integrations.models.integrations import Integration


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
