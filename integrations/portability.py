"""Configuration export and import: integrations as a JSON document, secrets left out.

An export holds, per integration, its kind, name, enabled flag, non-secret settings, API
base URL, event mode, event rules and property rules, under a format name and version::

    {"format": "integration-console/integrations", "version": 1,
     "exported_at": "...", "integrations": [{"kind": "webhook", "name": "...", ...}]}

Secret settings are never exported (their names are listed in ``secrets_left_out``), nor
are the values of custom headers (they carry credentials): their names are kept, with
empty values; a URL's credentials are exported masked.

An import creates the document's integrations in one workspace, all or none, with the
same validation as any save (settings schema, URL rules). Secrets are entered afterwards:
an integration with a secret setting or custom headers comes in disabled, and the result
says what to enter (a generated secret, such as a webhook's signing secret, is new: the
receiver must be given it, or the old one entered). Copying an integration to another
workspace is an export followed by an import.
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework import serializers
from simple_history.utils import bulk_create_with_history

from integrations import credentials
from integrations.delivery import url_guard
from integrations.destinations import registry
from integrations.destinations.base import Destination
from integrations.models import EventRule, Integration, PropertyRule, Workspace

FORMAT = "integration-console/integrations"
VERSION = 1
#: Bounds of one document (a workspace has a few integrations with a few hundred rules).
MAX_INTEGRATIONS = 200
MAX_RULES = 5000
HEADERS = "headers"


# --- export ---------------------------------------------------------------------------


def _portable_settings(destination: type[Destination], settings: Mapping[str, Any]) -> dict:
    """The settings an export may hold: no secret, and custom headers without values."""
    portable = {}
    for spec in destination.settings_schema:
        if spec.secret or spec.name not in settings:
            continue
        value = settings[spec.name]
        if spec.type == HEADERS and isinstance(value, Mapping | list):
            value = dict.fromkeys(value, "")  # the names (public), never the values
        portable[spec.name] = value
    return portable


def export_integration(integration: Integration) -> dict[str, Any]:
    destination = integration.destination
    return {
        "kind": integration.kind,
        "name": integration.name,
        "enabled": integration.enabled,
        "settings": _portable_settings(destination, integration.settings),
        "secrets_left_out": sorted(destination.secret_names()),
        "api_base_url": integration.api_base_url,
        "event_mode": integration.event_mode,
        "event_rules": [
            {"event": rule.event, "enabled": rule.enabled, "send_as": rule.send_as}
            for rule in integration.event_rules.all()
        ],
        "property_rules": [
            {"name": rule.name, "enabled": rule.enabled, "send_as": rule.send_as}
            for rule in integration.property_rules.all()
        ],
    }


def export_document(integrations: Iterable[Integration]) -> dict[str, Any]:
    """The export of ``integrations`` (prefetch their rules for many)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(timespec="seconds"),
        "integrations": [export_integration(integration) for integration in integrations],
    }


def exportable(queryset: Any) -> Any:
    """``queryset`` of integrations with what an export reads, in a stable order."""
    return queryset.prefetch_related("event_rules", "property_rules").order_by("name", "pk")


# --- import ---------------------------------------------------------------------------


def _unique(rules: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    names = [rule[key] for rule in rules]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise serializers.ValidationError(f"listed more than once: {', '.join(duplicated)}")
    return rules


class PortableEventRuleSerializer(serializers.Serializer):
    event = serializers.CharField(max_length=200)
    enabled = serializers.BooleanField(default=True)
    send_as = serializers.CharField(max_length=200, allow_blank=True, default="")


class PortablePropertyRuleSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    enabled = serializers.BooleanField(default=True)
    send_as = serializers.CharField(max_length=200, allow_blank=True, default="")


@dataclass
class PublicSettings:
    """An imported integration's settings, and the credentials left to enter."""

    values: dict[str, Any]
    # Custom header names, by setting: their values are never exported.
    headers: dict[str, list[str]] = field(default_factory=dict)
    # What was taken out of URLs, by setting (their masked credentials).
    url_credentials: dict[str, list[str]] = field(default_factory=dict)


def clean_public_settings(
    destination: type[Destination], data: Mapping[str, Any]
) -> PublicSettings:
    """Validate the non-secret settings of an imported integration; raises a
    ``ValidationError`` mapping each setting to its problem. Secret settings are refused:
    they are entered after the import, never carried in a document. Custom headers come
    in as names to enter; a URL's masked credentials are taken out, to enter too."""
    known = destination.fields()
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in known:
            errors[key] = [f"unknown setting for {destination.label}; known: {', '.join(known)}"]
        elif known[key].secret:
            errors[key] = ["a secret setting is not imported: enter it after the import"]
    cleaned = PublicSettings(values={})
    for name, spec in known.items():
        if spec.secret or name in errors:
            continue
        value = data.get(name, spec.default)
        if spec.type == HEADERS:
            names = list(value) if isinstance(value, Mapping | list) else []
            if value is not None and not all(isinstance(n, str) and n for n in names):
                errors[name] = ["must be an object (or list) of header names"]
                continue
            if names:
                cleaned.headers[name] = names
            cleaned.values[name] = []  # no header until its value is entered
            continue
        if spec.type == "url" and isinstance(value, str):
            value, removed = credentials.without_masked(value)
            if removed:
                cleaned.url_credentials[name] = removed
        if value is None:
            if spec.required:
                errors[name] = ["this setting is required"]
            continue
        try:
            cleaned.values[name] = spec.clean(value)
        except DjangoValidationError as exc:
            errors[name] = exc.messages
    if errors:
        raise serializers.ValidationError(errors)
    return cleaned


class PortableIntegrationSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="The destination: churnzero, webhook...")
    name = serializers.CharField(max_length=200)
    enabled = serializers.BooleanField(default=True)
    settings = serializers.DictField(default=dict)
    api_base_url = serializers.URLField(allow_blank=True, default="", max_length=200)
    event_mode = serializers.ChoiceField(
        choices=Integration.EventMode.choices, default=Integration.EventMode.ALL_EXCEPT_DISABLED
    )
    # many=True hands max_length to the ListSerializer; the stubs' __init__ lacks it.
    event_rules = PortableEventRuleSerializer(  # type: ignore[call-arg]
        many=True, default=list, max_length=MAX_RULES
    )
    property_rules = PortablePropertyRuleSerializer(  # type: ignore[call-arg]
        many=True, default=list, max_length=MAX_RULES
    )
    secrets_left_out = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Informational; ignored."
    )

    def validate_kind(self, kind: str) -> str:
        kinds = dict(registry.kind_choices())
        if kind not in kinds:
            raise serializers.ValidationError(
                f"unknown kind {kind!r}; known: {', '.join(sorted(kinds))}"
            )
        return kind

    def validate_event_rules(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _unique(rules, "event")

    def validate_property_rules(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _unique(rules, "name")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        destination = registry.get(attrs["kind"])
        try:
            attrs["settings"] = clean_public_settings(destination, attrs["settings"])
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"settings": exc.detail}) from exc
        problems = url_guard.url_problems(
            destination, attrs["settings"].values, attrs["api_base_url"]
        )
        if url_guard.API_BASE_URL in problems:
            raise serializers.ValidationError(
                {"api_base_url": [problems.pop(url_guard.API_BASE_URL)]}
            )
        if problems:
            raise serializers.ValidationError(
                {"settings": {name: [problem] for name, problem in problems.items()}}
            )
        attrs.pop("secrets_left_out", None)
        return attrs


class ExportDocumentSerializer(serializers.Serializer):
    """An export, as an import takes it."""

    format = serializers.CharField(help_text=f"Always {FORMAT!r}.")
    version = serializers.IntegerField(help_text=f"The format's version ({VERSION}).")
    exported_at = serializers.DateTimeField(required=False)
    integrations = PortableIntegrationSerializer(  # type: ignore[call-arg]  # as event_rules
        many=True, allow_empty=False, max_length=MAX_INTEGRATIONS
    )

    def validate_format(self, value: str) -> str:
        if value != FORMAT:
            raise serializers.ValidationError(
                f"not an export of integrations: the format must be {FORMAT!r}"
            )
        return value

    def validate_version(self, value: int) -> int:
        if value != VERSION:
            raise serializers.ValidationError(
                f"version {value} is not one this console reads (it reads version {VERSION})"
            )
        return value


@dataclass
class Imported:
    """One integration an import created, and what must be entered before it is enabled."""

    integration: Integration
    requested_enabled: bool
    to_enter: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        name = self.integration.name
        if not self.to_enter:
            return f"{name}: imported."
        state = "came in disabled" if self.requested_enabled else "is disabled"
        return f"{name} {state}: enter its {'; '.join(self.to_enter)}, then enable it."


def to_enter(
    destination: type[Destination], settings: PublicSettings, generated: Iterable[str]
) -> list[str]:
    """What a person must enter for an imported integration, by label."""
    generated = set(generated)
    needed = []
    for spec in destination.settings_schema:
        if spec.secret:
            needed.append(
                f"{spec.label} (a new one was generated: give it to the receiver, or enter "
                "the one it checks)"
                if spec.name in generated
                else spec.label
            )
        elif spec.name in settings.headers:
            names = ", ".join(sorted(settings.headers[spec.name]))
            needed.append(f"{spec.label} values ({names})")
        elif spec.name in settings.url_credentials:
            parts = ", ".join(settings.url_credentials[spec.name])
            needed.append(f"{spec.label}: its credentials ({parts})")
    return needed


def _create(workspace: Workspace, item: dict[str, Any], reason: str) -> Imported:
    destination = registry.get(item["kind"])
    settings: PublicSettings = item["settings"]
    generated = {
        spec.name: value
        for spec in destination.settings_schema
        if spec.secret
        and (value := destination.generate_secret(spec.name, settings.values)) is not None
    }
    headers: dict[str, dict[str, str]] = {
        spec.name: {} for spec in destination.settings_schema if spec.type == HEADERS
    }
    needed = to_enter(destination, settings, generated)
    integration = Integration(
        workspace=workspace,
        name=item["name"],
        kind=item["kind"],
        enabled=item["enabled"] and not needed,
        settings=settings.values,
        secret_settings={**headers, **generated},
        api_base_url=item["api_base_url"],
        event_mode=item["event_mode"],
    )
    integration._change_reason = reason  # kept in the history record
    integration.save()
    bulk_create_with_history(
        [EventRule(integration=integration, **rule) for rule in item["event_rules"]], EventRule
    )
    bulk_create_with_history(
        [PropertyRule(integration=integration, **rule) for rule in item["property_rules"]],
        PropertyRule,
    )
    return Imported(integration, requested_enabled=item["enabled"], to_enter=needed)


def import_document(
    workspace: Workspace, document: Any, *, reason: str = "Imported from an export"
) -> list[Imported]:
    """Create the document's integrations in ``workspace``, all or none.

    Raises ``rest_framework.serializers.ValidationError`` (``detail``: what is wrong,
    field by field) for a document that is not a valid export.
    """
    serializer = ExportDocumentSerializer(data=document)
    serializer.is_valid(raise_exception=True)
    with transaction.atomic():
        return [
            _create(workspace, item, reason) for item in serializer.validated_data["integrations"]
        ]


def _step(path: str, key: str) -> str:
    if key.isdigit():
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def error_lines(detail: Any, path: str = "") -> list[str]:
    """A validation error's detail as lines ``where: what`` (for pages)."""
    if isinstance(detail, Mapping):  # a list's errors come keyed by index
        return [
            line
            for key, value in detail.items()
            for line in error_lines(value, _step(path, str(key)))
        ]
    if isinstance(detail, list):
        if all(not isinstance(item, Mapping | list) for item in detail):
            return [f"{path}: {item}" if path else str(item) for item in detail]
        return [
            line
            for index, item in enumerate(detail)
            if item
            for line in error_lines(item, f"{path}[{index}]")
        ]
    return [f"{path}: {detail}" if path else str(detail)]


def export_filename(now: dt.datetime | None = None, label: str = "integrations") -> str:
    stamp = (now or timezone.now()).strftime("%Y%m%d-%H%M%S")
    return f"{label}-{stamp}.json"
