"""Alert rules in the configuration API: ``/api/v1/workspaces/<slug>/alert-rules/``."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from rest_framework import serializers, viewsets
from rest_framework.serializers import BaseSerializer

from integrations.api.strict import ModelSerializer
from integrations.api.views import WorkspaceScopedMixin
from integrations.models import AlertRule
from integrations.models.alerts import mask_target, threshold_problem, validate_target

URL_CHANNELS = AlertRule.URL_CHANNELS


class AlertRuleSerializer(ModelSerializer):
    """A notification rule. A URL target is a credential (a Slack incoming-webhook URL
    lets anyone post to the channel): it is write-only and comes back as its host only
    (``https://hooks.slack.com/…``); sending that value back keeps the stored URL."""

    target = serializers.CharField(
        max_length=2000,
        help_text="email: an address; slack and webhook: an https URL, shown afterwards "
        "as its host only (send that value back, or leave it out of a PATCH, to keep it).",
    )

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "name",
            "channel",
            "target",
            "condition",
            "threshold",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        rule: AlertRule | None = self.instance
        if rule is None:  # a new rule: every field but the threshold is required
            channel, condition, target = attrs["channel"], attrs["condition"], attrs["target"]
            threshold = attrs.get("threshold")
        else:
            channel = attrs.get("channel", rule.channel)
            condition = attrs.get("condition", rule.condition)
            threshold = attrs.get("threshold", rule.threshold)
            target = attrs.get("target")
            if rule.channel in URL_CHANNELS and channel in URL_CHANNELS:
                if target is None or target == mask_target(rule.channel, rule.target):
                    target = rule.target
            elif target is None:
                target = rule.target
        errors = {}
        try:
            validate_target(channel, target.strip())
        except DjangoValidationError as exc:
            errors["target"] = exc.messages[0]
        if problem := threshold_problem(condition, threshold):
            errors["threshold"] = problem
        if errors:
            raise serializers.ValidationError(errors)
        attrs["target"] = target.strip()
        return attrs

    def to_representation(self, instance: AlertRule) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["target"] = instance.target_display
        return data


class AlertRuleViewSet(WorkspaceScopedMixin, viewsets.ModelViewSet):
    """Alert rules: when ``condition`` holds for one of the workspace's integrations (for
    ``stalled_worker``: for the workspace), a notice goes to ``target`` through
    ``channel`` once when it starts and once when it clears, with a link to the
    delivery log.

    Conditions and their ``threshold``: ``failure_rate``, percent (0-100) of the
    deliveries finished in the last ``ALERTS_WINDOW_MINUTES`` that failed (judged once
    ``ALERTS_MIN_DELIVERIES`` finished); ``backlog_age``, minutes the oldest waiting
    event may wait; ``auth_error``, none (a 401, 403 or 410 from the vendor);
    ``stalled_worker``, minutes (default 5) that due work may wait with no attempt
    recorded. Members read; admins and CSMs write."""

    queryset = AlertRule.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = AlertRuleSerializer

    def get_queryset(self) -> QuerySet[AlertRule]:
        return AlertRule.objects.filter(workspace=self.workspace)

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.save(workspace=self.workspace)
