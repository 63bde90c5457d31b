"""The integration page's event rules: a grid of the workspace's catalog of events.

The grid is Django's inline formset of ``EventRule``, pre-populated: its stored rules are
the formset's existing forms, and every other catalog event (the known events of the
workspace's source kinds: Purchasely's full list, Chargebee Retention's for its own and for
Segment sources; the names seen in traffic; the call types the vendor takes) is an extra
form filled with what the event gets without a rule in the mode the rows are shown in (the
page's script redraws them when the mode select changes, and posts the mode it drew them
in).

Bulk switches (every event, or one group's, on or off) and an "only what is on" view
are the page's script: they set the rows' switches, and saving stores them as any edit.

Django saves only the forms that were changed; of those, the grid stores only the ones
that differ from what the event gets without a rule in the mode being saved, so
untouched defaults never become rows. A stored rule is updated in place, or removed with
its row's "Reset" box or when it is changed to what the mode gives (the event then
follows the mode again).
"""

from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.http import HttpRequest

from integrations import catalog
from integrations.admin.scoping import ScopedTabularInline
from integrations.catalog import CatalogEntry
from integrations.models import Event, EventRule, Integration

#: Names seen in traffic listed in the grid, most frequent first (every name with a rule
#: is listed too); the others are added by name. It also keeps the page's form under
#: Django's DATA_UPLOAD_MAX_NUMBER_FIELDS (about three fields a row).
SEEN_LIMIT = 150
#: Empty rows for custom event names.
BLANK_ROWS = 3
CALLS_GROUP = "Other calls"
CUSTOM_GROUP = "Custom events"
CALL_TYPES = frozenset(Event.Type.values) - {Event.Type.TRACK}


def default_enabled(mode: str, name: str) -> bool:
    """Whether an event without a rule is sent (as ``routing.event_rules_allow`` decides):
    track events follow the mode, other calls are sent."""
    return name in CALL_TYPES or mode == Integration.EventMode.ALL_EXCEPT_DISABLED


def grid_entries(integration: Integration) -> tuple[list[CatalogEntry], int]:
    """The grid's catalog rows (the vendor's call types first) and how many names seen in
    traffic are left out (beyond ``SEEN_LIMIT``)."""
    entries = [
        CatalogEntry(call, CALLS_GROUP, f"Every {call} call")
        for call in sorted(integration.destination.call_types(integration.settings) & CALL_TYPES)
    ]
    seen = 0
    for entry in catalog.catalog(integration.workspace):
        if entry.group == catalog.SEEN_GROUP:
            seen += 1
            if seen > SEEN_LIMIT:
                continue
        entries.append(entry)
    return entries, max(0, seen - SEEN_LIMIT)


@dataclass(frozen=True)
class GridRow:
    """One line of the grid: a catalog event or a rule, and its form when editable."""

    entry: CatalogEntry
    form: forms.ModelForm | None
    rule: EventRule | None
    enabled: bool
    send_as: str

    @property
    def is_call(self) -> bool:
        return self.entry.group == CALLS_GROUP

    @property
    def follows_mode(self) -> bool:
        """Without a rule, a track event is on or off as the mode says."""
        return bool(self.entry.name) and self.rule is None and not self.is_call


class EventRuleForm(forms.ModelForm):
    class Meta:
        model = EventRule
        fields = ["event", "enabled", "send_as"]
        widgets = {
            "event": forms.TextInput(attrs={"placeholder": "Custom event name", "size": 28}),
            "send_as": forms.TextInput(attrs={"placeholder": "unchanged", "size": 24}),
        }


class EventGridFormSet(forms.BaseInlineFormSet):
    #: Set per request by ``EventRuleInline.get_formset``: the catalog rows, and how many
    #: names seen in traffic were left out of them.
    entries: ClassVar[list[CatalogEntry]] = []
    hidden_seen: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The mode the rows without a rule were shown in (the page's script redraws them
        # when the mode select changes): a row's "changed" is measured from it.
        shown = self.data.get(self.add_prefix("shown_mode")) if self.is_bound else None
        modes = Integration.EventMode.values
        self.shown_mode = shown if shown in modes else self.instance.event_mode
        self.rules = {rule.event: rule for rule in self.get_queryset()}
        self.defaults = {
            entry.name: {
                "event": entry.name,
                "enabled": default_enabled(self.shown_mode, entry.name),
                "send_as": "",
            }
            for entry in self.entries
            if entry.name not in self.rules
        }
        if not self.is_bound:
            self.initial_extra = list(self.defaults.values())

    # _construct_form and _should_delete_form are private BaseFormSet methods, which the
    # stubs leave out.
    def _construct_form(self, i: int, **kwargs: Any) -> forms.ModelForm:
        form = super()._construct_form(i, **kwargs)  # type: ignore[misc]
        if self.is_bound and i >= self.initial_form_count():
            # Matched by name, not position: the catalog may have grown since the page was
            # drawn. A custom name gets the field defaults.
            name = form.data.get(form.add_prefix("event"), "")
            form.initial = dict(self.defaults.get(name, {}))
        return form

    def is_default(self, form: forms.ModelForm) -> bool:
        """Whether a form says what its event gets without a rule, in the mode being saved."""
        data = form.cleaned_data
        return not data.get("send_as") and data.get("enabled") == default_enabled(
            self.instance.event_mode, data.get("event", "")
        )

    def _should_delete_form(self, form: forms.ModelForm) -> bool:
        """A row's "Reset" box, or a changed row that now says what the mode gives (a
        bulk switch, say): a new row is then not stored, a stored rule is removed."""
        return super()._should_delete_form(form) or (  # type: ignore[misc]
            form.has_changed() and not form.errors and self.is_default(form)
        )

    def rows(self) -> list[GridRow]:
        """Catalog order, then the other rules, then the custom rows (and any form whose
        name repeats an earlier row's)."""
        by_name: dict[str, forms.ModelForm] = {}
        spare: list[forms.ModelForm] = []
        for form in self.forms:
            name = form.instance.event if form.instance.pk else form.initial.get("event")
            if name and name not in by_name:
                by_name[name] = form
            else:
                spare.append(form)
        listed = {entry.name for entry in self.entries}
        entries = self.entries + [
            CatalogEntry(name, CUSTOM_GROUP) for name in sorted(set(self.rules) - listed)
        ]
        rows = [self._row(entry, by_name.get(entry.name)) for entry in entries]
        rows += [self._row(CatalogEntry("", CUSTOM_GROUP), form) for form in spare]
        return rows

    def _row(self, entry: CatalogEntry, form: forms.ModelForm | None) -> GridRow:
        rule = self.rules.get(entry.name)
        if rule is not None:
            return GridRow(entry, form, rule, rule.enabled, rule.send_as)
        return GridRow(entry, form, None, default_enabled(self.shown_mode, entry.name), "")


class EventRuleInline(ScopedTabularInline):
    """The grid (see the module's docstring); viewers get it read-only."""

    model = EventRule
    form = EventRuleForm
    formset = EventGridFormSet
    fields = ["event", "enabled", "send_as"]
    template = "admin/integrations/integration/event_grid.html"
    verbose_name_plural = "event rules"

    def get_formset(
        self, request: HttpRequest, obj: Integration | None = None, **kwargs: Any
    ) -> type[EventGridFormSet]:
        entries, hidden = grid_entries(obj) if obj is not None and obj.pk else ([], 0)
        stored = set(obj.event_rules.values_list("event", flat=True)) if obj and obj.pk else set()
        kwargs["extra"] = sum(entry.name not in stored for entry in entries) + BLANK_ROWS
        formset = super().get_formset(request, obj, **kwargs)
        attrs = {"entries": entries, "hidden_seen": hidden}
        return type(formset.__name__, (formset,), attrs)
