"""The outcome state machine: what one attempt's verdict does to a delivery.

A delivery keeps its latest attempt on its own row; recording a new attempt moves the
previous one into a ``DeliveryAttempt`` (returned, for the journal to write).

=============  ===========================================================================
verdict        new state
=============  ===========================================================================
delivered      DELIVERED (``delivered_at`` set)
failed, gone   FAILED at once, with the reason
retry          RETRYING at ``retry_at`` — or FAILED ("gave up after N attempts") when the
               schedule is used up; a test send is never retried (FAILED); a manual
               attempt leaves the schedule where it was
interrupted    the worker holding the attempt stopped: the state is left as it was (a new
               delivery waits as RETRYING, due now), and the next attempt follows
=============  ===========================================================================
"""

import datetime as dt

from django.utils import timezone

from integrations.delivery.verdicts import Verdict
from integrations.models import Delivery, DeliveryAttempt, Exchange, Outcome, Trigger

Status = Delivery.Status


def first_attempt(delivery: Delivery) -> bool:
    """Whether nothing has been recorded on this delivery yet (it is not in the database)."""
    return delivery.attempt_count == 0


def archive(delivery: Delivery) -> DeliveryAttempt | None:
    """The delivery's latest attempt as an earlier attempt row, or None before the first."""
    if first_attempt(delivery):
        return None
    return DeliveryAttempt(
        delivery=delivery,
        number=delivery.attempt_count,
        trigger=delivery.last_trigger,
        outcome=delivery.last_outcome,
        error=delivery.last_error,
        status_code=delivery.last_status_code,
        exchange_id=delivery.exchange_id,
        started_at=delivery.last_attempt_at,
    )


def record(
    delivery: Delivery,
    verdict: Verdict,
    trigger: str,
    *,
    retry_at: dt.datetime | None = None,
    status_code: int | None = None,
    started_at: dt.datetime | None = None,
    exchange: Exchange | None = None,
) -> DeliveryAttempt | None:
    """Apply one attempt to the delivery; return the attempt it replaces as the latest."""
    earlier = archive(delivery)
    now = timezone.now()
    manual = trigger != Trigger.SCHEDULED
    delivery.attempt_count += 1
    delivery.manual_attempt_count += int(manual)
    delivery.last_trigger = trigger
    delivery.last_outcome = verdict.outcome
    delivery.last_error = verdict.reason
    delivery.last_status_code = status_code
    delivery.last_attempt_at = started_at or now
    delivery.exchange = exchange
    delivery.leased_until = None
    delivery.lease_token = None
    outcome = verdict.outcome
    if outcome == Outcome.INTERRUPTED:
        if not delivery.status:  # a new delivery: it waits for the attempt that follows
            delivery.status = Status.RETRYING
            delivery.next_attempt_at = now
        return earlier
    if outcome == Outcome.DELIVERED:
        delivery.status = Status.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif outcome in (Outcome.FAILED, Outcome.GONE) or trigger == Trigger.TEST:
        # A test send is tried once: it is never retried.
        delivery.status = Status.FAILED
        delivery.next_attempt_at = None
    elif manual:
        # A manual attempt leaves the automatic schedule where it was.
        pass
    elif retry_at is None:
        delivery.status = Status.FAILED
        delivery.next_attempt_at = None
        delivery.last_error = (
            f"Gave up after {delivery.scheduled_attempt_count} attempts: {verdict.reason}"
        )
    else:
        delivery.status = Status.RETRYING
        delivery.next_attempt_at = retry_at
    return earlier
