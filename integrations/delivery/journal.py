"""The journal: what a delivery run has recorded, written to the database in one go.

A run records outcomes in memory and ``flush`` writes them in one transaction:

1. each HTTP exchange once (the first of a multi-step attempt, then its later steps);
2. new deliveries, with their first outcome, in one insert (a delivery that succeeds at
   once is written once); changed ones in one ``UPDATE``; the attempts they replaced as
   their latest, in one insert;
3. the progress of the dispatches the events came from (or their release, when the run
   stops early), so that an event is recorded exactly when it leaves its dispatch;
4. the integration's state (the 410 flag, the back-off) when it changed;
5. the retry tasks of deliveries that will be tried again, in the same transaction.

Every value stored has been through the integration's ``Redactor`` first.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from integrations import bulk_insert
from integrations.delivery import outcomes
from integrations.delivery.bulk import update_rows
from integrations.delivery.http import HTTPExchange
from integrations.delivery.redact import Redactor
from integrations.delivery.signals import exchanges_recorded
from integrations.delivery.verdicts import Verdict
from integrations.models import Delivery, DeliveryAttempt, Dispatch, Exchange, Integration

#: Enqueues the retry of some deliveries of an integration at a time (the tasks module
#: provides it: the journal does not know the task queue).
EnqueueRetries = Callable[[int, Sequence[int], dt.datetime | None], None]

CHANGED_FIELDS = [
    "status",
    "attempt_count",
    "manual_attempt_count",
    "next_attempt_at",
    "last_trigger",
    "last_outcome",
    "last_error",
    "last_status_code",
    "last_attempt_at",
    "exchange",
    "delivered_at",
    "leased_until",
    "lease_token",
]
STEP_RESPONSE_LIMIT = 20 * 1024


@dataclass
class DispatchProgress:
    """Which of a claimed dispatch's events are recorded, by position."""

    dispatch: Dispatch
    recorded: set[int] = field(default_factory=set)
    # Set when the run gives the dispatch back: wait until then (None: due now).
    released: bool = False
    wait_until: dt.datetime | None = None
    reason: str = ""

    def advance(self) -> int:
        """Move ``done`` past the recorded prefix; the new ``done``."""
        done = self.dispatch.done
        while done in self.recorded:
            self.recorded.discard(done)
            done += 1
        self.dispatch.done = done
        return done


class Journal:
    def __init__(
        self, integration: Integration, redactor: Redactor, enqueue_retries: EnqueueRetries
    ) -> None:
        self.integration = integration
        self.redactor = redactor
        self.enqueue_retries = enqueue_retries
        self._reset()

    def _reset(self) -> None:
        self.heads: list[Exchange] = []
        #: Later steps of chains, each with its head (whose pk it needs once inserted).
        self.steps: list[tuple[Exchange, Exchange]] = []
        self.new: dict[int, Delivery] = {}  # by id(): they have no primary key yet
        self.changed: dict[int, Delivery] = {}
        self.earlier: list[DeliveryAttempt] = []
        self.progress: dict[int, DispatchProgress] = {}
        self.gone_reason = ""
        self.answered_ok = False
        self.backoff: tuple[int, dt.datetime | None, str] | None = None
        self.answers: list[tuple[int | None, str]] = []
        self.event_types: set[str] = set()

    # -- what a run records -----------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self.new) + len(self.changed)

    def track(self, dispatch: Dispatch) -> None:
        self.progress.setdefault(dispatch.pk, DispatchProgress(dispatch))

    def rows(self, sent: Sequence[HTTPExchange]) -> list[Exchange]:
        """The log rows of one attempt's exchanges, redacted. It changes nothing in the
        journal, so the lane that sent them builds them, not the thread that records."""
        return [self._row(exchange, step) for step, exchange in enumerate(sent)]

    def exchanges(self, rows: Sequence[Exchange], verdict: Verdict) -> Exchange:
        """Log the rows of one attempt's exchanges (a chain when there are several), the
        verdict on the last; the first of them, which the deliveries it carried refer to."""
        head, *later = rows
        self.heads.append(head)
        for row in later:
            row.head = head
        self.steps.extend((head, row) for row in later)
        self.answers.append((rows[-1].response_status, self.redactor.text(verdict.reason)))
        return head

    def _row(self, exchange: HTTPExchange, step: int) -> Exchange:
        request, redact = exchange.request, self.redactor
        return Exchange(
            integration_id=self.integration.pk,
            started_at=timezone.now() - dt.timedelta(milliseconds=exchange.duration_ms),
            step=step,
            method=request.method,
            url=redact.url(request.url),
            request_headers=redact.headers(exchange.sent_headers),
            request_body=redact.body(request.body),
            response_status=exchange.status,
            response_headers=redact.headers(exchange.headers),
            response_body=redact.text(exchange.body),
            error=redact.text(exchange.error),
            duration_ms=round(exchange.duration_ms, 2),
        )

    def record(
        self,
        delivery: Delivery,
        verdict: Verdict,
        trigger: str,
        *,
        event_type: str,
        retry_at: dt.datetime | None = None,
        exchange: Exchange | None = None,
        origin: tuple[Dispatch, int] | None = None,
        started_at: dt.datetime | None = None,
    ) -> None:
        """Record one attempt of a delivery (``origin``: the dispatch and position of a
        first attempt) of an event of ``event_type``."""
        self.event_types.add(event_type)
        verdict = Verdict(verdict.outcome, self.redactor.text(verdict.reason))
        earlier = outcomes.record(
            delivery,
            verdict,
            trigger,
            retry_at=retry_at,
            status_code=exchange.response_status if exchange is not None else None,
            started_at=started_at or (exchange.started_at if exchange is not None else None),
            exchange=exchange,
        )
        if earlier is not None:
            self.earlier.append(earlier)
        if delivery.pk is None:
            self.new[id(delivery)] = delivery
        else:
            self.changed[delivery.pk] = delivery
        if origin is not None:
            dispatch, position = origin
            self.progress[dispatch.pk].recorded.add(position)
        if verdict.delivered and exchange is not None:
            self.answered_ok = True

    def release_dispatch(
        self, dispatch: Dispatch, until: dt.datetime | None = None, reason: str = ""
    ) -> None:
        """Give a dispatch back with what is left of it: due again ``until`` (now)."""
        progress = self.progress[dispatch.pk]
        progress.released, progress.wait_until, progress.reason = True, until, reason

    def release_deliveries(
        self, deliveries: Sequence[Delivery], until: dt.datetime | None, reason: str
    ) -> None:
        """Give back claimed deliveries unsent: they stay due (or wait ``until``)."""
        for delivery in deliveries:
            delivery.leased_until = None
            delivery.lease_token = None
            if until is not None:
                delivery.next_attempt_at = max(until, delivery.next_attempt_at or until)
                delivery.last_error = self.redactor.text(reason)
            if delivery.pk is not None:  # a new one is written with the others
                self.changed[delivery.pk] = delivery

    def gone(self, reason: str) -> None:
        self.gone_reason = reason

    def back_off(self, failures: int, until: dt.datetime | None, reason: str) -> None:
        """Set the integration's back-off (``until`` None with 0 failures: clear it)."""
        self.backoff = (failures, until, reason)

    # -- writing ----------------------------------------------------------------------

    def flush(self) -> None:
        if not (
            self.heads
            or self.new
            or self.changed
            or self.progress
            or self.gone_reason
            or self.backoff
        ):
            return
        with transaction.atomic():
            self._write_exchanges()
            retries = self._write_deliveries()
            in_progress = self._write_progress()
            self._write_integration_state()
            for when, ids in retries.items():
                self.enqueue_retries(self.integration.pk, ids, when)
            if self.answers:
                answers, integration = self.answers, self.integration
                event_types = frozenset(self.event_types)
                transaction.on_commit(
                    lambda: exchanges_recorded.send(
                        Integration,
                        integration=integration,
                        answers=answers,
                        event_types=event_types,
                    ),
                    robust=True,
                )
        self._reset()
        # Dispatches still being worked on stay tracked (their progress goes on).
        self.progress = in_progress

    def _write_exchanges(self) -> None:
        bulk_insert.insert(self.heads)
        for head, step in self.steps:
            step.head_id = head.pk
        bulk_insert.insert([step for _, step in self.steps])
        for delivery in self._deliveries():
            if delivery.exchange is not None:
                delivery.exchange_id = delivery.exchange.pk

    def _deliveries(self) -> list[Delivery]:
        return [*self.new.values(), *self.changed.values()]

    def _write_deliveries(self) -> dict[dt.datetime | None, list[int]]:
        bulk_insert.insert(list(self.new.values()))
        if self.changed:
            update_rows(list(self.changed.values()), CHANGED_FIELDS)
        for attempt in self.earlier:
            attempt.delivery_id = attempt.delivery.pk
        bulk_insert.insert(self.earlier)
        # Deliveries that will be tried again get their task, at their time.
        retries: dict[dt.datetime | None, list[int]] = defaultdict(list)
        for delivery in self._deliveries():
            if delivery.status == Delivery.Status.RETRYING and delivery.leased_until is None:
                retries[delivery.next_attempt_at].append(delivery.pk)
        return retries

    def _write_progress(self) -> dict[int, DispatchProgress]:
        """Write how far each dispatch got; the dispatches still being worked on."""
        finished, advanced, released = [], [], []
        in_progress = {}
        for pk, progress in self.progress.items():
            dispatch = progress.dispatch
            before = dispatch.done
            if progress.advance() >= dispatch.size:
                finished.append(pk)
            elif progress.released:
                dispatch.leased_until = None
                dispatch.lease_token = None
                if progress.wait_until is not None:
                    dispatch.next_attempt_at = progress.wait_until
                    dispatch.waiting_reason = self.redactor.text(progress.reason)
                released.append(dispatch)
            else:
                in_progress[pk] = progress
                if dispatch.done != before:
                    advanced.append(dispatch)
        if finished:
            Dispatch.objects.filter(pk__in=finished).delete()
        if advanced:
            update_rows(advanced, ["done"])
        if released:
            fields = ["done", "leased_until", "lease_token", "next_attempt_at", "waiting_reason"]
            update_rows(released, fields)
        return in_progress

    def _write_integration_state(self) -> None:
        integration = self.integration
        if self.gone_reason:
            integration.change_state(
                "Flagged by the delivery worker: the vendor answered 410 Gone",
                flagged_reason=self.gone_reason,
                flagged_at=timezone.now(),
            )
        elif self.answered_ok and integration.flagged_reason:
            integration.change_state(
                "Flag cleared by the delivery worker: the vendor accepted a request",
                flagged_reason="",
                flagged_at=None,
            )
        if self.backoff is not None:
            failures, until, reason = self.backoff
            integration.backoff_failures = failures
            integration.deferred_until = until
            integration.deferral_reason = reason
            # Shared with every worker: the integration's other runs wait too.
            Integration.objects.filter(pk=integration.pk).update(
                backoff_failures=failures, deferred_until=until, deferral_reason=reason
            )
