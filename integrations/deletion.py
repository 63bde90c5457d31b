"""Deletion and suppression requests: a user's data deleted at every vendor that can.

A request comes through the configuration API (``deletion-requests``) or as a ``delete``
notice of Segment's classic Webhooks destination (``sources/delete_notice.py``). It is
kept as a ``DeletionRequest`` (who asked, when, the user, the action: the record), put
in the workspace's audit trail, and carried out through the delivery pipeline:

* it is stored as an **internal event** of type ``delete`` or ``suppress`` (the
  ``Event`` the deliveries point to), in one transaction with the request, its targets,
  one ``Dispatch`` per target and their tasks, so a 2xx means it is durable, and from
  then on it gets what every event gets: retries on the schedule, back-off, the
  exchange log, per-integration outcomes, manual retries;
* its **targets** are the integrations that take that call, decided by the router's own
  rule (``Router.destinations``): the destination's ``call_types`` (Customer.io, and
  ChartMogul — its Segment-source mode only to skip it with the reason), the
  ``integrations`` object, the integration's event rules (a ``delete`` switched off in
  the event grid is not sent there). Webhook, Segment, ChurnZero and Slack do not take
  these calls, so they never see them.

Why dispatch here rather than through a ``RoutingJob``: the request must say, when it is
answered, which integrations it went to (its targets are written with it); the router's
decision is the same one, taken at once for one event. A replay of a time range passes
its deletion events through the same rule, so a replay re-applies a deletion where it
was applied.

A target's status follows its delivery (``refresh``): waiting (in its dispatch),
retrying, done, failed, or *not supported* (the vendor has no way to delete: delivered
with nothing sent, and the reason). The request is done when every target is; it needs
attention when one failed or was not supported. Outcomes are refreshed when the worker
records an exchange of one of the integrations, and whenever requests are read.

Nothing is deleted from the console itself: events and the profile store follow the
retention of ``prune_events``. ``suppress`` means what the vendors make of it
(Customer.io deletes the person and refuses their identifier from then on); the console
keeps accepting and forwarding that user's events.
"""

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations import audit, bulk_insert, event_search, ingest
from integrations.delivery.routing import Routable, Router
from integrations.delivery.tasks import enqueue_dispatches
from integrations.models import (
    DeletionRequest,
    DeletionTarget,
    Delivery,
    Dispatch,
    Event,
    Integration,
    Origin,
    Source,
    Workspace,
)
from integrations.sources.segment_spec import (
    MAX_ID_LENGTH,
    MAX_MESSAGE_ID_LENGTH,
    MessageError,
    isoformat,
    parse_timestamp,
)

log = logging.getLogger(__name__)

Action = DeletionRequest.Action
Status = DeletionTarget.Status
State = DeletionRequest.State
#: The types of a deletion request's internal event (one per action).
DELETION_TYPES = frozenset({Event.Type.DELETE, Event.Type.SUPPRESS})
#: What the engine writes for a delivery that needed no request (see ``engine``).
NOTHING_TO_SEND = "Nothing to send: "
#: Requests whose outcome can still change.
OPEN_STATES = frozenset({State.IN_PROGRESS, State.NEEDS_ATTENTION})


def deletion_message(
    action: str,
    user_id: str,
    *,
    received_at: dt.datetime,
    message_id: str = "",
    timestamp: dt.datetime | None = None,
    context: Mapping[str, Any] | None = None,
    integrations: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The internal event of a request, normalised as ingest stores messages."""
    return {
        "type": action,
        "userId": user_id,
        "anonymousId": None,
        "messageId": message_id or f"deletion-{uuid.uuid4()}",
        "context": dict(context or {}),
        "integrations": dict(integrations or {}),
        "receivedAt": isoformat(received_at),
        "timestamp": isoformat(timestamp or received_at),
    }


def notice_message(raw: Mapping[str, Any], received_at: dt.datetime) -> dict[str, Any]:
    """The internal event of a Segment Webhooks ``delete`` notice (``{"type": "delete",
    "userId", "timestamp", "messageId"?, "context"?}``); raises ``MessageError``.

    A notice without ``messageId`` gets one derived from its user and timestamp, so the
    same notice sent again (Segment retries for hours) is the same request.
    """
    user_id = raw.get("userId")
    if isinstance(user_id, bool) or not isinstance(user_id, str | int) or user_id == "":
        raise MessageError("missing_user_id", "a delete notice needs a userId")
    user_id = str(user_id)
    if len(user_id) > MAX_ID_LENGTH:
        raise MessageError(
            "identifier_too_long", f"userId is longer than {MAX_ID_LENGTH} characters"
        )
    timestamp = parse_timestamp(raw.get("timestamp"), "timestamp")
    message_id = raw.get("messageId")
    if message_id in (None, ""):
        seed = f"{user_id}\n{raw.get('timestamp') or ''}"
        message_id = "delete-" + hashlib.sha256(seed.encode()).hexdigest()[:32]
    elif isinstance(message_id, bool) or not isinstance(message_id, str | int):
        raise MessageError("invalid_message_id", "messageId must be a string")
    message_id = str(message_id)
    if len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise MessageError(
            "message_id_too_long",
            f"messageId is longer than {MAX_MESSAGE_ID_LENGTH} characters",
        )
    for field in ("context", "integrations"):
        if raw.get(field) is not None and not isinstance(raw[field], Mapping):
            raise MessageError(f"invalid_{field}", f"{field} must be an object")
    return deletion_message(
        Action.DELETE,
        user_id,
        received_at=received_at,
        message_id=message_id,
        timestamp=timestamp,
        context=raw.get("context"),
        integrations=raw.get("integrations"),
    )


def submit(
    workspace: Workspace,
    message: Mapping[str, Any],
    *,
    via: str,
    requested_by: Any = None,
    source: Source | None = None,
) -> DeletionRequest | None:
    """Store a request and dispatch it to the integrations that take it, in one
    transaction; None when its ``messageId`` was already accepted in the workspace
    (the same notice again: acknowledged, not repeated)."""
    event = ingest.event_from_message(dict(message), workspace_id=workspace.pk, source=source)
    user = requested_by if getattr(requested_by, "is_authenticated", False) else None
    with transaction.atomic():
        if not bulk_insert.insert([event], conflict="(workspace_id, message_id)"):
            return None
        event_search.index([event.pk])
        targets = Router.for_workspace(workspace.pk).destinations(
            Routable(event.type, event.rule_name, message.get("integrations"))
        )
        deletion = DeletionRequest.objects.create(
            workspace=workspace,
            user_id=event.user_id,
            action=event.type,
            via=via,
            requested_by=user,
            requested_by_name=user.get_username() if user is not None else "",
            source=source,
            message_id=event.message_id,
            event=event,
            state=State.IN_PROGRESS if targets else State.NO_INTEGRATION,
            settled_at=None if targets else timezone.now(),
        )
        DeletionTarget.objects.bulk_create(
            DeletionTarget(
                deletion=deletion,
                integration=integration,
                name=integration.name,
                kind=integration.kind,
            )
            for integration in targets
        )
        dispatches = Dispatch.objects.bulk_create(
            Dispatch(
                integration=integration,
                origin=Origin.LIVE,
                event_ids=[str(event.pk)],
                size=1,
                created_at=event.received_at,
                next_attempt_at=event.received_at,
            )
            for integration in targets
        )
        for dispatch in dispatches:
            enqueue_dispatches(dispatch.integration_id, [dispatch.pk])
        _record(workspace, deletion, len(targets), user)
    return deletion


def _record(workspace: Workspace, deletion: DeletionRequest, targets: int, user: Any) -> None:
    """The request in the workspace's audit trail: who (the user who asked, none for a
    Segment notice), the action, the user id, and how many integrations it went to."""
    via = "API" if deletion.via == DeletionRequest.Via.API else "Segment notice"
    note = (
        f"Deletion #{deletion.pk} ({via}): {deletion.action} user "
        f"{deletion.user_id!r} at {targets} integration{'s' if targets != 1 else ''}"
    )
    Workspace.history.bulk_history_create(
        [workspace], update=True, default_user=user, default_change_reason=audit.fit_reason(note)
    )


# -- outcomes ---------------------------------------------------------------------------


def target_status(delivery: Delivery | None) -> tuple[str, str]:
    """A target's status and detail from its delivery (None: not attempted yet)."""
    if delivery is None:
        return Status.WAITING, ""
    if delivery.status == Delivery.Status.RETRYING:
        return Status.RETRYING, delivery.last_error
    if delivery.status == Delivery.Status.FAILED:
        return Status.FAILED, delivery.last_error
    if delivery.last_error.startswith(NOTHING_TO_SEND):
        return Status.NOT_SUPPORTED, delivery.last_error.removeprefix(NOTHING_TO_SEND)
    return Status.DONE, ""


def request_state(statuses: Iterable[str]) -> str:
    statuses = set(statuses)
    if not statuses:
        return State.NO_INTEGRATION
    if statuses & {Status.WAITING, Status.RETRYING}:
        return State.IN_PROGRESS
    if statuses == {Status.DONE}:
        return State.DONE
    return State.NEEDS_ATTENTION


def refresh(deletions: Sequence[DeletionRequest]) -> None:
    """Bring the open requests among these up to date with their deliveries (a few
    queries, whatever their number)."""
    pending = [d for d in deletions if d.event_id is not None and d.state in OPEN_STATES]
    if not pending:
        return
    # Keyed as the requests and targets name them (an event or integration since deleted
    # is None there, and matches nothing).
    deliveries: dict[tuple[uuid.UUID | None, int | None], Delivery] = {
        (d.event_id, d.integration_id): d
        for d in Delivery.objects.filter(
            event_id__in=[d.event_id for d in pending], origin=Origin.LIVE
        ).only("event_id", "integration_id", "status", "last_error")
    }
    now = timezone.now()
    changed_targets: list[DeletionTarget] = []
    changed: list[DeletionRequest] = []
    for deletion in pending:
        targets = list(deletion.targets.all())
        for target in targets:
            status, detail = target_status(
                deliveries.get((deletion.event_id, target.integration_id))
            )
            if (status, detail) != (target.status, target.detail):
                target.status, target.detail, target.updated_at = status, detail, now
                changed_targets.append(target)
        state = request_state(t.status for t in targets)
        if state != deletion.state:
            deletion.state = state
            deletion.settled_at = None if state == State.IN_PROGRESS else now
            changed.append(deletion)
    with transaction.atomic():
        DeletionTarget.objects.bulk_update(changed_targets, ["status", "detail", "updated_at"])
        DeletionRequest.objects.bulk_update(changed, ["state", "settled_at"])


def refresh_for(integration: Integration) -> None:
    """Refresh the open requests with a target at this integration."""
    open_requests = (
        DeletionRequest.objects.open()
        .filter(workspace_id=integration.workspace_id, targets__integration=integration)
        .distinct()
        .prefetch_related("targets")
    )
    refresh(list(open_requests))


def on_exchanges_recorded(
    sender: Any, integration: Integration, event_types: frozenset[str], **kwargs: Any
) -> None:
    """The ``exchanges_recorded`` receiver: the deletion outcomes of that integration are
    refreshed when deletion requests were among what was written; never raises (the
    worker's work is done)."""
    if not event_types & DELETION_TYPES:
        return
    try:
        refresh_for(integration)
    except Exception:
        log.exception("refreshing deletion requests for integration %s failed", integration.pk)
