"""The integration page's field mappings and "Test connection" on save.

``MappingFormMixin`` adds one input per mapped field of the kind (``mapping__<name>``,
empty: the preset, shown as the placeholder) and validates them together;
``MappingAdminMixin`` puts them in a "Field mappings" fieldset (a read-only table for
viewers), shows the vendor's caveats with its settings, and after every save sends the
integration's connection test and reports the result as a message (the save itself is
never blocked).
"""

import json
from typing import Any, TypedDict

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from integrations.delivery.connection_test import ConnectionStatus, check_connection
from integrations.destinations import registry
from integrations.destinations.mapping import FieldKind, MappedField
from integrations.models import Integration

MAPPING_PREFIX = "mapping__"
#: The read-only table of mappings (viewers' pages): a display, no form field.
MAPPINGS_TABLE = "field_mappings_table"
LEVELS = {
    ConnectionStatus.OK: messages.SUCCESS,
    ConnectionStatus.FAILED: messages.WARNING,
    ConnectionStatus.UNAVAILABLE: messages.INFO,
}
MAPPING_HELP = (
    "Which part of each message fills a vendor field. Leave a field empty to keep its preset. "
    'A path: traits.email, context.traits.company.id, properties["field.name"], userId; '
    "$profile.traits.email (the user's stored traits), $group.traits.plan (the call's group). "
    'Alternatives: traits.email || userId; a literal: "free". A template: '
    "{{ traits.firstName }} {{ traits.lastName }}. Paths read the message after the "
    "property rules."
)


def _calls(spec: MappedField) -> str:
    return ", ".join(sorted(spec.calls))


class _Labels(TypedDict):
    """What every mapping's form field shows; none is required."""

    label: str
    required: bool
    help_text: str


def mapping_form_field(spec: MappedField) -> forms.Field:
    help_text = f"{spec.help_text} Calls: {_calls(spec)}. Preset: {spec.preset_description}."
    common: _Labels = {"label": spec.label, "required": False, "help_text": help_text.strip()}
    if spec.kind is FieldKind.KEYVALUE:
        return forms.JSONField(**common)
    return forms.CharField(
        strip=True,
        widget=forms.TextInput(
            attrs={"placeholder": spec.preset or "preset", "class": "vLargeTextField"}
        ),
        **common,
    )


class MappingFormMixin(forms.ModelForm):
    """The mapped fields of the integration's kind as inputs (``kind_name`` is set on the
    form class by the admin)."""

    kind_name: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.instance.field_mappings or {}
        for spec in registry.get(self.kind_name).mapped_fields:
            name = MAPPING_PREFIX + spec.name
            self.fields[name] = mapping_form_field(spec)
            self.fields[name].initial = current.get(spec.name)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        submitted = {
            key.removeprefix(MAPPING_PREFIX): value
            for key, value in cleaned.items()
            if key.startswith(MAPPING_PREFIX) and value not in (None, "", {})
        }
        try:
            self.instance.field_mappings = registry.get(self.kind_name).clean_mappings(submitted)
        except forms.ValidationError as exc:
            for name, problems in exc.message_dict.items():
                field = MAPPING_PREFIX + name
                self.add_error(field if field in self.fields else None, problems)
        return cleaned


def caveats(kind: str) -> SafeString | str:
    """The vendor's caveats, for the description of its settings fieldset."""
    notes = registry.get(kind).caveats
    if not notes:
        return ""
    items = format_html_join("", "<li>{}</li>", ((note,) for note in notes))
    return format_html('<ul class="vendor-caveats">{}</ul>', items)


class MappingAdminMixin(admin.ModelAdmin):
    """The "Field mappings" fieldset and "Test connection" after save (a ``ModelAdmin``
    itself, for the admin's methods it calls, listed before the admin)."""

    @admin.display(description="Field mappings")
    def field_mappings_table(self, integration: Integration) -> SafeString | str:
        """The mapping in force for each field (read-only pages)."""
        mapped = integration.field_mappings or {}
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    spec.label,
                    _calls(spec),
                    json.dumps(mapped[spec.name])
                    if spec.name in mapped and not isinstance(mapped[spec.name], str)
                    else mapped.get(spec.name) or f"preset: {spec.preset_description}",
                )
                for spec in integration.destination.mapped_fields
            ),
        )
        return format_html(
            "<table><thead><tr><th>Field</th><th>Calls</th><th>Mapping</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    def mapping_fieldsets(
        self, request: HttpRequest, obj: Integration | None, kind: str
    ) -> list[tuple[str, dict[str, Any]]]:
        destination = registry.get(kind)
        if not destination.mapped_fields:
            return []
        editable = (
            self.has_change_permission(request, obj)
            if obj is not None
            else self.has_add_permission(request)
        )
        fields = (
            [MAPPING_PREFIX + spec.name for spec in destination.mapped_fields]
            if editable
            else [MAPPINGS_TABLE]
        )
        options = {"fields": fields, "description": MAPPING_HELP, "classes": ["collapse"]}
        return [("Field mappings", options)]

    def save_model(self, request: HttpRequest, obj: Integration, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # After the commit: the vendor is not called while the transaction is open.
        transaction.on_commit(lambda: report_connection(request, obj))


def report_connection(request: HttpRequest, integration: Integration) -> None:
    result = check_connection(integration)
    text = f"Test connection: {result.message}"
    if result.note:
        text += f" {result.note}"
    messages.add_message(request, LEVELS[result.status], text)
