"""Events on their way to integrations: dispatches, deliveries and their attempts.

After routing (``models/routing.py``), an event bound for an integration waits in a
``Dispatch`` until the worker first attempts it. The worker then writes its ``Delivery``
once, with that attempt's outcome: a delivery that succeeds at once costs one insert. A
delivery that is tried again keeps its latest attempt on its own row and moves the
earlier one into ``DeliveryAttempt``. The HTTP exchanges themselves are stored once each,
in ``models/exchanges.py``, and referred to by every delivery they carried.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import models
from django.utils import timezone

from integrations.models.events import Event
from integrations.models.exchanges import Exchange
from integrations.models.integrations import Integration


class Origin(models.TextChoices):
    LIVE = "live", "Live traffic"
    REPLAY = "replay", "Replay"
    TEST = "test", "Event tester"


class Trigger(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    MANUAL = "manual", "Manual"
    TEST = "test", "Event tester"


class Outcome(models.TextChoices):
    """What one attempt came to."""

    DELIVERED = "delivered", "Delivered"
    RETRY = "retry", "To be retried"
    FAILED = "failed", "Failed"
    GONE = "gone", "Gone (HTTP 410)"
    INTERRUPTED = "interrupted", "Interrupted"


class DispatchQuerySet(models.QuerySet["Dispatch"]):
    def unleased(self, now: dt.datetime | None = None) -> "DispatchQuerySet":
        now = now or timezone.now()
        return self.filter(models.Q(leased_until__isnull=True) | models.Q(leased_until__lt=now))

    def due(self, now: dt.datetime | None = None) -> "DispatchQuerySet":
        """Dispatches whose time has come and that no live worker holds."""
        now = now or timezone.now()
        return self.unleased(now).filter(next_attempt_at__lte=now)


class Dispatch(models.Model):
    """Some events routed to one integration and not attempted yet.

    Written by the router (or by a replay, or the event tester) and never rewritten: the
    worker takes a dispatch with a lease and works through ``event_ids`` in order; each
    flush of its outcomes moves ``done`` past the events recorded, in the same
    transaction, and the dispatch is deleted once ``done`` reaches ``size``.
    """

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="dispatches"
    )
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.LIVE)
    event_ids = models.JSONField(help_text="The events, as uuid strings, in the order received.")
    size = models.PositiveIntegerField(help_text="How many events it holds.")
    done = models.PositiveIntegerField(default=0, help_text="How many of them are recorded.")
    # Events before this position have been handed to requests: after a worker stopped,
    # those it had not recorded may have reached the vendor (the log says interrupted).
    started = models.PositiveIntegerField(default=0)
    # When its first event was received: the backlog's age is measured from here, and no
    # event of a live dispatch was received earlier.
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Why the dispatch waits past its creation (the integration is deferred...).
    waiting_reason = models.TextField(blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    # Set once a worker took it up: events past ``done`` may have been recorded already
    # (out of order, or by a worker that stopped), so later claims check before sending.
    taken = models.BooleanField(default=False)

    objects = DispatchQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "dispatches"

    def __str__(self) -> str:
        return f"{self.size - self.done} events for integration {self.integration_id}"


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def waiting(self) -> "DeliveryQuerySet":
        """Deliveries the schedule will attempt again."""
        return self.filter(status=Delivery.Status.RETRYING)

    def due(self, now: dt.datetime | None = None) -> "DeliveryQuerySet":
        """Waiting deliveries whose time has come and that no live worker holds."""
        now = now or timezone.now()
        return (
            self.waiting()
            .filter(next_attempt_at__lte=now)
            .filter(models.Q(leased_until__isnull=True) | models.Q(leased_until__lt=now))
        )


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a delivery, as the log shows it (the latest comes from the
    delivery's own row, earlier ones from ``DeliveryAttempt``)."""

    number: int
    trigger: str
    outcome: str
    error: str
    status_code: int | None
    started_at: dt.datetime | None
    exchange_id: int | None


class Delivery(models.Model):
    """One event to one integration, with its latest attempt."""

    class Status(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"

    Origin = Origin
    Trigger = Trigger

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    # Indexed by the (integration, status, created) index.
    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.LIVE)
    status = models.CharField(max_length=16, choices=Status.choices)
    attempt_count = models.PositiveIntegerField(default=1)
    manual_attempt_count = models.PositiveIntegerField(
        default=0, help_text="Attempts an operator asked for; they do not move the schedule."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The latest attempt.
    last_trigger = models.CharField(
        max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULED
    )
    last_outcome = models.CharField(max_length=16, choices=Outcome.choices)
    last_error = models.TextField(blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(default=timezone.now)
    exchange = models.ForeignKey(
        Exchange,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="deliveries",
        help_text="The first HTTP exchange of the latest attempt (its chain holds the rest).",
    )
    # When the event was accepted for this integration (the dispatch's time).
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # A worker holds a delivery while it retries it; an expired lease means it died.
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True, editable=False)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            # The retry queue: only waiting rows are in it.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due",
                condition=models.Q(status="retrying"),
            ),
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

    def latest_attempt(self) -> AttemptRecord:
        return AttemptRecord(
            number=self.attempt_count,
            trigger=self.last_trigger,
            outcome=self.last_outcome,
            error=self.last_error,
            status_code=self.last_status_code,
            started_at=self.last_attempt_at,
            exchange_id=self.exchange_id,
        )

    def attempt_log(self) -> list[AttemptRecord]:
        """Every attempt, oldest first."""
        earlier = [
            AttemptRecord(
                number=row.number,
                trigger=row.trigger,
                outcome=row.outcome,
                error=row.error,
                status_code=row.status_code,
                started_at=row.started_at,
                exchange_id=row.exchange_id,
            )
            for row in self.attempts.order_by("number")
        ]
        return [*earlier, self.latest_attempt()]

    def attempts_with_exchanges(self) -> list[tuple[AttemptRecord, list[Exchange]]]:
        """Every attempt, oldest first, with its exchanges in order (two queries)."""
        attempts = self.attempt_log()
        heads = [a.exchange_id for a in attempts if a.exchange_id is not None]
        chains: dict[int, list[Exchange]] = {}
        rows = Exchange.objects.filter(models.Q(pk__in=heads) | models.Q(head_id__in=heads))
        for exchange in rows.order_by("step"):
            chains.setdefault(exchange.head_id or exchange.pk, []).append(exchange)
        return [(a, chains.get(a.exchange_id, []) if a.exchange_id else []) for a in attempts]


class DeliveryAttempt(models.Model):
    """An earlier attempt of a delivery (the latest one is kept on the delivery's row)."""

    Trigger = Trigger
    Outcome = Outcome

    # No index of its own: ``unique_attempt_number`` (delivery, number) leads with it.
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULED)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error = models.TextField(blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    exchange = models.ForeignKey(
        Exchange,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="earlier_attempts",
    )
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="unique_attempt_number"),
        ]

    def __str__(self) -> str:
        # Not "attempt 1 of delivery 15", which reads as "attempt 1 of 15".
        return f"delivery #{self.delivery_id}, attempt {self.number}"
