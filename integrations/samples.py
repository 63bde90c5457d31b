"""Sample events for the event tester: one per call type, and each source's known events
(``sample_message`` of the registered sources)."""

import copy
from typing import Any

from integrations.sources import registry

USER = "user-123"

GENERIC: dict[str, dict[str, Any]] = {
    "identify": {
        "type": "identify",
        "userId": USER,
        "traits": {
            "email": "jane@example.com",
            "firstName": "Jane",
            "lastName": "Doe",
            "plan": "premium",
            "createdAt": "2024-01-15T10:00:00Z",
            "accountExternalId": "acme",
            "contactExternalId": "jane@example.com",
        },
    },
    "track": {
        "type": "track",
        "userId": USER,
        "event": "Order Completed",
        "properties": {"revenue": 49.9, "currency": "EUR", "quantity": 1},
    },
    "page": {"type": "page", "userId": USER, "name": "Pricing", "properties": {"path": "/p"}},
    "screen": {"type": "screen", "userId": USER, "name": "Home", "properties": {}},
    "group": {
        "type": "group",
        "userId": USER,
        "groupId": "acme",
        "traits": {"name": "Acme Inc.", "website": "https://acme.example.com", "plan": "pro"},
    },
    "alias": {"type": "alias", "previousId": "anon-42", "userId": USER},
}


def sample_names() -> list[str]:
    """The generic calls, then every registered source's known events (each name once)."""
    known = (event.name for source in registry.all_sources() for event in source.known_events)
    return list(dict.fromkeys([*GENERIC, *known]))


def sample(name: str) -> dict[str, Any] | None:
    """The sample message called ``name``, or None."""
    if name in GENERIC:
        return copy.deepcopy(GENERIC[name])
    for source in registry.all_sources():
        if (message := source.sample_message(name)) is not None:
            return message
    return None
