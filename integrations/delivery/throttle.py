"""A rate limit per integration shared by every worker: request slots handed out from the
integration's row, so N workers together stay under the vendor's limit."""

import datetime as dt
import time

from django.db import transaction
from django.utils import timezone

from integrations.models import Integration


def wait_for_slot(integration_id: int, per_second: float) -> None:
    """Take the next request slot of the integration and sleep until it comes."""
    interval = dt.timedelta(seconds=1 / per_second)
    with transaction.atomic():
        row = Integration.objects.select_for_update().only("next_request_at").get(pk=integration_id)
        now = timezone.now()
        slot = max(row.next_request_at or now, now)
        Integration.objects.filter(pk=integration_id).update(next_request_at=slot + interval)
    delay = (slot - timezone.now()).total_seconds()
    if delay > 0:
        time.sleep(delay)
