"""Move the delivery log into its new shape, keeping every event, delivery and attempt.

* Every attempt that sent a request becomes ``Exchange`` rows: the brief ``steps`` of a
  multi-step attempt first (method, URL, status, response), then the request and answer
  the attempt stored in full; the attempt points at the first of them.
* The old log did not store an attempt's outcome: it is read from what the attempt
  stored (an interrupted attempt's message, the HTTP status) and, for each delivery's
  latest attempt, from the delivery's status.
* Each delivery's latest attempt moves onto the delivery's own row; the earlier ones stay
  ``DeliveryAttempt`` rows.
* Deliveries never attempted (``pending``) become dispatches, by integration and origin,
  in the order they were made; the worker's recovery sweep gives them their tasks.

Old exchanges are not merged: a batch request the old log stored once per delivery stays
one exchange per delivery. The migration works in batches; undone, it puts every
attempt's exchanges back on the attempt (a chain's earlier steps as brief ``steps``) and
every event waiting in a dispatch back as a pending delivery.
"""

from collections import defaultdict

from django.db import migrations

BATCH = 1000
EVENTS_PER_DISPATCH = 2500
INTERRUPTED_PREFIX = "Interrupted:"


def outcome_of(attempt, delivery_status=None):
    """The outcome an old attempt came to (``delivery_status``: for the latest one)."""
    if attempt.error.startswith(INTERRUPTED_PREFIX):
        return "interrupted"
    status = attempt.response_status
    if delivery_status == "delivered":
        return "delivered"
    if delivery_status == "failed":
        return "gone" if status == 410 else "failed"
    if delivery_status in ("retrying", "pending"):
        return "retry"
    if status is None:
        return "retry" if attempt.error else "failed"
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 429) or status >= 500:
        return "retry"
    if status == 410:
        return "gone"
    return "failed"


def exchange_rows(Exchange, attempt, integration_id):
    """The attempt's exchanges, first to last (none when it sent nothing)."""
    if not attempt.request_method:
        return []
    rows = []
    for step in attempt.steps or []:
        method, _, url = str(step.get("request", "")).partition(" ")
        rows.append(
            Exchange(
                integration_id=integration_id,
                started_at=attempt.started_at,
                method=method[:8] or "GET",
                url=url,
                response_status=step.get("status"),
                response_body=step.get("response") or "",
                duration_ms=step.get("duration_ms"),
            )
        )
    rows.append(
        Exchange(
            integration_id=integration_id,
            started_at=attempt.started_at,
            method=attempt.request_method,
            url=attempt.request_url,
            request_headers=attempt.request_headers,
            request_body=attempt.request_body,
            response_status=attempt.response_status,
            response_headers=attempt.response_headers,
            response_body=attempt.response_body,
            error="" if attempt.response_status else attempt.error,
            duration_ms=attempt.duration_ms,
        )
    )
    for number, row in enumerate(rows):
        row.step = number
    return rows


def move_attempts(apps, schema_editor):
    Exchange = apps.get_model("integrations", "Exchange")
    DeliveryAttempt = apps.get_model("integrations", "DeliveryAttempt")
    attempts = DeliveryAttempt.objects.select_related("delivery").order_by("pk")
    last = 0
    while True:
        batch = list(attempts.filter(pk__gt=last)[:BATCH])
        if not batch:
            break
        last = batch[-1].pk
        chains = [exchange_rows(Exchange, a, a.delivery.integration_id) for a in batch]
        Exchange.objects.bulk_create([chain[0] for chain in chains if chain])
        steps = []
        for chain in chains:
            for step in chain[1:]:
                step.head_id = chain[0].pk
                steps.append(step)
        Exchange.objects.bulk_create(steps)
        for attempt, chain in zip(batch, chains, strict=True):
            attempt.exchange_id = chain[0].pk if chain else None
            attempt.status_code = attempt.response_status
            attempt.outcome = outcome_of(attempt)
        DeliveryAttempt.objects.bulk_update(batch, ["exchange", "status_code", "outcome"])


def move_latest_attempts(apps, schema_editor):
    Delivery = apps.get_model("integrations", "Delivery")
    DeliveryAttempt = apps.get_model("integrations", "DeliveryAttempt")
    Dispatch = apps.get_model("integrations", "Dispatch")
    never_attempted = defaultdict(list)
    last = 0
    while True:
        batch = list(Delivery.objects.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not batch:
            break
        last = batch[-1].pk
        latest = {}
        for attempt in DeliveryAttempt.objects.filter(delivery__in=batch).order_by("number"):
            latest[attempt.delivery_id] = attempt
        changed = []
        for delivery in batch:
            attempt = latest.get(delivery.pk)
            if attempt is None:
                never_attempted[(delivery.integration_id, delivery.origin)].append(delivery)
                continue
            if delivery.status == "pending":  # attempted, then released: waits to retry
                delivery.status = "retrying"
            delivery.attempt_count = attempt.number
            delivery.last_trigger = attempt.trigger
            delivery.last_outcome = outcome_of(attempt, delivery.status)
            delivery.last_error = delivery.last_error or attempt.error
            delivery.last_status_code = attempt.response_status
            delivery.last_attempt_at = attempt.started_at
            delivery.exchange_id = attempt.exchange_id
            changed.append(delivery)
        Delivery.objects.bulk_update(
            changed,
            [
                "status",
                "attempt_count",
                "last_trigger",
                "last_outcome",
                "last_error",
                "last_status_code",
                "last_attempt_at",
                "exchange",
            ],
        )
        DeliveryAttempt.objects.filter(pk__in=[latest[d.pk].pk for d in changed]).delete()
    for (integration_id, origin), deliveries in never_attempted.items():
        for start in range(0, len(deliveries), EVENTS_PER_DISPATCH):
            group = deliveries[start : start + EVENTS_PER_DISPATCH]
            Dispatch.objects.create(
                integration_id=integration_id,
                origin=origin,
                event_ids=[str(d.event_id) for d in group],
                size=len(group),
                created_at=min(d.created_at for d in group),
                next_attempt_at=min(d.next_attempt_at or d.created_at for d in group),
                waiting_reason=next((d.last_error for d in group if d.last_error), ""),
            )
            Delivery.objects.filter(pk__in=[d.pk for d in group]).delete()


def restore_latest_attempts(apps, schema_editor):
    Delivery = apps.get_model("integrations", "Delivery")
    DeliveryAttempt = apps.get_model("integrations", "DeliveryAttempt")
    Dispatch = apps.get_model("integrations", "Dispatch")
    last = 0
    while True:
        batch = list(Delivery.objects.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not batch:
            break
        last = batch[-1].pk
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                delivery=delivery,
                number=delivery.attempt_count,
                trigger=delivery.last_trigger,
                outcome=delivery.last_outcome,
                status_code=delivery.last_status_code,
                exchange_id=delivery.exchange_id,
                error="" if delivery.last_outcome == "delivered" else delivery.last_error,
                started_at=delivery.last_attempt_at,
            )
            for delivery in batch
        )
    for dispatch in Dispatch.objects.order_by("pk").iterator():
        Delivery.objects.bulk_create(
            Delivery(
                event_id=event_id,
                integration_id=dispatch.integration_id,
                origin=dispatch.origin,
                status="pending",
                attempt_count=0,
                last_outcome="",
                next_attempt_at=dispatch.next_attempt_at,
                last_error=dispatch.waiting_reason,
                created_at=dispatch.created_at,
            )
            for event_id in dispatch.event_ids[dispatch.done :]
        )
    Dispatch.objects.all().delete()


def restore_attempts(apps, schema_editor):
    Exchange = apps.get_model("integrations", "Exchange")
    DeliveryAttempt = apps.get_model("integrations", "DeliveryAttempt")
    attempts = DeliveryAttempt.objects.exclude(exchange=None).order_by("pk")
    last = 0
    while True:
        batch = list(attempts.filter(pk__gt=last)[:BATCH])
        if not batch:
            break
        last = batch[-1].pk
        heads = [a.exchange_id for a in batch]
        chains = defaultdict(list)
        rows = Exchange.objects.filter(pk__in=heads) | Exchange.objects.filter(head_id__in=heads)
        for exchange in rows.order_by("step"):
            chains[exchange.head_id or exchange.pk].append(exchange)
        for attempt in batch:
            *steps, final = chains[attempt.exchange_id]
            attempt.request_method, attempt.request_url = final.method, final.url
            attempt.request_headers, attempt.request_body = (
                final.request_headers,
                final.request_body,
            )
            attempt.response_status = final.response_status
            attempt.response_headers = final.response_headers
            attempt.response_body = final.response_body
            attempt.duration_ms = final.duration_ms
            attempt.steps = [
                {
                    "request": f"{step.method} {step.url}",
                    "status": step.response_status,
                    "response": step.response_body[:2000],
                    "duration_ms": step.duration_ms,
                }
                for step in steps
            ]
        DeliveryAttempt.objects.bulk_update(
            batch,
            [
                "request_method",
                "request_url",
                "request_headers",
                "request_body",
                "response_status",
                "response_headers",
                "response_body",
                "duration_ms",
                "steps",
            ],
        )
    DeliveryAttempt.objects.update(exchange=None)
    apps.get_model("integrations", "Delivery").objects.update(exchange=None)
    Exchange.objects.filter(head__isnull=False).delete()
    Exchange.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0006_exchange_log"),
    ]

    operations = [
        migrations.RunPython(move_attempts, restore_attempts),
        migrations.RunPython(move_latest_attempts, restore_latest_attempts),
    ]
