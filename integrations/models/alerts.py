"""Alert rules (what to watch and whom to tell) and their incidents (each time it fired)."""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import models
from simple_history.models import HistoricalRecords

from integrations.fields import EncryptedTextField
from integrations.models.integrations import Integration
from integrations.models.secret_stamp import SecretChangeStamp
from integrations.models.workspaces import Workspace

#: The stalled-worker threshold, in minutes, when a rule gives none.
DEFAULT_STALL_MINUTES = 5.0


class AlertRuleQuerySet(models.QuerySet["AlertRule"]):
    def checked_periodically(self) -> "AlertRuleQuerySet":
        """Rules whose condition the worker evaluates on its schedule (auth_error is
        judged when the vendor answers)."""
        return self.exclude(condition=AlertRule.Condition.AUTH_ERROR)


class AlertRule(SecretChangeStamp, models.Model):
    """A notification rule of a workspace: when ``condition`` holds for one of its
    integrations (or, for a stalled worker, for the workspace), tell ``target`` through
    ``channel``, once when it starts and once when it ends.

    The target is encrypted at rest: a Slack incoming-webhook URL is a credential (whoever
    has it can post to the channel), and a webhook URL often carries a token too. URL
    targets are write-only: pages and the API show only their host.
    """

    sensitive_field = "target"
    changed_at_field = "target_changed_at"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack incoming webhook"
        WEBHOOK = "webhook", "Webhook (JSON POST)"

    class Condition(models.TextChoices):
        FAILURE_RATE = "failure_rate", "Failure rate over a threshold"
        BACKLOG_AGE = "backlog_age", "Backlog older than N minutes"
        AUTH_ERROR = "auth_error", "Vendor refuses the credentials (HTTP 401, 403, 410)"
        STALLED_WORKER = "stalled_worker", "Stalled worker (no progress while work is due)"

    #: Conditions that need a threshold, and what it means.
    THRESHOLD_HELP: dict[str, str] = {
        Condition.FAILURE_RATE: "percent of finished deliveries that failed (e.g. 20)",
        Condition.BACKLOG_AGE: "minutes the oldest waiting event may wait",
        Condition.STALLED_WORKER: f"minutes without progress (default {DEFAULT_STALL_MINUTES:g})",
    }
    URL_CHANNELS = frozenset({Channel.SLACK, Channel.WEBHOOK})

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = EncryptedTextField(
        help_text="An email address, or the URL of a Slack incoming webhook or a webhook."
    )
    condition = models.CharField(max_length=32, choices=Condition.choices)
    threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="failure_rate: percent of finished deliveries that failed (0-100); "
        "backlog_age: minutes; stalled_worker: minutes (default 5); auth_error: none.",
    )
    target_changed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the target last changed."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AlertRuleQuerySet.as_manager()
    # The target is never kept in the history; target_changed_at tells when it changed.
    history = HistoricalRecords(excluded_fields=["target"])

    class Meta:
        ordering = ["workspace", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def target_display(self) -> str:
        """The target as pages and the API show it: an address, or a URL's host only."""
        return mask_target(self.channel, self.target)

    @property
    def stall_minutes(self) -> float:
        return self.threshold if self.threshold is not None else DEFAULT_STALL_MINUTES

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.channel and self.target:
            try:
                validate_target(self.channel, self.target)
            except ValidationError as exc:
                errors["target"] = exc.messages[0]
        if self.condition and (problem := threshold_problem(self.condition, self.threshold)):
            errors["threshold"] = problem
        if errors:
            raise ValidationError(errors)


def mask_target(channel: str, target: str) -> str:
    """An email address as it is; a URL as ``https://host/…`` (its path may be a secret)."""
    if channel not in AlertRule.URL_CHANNELS or not target:
        return target
    parts = urlsplit(target)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def validate_target(channel: str, target: str) -> None:
    """An email address for email; an https URL (http too where private URLs are allowed,
    for local fakes) for Slack and webhooks. Raises ``ValidationError``."""
    if channel == AlertRule.Channel.EMAIL:
        EmailValidator(message="Enter a valid email address.")(target)
        return
    schemes = ["https", "http"] if settings.INTEGRATIONS_ALLOW_PRIVATE_URLS else ["https"]
    URLValidator(schemes=schemes, message=f"Enter a valid URL ({' or '.join(schemes)}).")(target)
    if urlsplit(target).username is not None:
        raise ValidationError("A URL with a user name or password is not accepted.")


def threshold_problem(condition: str, threshold: Any) -> str | None:
    """Why ``threshold`` does not suit ``condition``, or None."""
    Condition = AlertRule.Condition
    if condition == Condition.AUTH_ERROR:
        return "auth_error takes no threshold." if threshold is not None else None
    if threshold is None:
        if condition == Condition.STALLED_WORKER:
            return None
        return f"{condition} needs a threshold: {AlertRule.THRESHOLD_HELP[condition]}."
    if threshold <= 0:
        return "The threshold must be greater than 0."
    if condition == Condition.FAILURE_RATE and threshold > 100:
        return "A failure rate is a percent: at most 100."
    return None


class AlertIncidentQuerySet(models.QuerySet["AlertIncident"]):
    def open(self) -> "AlertIncidentQuerySet":
        return self.filter(cleared_at__isnull=True)

    def notice_pending(self) -> "AlertIncidentQuerySet":
        """Incidents whose latest news (opened, or cleared) has not been sent."""
        return self.filter(
            models.Q(last_notified_at__isnull=True)
            | models.Q(last_notified_at__lt=models.F("cleared_at"))
        )


class AlertIncident(models.Model):
    """One time a rule's condition held, for one integration (none for a stalled worker),
    from when it was seen to when it was seen no more.

    At most one incident of a rule and integration is open at a time (the constraints
    below), so workers that see the same condition at the same time open it, and notify,
    once.
    """

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    integration = models.ForeignKey(
        Integration,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_incidents",
        help_text="Empty for a stalled worker (the workspace as a whole).",
    )
    opened_at = models.DateTimeField()
    detail = models.TextField(help_text="What was seen when the incident opened.")
    last_seen_at = models.DateTimeField(help_text="When the condition was last seen holding.")
    cleared_at = models.DateTimeField(null=True, blank=True)
    clear_detail = models.TextField(blank=True)
    last_notified_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the latest notice (opened or cleared) was handed to the channel.",
    )
    notify_error = models.TextField(blank=True, help_text="Why the latest notice failed.")
    # Set while a process sends a notice, so that two do not send the same one; a notice
    # whose sender died is sent again once this is older than the notice lease.
    notifying_since = models.DateTimeField(null=True, blank=True, editable=False)

    objects = AlertIncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "integration"],
                condition=models.Q(cleared_at__isnull=True, integration__isnull=False),
                name="one_open_incident_per_integration",
            ),
            models.UniqueConstraint(
                fields=["rule"],
                condition=models.Q(cleared_at__isnull=True, integration__isnull=True),
                name="one_open_workspace_incident",
            ),
        ]
        indexes = [models.Index(fields=["cleared_at"], name="incident_cleared")]

    def __str__(self) -> str:
        subject = self.integration.name if self.integration is not None else "workspace"
        return f"{self.rule.name}: {subject} at {self.opened_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None
