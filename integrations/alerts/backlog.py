"""The one aggregate of the delivery tables that alerts read besides ``health()``.

``health()`` tells how old the oldest *waiting* event is, but a delivery waiting for its
next retry (in an hour, say) is not work a worker should be doing now. A stalled worker
is one that leaves *due* work alone, so the check needs when the oldest due work became
due: events accepted and not routed yet, dispatches due and not held, deliveries whose
retry is due and not held. Kept here, in one function, so that it follows the delivery
tables when they change shape.
"""

import datetime as dt
from collections.abc import Collection

from django.db.models import Min

from integrations.models import Delivery, Dispatch, Integration, RoutingJob


def oldest_due_at(integration_ids: Collection[int], now: dt.datetime) -> dt.datetime | None:
    """When the longest-due work of these integrations (and of their workspaces' routing)
    became due, among what is due now and held by no worker; None if nothing is due."""
    if not integration_ids:
        return None
    workspaces = Integration.objects.filter(pk__in=integration_ids).values("workspace_id")
    times = [
        RoutingJob.objects.filter(workspace_id__in=workspaces).aggregate(t=Min("created_at"))["t"],
        Dispatch.objects.due(now)
        .filter(integration_id__in=integration_ids)
        .aggregate(t=Min("next_attempt_at"))["t"],
        Delivery.objects.due(now)
        .filter(integration_id__in=integration_ids)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first(),
    ]
    return min((time for time in times if time is not None), default=None)
