"""What a destination knows besides the events: the CSM's rules and the profile store."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.destinations.values import EventData


@dataclass(frozen=True)
class Rules:
    """Event-name overrides and property rules of one integration.

    ``event_names`` maps an event (or call type) to the name to send; ``properties``
    maps a trait/property name to the name to send it as, or None to leave it out.
    Properties without a rule are sent as they are.
    """

    event_names: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_rules(
        cls, event_rules: Iterable[Mapping[str, Any]], property_rules: Iterable[Mapping[str, Any]]
    ) -> "Rules":
        return cls(
            event_names={r["event"]: r["send_as"] for r in event_rules if r.get("send_as")},
            properties={
                r["name"]: (r.get("send_as") or r["name"]) if r.get("enabled", True) else None
                for r in property_rules
            },
        )

    def event_name(self, event: EventData) -> str:
        """The name to send for a track event (the override, if any)."""
        return self.event_names.get(event.event, event.event)

    def apply(self, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """Traits or properties as the rules say: some left out, some renamed."""
        result: dict[str, Any] = {}
        for name, value in (values or {}).items():
            target = self.properties.get(name, name)
            if target is not None:
                result[target] = value
        return result


@dataclass(frozen=True)
class Profile:
    """What the workspace knows of a user: merged identify traits and the latest group."""

    traits: Mapping[str, Any] = field(default_factory=dict)
    group_id: str = ""


@dataclass(frozen=True)
class PlanContext:
    rules: Rules = field(default_factory=Rules)
    # By user id, and group traits by group id.
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    groups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def profile(self, event: EventData) -> Profile:
        return self.profiles.get(event.user_id, Profile()) if event.user_id else Profile()

    def group_traits(self, group_id: str) -> Mapping[str, Any]:
        return self.groups.get(group_id, {})
