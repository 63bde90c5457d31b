"""The delivery run: one task's work on some events of one integration.

A run takes, with a lease (``leases``), either dispatches — events routed to the
integration and not attempted yet — or deliveries to try again. It plans the requests
with the destination (pure, from plain values: ``planning``), sends them side by side
(``lanes``: one person's requests in order), judges each answer (``verdicts``) and
records every outcome in the ``journal``, which writes them in bulk, the HTTP exchanges
once each.

Fairness: an unanswered or rate-limited request pauses the integration — every worker's
runs for it wait — for a short back-off that grows only while the vendor keeps failing
(``schedule.backoff_until``), so fresh events go out soon after the vendor recovers,
however deep in their own schedule the deliveries that failed are. A run stops after
``DELIVERY_TASK_TIME_BUDGET`` seconds and hands what is left to a new task, so a slow
integration cannot hold a worker.

The run knows nothing of the task queue: whoever starts it passes a ``Queue`` to enqueue
follow-up work with (``tasks.py``).
"""

import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import DatabaseError

from integrations.delivery import lanes, leases, planning, schedule, throttle
from integrations.delivery.http import HTTPExchange, send
from integrations.delivery.journal import Journal
from integrations.delivery.redact import Redactor
from integrations.delivery.verdicts import Verdict, judge
from integrations.destinations.base import OutboundRequest, Plan
from integrations.destinations.context import Rules
from integrations.destinations.values import EventData
from integrations.models import Delivery, Dispatch, Event, Exchange, Integration, Outcome, Trigger

log = logging.getLogger(__name__)

CHUNK_SIZE = 500
# The Event columns an EventData holds, by the dataclass's field names.
EVENT_FIELDS = tuple(field.name for field in dataclasses.fields(EventData))
FLUSH_EVERY = 100
FLUSH_INTERVAL = 1.0
INTERRUPTED = (
    "Interrupted: the worker sending this attempt stopped before it finished (its lease "
    "expired); the request may have reached the vendor."
)
DISABLED = "Not sent: the integration is disabled."


class Queue(Protocol):
    """How a run hands on the work it leaves (implemented in ``tasks.py``)."""

    def retries(
        self, integration_id: int, delivery_ids: Sequence[int], run_after: dt.datetime | None
    ) -> None: ...

    def dispatches(
        self,
        integration_id: int,
        dispatch_ids: Sequence[int],
        run_after: dt.datetime | None = None,
        trigger: str = Trigger.SCHEDULED,
        *,
        events: Sequence[int] | None = None,
    ) -> None: ...

    def deliveries(
        self, integration_id: int, delivery_ids: Sequence[int], trigger: str
    ) -> None: ...


@dataclass
class Item:
    """One event to attempt: a first attempt (from a dispatch) or another attempt."""

    delivery: Delivery
    event: EventData
    received_at: dt.datetime
    # For a first attempt: its dispatch and position there.
    origin: tuple[Dispatch, int] | None = None


@dataclass
class PlannedChunk:
    """A chunk's items and the requests planned for them."""

    items: list[Item]
    requests: list[OutboundRequest]

    def unsent(self) -> list[Item]:
        """The items its requests carry, as if none had been sent."""
        return [self.items[i] for request in self.requests for i in request.covers]


class ChunkReader:
    """The events of a run's claimed dispatches, in order, ``chunk_size`` at a time
    whatever dispatch each comes from: routing passes make small dispatches."""

    def __init__(self, run: "Run", claimed: Sequence[Dispatch]) -> None:
        self.size = run.chunk_size()
        self.pieces = (
            piece
            for dispatch in claimed
            for piece in run.dispatch_chunks(dispatch, dispatch.leased_until is not None)
        )
        # Read, not yet in a chunk.
        self.pending: list[Item] = []

    def next_chunk(self) -> list[Item]:
        for piece in self.pieces:
            self.pending += piece
            if len(self.pending) >= self.size:
                break
        chunk, self.pending = self.pending[: self.size], self.pending[self.size :]
        return chunk


def person_keys(event: EventData) -> set[str]:
    """The ids naming the person an event concerns (an alias names two)."""
    previous = event.payload.get("previousId") if event.type == "alias" else None
    return {str(value) for value in (event.user_id, event.anonymous_id, previous) if value}


class Run:
    """One task's work on some events of one integration."""

    def __init__(self, integration: Integration, trigger: str, queue: Queue) -> None:
        self.integration = integration
        self.trigger = trigger
        self.queue = queue
        self.destination = integration.destination
        self.config = planning.integration_config(integration)
        self.rate = self.destination.rate_limit(integration.settings)
        self.redactor = Redactor.for_integration(integration)
        self.journal = Journal(integration, self.redactor, queue.retries)
        self.lease_token = uuid.uuid4()
        self.rules: Rules | None = None
        self.last_flush = time.monotonic()
        # Set when the vendor did not answer or rate limited us: the rest waits until then.
        self.deferred_until: dt.datetime | None = None
        self.deferral_reason = ""
        if trigger == Trigger.SCHEDULED and integration.is_deferred():
            self.deferred_until = integration.deferred_until
            self.deferral_reason = integration.deferral_reason
        self.deadline = time.monotonic() + settings.DELIVERY_TASK_TIME_BUDGET
        # The deliveries this run holds a lease on (another attempt's run).
        self.held: list[int] = []
        # Interrupted events this run sends again: leased to it until their outcome.
        self.resent: list[Delivery] = []

    @property
    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    @property
    def halted(self) -> bool:
        return self.deferred_until is not None or self.out_of_time

    # -- recording --------------------------------------------------------------------

    def record(
        self,
        item: Item,
        verdict: Verdict,
        *,
        retry_at: dt.datetime | None = None,
        exchange: Exchange | None = None,
        started_at: dt.datetime | None = None,
    ) -> None:
        self.journal.record(
            item.delivery,
            verdict,
            self.trigger,
            event_type=item.event.type,
            retry_at=retry_at,
            exchange=exchange,
            origin=item.origin,
            started_at=started_at,
        )
        item.origin = None  # recorded: later attempts in this run are not first ones

    def retry_later(self, items: Sequence[Item], reason: str) -> None:
        """Record a failure of ours (not the vendor's) as a visible, scheduled retry."""
        for item in items:
            attempt = item.delivery.scheduled_attempt_count + 1
            self.record(
                item, Verdict(Outcome.RETRY, reason), retry_at=schedule.next_attempt_at(attempt)
            )

    def interrupted(self, item: Item, since: dt.datetime | None) -> None:
        """Log the attempt a worker that stopped was making (it may have been sent)."""
        started = since - dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS) if since else None
        self.journal.record(
            item.delivery,
            Verdict(Outcome.INTERRUPTED, INTERRUPTED),
            Trigger.SCHEDULED,
            event_type=item.event.type,
            origin=item.origin,
            started_at=started,
        )
        # Sent again by this run: held by its lease meanwhile, not handed out as a retry
        # should the interrupted attempt be written first.
        item.delivery.leased_until = leases.expiry()
        item.delivery.lease_token = self.lease_token
        self.resent.append(item.delivery)
        item.origin = None

    def maybe_flush(self) -> None:
        if (
            self.journal.pending >= FLUSH_EVERY
            or time.monotonic() - self.last_flush > FLUSH_INTERVAL
        ):
            self.flush()

    def flush(self) -> None:
        self.journal.flush()
        self.last_flush = time.monotonic()

    # -- taking work ------------------------------------------------------------------

    def chunk_size(self) -> int:
        return max(CHUNK_SIZE, self.destination.batch_limit(self.integration.settings))

    def dispatch_chunks(self, dispatch: Dispatch, expired: bool) -> Iterator[list[Item]]:
        """The dispatch's events still to attempt, a chunk at a time, as new deliveries.

        Events a stopped worker, or an earlier run, already recorded are skipped; those a
        stopped worker had handed to requests are logged as interrupted first.
        """
        self.journal.track(dispatch)
        started = dispatch.started
        position = dispatch.done
        while position < dispatch.size:
            end = min(position + self.chunk_size(), dispatch.size)
            ids = dispatch.event_ids[position:end]
            positions = dict(zip(ids, range(position, end), strict=True))
            recorded = self._recorded(dispatch, ids) if dispatch.taken else set()
            events = self._events(ids)
            if end > started:
                Dispatch.objects.filter(pk=dispatch.pk).update(started=end)
            items = []
            for event_id in ids:
                at = positions[event_id]
                event = events.get(event_id)
                if event_id in recorded or event is None:  # recorded, or pruned since
                    self.journal.progress[dispatch.pk].recorded.add(at)
                    continue
                item = self._new_item(event, dispatch, at)
                if expired and at < started:
                    self.interrupted(item, dispatch.leased_until)
                items.append(item)
            yield items
            position = end

    def _recorded(self, dispatch: Dispatch, ids: Sequence[str]) -> set[str]:
        """Which of these events already have this dispatch's delivery."""
        rows = Delivery.objects.filter(
            event_id__in=ids,
            integration=self.integration,
            origin=dispatch.origin,
            created_at=dispatch.created_at,
        ).values_list("event_id", flat=True)
        return {str(pk) for pk in rows}

    @staticmethod
    def _events(ids: Sequence[str]) -> dict[str, tuple[uuid.UUID, EventData, dt.datetime]]:
        """The events, by id, as their key, plain values and the time each was received
        (no model instances: thousands are read per second)."""
        rows = Event.objects.filter(pk__in=ids).values_list("pk", "received_at", *EVENT_FIELDS)
        return {
            str(pk): (pk, EventData(**dict(zip(EVENT_FIELDS, values, strict=True))), received_at)
            for pk, received_at, *values in rows
        }

    def _new_item(
        self, event: tuple[uuid.UUID, EventData, dt.datetime], dispatch: Dispatch, at: int
    ) -> Item:
        event_id, data, received_at = event
        delivery = Delivery(
            event_id=event_id,
            integration_id=self.integration.pk,
            origin=dispatch.origin,
            status="",
            attempt_count=0,
            created_at=dispatch.created_at,
        )
        return Item(delivery, data, received_at, (dispatch, at))

    def retry_items(self, deliveries: Sequence[Delivery]) -> list[Item]:
        items = []
        for delivery in deliveries:
            item = Item(delivery, planning.event_data(delivery.event), delivery.event.received_at)
            if delivery.leased_until is not None:  # held by a worker that stopped
                self.interrupted(item, delivery.leased_until)
            items.append(item)
        return items

    # -- sending ----------------------------------------------------------------------

    def plan(self, items: Sequence[Item]) -> Plan | None:
        try:
            if self.rules is None:
                self.rules = planning.rules(self.integration)
            events = [item.event for item in items]
            context = planning.plan_context(self.integration, events, self.rules)
            return self.destination.plan(self.config, events, context)
        except DatabaseError:
            raise  # the database, not the plan: the worker rides it out (delivery/worker.py)
        except Exception as exc:
            # A bug in a translation must not lose events: they are retried, visibly.
            log.exception("planning requests for integration %s failed", self.integration.pk)
            self.retry_later(items, f"internal error while building the request: {exc!r}")
            return None

    def deliver_chunk(self, items: list[Item]) -> list[Item]:
        """Attempt a chunk; return the items left unsent (out of time, or deferred)."""
        chunk = self.prepare_chunk(items)
        return self.send_all(chunk.requests, items)

    def prepare_chunk(self, items: list[Item]) -> PlannedChunk:
        """Plan a chunk's requests, and record the events that need none (or cannot
        have one)."""
        if not self.integration.enabled:
            for item in items:
                self.record(item, Verdict(Outcome.FAILED, DISABLED))
            return PlannedChunk(items, [])
        plan = self.plan(items)
        if plan is None:
            return PlannedChunk(items, [])
        for index, reason in plan.failures.items():
            self.record(items[index], Verdict(Outcome.FAILED, reason))
        for index, reason in plan.skipped.items():
            self.record(items[index], Verdict(Outcome.DELIVERED, f"Nothing to send: {reason}"))
        covered = {i for r in plan.requests for i in r.covers} | set(plan.failures)
        for index in set(range(len(items))) - covered - set(plan.skipped):
            # A planner bug must not leave an event unrecorded.
            log.error("the %s plan left event %s out", self.destination.kind, index)
            self.retry_later(
                [items[index]], "internal error: no request was planned for this event"
            )
        return PlannedChunk(items, plan.requests)

    def send_all(
        self,
        requests: Sequence[OutboundRequest],
        items: list[Item],
        meanwhile: Callable[[], None] | None = None,
    ) -> list[Item]:
        """Send a plan's requests (side by side, see ``lanes``) and record their outcomes.

        Stops starting requests when the run is out of time or deferred; the items of
        the requests not started are returned. ``meanwhile`` runs in this thread once
        the requests are under way.
        """
        halted = threading.Event()

        def proceed() -> bool:
            return not halted.is_set() and not self.out_of_time

        def work(index: int) -> tuple[list[HTTPExchange], Verdict, list[Exchange]]:
            sent, verdict = self.exchange_all_steps(requests[index])
            if self.defers(sent[-1]):
                halted.set()
            return sent, verdict, self.journal.rows(sent)

        def keys(index: int) -> set[str]:
            return {key for i in requests[index].covers for key in person_keys(items[i].event)}

        carried = [[items[i] for i in request.covers] for request in requests]
        not_started: list[Item] = []
        tick = 1.0
        margin = settings.DELIVERY_CONNECT_TIMEOUT + settings.DELIVERY_READ_TIMEOUT + tick
        lease_ends = time.monotonic() + settings.DELIVERY_LEASE_SECONDS
        outstanding = len(requests)
        sending = lanes.run(
            len(requests), keys, work, proceed, self.concurrency, tick, started=meanwhile
        )
        for outcome in sending:
            if outcome is None:  # nothing finished for a while: write what has
                self.maybe_flush()
            else:
                outstanding -= 1
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
                self.maybe_flush()
            if outstanding and time.monotonic() + margin > lease_ends:
                self.renew()
                lease_ends = time.monotonic() + settings.DELIVERY_LEASE_SECONDS
        return not_started

    @property
    def concurrency(self) -> int:
        """How many requests go out at once. A rate-limited vendor takes its slots from
        the database, which only this thread may use: its requests go one by one."""
        if self.rate:
            return 1
        return settings.DELIVERY_CONCURRENCY

    def defers(self, exchange: HTTPExchange) -> bool:
        """An unanswered or rate-limited scheduled request makes the integration wait."""
        return self.trigger == Trigger.SCHEDULED and (
            exchange.unreachable or exchange.status == 429
        )

    def send(self, request: OutboundRequest) -> HTTPExchange:
        if self.rate:
            throttle.wait_for_slot(self.integration.pk, self.rate)
        return send(request)

    def exchange_all_steps(self, request: OutboundRequest) -> tuple[list[HTTPExchange], Verdict]:
        """Send a request and the follow-ups its answers call for (lookup, then write)."""
        sent = [self.send(request)]
        verdict = judge(sent[-1])
        while verdict.delivered:
            last = sent[-1]
            try:
                follow_up = self.destination.follow_up(
                    self.config, last.request, last.status or 0, last.body
                )
            except Exception as exc:
                log.exception("follow-up for integration %s failed", self.integration.pk)
                verdict = Verdict(
                    Outcome.RETRY, f"internal error building the next request: {exc!r}"
                )
                break
            if follow_up is None:
                break
            sent.append(self.send(follow_up))
            verdict = judge(sent[-1])
        return sent, verdict

    def record_exchange(
        self,
        request: OutboundRequest,
        carried: list[Item],
        sent: list[HTTPExchange],
        verdict: Verdict,
        rows: list[Exchange],
    ) -> None:
        final = sent[-1]
        head = self.journal.exchanges(rows, verdict)
        partial = {}
        if verdict.delivered:
            if final.status is not None:  # always so: only an answer (a 2xx) delivers
                partial = self.destination.partial_failures(final.request, final.status, final.body)
            if self.integration.backoff_failures or self.integration.deferred_until:
                self.journal.back_off(0, None, "")
                self.integration.backoff_failures, self.integration.deferred_until = 0, None
        if verdict.outcome == Outcome.GONE:
            self.journal.gone(verdict.reason)
        retry_after = schedule.retry_after_seconds(final.headers.get("Retry-After"))
        if self.defers(final) and self.deferred_until is None:
            self.defer(final, verdict, retry_after)
        # Deliveries that failed together retry together (one task, one jittered time).
        retry_at = schedule.next_attempt_at(
            max(item.delivery.scheduled_attempt_count for item in carried) + 1, retry_after
        )
        if retry_at is not None and self.deferred_until is not None:
            retry_at = max(retry_at, self.deferred_until)
        for index, item in zip(request.covers, carried, strict=True):
            own = verdict
            if index in partial:
                failure = partial[index]
                own = Verdict(Outcome.RETRY if failure.retry else Outcome.FAILED, failure.reason)
            self.record(item, own, retry_at=retry_at, exchange=head)

    def defer(self, exchange: HTTPExchange, verdict: Verdict, retry_after: float | None) -> None:
        """The vendor is down or asks us to slow down: the integration backs off."""
        failures = self.integration.backoff_failures + 1
        self.deferred_until = schedule.backoff_until(failures, retry_after)
        what = "went unanswered" if exchange.unreachable else "was rate limited (429)"
        self.deferral_reason = self.redactor.text(
            f"Deferred: an earlier request to this integration {what} ({verdict.reason})"
        )
        self.integration.backoff_failures = failures
        self.journal.back_off(failures, self.deferred_until, self.deferral_reason)

    def renew(self) -> None:
        # Resent deliveries once written, until their outcome clears the lease.
        resent = [d.pk for d in self.resent if d.pk is not None and d.lease_token is not None]
        leases.renew(list(self.journal.progress), [*self.held, *resent], self.lease_token)

    # -- the two kinds of run ---------------------------------------------------------

    def deliver_dispatches(self, dispatch_ids: Sequence[int]) -> None:
        if self.deferred_until is not None:
            self.defer_dispatches(dispatch_ids)
            return
        claimed = leases.claim_dispatches(
            self.integration, dispatch_ids, self.lease_token, self.trigger
        )
        # Those listed but not claimed are another worker's, or not due: left alone.
        given_back: list[Dispatch] = []
        try:
            unsent = self.deliver_items(claimed)
            if self.halted:
                self.hold_back(unsent)
                for dispatch in claimed:
                    # Every one with events left; one finished and written is gone.
                    if dispatch.pk in self.journal.progress or dispatch.done < dispatch.size:
                        self.journal.track(dispatch)
                        self.release(dispatch)
                        given_back.append(dispatch)
        finally:
            self.flush()
        self.hand_on([d for d in given_back if d.done < d.size])

    def deliver_items(self, claimed: Sequence[Dispatch]) -> list[Item]:
        """Attempt the claimed dispatches' events, in order, a chunk at a time; return
        those read but not sent once halted.

        The next chunk is read and planned while the current one's requests are out, so
        lanes do not wait for it at each chunk's end.
        """
        reader = ChunkReader(self, claimed)
        following: list[PlannedChunk] = []

        def read_ahead() -> None:
            if not self.halted and (chunk := reader.next_chunk()):
                following.append(self.prepare_chunk(chunk))

        read_ahead()
        while following:
            current = following.pop()
            unsent = self.send_all(current.requests, current.items, read_ahead)
            if self.halted:
                return unsent + [item for c in following for item in c.unsent()] + reader.pending
        return reader.pending

    def hold_back(self, items: Sequence[Item]) -> None:
        """Items not sent: a first attempt stays in its dispatch; one that a stopped
        worker's attempt was logged for waits as a retry (until the deferral ends)."""
        interrupted = [item.delivery for item in items if item.origin is None]
        self.journal.release_deliveries(interrupted, self.deferred_until, self.deferral_reason)

    def release(self, dispatch: Dispatch) -> None:
        self.journal.release_dispatch(dispatch, self.deferred_until, self.deferral_reason)

    def defer_dispatches(self, ids: Sequence[int]) -> None:
        """Dispatches this run cannot take now wait as long as the integration does."""
        Dispatch.objects.filter(pk__in=ids, next_attempt_at__lt=self.deferred_until).update(
            next_attempt_at=self.deferred_until, waiting_reason=self.deferral_reason
        )
        self.queue.dispatches(self.integration.pk, ids, self.deferred_until)

    def hand_on(self, dispatches: Sequence[Dispatch]) -> None:
        """Dispatches left for later get tasks: when the deferral ends, or now."""
        if dispatches:
            self.queue.dispatches(
                self.integration.pk,
                [d.pk for d in dispatches],
                self.deferred_until,
                self.trigger,
                events=[d.size - d.done for d in dispatches],
            )

    def deliver_deliveries(self, delivery_ids: Sequence[int]) -> None:
        if self.deferred_until is not None:
            self.defer_deliveries(delivery_ids)
            return
        remaining = list(delivery_ids)
        try:
            while remaining and not self.halted:
                chunk, remaining = remaining[: self.chunk_size()], remaining[self.chunk_size() :]
                claimed = leases.claim_deliveries(
                    self.integration, chunk, self.lease_token, self.trigger
                )
                self.held = [d.pk for d in claimed]
                unsent = self.deliver_chunk(self.retry_items(claimed))
                if unsent:
                    deliveries = [item.delivery for item in unsent]
                    self.journal.release_deliveries(
                        deliveries, self.deferred_until, self.deferral_reason
                    )
                    if self.deferred_until is None:
                        remaining = [d.pk for d in deliveries] + remaining
        finally:
            self.flush()
        if remaining and self.deferred_until is not None:
            self.defer_deliveries(remaining)
        elif remaining:
            self.queue.deliveries(self.integration.pk, remaining, self.trigger)

    def defer_deliveries(self, ids: Sequence[int]) -> None:
        """Deliveries this run never claimed wait as long as the integration does."""
        Delivery.objects.filter(
            pk__in=ids, next_attempt_at__lt=self.deferred_until
        ).waiting().update(next_attempt_at=self.deferred_until, last_error=self.deferral_reason)
        self.queue.retries(self.integration.pk, ids, self.deferred_until)


def deliver_dispatches(
    integration_id: int, dispatch_ids: Sequence[int], trigger: str, queue: Queue
) -> None:
    """First attempts of the events of these dispatches (those due when claimed)."""
    integration = _active(integration_id, trigger)
    if integration is not None:
        Run(integration, trigger, queue).deliver_dispatches(dispatch_ids)


def deliver_deliveries(
    integration_id: int, delivery_ids: Sequence[int], trigger: str, queue: Queue
) -> None:
    """Another attempt of these deliveries (those still due, or failed for a manual one)."""
    integration = _active(integration_id, trigger)
    if integration is not None:
        Run(integration, trigger, queue).deliver_deliveries(delivery_ids)


def _active(integration_id: int, trigger: str) -> Integration | None:
    """The integration, unless it is gone (its work went with it) or paused (resuming
    enqueues what waited); test sends go through a pause."""
    integration = Integration.objects.filter(pk=integration_id).first()
    if integration is None or (integration.paused and trigger != Trigger.TEST):
        return None
    return integration
