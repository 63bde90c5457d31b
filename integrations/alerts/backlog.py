"""The one aggregate of the delivery tables that alerts read besides ``health()``.

``health()`` tells how old the oldest *waiting* delivery is, but a delivery waiting for
its next retry (in an hour, say) is not work a worker should be doing now. A stalled
worker is one that leaves *due* work alone, so the check needs when the oldest due
delivery became due. Kept here, in one function, so that it follows the delivery
tables when they change shape.
"""

import datetime as dt
from collections.abc import Collection

from integrations.models import Delivery


def oldest_due_at(integration_ids: Collection[int], now: dt.datetime) -> dt.datetime | None:
    """When the longest-due delivery of these integrations became due (its scheduled
    attempt time), among deliveries due now that no worker holds; None if none is due.

    One query per waiting status, each reading the ``(status, next_attempt_at)`` index
    in order and stopping at the first row of these integrations.
    """
    if not integration_ids:
        return None
    due = Delivery.objects.due(now).filter(integration_id__in=integration_ids)
    times = [
        due.filter(status=status)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
        for status in (Delivery.Status.PENDING, Delivery.Status.RETRYING)
    ]
    return min((time for time in times if time is not None), default=None)
