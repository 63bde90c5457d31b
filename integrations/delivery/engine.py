"""The delivery engine: claim deliveries, send them, log every attempt, schedule retries.

Crash safety rests on leases. A worker claims deliveries by writing ``leased_until`` (and
its ``lease_token``) before it sends them, renews the lease while it works and clears it
when it records the outcome. A lease that expired means the worker died: the next claim
logs the lost attempt as interrupted and sends again (at-least-once).

Fairness: a timeout or connection failure (or a 429) defers the rest of the run for that
integration (one unanswered request per run, not one per delivery), and the runs that
start before the deferral ends, on any worker, wait with it rather than try again
(``Integration.deferred_until``); a run
stops after ``DELIVERY_TASK_TIME_BUDGET`` seconds, handing what is left to a new task, so
a slow integration cannot hold a worker for long.

Requests of a chunk go out side by side (``lanes``: one person's requests in order), while
this thread records outcomes, renews leases and writes to the database.
"""

import datetime as dt
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.delivery import lanes, planning, schedule, throttle
from integrations.delivery.bulk import update_rows
from integrations.delivery.http import Exchange, send
from integrations.delivery.redact import Redactor
from integrations.delivery.signals import exchanges_recorded
from integrations.delivery.tasks import enqueue_deliveries
from integrations.destinations.base import OutboundRequest, PartialFailure, Plan
from integrations.destinations.context import Rules
from integrations.destinations.values import IntegrationConfig
from integrations.models import Delivery, DeliveryAttempt, Integration

log = logging.getLogger(__name__)

Trigger = DeliveryAttempt.Trigger
Status = Delivery.Status

CHUNK_SIZE = 50
FLUSH_EVERY = 50
FLUSH_INTERVAL = 1.0
INTERRUPTED = (
    "Interrupted: the worker sending this attempt stopped before it finished (its lease "
    "expired); the request may have reached the vendor."
)
UPDATED_FIELDS = [
    "status",
    "attempt_count",
    "manual_attempt_count",
    "next_attempt_at",
    "last_error",
    "last_status_code",
    "leased_until",
    "lease_token",
    "delivered_at",
    "updated_at",
]


@dataclass(frozen=True)
class Verdict:
    """What an exchange means for the deliveries it carried."""

    outcome: str  # delivered | retry | failed | gone
    reason: str = ""


def judge(exchange: Exchange) -> Verdict:
    """2xx delivers; 408, 429, 5xx and unanswered requests retry; the rest fail."""
    status = exchange.status
    if status is None:
        if exchange.unreachable:
            return Verdict("retry", exchange.error)
        return Verdict("failed", exchange.error)
    snippet = " ".join(exchange.body.split())[:300]
    detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if 200 <= status < 300:
        return Verdict("delivered")
    if status in (408, 429) or status >= 500:
        return Verdict("retry", detail)
    if status == 410:
        return Verdict("gone", f"{detail} (the vendor says this endpoint is gone)")
    if 300 <= status < 400:
        location = exchange.headers.get("Location", "")
        return Verdict("failed", f"HTTP {status}: redirects are not followed ({location})")
    return Verdict("failed", detail)


def person_keys(delivery: Delivery) -> set[str]:
    """The ids naming the person an event concerns (an alias names two)."""
    event = delivery.event
    previous = event.payload.get("previousId") if event.type == "alias" else None
    ids = (event.user_id, event.anonymous_id, previous)
    return {str(value) for value in ids if value}


class Run:
    """One task's work on some deliveries of one integration."""

    def __init__(self, integration: Integration, trigger: str) -> None:
        self.integration = integration
        self.trigger = trigger
        self.destination = integration.destination
        self.redactor = Redactor.for_settings(integration.settings, integration.secret_settings)
        self.lease_token = uuid.uuid4()
        self.attempts: list[DeliveryAttempt] = []
        self.finished: list[Delivery] = []
        self.retry_groups: dict[dt.datetime, list[int]] = defaultdict(list)
        self.gone_reason = ""
        # A request went through: a 410 flag raised earlier no longer holds.
        self.answered_ok = False
        self.last_flush = time.monotonic()
        # After an unanswered request: everything else waits until then.
        self.deferred_until: dt.datetime | None = None
        self.deferral_reason = ""
        self.rules: Rules | None = None
        self.config: IntegrationConfig = planning.integration_config(integration)
        # (status, reason) of each exchange recorded since the last flush.
        self.answers: list[tuple[int | None, str]] = []

    # -- claiming ---------------------------------------------------------------------

    def claimable(self, ids: Sequence[int]) -> Q:
        now = timezone.now()
        unleased = Q(leased_until__isnull=True) | Q(leased_until__lt=now)
        if self.trigger != Trigger.SCHEDULED:
            statuses = [Status.PENDING, Status.RETRYING, Status.FAILED]
            return Q(pk__in=ids, status__in=statuses) & unleased
        return (
            Q(pk__in=ids, status__in=[Status.PENDING, Status.RETRYING])
            & Q(next_attempt_at__lte=now)
            & unleased
        )

    def claim(self, ids: Sequence[int]) -> list[Delivery]:
        with transaction.atomic():
            rows = list(
                Delivery.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(self.claimable(ids), integration=self.integration)
                .select_related("event")
                .order_by("pk")
            )
            Delivery.objects.filter(pk__in=[d.pk for d in rows]).update(
                leased_until=self.lease_expiry(), lease_token=self.lease_token
            )
        for delivery in rows:
            if delivery.leased_until is not None:
                self.log_interrupted(delivery)
        return rows

    def lease_expiry(self) -> dt.datetime:
        return timezone.now() + dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)

    def renew(self, deliveries: Sequence[Delivery]) -> float:
        Delivery.objects.filter(
            pk__in=[d.pk for d in deliveries], lease_token=self.lease_token
        ).update(leased_until=self.lease_expiry())
        return time.monotonic() + settings.DELIVERY_LEASE_SECONDS

    # -- recording --------------------------------------------------------------------

    def log_interrupted(self, delivery: Delivery) -> None:
        delivery.attempt_count += 1
        self.attempts.append(
            DeliveryAttempt(
                delivery=delivery,
                number=delivery.attempt_count,
                trigger=Trigger.SCHEDULED,
                error=INTERRUPTED,
                started_at=delivery.leased_until
                - dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS),
            )
        )

    def record(
        self,
        delivery: Delivery,
        verdict: Verdict,
        exchange: Exchange | None = None,
        retry_at: dt.datetime | None = None,
        steps: list[dict] | None = None,
    ) -> None:
        """Apply one attempt's verdict to a delivery and log the attempt."""
        now = timezone.now()
        manual = self.trigger != Trigger.SCHEDULED
        delivery.attempt_count += 1
        delivery.manual_attempt_count += int(manual)
        verdict = Verdict(verdict.outcome, self.redactor.text(verdict.reason))
        attempt = self.attempt_row(delivery, exchange, verdict.reason)
        attempt.steps = steps or []
        self.attempts.append(attempt)
        delivery.last_status_code = exchange.status if exchange else None
        delivery.leased_until = None
        delivery.lease_token = None
        if verdict.outcome == "delivered":
            self.answered_ok = self.answered_ok or exchange is not None
            delivery.status = Status.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            delivery.last_error = verdict.reason
        elif verdict.outcome in ("failed", "gone"):
            delivery.status = Status.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = verdict.reason
        elif self.trigger == Trigger.TEST:
            # A test send is tried once: it is never retried.
            delivery.status = Status.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = verdict.reason
        elif manual:
            # A manual attempt leaves the automatic schedule where it was.
            delivery.last_error = verdict.reason
        elif retry_at is None:
            delivery.status = Status.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = (
                f"Gave up after {delivery.scheduled_attempt_count} attempts: {verdict.reason}"
            )
        else:
            delivery.status = Status.RETRYING
            delivery.next_attempt_at = retry_at
            delivery.last_error = verdict.reason
            self.retry_groups[retry_at].append(delivery.pk)
        self.finished.append(delivery)

    def retry_later(self, deliveries: Sequence[Delivery], reason: str) -> None:
        """Record a failure of ours (not the vendor's) as a visible, scheduled retry."""
        verdict = Verdict("retry", reason)
        for delivery in deliveries:
            retry_at = schedule.next_attempt_at(delivery.scheduled_attempt_count + 1)
            self.record(delivery, verdict, None, retry_at)

    def attempt_row(
        self, delivery: Delivery, exchange: Exchange | None, error: str
    ) -> DeliveryAttempt:
        attempt = DeliveryAttempt(
            delivery=delivery,
            number=delivery.attempt_count,
            trigger=self.trigger,
            error=error,
        )
        if exchange is not None:
            request = exchange.request
            attempt.started_at = timezone.now() - dt.timedelta(milliseconds=exchange.duration_ms)
            attempt.request_method = request.method
            attempt.request_url = self.redactor.url(request.url)
            attempt.request_headers = self.redactor.headers(exchange.sent_headers)
            attempt.request_body = self.redactor.body(request.body)
            attempt.response_status = exchange.status
            attempt.response_headers = self.redactor.headers(exchange.headers)
            attempt.response_body = self.redactor.text(exchange.body)
            attempt.duration_ms = round(exchange.duration_ms, 2)
        return attempt

    def step_summary(self, exchange: Exchange) -> dict:
        return {
            "request": f"{exchange.request.method} {self.redactor.url(exchange.request.url)}",
            "status": exchange.status,
            "response": self.redactor.text(exchange.body[:2000]),
            "duration_ms": round(exchange.duration_ms, 2),
        }

    def release(self, deliveries: Sequence[Delivery], until: dt.datetime | None, why: str) -> None:
        """Give back claimed deliveries unsent: they stay due (or wait ``until``)."""
        for delivery in deliveries:
            delivery.leased_until = None
            delivery.lease_token = None
            if until is not None:
                delivery.next_attempt_at = max(until, delivery.next_attempt_at or until)
                delivery.last_error = why
            self.finished.append(delivery)
        if until is not None and self.trigger == Trigger.SCHEDULED:
            self.retry_groups[until].extend(d.pk for d in deliveries)

    def flush(self) -> None:
        if not (self.attempts or self.finished or self.gone_reason):
            return
        with transaction.atomic():
            DeliveryAttempt.objects.bulk_create(self.attempts)
            now = timezone.now()
            for delivery in self.finished:
                delivery.updated_at = now
            update_rows(self.finished, UPDATED_FIELDS)
            if self.gone_reason:
                self.integration.change_state(
                    "Flagged by the delivery worker: the vendor answered 410 Gone",
                    flagged_reason=self.gone_reason,
                    flagged_at=now,
                )
            elif self.answered_ok and self.integration.flagged_reason:
                self.integration.change_state(
                    "Flag cleared by the delivery worker: the vendor accepted a request",
                    flagged_reason="",
                    flagged_at=None,
                )
            for when, ids in self.retry_groups.items():
                transaction.on_commit(
                    lambda w=when, i=ids: enqueue_deliveries(self.integration.pk, i, run_after=w)
                )
            if self.answers:
                transaction.on_commit(
                    lambda a=self.answers: exchanges_recorded.send(
                        Integration, integration=self.integration, answers=a
                    ),
                    robust=True,
                )
        self.attempts, self.finished, self.gone_reason, self.answers = [], [], "", []
        self.answered_ok = False
        self.retry_groups = defaultdict(list)
        self.last_flush = time.monotonic()

    def maybe_flush(self) -> None:
        if len(self.finished) >= FLUSH_EVERY or time.monotonic() - self.last_flush > FLUSH_INTERVAL:
            self.flush()

    # -- sending ----------------------------------------------------------------------

    def plan(self, deliveries: Sequence[Delivery]) -> Plan:
        try:
            if self.rules is None:
                self.rules = planning.rules(self.integration)
            events = [planning.event_data(d.event) for d in deliveries]
            context = planning.plan_context(self.integration, events, self.rules)
            return self.destination.plan(self.config, events, context)
        except Exception as exc:
            # A bug in a translation must not lose events: they are retried, visibly.
            log.exception("planning requests for integration %s failed", self.integration.pk)
            self.retry_later(deliveries, f"internal error while building the request: {exc!r}")
            return Plan()

    def deliver_chunk(self, deliveries: list[Delivery], deadline: float) -> list[Delivery]:
        """Send a claimed chunk; return the deliveries left unsent (out of time)."""
        plan = self.plan(deliveries)
        for index, reason in plan.failures.items():
            self.record(deliveries[index], Verdict("failed", reason), None, None)
        for index, reason in plan.skipped.items():
            self.record(deliveries[index], Verdict("delivered", f"Nothing to send: {reason}"))
        covered = {i for r in plan.requests for i in r.covers} | set(plan.failures)
        for index in set(range(len(deliveries))) - covered - set(plan.skipped):
            # A planner bug must not leave a delivery leased and forgotten.
            log.error("the %s plan left delivery %s out", self.destination.kind, index)
            self.retry_later(
                [deliveries[index]], "internal error: no request was planned for this event"
            )
        return self.send_all(plan.requests, deliveries, deadline)

    def send_all(
        self, requests: Sequence[OutboundRequest], deliveries: list[Delivery], deadline: float
    ) -> list[Delivery]:
        """Send a plan's requests (side by side, see ``lanes``) and record their outcomes.

        Stops starting requests when the deadline passes (those deliveries are returned,
        unsent) or when one defers the run (the rest are released until then).
        """
        halted = threading.Event()

        def proceed() -> bool:
            return not halted.is_set() and time.monotonic() <= deadline

        def work(index: int) -> tuple[Exchange, Verdict, list]:
            outcome = self.exchange_all_steps(requests[index])
            if self.defers(outcome[0]):
                halted.set()
            return outcome

        def keys(index: int) -> set[str]:
            return {key for i in requests[index].covers for key in person_keys(deliveries[i])}

        carried = [[deliveries[i] for i in request.covers] for request in requests]
        outstanding = {d.pk: d for group in carried for d in group}
        not_started: list[Delivery] = []
        tick = 1.0
        margin = settings.DELIVERY_CONNECT_TIMEOUT + settings.DELIVERY_READ_TIMEOUT + tick
        lease_ends = time.monotonic() + settings.DELIVERY_LEASE_SECONDS
        for outcome in lanes.run(len(requests), keys, work, proceed, self.concurrency, tick):
            if outcome is not None:
                group = carried[outcome.index]
                if outcome.skipped:
                    not_started += group
                elif outcome.error is not None:
                    log.error(
                        "sending for integration %s failed",
                        self.integration.pk,
                        exc_info=outcome.error,
                    )
                    self.retry_later(group, f"internal error while sending: {outcome.error!r}")
                else:
                    self.record_exchange(requests[outcome.index], group, *outcome.result)
                for delivery in group:
                    outstanding.pop(delivery.pk)
                self.maybe_flush()
            if outstanding and time.monotonic() + margin > lease_ends:
                lease_ends = self.renew(list(outstanding.values()))
        if self.deferred_until is not None:
            self.release(not_started, self.deferred_until, self.deferral_reason)
            return []
        return not_started

    @property
    def concurrency(self) -> int:
        """How many requests go out at once. A rate-limited vendor takes its slots from
        the database, which only this thread may use: its requests go one by one."""
        if self.destination.max_requests_per_second:
            return 1
        return settings.DELIVERY_CONCURRENCY

    def defers(self, exchange: Exchange) -> bool:
        """An unanswered or rate-limited scheduled request makes the rest of the run wait."""
        return self.trigger == Trigger.SCHEDULED and (
            exchange.unreachable or exchange.status == 429
        )

    def send(self, request: OutboundRequest) -> Exchange:
        rate = self.destination.max_requests_per_second
        if rate:
            throttle.wait_for_slot(self.integration.pk, rate)
        return send(request)

    def exchange_all_steps(self, request: OutboundRequest) -> tuple[Exchange, Verdict, list]:
        """Send a request and the follow-ups its answers call for (lookup, then write)."""
        exchange = self.send(request)
        verdict = judge(exchange)
        steps: list[dict] = []
        while verdict.outcome == "delivered":
            try:
                follow_up = self.destination.follow_up(
                    self.config, exchange.request, exchange.status, exchange.body
                )
            except Exception as exc:
                log.exception("follow-up for integration %s failed", self.integration.pk)
                verdict = Verdict("retry", f"internal error building the next request: {exc!r}")
                break
            if follow_up is None:
                break
            steps.append(self.step_summary(exchange))
            exchange = self.send(follow_up)
            verdict = judge(exchange)
        return exchange, verdict, steps

    def record_exchange(
        self,
        request: OutboundRequest,
        carried: list[Delivery],
        exchange: Exchange,
        verdict: Verdict,
        steps: list[dict],
    ) -> None:
        self.answers.append((exchange.status, self.redactor.text(verdict.reason)))
        partial: dict[int, PartialFailure] = {}
        if verdict.outcome == "delivered":
            partial = self.destination.partial_failures(
                exchange.request, exchange.status, exchange.body
            )
        if verdict.outcome == "gone":
            self.gone_reason = verdict.reason
        retry_after = schedule.retry_after_seconds(exchange.headers.get("Retry-After"))
        # Deliveries that failed together retry together (one task, one jittered time).
        retry_at = schedule.next_attempt_at(
            max(d.scheduled_attempt_count for d in carried) + 1, retry_after
        )
        for index, delivery in zip(request.covers, carried, strict=True):
            own = verdict
            if index in partial:
                failure = partial[index]
                own = Verdict("retry" if failure.retry else "failed", failure.reason)
            self.record(delivery, own, exchange, retry_at, steps)
        if self.defers(exchange) and self.deferred_until is None:
            # The vendor is down or asks us to slow down: the rest of this run waits too.
            self.deferred_until = retry_at or schedule.next_attempt_at(1, retry_after)
            what = "went unanswered" if exchange.unreachable else "was rate limited (429)"
            self.deferral_reason = (
                f"Deferred: an earlier request to this integration {what} ({verdict.reason})"
            )
            # Shared with every worker: the integration's other runs wait too.
            Integration.objects.filter(pk=self.integration.pk).update(
                deferred_until=self.deferred_until, deferral_reason=self.deferral_reason
            )


def deliver(integration_id: int, delivery_ids: Sequence[int], trigger: str) -> None:
    """Deliver the given deliveries of one integration (those still due when claimed)."""
    integration = Integration.objects.filter(pk=integration_id).first()
    if integration is None or (integration.paused and trigger != Trigger.TEST):
        # Deleted (its deliveries went with it) or paused (resume enqueues them again).
        return
    run = Run(integration, trigger)
    if trigger == Trigger.SCHEDULED and integration.is_deferred():
        # A recent request went unanswered or was rate limited: wait with the others.
        run.deferred_until, run.deferral_reason = (
            integration.deferred_until,
            integration.deferral_reason,
        )
    deadline = time.monotonic() + settings.DELIVERY_TASK_TIME_BUDGET
    remaining = list(delivery_ids)
    chunk_size = max(CHUNK_SIZE, integration.destination.max_batch_size)
    try:
        while remaining:
            if time.monotonic() > deadline or run.deferred_until is not None:
                break
            chunk, remaining = remaining[:chunk_size], remaining[chunk_size:]
            claimed = run.claim(chunk)
            if not integration.enabled:
                for delivery in claimed:
                    run.record(
                        delivery,
                        Verdict("failed", "Not sent: the integration is disabled."),
                        None,
                        None,
                    )
                continue
            unsent = run.deliver_chunk(claimed, deadline)
            if unsent:
                run.release(unsent, None, "")
                remaining = [d.pk for d in unsent] + remaining
    finally:
        run.flush()
    if remaining and run.deferred_until is not None:
        _defer_unclaimed(run, remaining)
    elif remaining:
        enqueue_deliveries(integration_id, remaining, trigger=trigger)


def _defer_unclaimed(run: Run, ids: Sequence[int]) -> None:
    """Deliveries this run never claimed wait as long as the unanswered one."""
    Delivery.objects.filter(pk__in=ids, next_attempt_at__lt=run.deferred_until).waiting().update(
        next_attempt_at=run.deferred_until, last_error=run.deferral_reason
    )
    enqueue_deliveries(run.integration.pk, ids, run_after=run.deferred_until)
