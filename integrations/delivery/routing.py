"""Which integrations an event goes to: event rules and the Segment ``integrations`` object."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Prefetch

from integrations.config_cache import ConfigCache
from integrations.models import Event, EventRule, Integration


def integrations_object_allows(value: Any, names: Iterable[str]) -> bool:
    """Segment's rule: a key naming the destination wins, else ``All`` (default true).

    ``{"All": false, "Customer.io": true}`` sends only to Customer.io;
    ``{"ChurnZero": false}`` sends everywhere but ChurnZero. A destination's key may hold
    an options object instead of ``true``, which also enables it.
    """
    if not isinstance(value, Mapping):
        return True
    for name in names:
        if name in value:
            return value[name] is not False
    return value.get("All", True) is not False


def event_rules_allow(
    integration: Integration, rules: Mapping[str, EventRule], event: Event
) -> bool:
    """The enabled-event toggles: a switched-off event is never sent; in "only enabled"
    mode a track event is sent only when switched on. Other calls (identify, group...)
    are sent unless their rule switches them off."""
    rule = rules.get(event.rule_name)
    if rule is not None:
        return rule.enabled
    if event.type == Event.Type.TRACK:
        return integration.event_mode == Integration.EventMode.ALL_EXCEPT_DISABLED
    return True


class Router:
    """Routing decisions for one workspace's enabled integrations, rules loaded once."""

    def __init__(self, integrations: Iterable[Integration]) -> None:
        self.targets = [
            (integration, {rule.event: rule for rule in integration.event_rules.all()})
            for integration in integrations
        ]

    @classmethod
    def for_workspace(cls, workspace_id: int) -> "Router":
        """The workspace's router, kept for INGEST_CONFIG_CACHE_SECONDS (see config_cache)."""
        return _routers.get(workspace_id, lambda: cls.load(workspace_id))

    @classmethod
    def load(cls, workspace_id: int) -> "Router":
        # By name as before (not the default ordering, which joins the workspace).
        integrations = (
            Integration.objects.filter(workspace_id=workspace_id, enabled=True)
            .order_by("name", "pk")
            .prefetch_related(Prefetch("event_rules", EventRule.objects.order_by()))
        )
        return cls(integrations)

    def destinations(self, event: Event) -> list[Integration]:
        chosen = []
        for integration, rules in self.targets:
            destination = integration.destination
            if event.type not in destination.supported_types:
                continue
            if not integrations_object_allows(
                event.payload.get("integrations"), destination.segment_names
            ):
                continue
            if event_rules_allow(integration, rules, event):
                chosen.append(integration)
        return chosen


# Routers by workspace; cleared when any integration or event rule changes in this process.
_routers: ConfigCache[int, Router] = ConfigCache("routers")
_routers.clear_on_change(Integration, EventRule)
