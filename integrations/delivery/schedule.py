"""When to try again: the retry schedule, jitter and the vendor's ``Retry-After``."""

import datetime as dt
import email.utils
import random

from django.conf import settings
from django.utils import timezone

# Delays after each failed scheduled attempt, in seconds (about 5.7 hours in all, so
# deliveries are retried for longer than Segment's 4 hours), before scaling by
# DELIVERY_RETRY_BASE_SECONDS. Nine attempts in all.
RETRY_DELAYS = (5, 30, 120, 600, 1800, 3600, 7200, 7200)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.2


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), clamped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or timezone.now())).total_seconds()
    return min(max(seconds, 0.0), settings.DELIVERY_RETRY_AFTER_MAX_SECONDS)


def next_attempt_at(
    scheduled_attempts: int, retry_after: float | None = None, now: dt.datetime | None = None
) -> dt.datetime | None:
    """When to try after ``scheduled_attempts`` failed ones, or None when they are used up."""
    if scheduled_attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[scheduled_attempts - 1] * settings.DELIVERY_RETRY_BASE_SECONDS
    delay = base * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (jitter, not crypto)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return (now or timezone.now()) + dt.timedelta(seconds=delay)
