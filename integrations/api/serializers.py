"""Serializers of the configuration API."""

from collections.abc import Mapping
from dataclasses import asdict
from types import MappingProxyType
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from simple_history.utils import bulk_create_with_history

from integrations import audit, samples
from integrations.api.errors import APIError
from integrations.api.strict import ModelSerializer, Serializer
from integrations.credentials import MASK
from integrations.delivery import url_guard
from integrations.delivery.health import State, summaries
from integrations.destinations import registry
from integrations.links import absolute_url
from integrations.models import (
    Delivery,
    Event,
    EventRule,
    Exchange,
    Integration,
    Outcome,
    PropertyRule,
    Source,
    Trigger,
    Workspace,
    WorkspaceMembership,
)
from integrations.models.integrations import http_url

SECRET_MASK = MASK


class WorkspaceSerializer(ModelSerializer):
    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "created_at"]


def already_a_member(user: Any) -> APIError:
    """A 409: the membership exists (the request is valid; the state is not)."""
    return APIError(
        status.HTTP_409_CONFLICT,
        "already_member",
        f"“{user.get_username()}” is already a member of this workspace",
    )


class MemberSerializer(ModelSerializer):
    """A member of a workspace: a user, named by username, and their role. The user of a
    membership never changes (remove it and add another)."""

    username = serializers.CharField(source="user.username", max_length=150)

    class Meta:
        model = WorkspaceMembership
        fields = ["username", "role", "created_at"]
        read_only_fields = ["created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        username = attrs.pop("user", {}).get("username")
        if self.instance is not None:
            if username is not None and username != self.instance.user.get_username():
                raise serializers.ValidationError(
                    {
                        "username": "the user of a membership cannot change; remove it and add "
                        "the other user"
                    }
                )
            return attrs
        user_model = get_user_model()
        try:
            attrs["user"] = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise serializers.ValidationError(
                {"username": f"no user is called “{username}”; a superuser creates accounts"}
            ) from None
        if WorkspaceMembership.objects.filter(
            workspace=self.context["workspace"], user=attrs["user"]
        ).exists():
            raise already_a_member(attrs["user"])
        return attrs

    def create(self, validated_data: dict[str, Any]) -> WorkspaceMembership:
        try:
            with transaction.atomic():
                return WorkspaceMembership.objects.create(**validated_data)
        except IntegrityError:  # added at the same time by someone else
            raise already_a_member(validated_data["user"]) from None

    def update(
        self, instance: WorkspaceMembership, validated_data: dict[str, Any]
    ) -> WorkspaceMembership:
        instance.role = validated_data.get("role", instance.role)
        instance.save(update_fields=["role"])
        return instance


class MemberRoleSerializer(Serializer):
    """What changing a membership takes: the role. (The user of a membership cannot
    change: remove it and add the other user.)"""

    role = serializers.ChoiceField(choices=WorkspaceMembership.Role.choices)


class SourceSerializer(ModelSerializer):
    """A source; its webhook secret can be set but is only shown when created or
    regenerated (``SourceWithSecretSerializer``)."""

    webhook_url = serializers.SerializerMethodField()
    webhook_secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Shared secret for webhook signatures; generated when absent, "
        "empty to disable signature checks.",
    )

    class Meta:
        model = Source
        fields = ["id", "name", "kind", "enabled", "write_key", "webhook_url", "webhook_secret"]
        read_only_fields = ["write_key"]

    def get_webhook_url(self, source: Source) -> str:
        return absolute_url(source.webhook_path, self.context.get("request"))


class SourceWithSecretSerializer(SourceSerializer):
    """A source as the answers to create and regenerate-keys give it: with its webhook
    secret, which no other answer shows."""

    webhook_secret = serializers.CharField(
        read_only=True,
        help_text="Shared secret for webhook signatures (empty: no signature checks). "
        "Shown in this answer only: keep it now.",
    )


class EventRuleSerializer(ModelSerializer):
    class Meta:
        model = EventRule
        fields = ["event", "enabled", "send_as"]


class PropertyRuleSerializer(ModelSerializer):
    class Meta:
        model = PropertyRule
        fields = ["name", "enabled", "send_as"]


def _unique(rules: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    if any(key not in rule for rule in rules):
        # A PATCH makes every field optional, but a list of rules replaces the old one.
        raise serializers.ValidationError(f"every rule needs its {key}")
    names = [rule[key] for rule in rules]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise serializers.ValidationError(f"listed more than once: {', '.join(duplicated)}")
    return rules


class HealthSerializer(serializers.Serializer):
    """How an integration is doing: outcomes of the last 24 hours and the backlog now."""

    delivered = serializers.IntegerField(help_text="Deliveries delivered in the last 24 hours.")
    failed = serializers.IntegerField(help_text="Deliveries failed in the last 24 hours.")
    pending = serializers.IntegerField(
        help_text="Events waiting for their first attempt (routed to this integration, or "
        "accepted in its workspace and not routed yet)."
    )
    retrying = serializers.IntegerField(help_text="Deliveries waiting for another attempt.")
    oldest_waiting_seconds = serializers.FloatField(
        allow_null=True, help_text="Age of the oldest waiting event (pending or retrying)."
    )
    last_error = serializers.CharField(
        help_text="The reason of the latest delivery retrying or failed, else why the "
        "pending events wait; empty when there is none."
    )
    state = serializers.ChoiceField(
        choices=State.choices,
        help_text="outage: deliveries are being retried, or events have waited longer than "
        "HEALTH_OUTAGE_MINUTES; backlog: younger events wait; paused; ok.",
    )


class IntegrationListSerializer(serializers.ListSerializer):
    """A page of integrations, their health measured together (a few queries a page)."""

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        integrations = list(data.all() if hasattr(data, "all") else data)
        self.context["health"] = summaries(integrations)
        return super().to_representation(integrations)


class IntegrationSerializer(ModelSerializer):
    """An integration. Settings are validated against the kind's schema; secret settings
    are write-only and come back masked, except a secret generated for a setting left
    empty, shown once in the answer to the request that made it. Custom headers come back
    as their names with masked values, a URL with its credentials masked; a masked value
    sent back keeps the stored one."""

    kind = serializers.ChoiceField(choices=registry.kind_choices())
    settings = serializers.DictField(required=False, default=dict)
    #: Set by ``validate``: the secrets generated for settings left empty, shown once.
    generated_secrets: Mapping[str, str] = MappingProxyType({})
    event_rules = EventRuleSerializer(many=True, required=False)
    property_rules = PropertyRuleSerializer(many=True, required=False)
    field_mappings = serializers.DictField(
        required=False,
        help_text="Vendor field name → expression or template (see mapped_fields); a field "
        "left out keeps its preset. Replaced as a whole.",
    )
    mapped_fields = serializers.SerializerMethodField(
        help_text="The fields this kind lets you map, with their presets."
    )
    health = serializers.SerializerMethodField()

    class Meta:
        model = Integration
        list_serializer_class = IntegrationListSerializer
        fields = [
            "id",
            "name",
            "kind",
            "enabled",
            "settings",
            "field_mappings",
            "mapped_fields",
            "api_base_url",
            "event_mode",
            "event_rules",
            "property_rules",
            "paused",
            "flagged_reason",
            "flagged_at",
            "health",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["paused", "flagged_reason", "flagged_at"]
        # DRF drops a model field's URLValidator for its own, which allows ftp://.
        extra_kwargs = {"api_base_url": {"validators": [http_url]}}

    def validate_event_rules(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _unique(rules, "event")

    def validate_property_rules(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _unique(rules, "name")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: Integration | None = self.instance
        # A new integration's kind is required; an existing one's stays unless sent.
        kind: str = attrs["kind"] if instance is None else attrs.get("kind", instance.kind)
        if instance is not None and kind != instance.kind:
            raise serializers.ValidationError(
                {"kind": "the kind of an integration cannot change; create a new one"}
            )
        if "settings" in attrs or instance is None:
            submitted = {
                key: value
                for key, value in attrs.get("settings", {}).items()
                if value != SECRET_MASK
            }
            if instance is not None and self.partial:
                submitted = {**instance.settings, **submitted}
            try:
                cleaned = registry.get(kind).clean_settings(
                    submitted, instance.secret_settings if instance else {}
                )
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"settings": exc.message_dict}) from exc
            attrs["settings"] = cleaned.public
            attrs["secret_settings"] = cleaned.secrets
            self.generated_secrets = cleaned.generated
        if "field_mappings" in attrs:
            try:
                attrs["field_mappings"] = registry.get(kind).clean_mappings(attrs["field_mappings"])
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"field_mappings": exc.message_dict}) from exc
        self._refuse_enabling_without_secrets(kind, attrs)
        # The URLs as sent: secret ones (ChartMogul's webhook URL, a URL with credentials)
        # are among the secret settings.
        urls = {**attrs.get("settings", {}), **(attrs.get("secret_settings") or {})}
        problems = url_guard.url_problems(registry.get(kind), urls, attrs.get("api_base_url"))
        if problems:
            errors: dict[str, Any] = {}
            if url_guard.API_BASE_URL in problems:
                errors["api_base_url"] = [problems.pop(url_guard.API_BASE_URL)]
            if problems:
                errors["settings"] = {name: [problem] for name, problem in problems.items()}
            raise serializers.ValidationError(errors)
        return attrs

    @extend_schema_field(HealthSerializer)
    def get_health(self, instance: Integration) -> dict[str, Any]:
        measured = self.context.get("health", {}).get(instance.pk)
        return (measured or summaries([instance])[instance.pk]).as_dict()

    def get_mapped_fields(self, instance: Integration) -> list[dict[str, Any]]:
        return [spec.describe() for spec in instance.destination.mapped_fields]

    def _refuse_enabling_without_secrets(self, kind: str, attrs: dict[str, Any]) -> None:
        """An imported integration lacks its secrets until they are entered: it cannot be
        enabled before (the settings check asks for them when settings are given)."""
        instance: Integration | None = self.instance
        enabled = attrs.get("enabled", instance.enabled if instance else True)
        secrets = attrs.get("secret_settings", instance.secret_settings if instance else {})
        missing = [
            spec.name
            for spec in registry.get(kind).settings_schema
            if spec.secret and spec.required and not (secrets or {}).get(spec.name)
        ]
        if enabled and missing:
            raise serializers.ValidationError(
                {
                    "settings": {
                        name: ["enter this secret to enable the integration"] for name in missing
                    }
                }
            )

    def to_representation(self, instance: Integration) -> dict[str, Any]:
        data = super().to_representation(instance)
        settings = data["settings"]
        for spec in instance.destination.settings_schema:
            if spec.secret:
                settings[spec.name] = (
                    SECRET_MASK if instance.secret_settings.get(spec.name) else None
                )
            elif spec.type == "headers" and spec.name in settings:
                settings[spec.name] = dict.fromkeys(settings[spec.name], SECRET_MASK)
        settings.update(self.generated_secrets)
        return data

    @transaction.atomic
    def create(self, validated_data: dict[str, Any]) -> Integration:
        event_rules = validated_data.pop("event_rules", [])
        property_rules = validated_data.pop("property_rules", [])
        integration = super().create(validated_data)
        self._replace_rules(integration, event_rules, property_rules)
        return integration

    @transaction.atomic
    def update(self, instance: Integration, validated_data: dict[str, Any]) -> Integration:
        event_rules = validated_data.pop("event_rules", None)
        property_rules = validated_data.pop("property_rules", None)
        integration = super().update(instance, validated_data)
        self._replace_rules(integration, event_rules, property_rules)
        return integration

    @staticmethod
    def _replace_rules(
        integration: Integration,
        event_rules: list[dict[str, Any]] | None,
        property_rules: list[dict[str, Any]] | None,
    ) -> None:
        # With history: the rules' audit trail records the user of the request.
        if event_rules is not None:
            integration.event_rules.all().delete()
            bulk_create_with_history(
                [EventRule(integration=integration, **rule) for rule in event_rules], EventRule
            )
        if property_rules is not None:
            integration.property_rules.all().delete()
            bulk_create_with_history(
                [PropertyRule(integration=integration, **rule) for rule in property_rules],
                PropertyRule,
            )


class EventSerializer(ModelSerializer):
    class Meta:
        model = Event
        fields = [
            "id",
            "source",
            "message_id",
            "type",
            "event",
            "user_id",
            "anonymous_id",
            "group_id",
            "original_timestamp",
            "sent_at",
            "received_at",
            "timestamp",
            "payload",
        ]


class ExchangeSerializer(ModelSerializer):
    """One HTTP exchange with the vendor (secrets redacted), and the deliveries it carried."""

    deliveries = serializers.SerializerMethodField(
        help_text="The ids of the deliveries this request carried (several for a batch)."
    )

    class Meta:
        model = Exchange
        fields = [
            "id",
            "step",
            "started_at",
            "method",
            "url",
            "request_headers",
            "request_body",
            "response_status",
            "response_headers",
            "response_body",
            "error",
            "duration_ms",
            "deliveries",
        ]

    def get_deliveries(self, exchange: Exchange) -> list[int]:
        return exchange.carried_delivery_ids()


class AttemptSerializer(Serializer):
    """One attempt of a delivery with all of its exchanges, in order."""

    number = serializers.IntegerField()
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    error = serializers.CharField()
    status_code = serializers.IntegerField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    exchanges = ExchangeSerializer(many=True)


class DeliverySerializer(ModelSerializer):
    message_id = serializers.CharField(source="event.message_id", read_only=True)
    event_name = serializers.CharField(source="event.event", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "message_id",
            "event_name",
            "integration",
            "origin",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_error",
            "last_status_code",
            "created_at",
            "last_attempt_at",
            "delivered_at",
        ]


class DeliveryDetailSerializer(DeliverySerializer):
    """A delivery with every attempt and every HTTP exchange of each."""

    attempts = serializers.SerializerMethodField()

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "attempts"]

    @extend_schema_field(AttemptSerializer(many=True))
    def get_attempts(self, delivery: Delivery) -> list[dict[str, Any]]:
        attempts = [
            {**asdict(attempt), "exchanges": chain}
            for attempt, chain in delivery.attempts_with_exchanges()
        ]
        # many=True makes a ListSerializer, whose data is a list; the stubs type the child's.
        return AttemptSerializer(attempts, many=True).data  # type: ignore[return-value]


class TimeRangeSerializer(Serializer):
    """A range of time, ``since`` included, ``until`` (default: now) excluded."""

    since = serializers.DateTimeField()
    until = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.setdefault("until", timezone.now())
        if attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": "must be later than since"})
        return attrs


class PauseSerializer(Serializer):
    reason = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=audit.PAUSE_REASON_LIMIT,
        help_text="Why deliveries are held (kept in the audit trail).",
    )


class EventTestSerializer(Serializer):
    """An event for the event tester: a sample by name, or a message written by hand."""

    sample = serializers.ChoiceField(choices=samples.sample_names(), required=False)
    event = serializers.DictField(required=False)
    send = serializers.BooleanField(
        default=False, help_text="Send it for real (a test delivery) instead of a preview."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("sample" in attrs) == ("event" in attrs):
            raise serializers.ValidationError("give either a sample name or an event")
        attrs["message"] = attrs["event"] if "event" in attrs else samples.sample(attrs["sample"])
        return attrs


class CatalogEntrySerializer(Serializer):
    name = serializers.CharField()
    group = serializers.CharField()
    description = serializers.CharField()
    count = serializers.IntegerField()
    last_seen_at = serializers.DateTimeField(allow_null=True)
