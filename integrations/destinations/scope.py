"""What field mappings read for one event (the roots of ``mapping`` paths)."""

from collections.abc import Mapping, Sequence
from typing import Any

from integrations.destinations.context import PlanContext
from integrations.destinations.mapping import MISSING, Compiled, MappedField, MappingError
from integrations.destinations.values import EventData

# Top-level values the property rules apply to.
RULED = ("traits", "properties")


def group_of(event: EventData, profile_group: str) -> str:
    """The call's group: a group call's own, else ``context.groupId``, else the profile's."""
    context = event.payload.get("context")
    from_context = context.get("groupId") if isinstance(context, Mapping) else None
    for candidate in (event.group_id, from_context, profile_group):
        if candidate not in (None, ""):
            return str(candidate)
    return ""


class MessageScope:
    """The message after the integration's rules, the user's profile (``$profile``) and
    the call's group (``$group``), each built when a mapping first reads it."""

    __slots__ = ("_cache", "_context", "_event")

    def __init__(self, event: EventData, context: PlanContext) -> None:
        self._event = event
        self._context = context
        self._cache: dict[str, Any] = {}

    def root(self, name: str) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            value = self._cache[name] = self._build(name)
            return value

    def _build(self, name: str) -> Any:
        event, rules = self._event, self._context.rules
        payload = event.payload
        if name == "$profile":
            profile = self._context.profile(event)
            return {"traits": rules.apply(profile.traits), "groupId": profile.group_id or None}
        if name == "$group":
            group_id = group_of(event, self._context.profile(event).group_id)
            traits = dict(self._context.group_traits(group_id)) if group_id else {}
            if event.type == "group" and isinstance(payload.get("traits"), Mapping):
                traits.update(payload["traits"])
            return {"groupId": group_id or None, "traits": rules.apply(traits)}
        if name == "event" and event.type == "track":
            return rules.event_name(event)
        value = payload.get(name, MISSING)
        if name in RULED and isinstance(value, Mapping):
            return rules.apply(value)
        if name == "context" and isinstance(value, Mapping):
            context_traits = value.get("traits")
            if isinstance(context_traits, Mapping):
                return {**value, "traits": rules.apply(context_traits)}
        return value


def mapped_values(
    fields: Sequence[MappedField],
    mappings: Mapping[str, Compiled],
    event: EventData,
    context: PlanContext,
) -> list[dict[str, Any]]:
    """The fields that apply to this event, with the mapping in force and the value it
    gives (for the event tester): ``value`` is None where the destination computes the
    field itself (an unmapped field without a preset expression) or the mapping gives
    nothing."""
    scope = MessageScope(event, context)
    rows = []
    for spec in fields:
        if event.type not in spec.calls:
            continue
        override = spec.override(mappings)
        try:
            value = spec.value(mappings, scope)
        except MappingError as exc:
            value = f"(error: {exc})"
        rows.append(
            {
                "name": spec.name,
                "label": spec.label,
                "mapped": override is not None,
                "mapping": override.source if override is not None else spec.preset_description,
                "value": None if value is MISSING else value,
            }
        )
    return rows
