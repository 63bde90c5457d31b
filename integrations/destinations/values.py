"""The plain values a destination plans from: one event, and one integration's settings.

Destinations never see ORM objects: the worker and the event tester convert their rows
into these (``integrations/delivery/planning.py``), so that planning stays a pure
function of plain data, unit-testable without a database.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.destinations.mapping import Compiled


@dataclass(frozen=True, slots=True)
class EventData:
    """One accepted message: its typed fields and the normalised Segment payload."""

    message_id: str
    type: str
    timestamp: dt.datetime
    payload: Mapping[str, Any]
    event: str = ""  # a track call's name
    user_id: str = ""
    anonymous_id: str = ""
    group_id: str = ""

    @property
    def rule_name(self) -> str:
        """The name event rules match: the event name of a track call, else the call type."""
        return self.event if self.type == "track" else self.type


@dataclass(frozen=True, slots=True)
class IntegrationConfig:
    """An integration's settings, secrets included (for building requests, never for
    display), its API host override, and its field mappings, compiled
    (``mapping.compile_mappings``; only the fields the CSM mapped: presets live on the
    destination's ``MappedField``s)."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    api_base_url: str = ""
    mappings: Mapping[str, Compiled] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.settings[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.settings.get(name, default)
