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


def backoff_until(
    failures: int, retry_after: float | None = None, now: dt.datetime | None = None
) -> dt.datetime:
    """Until when an integration waits after ``failures`` unanswered or rate-limited
    requests in a row.

    This pause is about the vendor, not about one delivery: it starts short and doubles
    only while the vendor keeps failing (``DELIVERY_BACKOFF_SECONDS`` up to
    ``DELIVERY_BACKOFF_MAX_SECONDS``, scaled like the retry schedule), and the vendor's
    ``Retry-After`` replaces it when given. Fresh events wait this long, however deep in
    their own schedule the deliveries that failed are.
    """
    scale = settings.DELIVERY_RETRY_BASE_SECONDS
    exponent = min(max(failures, 1) - 1, 30)
    delay = min(
        settings.DELIVERY_BACKOFF_SECONDS * 2**exponent, settings.DELIVERY_BACKOFF_MAX_SECONDS
    )
    delay *= scale * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (jitter, not crypto)
    if retry_after is not None:
        delay = retry_after
    return (now or timezone.now()) + dt.timedelta(seconds=delay)
