"""Routing: which integrations each accepted event goes to, decided in the background.

Ingest leaves a ``RoutingJob`` per accepted request; the router (``route_pending``, run
in a loop by every ``db_worker``) takes the oldest jobs in bulk, decides each event's
integrations by the event rules and the Segment ``integrations`` object, and writes one
``Dispatch`` per integration with its share of the events — in the transaction that
deletes the jobs, with the dispatches' delivery tasks and the events' search entries
(``event_search.index``). A crash at any point leaves either the jobs or the dispatches,
never neither.
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Prefetch

from integrations import catalog, event_search
from integrations.config_cache import ConfigCache
from integrations.delivery.tasks import enqueue_dispatches
from integrations.models import Dispatch, Event, EventRule, Integration, Origin, RoutingJob

log = logging.getLogger(__name__)

# Jobs one pass takes, and events one dispatch holds at most.
JOBS_PER_PASS = 200
EVENTS_PER_DISPATCH = 2500


@dataclass(frozen=True, slots=True)
class Routable:
    """What routing looks at in an event."""

    type: str
    rule_name: str
    integrations: Any = None

    @classmethod
    def of(cls, event: Event) -> "Routable":
        return cls(event.type, event.rule_name, event.payload.get("integrations"))


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
    integration: Integration, rules: Mapping[str, EventRule], event: Routable
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
        integrations = (
            Integration.objects.filter(workspace_id=workspace_id, enabled=True)
            .order_by("name", "pk")
            .prefetch_related(Prefetch("event_rules", EventRule.objects.order_by()))
        )
        return cls(integrations)

    def destinations(self, event: Routable) -> list[Integration]:
        chosen = []
        for integration, rules in self.targets:
            destination = integration.destination
            if event.type not in destination.call_types(integration.settings):
                continue
            if not integrations_object_allows(event.integrations, destination.segment_names):
                continue
            if event_rules_allow(integration, rules, event):
                chosen.append(integration)
        return chosen


# Routers by workspace; cleared when any integration or event rule changes in this process.
_routers: ConfigCache[int, Router] = ConfigCache("routers")
_routers.clear_on_change(Integration, EventRule)


def route_pending(jobs_per_pass: int = JOBS_PER_PASS) -> int:
    """Route the oldest routing jobs no other router holds; how many events were routed."""
    with transaction.atomic():
        jobs = list(
            RoutingJob.objects.select_for_update(skip_locked=True).order_by("pk")[:jobs_per_pass]
        )
        if not jobs:
            return 0
        by_workspace: dict[int, list[RoutingJob]] = defaultdict(list)
        for job in jobs:
            by_workspace[job.workspace_id].append(job)
        dispatches: list[Dispatch] = []
        for workspace_id, workspace_jobs in by_workspace.items():
            dispatches += _dispatches(Router.for_workspace(workspace_id), workspace_jobs)
            _count_seen(workspace_id, workspace_jobs)
        Dispatch.objects.bulk_create(dispatches)
        event_search.index([entry[0] for job in jobs for entry in job.entries])
        RoutingJob.objects.filter(pk__in=[job.pk for job in jobs]).delete()
        by_integration: dict[int, list[Dispatch]] = defaultdict(list)
        for dispatch in dispatches:
            by_integration[dispatch.integration_id].append(dispatch)
        for integration_id, created in by_integration.items():
            enqueue_dispatches(
                integration_id, [d.pk for d in created], events=[d.size for d in created]
            )
    return sum(len(job.entries) for job in jobs)


def _dispatches(router: Router, jobs: Sequence[RoutingJob]) -> list[Dispatch]:
    """One dispatch per integration (or more, for many events) with its share of events."""
    chosen: dict[int, list[str]] = defaultdict(list)
    integrations: dict[int, Integration] = {}
    for job in jobs:
        for event_id, call_type, rule_name, integrations_object in job.entries:
            for integration in router.destinations(
                Routable(call_type, rule_name, integrations_object)
            ):
                integrations[integration.pk] = integration
                chosen[integration.pk].append(event_id)
    created_at = min(job.created_at for job in jobs)
    return [
        Dispatch(
            integration=integrations[integration_id],
            origin=Origin.LIVE,
            event_ids=ids[start : start + EVENTS_PER_DISPATCH],
            size=len(ids[start : start + EVENTS_PER_DISPATCH]),
            created_at=created_at,
            next_attempt_at=created_at,
        )
        for integration_id, ids in chosen.items()
        for start in range(0, len(ids), EVENTS_PER_DISPATCH)
    ]


def _count_seen(workspace_id: int, jobs: Sequence[RoutingJob]) -> None:
    counts = Counter(
        rule_name
        for job in jobs
        for _, call_type, rule_name, _ in job.entries
        if call_type == Event.Type.TRACK
    )
    catalog.record_seen(workspace_id, counts)
