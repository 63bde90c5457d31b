"""From rows to the plain values destinations plan from (see ``destinations/values.py``).

The worker and the event tester both build a destination's inputs here: the event, the
integration's settings and field mappings, and the plan context (the CSM's rules and the
profile store).
"""

from collections.abc import Sequence

from integrations import profiles
from integrations.destinations.context import PlanContext, Rules
from integrations.destinations.mapping import compile_mappings
from integrations.destinations.values import EventData, IntegrationConfig
from integrations.models import Event, Integration


def event_data(event: Event) -> EventData:
    return EventData(
        message_id=event.message_id,
        type=event.type,
        timestamp=event.timestamp,
        payload=event.payload,
        event=event.event,
        user_id=event.user_id,
        anonymous_id=event.anonymous_id,
        group_id=event.group_id,
    )


def integration_config(integration: Integration) -> IntegrationConfig:
    """The integration's settings and its field mappings, compiled once for a whole run."""
    return IntegrationConfig(
        settings=integration.config(),
        api_base_url=integration.api_base_url,
        mappings=compile_mappings(
            integration.destination.mapped_fields, integration.field_mappings or {}
        ),
    )


def rules(integration: Integration) -> Rules:
    """The integration's event-name overrides and property rules."""
    return Rules.from_rules(
        integration.event_rules.values("event", "send_as"),
        integration.property_rules.values("name", "enabled", "send_as"),
    )


def plan_context(
    integration: Integration, events: Sequence[EventData], known_rules: Rules | None = None
) -> PlanContext:
    """The rules (loaded unless given) and the profiles of these events' users and groups."""
    users, groups = profiles.lookup(integration.workspace_id, events)
    return PlanContext(
        rules=known_rules if known_rules is not None else rules(integration),
        profiles=users,
        groups=groups,
    )
