"""The audit trail: every configuration change, as django-simple-history recorded it.

The tracked models keep their history in historical tables (who, when, a snapshot of the
object). This module reads them together, newest first, scoped to workspaces, and tells
what changed in each record: field, old value, new value. Secrets are not in the history
(their fields are excluded); a change of secret shows as a change of its stamp
(``secrets_changed_at``, ``keys_rotated_at``), never with a value.

Operations that change no configuration (a retry, a recovery, a replay) are recorded in
the integration's history too, as a record that changes no field and whose reason says
what was done (:func:`record_operation`); a pause keeps the reason given for it.
"""

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import CharField, Model, Q, QuerySet, Value
from simple_history.models import ModelChange, ModelDelta

from integrations.models import (
    EventRule,
    Integration,
    PropertyRule,
    Source,
    Workspace,
    WorkspaceMembership,
)

TRACKED: tuple[type[Model], ...] = (
    Workspace,
    WorkspaceMembership,
    Source,
    Integration,
    EventRule,
    PropertyRule,
)
MODELS = {model._meta.model_name: model for model in TRACKED}

#: Stamps of secret changes: shown as "changed", without their times.
SECRET_STAMPS = {"secrets_changed_at": "secret settings", "keys_rotated_at": "webhook secret"}
#: Fields that change with every save, and the ids: not worth listing.
NOT_LISTED = frozenset({"id", "created_at", "updated_at"})
ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}
VALUE_LIMIT = 300
#: The history's ``history_change_reason`` column holds this many characters.
REASON_LIMIT = 100
PAUSED = "Paused"
#: The longest reason a person may give for a pause (it is kept after "Paused: ").
PAUSE_REASON_LIMIT = REASON_LIMIT - len(f"{PAUSED}: ")


def fit_reason(text: str) -> str:
    """``text`` on one line, cut to fit the history's reason column."""
    text = " ".join(text.split())
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def pause_note(reason: str = "") -> str:
    """The audit trail's note for a pause, with the reason given for it."""
    reason = " ".join(reason.split())
    return fit_reason(f"{PAUSED}: {reason}" if reason else PAUSED)


@dataclass(frozen=True)
class Pause:
    """Who paused an integration, when, and why (as they said); all unknown when no
    record tells (see :func:`current_pause`)."""

    at: dt.datetime | None = None
    user: str = ""
    reason: str = ""


def current_pause(integration: Integration) -> Pause | None:
    """The pause an integration is in, from its history: the first record of the current
    paused stretch. None when it is not paused, or no record tells (a pause made without
    history, by a bulk update)."""
    if not integration.paused:
        return None
    history = Integration.history.filter(id=integration.pk)
    last_active = history.filter(paused=False).order_by("-history_id").first()
    stretch = history.filter(paused=True)
    if last_active is not None:
        stretch = stretch.filter(history_id__gt=last_active.history_id)
    record = stretch.select_related("history_user").order_by("history_id").first()
    if record is None:
        return None
    note = record.history_change_reason or ""
    return Pause(
        at=record.history_date,
        user=record.history_user.get_username() if record.history_user else "",
        reason=note.removeprefix(PAUSED).removeprefix(":").strip(),
    )


def record_operation(integration: Integration, note: str) -> None:
    """Put an operation that changes no configuration (a retry, a recovery, a replay) in
    the integration's history: who (the request's user, as for any change), when, and
    ``note`` saying what (the range, the count). The integration itself is not saved."""
    current = Integration.objects.get(pk=integration.pk)
    Integration.history.bulk_history_create(
        [current], update=True, default_change_reason=fit_reason(note)
    )


def history_of(model: type[Model], workspace_ids: Iterable[int] | None) -> QuerySet:
    """The historical records of ``model`` for the given workspaces (None: all)."""
    # ``history`` is django-simple-history's manager, which a plain model type lacks.
    records = model.history.all()  # type: ignore[attr-defined]
    if workspace_ids is None:
        return records
    ids = set(workspace_ids)
    if model is Workspace:
        return records.filter(id__in=ids)
    if model in (EventRule, PropertyRule):
        # Through the rule's integration, which may have been deleted since.
        ever = Integration.history.filter(workspace_id__in=ids).values("id")
        live = Integration.objects.filter(workspace_id__in=ids).values("pk")
        return records.filter(Q(integration_id__in=ever) | Q(integration_id__in=live))
    return records.filter(workspace_id__in=ids)


def changes(
    workspace_ids: Iterable[int] | None,
    *,
    kind: str | None = None,
    username: str | None = None,
) -> QuerySet:
    """One row per configuration change, newest first: the model's name,
    ``history_id`` and ``history_date``; ready to paginate, then :func:`describe`."""
    rows = [
        history_of(model, workspace_ids)
        .filter(**({"history_user__username": username} if username else {}))
        .annotate(audit_kind=Value(name, output_field=CharField()))
        .values_list("audit_kind", "history_id", "history_date")
        .order_by()
        for name, model in MODELS.items()
        if kind in (None, "", name)
    ]
    if not rows:
        return Workspace.history.none().values_list("history_id")
    first, *rest = rows
    return first.union(*rest, all=True).order_by("-history_date", "-history_id")


@dataclass
class FieldChange:
    name: str
    old: str
    new: str


@dataclass
class Change:
    """One change, for display."""

    at: dt.datetime
    user: str
    action: str
    model_name: str
    kind: str
    obj: str
    object_id: Any
    workspace_id: int | None
    fields: list[FieldChange] = field(default_factory=list)
    # Why, when the code that made the change said so ("Paused", "Flagged by ...").
    reason: str = ""


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    elif isinstance(value, dt.datetime):
        value = value.isoformat(timespec="seconds")
    else:
        try:
            value = str(value)
        except ObjectDoesNotExist:
            value = "(deleted)"
    return value if len(value) <= VALUE_LIMIT else value[: VALUE_LIMIT - 1] + "…"


def _field_change(name: str, old: Any, new: Any, created: bool = False) -> FieldChange:
    """A field's change for display (a new object's values have no "old" side)."""
    if name in SECRET_STAMPS:
        return FieldChange(
            SECRET_STAMPS[name], "", "set" if created else "changed (value not shown)"
        )
    return FieldChange(name, "" if created else _text(old), _text(new))


def _related(record: Any, name: str) -> Any:
    """A foreign key's object (for its name), or its id once it is gone."""
    try:
        return getattr(record, name)
    except ObjectDoesNotExist:
        return f"#{getattr(record, f'{name}_id')} (deleted)"


def delta(record: Any, previous: Any) -> ModelDelta:
    """What changed from ``previous`` to ``record`` (two historical records of one object),
    foreign keys as objects. Unlike simple-history's ``diff_against``, which compares only
    editable fields, this compares every tracked field: the secret stamps are not editable.
    """
    changes = []
    for tracked in record.tracked_fields:
        if tracked.name in NOT_LISTED:
            continue
        old, new = getattr(previous, tracked.attname), getattr(record, tracked.attname)
        if old != new:
            if tracked.is_relation:
                old, new = _related(previous, tracked.name), _related(record, tracked.name)
            changes.append(ModelChange(tracked.name, old, new))
    return ModelDelta(changes, [change.field for change in changes], previous, record)


def _fields(record: Any) -> list[FieldChange]:
    if record.history_type == "+":
        listed = []
        for tracked in record.tracked_fields:
            value = getattr(record, tracked.attname)
            if tracked.name in NOT_LISTED or value is None or value == "":
                continue
            if tracked.is_relation:
                value = _related(record, tracked.name)
            listed.append(_field_change(tracked.name, None, value, created=True))
        return listed
    previous = record.prev_record
    if record.history_type == "-" or previous is None:
        return []
    return [_field_change(c.field, c.old, c.new) for c in delta(record, previous).changes]


def _object_label(record: Any) -> str:
    try:
        return str(record.instance)
    except ObjectDoesNotExist:
        return f"#{record.id}"


def _workspace_id(record: Any) -> int | None:
    if record.instance_type is Workspace:
        return record.id
    if hasattr(record, "workspace_id"):
        return record.workspace_id
    integration = (
        Integration.objects.filter(pk=record.integration_id).values_list("workspace_id").first()
        or Integration.history.filter(id=record.integration_id).values_list("workspace_id").first()
    )
    return integration[0] if integration else None


def _action(record: Any, fields: list[FieldChange]) -> str:
    """What happened to the object; nothing for an operation (a record that changed no
    field, with a note saying what was done)."""
    if record.history_type == "~" and not fields and record.history_change_reason:
        return ""
    return ACTIONS[record.history_type]


def describe(rows: Iterable[tuple[str, int, dt.datetime]]) -> list[Change]:
    """The changes of the rows of :func:`changes`, in the same order."""
    rows = list(rows)
    wanted: dict[str, list[int]] = {}
    for kind, history_id, _ in rows:
        wanted.setdefault(kind, []).append(history_id)
    records = {
        (kind, record.history_id): record
        for kind, ids in wanted.items()
        for record in MODELS[kind]
        .history.filter(history_id__in=ids)  # type: ignore[attr-defined]  # as in history_of
        .select_related("history_user")
    }
    described = []
    for kind, history_id, _ in rows:
        record = records[(kind, history_id)]
        fields = _fields(record)
        described.append(
            Change(
                at=record.history_date,
                user=record.history_user.get_username() if record.history_user else "",
                action=_action(record, fields),
                model_name=kind,
                kind=str(MODELS[kind]._meta.verbose_name),
                obj=_object_label(record),
                object_id=record.id,
                workspace_id=_workspace_id(record),
                fields=fields,
                reason=record.history_change_reason or "",
            )
        )
    return described
