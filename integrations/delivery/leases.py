"""Leases: how a worker holds the dispatches and deliveries it is sending.

A worker claims rows by writing ``leased_until`` and its ``lease_token``
(``SELECT … FOR UPDATE SKIP LOCKED``, so workers on many hosts never take the same row),
renews the lease while it works and clears it when it records the outcome. A lease that
expired means the worker died: the next claim notices it (and the log says the attempt
was interrupted), then sends again — at least once.
"""

import datetime as dt
import uuid
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import Delivery, Dispatch, Integration, Trigger


def expiry(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) + dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)


def unleased(now: dt.datetime) -> Q:
    return Q(leased_until__isnull=True) | Q(leased_until__lt=now)


def claim_dispatches(
    integration: Integration, ids: Sequence[int], token: uuid.UUID, trigger: str
) -> list[Dispatch]:
    """The listed dispatches of the integration that are due and free, now leased to us.

    A returned dispatch whose ``taken`` is already true was taken up by a worker that
    stopped before it finished (its lease expired).
    """
    now = timezone.now()
    claimable = Q(pk__in=ids, integration=integration) & unleased(now)
    if trigger == Trigger.SCHEDULED:
        claimable &= Q(next_attempt_at__lte=now)
    with transaction.atomic():
        rows = list(
            Dispatch.objects.select_for_update(skip_locked=True).filter(claimable).order_by("pk")
        )
        Dispatch.objects.filter(pk__in=[d.pk for d in rows]).update(
            leased_until=expiry(now), lease_token=token, taken=True
        )
    return rows


def claim_deliveries(
    integration: Integration, ids: Sequence[int], token: uuid.UUID, trigger: str
) -> list[Delivery]:
    """The listed deliveries that may be attempted now, leased to us, with their events.

    Scheduled runs take retrying deliveries that are due; manual and test runs also take
    failed ones, whenever their time. A returned delivery whose ``leased_until`` is set
    was held by a worker that stopped mid-attempt.
    """
    now = timezone.now()
    claimable = Q(pk__in=ids, integration=integration) & unleased(now)
    if trigger == Trigger.SCHEDULED:
        claimable &= Q(status=Delivery.Status.RETRYING, next_attempt_at__lte=now)
    else:
        claimable &= Q(status__in=[Delivery.Status.RETRYING, Delivery.Status.FAILED])
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(claimable)
            .select_related("event")
            .order_by("pk")
        )
        Delivery.objects.filter(pk__in=[d.pk for d in rows]).update(
            leased_until=expiry(now), lease_token=token
        )
    return rows


def renew(dispatch_ids: Sequence[int], delivery_ids: Sequence[int], token: uuid.UUID) -> None:
    until = expiry()
    if dispatch_ids:
        Dispatch.objects.filter(pk__in=dispatch_ids, lease_token=token).update(leased_until=until)
    if delivery_ids:
        Delivery.objects.filter(pk__in=delivery_ids, lease_token=token).update(leased_until=until)
