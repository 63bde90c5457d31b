"""Validation and normalisation of messages in the Segment spec.

The server side of what Segment's tracking API does to a message before storing it:
fills ``messageId``, sets ``receivedAt``, corrects ``timestamp`` for client clock skew
with ``sentAt``, and merges a batch's ``context`` and ``integrations`` into each message.

Every timestamp a message gives (``timestamp``, ``originalTimestamp``, ``sentAt``) and the
clock-skew-corrected ``timestamp`` must lie between ``MIN_TIMESTAMP`` and ``MAX_TIMESTAMP``
(years 1900 to 2199, UTC); a message outside is refused (``invalid_timestamp``). Within
that range every part of the stack reads and writes the value: Python's ``datetime``
(years 1 to 9999) at any UTC offset (at most 24 h) and after any skew correction (at most
300 years, so ``receivedAt`` minus it stays in range), ISO 8601 with a four-digit year,
psycopg, PostgreSQL and SQLite, JavaScript's ``Date``, and vendors' unix timestamps.
"""

import datetime as dt
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.utils.dateparse import parse_datetime

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_ID_LENGTH = 100
MAX_ID_LENGTH = 255
MAX_EVENT_NAME_LENGTH = 200
MIN_TIMESTAMP = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
MAX_TIMESTAMP = dt.datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
TIMESTAMP_RANGE = "years 1900 to 2199, UTC"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIN_UNIX_MILLIS = (MIN_TIMESTAMP - _EPOCH) // dt.timedelta(milliseconds=1)
_MAX_UNIX_MILLIS = (MAX_TIMESTAMP - _EPOCH) // dt.timedelta(milliseconds=1)


class MessageError(Exception):
    """A message that cannot be accepted, with a stable code and a readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BatchDefaults:
    """What a batch request carries for all its messages."""

    context: Mapping[str, Any] | None = None
    integrations: Mapping[str, Any] | None = None
    sent_at: str | None = None


def compact_json(value: Any) -> bytes:
    """JSON as JavaScript's ``JSON.stringify`` writes it (no spaces, UTF-8; a lone surrogate
    written as its three UTF-8 bytes, so that a message is measured before it is checked)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


def batch_defaults(body: Mapping[str, Any]) -> BatchDefaults:
    """The ``context``, ``integrations`` and ``sentAt`` a batch gives all its messages."""
    for field in ("context", "integrations"):
        if body.get(field) is not None and not isinstance(body[field], Mapping):
            raise MessageError(f"invalid_{field}", f"the batch's {field} must be an object")
    sent_at = body.get("sentAt")
    parse_timestamp(sent_at, "sentAt")
    return BatchDefaults(
        context=body.get("context"), integrations=body.get("integrations"), sent_at=sent_at
    )


def isoformat(value: dt.datetime) -> str:
    """ISO-8601 in UTC with milliseconds, as Segment writes timestamps (``value`` in range:
    see ``in_range``)."""
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The receivedAt of every message of a request is the same instant: formatted once.
_received_isoformat = lru_cache(maxsize=64)(isoformat)


def _shown(value: Any) -> str:
    """A client's value for an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _absent(value: Any) -> bool:
    return value is None or value == ""


def in_range(value: dt.datetime, field: str) -> dt.datetime:
    """``value``, or a ``MessageError`` when it lies outside the range every stored
    timestamp keeps to (comparing aware datetimes cannot overflow, converting them can)."""
    if not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:
        raise MessageError(
            "invalid_timestamp",
            f"{field} is outside the accepted range ({TIMESTAMP_RANGE}): {value.isoformat()}",
        )
    return value


def parse_timestamp(value: Any, field: str) -> dt.datetime | None:
    """An ISO-8601 date-time in the accepted range, in UTC (a time without an offset is
    UTC), None when absent, or a ``MessageError`` naming ``field``.

    In UTC because PostgreSQL takes offsets up to 15:59 only, where ISO 8601 and Python
    go up to 23:59."""
    if _absent(value):
        return None
    if not isinstance(value, str):
        raise MessageError(
            "invalid_timestamp", f"{field} must be an ISO-8601 date-time string: {_shown(value)}"
        )
    return _parsed_text(value, field)


# A batch's messages share their receivedAt and often their sentAt, and ingest reads again
# the timestamps that normalisation wrote: each text is parsed once.
@lru_cache(maxsize=4096)
def _parsed_text(value: str, field: str) -> dt.datetime:
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well-formed but impossible: 30 February, hour 25, a 24 h offset
        parsed = None
    if parsed is None:
        raise MessageError(
            "invalid_timestamp", f"{field} is not a valid ISO-8601 date-time: {_shown(value)}"
        )
    if parsed.tzinfo is None:
        return in_range(parsed.replace(tzinfo=dt.UTC), field)
    return in_range(parsed, field).astimezone(dt.UTC)


def from_unix_millis(value: int | float, field: str) -> dt.datetime:
    """The instant ``value`` milliseconds after the unix epoch, in the accepted range."""
    # Every comparison with NaN is false: NaN and the infinities are refused here too.
    if not _MIN_UNIX_MILLIS <= value <= _MAX_UNIX_MILLIS:
        raise MessageError(
            "invalid_timestamp",
            f"{field} is not a time in the accepted range ({TIMESTAMP_RANGE}) in milliseconds "
            f"since 1970: {_shown(value)}",
        )
    return _EPOCH + dt.timedelta(milliseconds=value)


def _identifier(message: dict[str, Any], field: str) -> str | None:
    """A user/group id as a string (Segment libraries stringify numbers), or None."""
    value = message.get(field)
    if value is None or value == "":
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, str | int | float)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise MessageError("invalid_identifier", f"{field} must be a string or a number")
    value = str(value)
    if len(value) > MAX_ID_LENGTH:
        raise MessageError(
            "identifier_too_long", f"{field} is longer than {MAX_ID_LENGTH} characters"
        )
    return value


def _merged(
    message: dict[str, Any], field: str, default: Mapping[str, Any] | None
) -> dict[str, Any]:
    own = message.get(field)
    if own is None:
        own = {}
    if not isinstance(own, Mapping):
        raise MessageError(f"invalid_{field}", f"{field} must be an object")
    return {**(default or {}), **own}


def normalize(
    raw: Any,
    *,
    received_at: dt.datetime,
    message_type: str | None = None,
    defaults: BatchDefaults | None = None,
    trust_timestamp: bool = False,
) -> dict[str, Any]:
    """Validate one message and return it normalised, or raise ``MessageError``.

    ``message_type`` is the call of a single-message endpoint (``/v1/track``); a batch
    message names its own. ``trust_timestamp`` keeps a ``timestamp`` that an upstream
    Segment already corrected (Segment's Webhooks destination).
    """
    if not isinstance(raw, Mapping):
        raise MessageError("invalid_message", "each message must be a JSON object")
    defaults = defaults or BatchDefaults()
    message = dict(raw)
    message.pop("writeKey", None)

    kind = message_type or message.get("type")
    if kind not in MESSAGE_TYPES:
        raise MessageError(
            "invalid_type",
            f"type must be one of {', '.join(MESSAGE_TYPES)} (got {_shown(kind)})",
        )
    message["type"] = kind

    user_id = _identifier(message, "userId")
    anonymous_id = _identifier(message, "anonymousId")
    message["userId"] = user_id
    message["anonymousId"] = anonymous_id
    if kind == "alias":
        previous_id = _identifier(message, "previousId")
        if previous_id is None or user_id is None:
            raise MessageError("missing_alias_ids", "alias needs both previousId and userId")
        message["previousId"] = previous_id
    elif user_id is None and anonymous_id is None:
        raise MessageError("no_user_anon_id", "a non-null userId or anonymousId is required")

    if kind == "track":
        name = message.get("event")
        if not isinstance(name, str) or not name.strip():
            raise MessageError("missing_event", "track needs an event name in event")
        if len(name) > MAX_EVENT_NAME_LENGTH:
            raise MessageError(
                "event_name_too_long", f"event is longer than {MAX_EVENT_NAME_LENGTH} characters"
            )
    # Every call stores a groupId it carries (the group call needs one).
    group_id = _identifier(message, "groupId")
    if group_id is not None:
        message["groupId"] = group_id
    elif kind == "group":
        raise MessageError("missing_group_id", "group needs a groupId")

    message_id = message.get("messageId")
    if message_id is None or message_id == "":
        message_id = str(uuid.uuid4())
    elif isinstance(message_id, bool) or not isinstance(message_id, str | int):
        raise MessageError("invalid_message_id", "messageId must be a string")
    message_id = str(message_id)
    if len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise MessageError(
            "message_id_too_long", f"messageId is longer than {MAX_MESSAGE_ID_LENGTH} characters"
        )
    message["messageId"] = message_id

    message["context"] = _merged(message, "context", defaults.context)
    message["integrations"] = _merged(message, "integrations", defaults.integrations)

    upstream_raw = message.get("timestamp")
    original_field, original_raw = "originalTimestamp", message.get("originalTimestamp")
    if _absent(original_raw):
        original_field, original_raw = "timestamp", upstream_raw
    original = parse_timestamp(original_raw, original_field)
    sent_raw = message.get("sentAt")
    if _absent(sent_raw):
        sent_raw = defaults.sent_at
    sent = parse_timestamp(sent_raw, "sentAt")
    upstream = (
        original if original_raw is upstream_raw else parse_timestamp(upstream_raw, "timestamp")
    )
    if trust_timestamp and upstream is not None:
        corrected = upstream
    elif original is not None and sent is not None:
        # Both in range: the skew is under 300 years, and the subtraction cannot overflow.
        corrected = in_range(
            received_at - (sent - original),
            f"timestamp corrected for clock skew (receivedAt - (sentAt - {original_field}))",
        )
    else:
        corrected = original or received_at
    if original is not None:
        message["originalTimestamp"] = original_raw
    if sent is not None:
        message["sentAt"] = sent_raw
    message["receivedAt"] = _received_isoformat(received_at)
    message["timestamp"] = isoformat(corrected)
    return message
