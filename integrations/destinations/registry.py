"""The registry of destination kinds: adding a vendor is one module plus one import here."""

from integrations.destinations.base import Destination

_DESTINATIONS: dict[str, type[Destination]] = {}


def register(cls: type[Destination]) -> type[Destination]:
    _DESTINATIONS[cls.kind] = cls
    return cls


def get(kind: str) -> type[Destination]:
    return _DESTINATIONS[kind]


def all_destinations() -> list[type[Destination]]:
    return list(_DESTINATIONS.values())


def kind_choices() -> list[tuple[str, str]]:
    return [(cls.kind, cls.label) for cls in _DESTINATIONS.values()]


# Importing the vendor modules registers them.
from integrations.destinations import (  # noqa: E402,F401
    chartmogul,
    churnzero,
    customerio,
    segment,
    webhook,
)
