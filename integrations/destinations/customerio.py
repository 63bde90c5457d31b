"""Customer.io: the Track API v2 (``/api/v2/entity`` for one delivery, ``/api/v2/batch``
for several).

Every delivery becomes one v2 *person operation*; a request carrying one operation goes
to ``/api/v2/entity``, one carrying several to ``/api/v2/batch`` as ``{"batch": [...]}``.
The same operation is sent whether a delivery travels alone or in a batch, so a retry
sends exactly what the first attempt sent.

- identify → ``identify`` with the traits as attributes, after the property rules (some
  left out, some renamed); the person is the userId (or, without one, an ``email`` trait).
  The anonymousId goes along as the ``anonymous_id`` attribute, so Customer.io attaches
  the person's earlier anonymous events to them.
- track → ``event`` named by the event-name override (if any), the properties as data.
- Property rules (leave out, rename) apply to identify traits and to the properties of
  track, page and screen calls alike.
- page → ``page`` named by the page URL (``properties.url``, else ``context.page.url``,
  else the page name); screen → ``screen`` named by the screen name.
- track/page/screen without a userId → the same operation for ``{"anonymous_id": ...}``.
- alias → ``merge`` of ``previousId`` (secondary, deleted) into ``userId`` (primary). When
  ``previousId`` is the message's own anonymousId it names no Customer.io person (merge
  takes only id, email or cio_id): the userId is identified with that ``anonymous_id``
  instead, which is how Customer.io merges anonymous activity into a person.

- delete / suppress (a deletion request, ``integrations/deletion.py``) → the person
  operation ``delete`` (the person and their data) or ``suppress`` (deleted, and the
  identifier refused from then on), for the person-identifier mapping or the userId.

Identifiers: ``cio_<x>`` → ``{"cio_id": "x"}``, an email address → ``{"email": ...}``,
anything else → ``{"id": ...}`` (as Customer.io's own Segment destination does).

Timestamps are unix seconds: an operation's ``timestamp`` is the event's corrected
timestamp; in attributes and event data every string that is an ISO-8601 date or
date-time (``2024-05-01``, ``2024-05-01T10:00:00Z``, ``2024-05-01 10:00:00.123+02:00``;
no offset means UTC) becomes unix seconds, at any depth; other values are sent as they
are. The Segment trait ``createdAt`` is sent as Customer.io's reserved ``created_at``.

Events carry a stable ``id``, a ULID whose time part is the event's timestamp and whose
random part comes from a hash of the messageId: Customer.io deduplicates on it, so a
retried (or re-batched, or replayed) event is not counted twice.

Limits: an operation over 32 KB (or with an identifier over 150 bytes, or an event name
over 100 bytes) fails at once with the reason; a batch stays under 500 KB and 100
operations. A 207 answer to a batch names the operations that failed; only those
deliveries are marked (see ``partial_failures``).
"""

import base64
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError

from integrations.destinations.base import (
    Destination,
    OutboundRequest,
    PartialFailure,
    Plan,
    SettingField,
)
from integrations.destinations.context import PlanContext
from integrations.destinations.mapping import (
    MISSING,
    FieldKind,
    MappedField,
    MappingError,
    is_empty,
)
from integrations.destinations.scope import MessageScope
from integrations.destinations.values import EventData, IntegrationConfig

REGIONS = (("us", "United States"), ("eu", "European Union"))
HOSTS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}
ENTITY_PATH = "/api/v2/entity"
BATCH_PATH = "/api/v2/batch"
REGION_PATH = "/api/v1/accounts/region"
# The first object type of a Customer.io workspace.
DEFAULT_OBJECT_TYPE = "1"

# Customer.io's "32kb" per operation and "500kb" per batch, read as decimal kilobytes
# (the stricter reading). Bodies are ASCII JSON, so characters are bytes.
MAX_OPERATION_BYTES = 32_000
MAX_BATCH_BYTES = 500_000
MAX_BATCH_OPERATIONS = 100
MAX_IDENTIFIER_BYTES = 150
MAX_EVENT_NAME_BYTES = 100
BATCH_ENVELOPE = len('{"batch":[]}')

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ISO_DATE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Unsendable(Exception):
    """A delivery Customer.io cannot take as it is (configuration or data must change)."""


# -- values ---------------------------------------------------------------------------


def unix_seconds(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return math.floor(moment.timestamp())


def parse_iso_date(value: str) -> dt.datetime | None:
    """The moment an ISO-8601 date or date-time string names, or None for any other string."""
    match = ISO_DATE.match(value)
    if match is None:
        return None
    text = match["date"]
    if match["time"]:
        text += "T" + match["time"]
        if match["fraction"]:
            text += "." + match["fraction"][:6].ljust(6, "0")
        text += match["offset"] or ""
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:  # 2024-02-30, 25:00...
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def convert_dates(value: Any) -> Any:
    """``value`` with every ISO-8601 date/date-time string, at any depth, as unix seconds."""
    if isinstance(value, str):
        moment = parse_iso_date(value)
        return value if moment is None else unix_seconds(moment)
    if isinstance(value, Mapping):
        return {key: convert_dates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [convert_dates(item) for item in value]
    return value


def stable_event_id(message_id: str, timestamp: dt.datetime) -> str:
    """A ULID for an event: 48 bits of milliseconds since the epoch (the event's time),
    then 80 bits of SHA-256 of the messageId, in Crockford base32 (26 characters).

    The same message always gets the same id, so Customer.io deduplicates retries; ids
    still sort by event time, as ULIDs should.
    """
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=dt.UTC)
    millis = (timestamp - EPOCH) // dt.timedelta(milliseconds=1)
    millis = min(max(millis, 0), (1 << 48) - 1)
    entropy = int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:10], "big")
    value = (millis << 80) | entropy
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def person_identifiers(value: str) -> dict[str, str]:
    """How Customer.io should find a person named by a Segment user id."""
    if len(value.encode()) > MAX_IDENTIFIER_BYTES:
        raise Unsendable(
            f"the identifier {value[:40]!r}... is over Customer.io's limit of "
            f"{MAX_IDENTIFIER_BYTES} bytes"
        )
    if value.startswith("cio_") and len(value) > 4:
        return {"cio_id": value[4:]}
    if EMAIL.match(value):
        return {"email": value}
    return {"id": value}


# -- mapped fields --------------------------------------------------------------------

PERSON_CALLS = frozenset({"identify", "track", "page", "screen", "group", "delete", "suppress"})
# A deletion request's calls: Customer.io's person actions of the same names.
REMOVALS = frozenset({"delete", "suppress"})
PERSON_ID = MappedField(
    "person_id",
    "Person identifier",
    PERSON_CALLS,
    preset_note="the userId (cio_<id> as a cio_id, an email address as email, anything "
    "else as id); an identify without userId: its email trait; events without one: the "
    "anonymousId",
    help_text="Read the same way as the userId: cio_<id>, an email address, or an id. "
    "E.g. $profile.traits.email || userId.",
)
PERSON_ATTRIBUTES = MappedField(
    "person_attributes",
    "Person attributes",
    frozenset({"identify"}),
    preset="traits",
    kind=FieldKind.OBJECT,
    help_text="An object: createdAt is sent as created_at, ISO dates as unix seconds, and "
    "the anonymousId as anonymous_id.",
)
EVENT_DATA = MappedField(
    "event_data",
    "Event data",
    frozenset({"track", "page", "screen"}),
    preset="properties",
    kind=FieldKind.OBJECT,
    help_text="An object; ISO dates are sent as unix seconds.",
)
OBJECT_ID = MappedField(
    "object_id",
    "Object id",
    frozenset({"group"}),
    preset="groupId",
    kind=FieldKind.TEXT,
    help_text="The id of the Customer.io object (e.g. the company) a group call updates.",
)
OBJECT_ATTRIBUTES = MappedField(
    "object_attributes",
    "Object attributes",
    frozenset({"group"}),
    preset="traits",
    kind=FieldKind.OBJECT,
    help_text="An object: createdAt is sent as created_at, ISO dates as unix seconds.",
)
RELATIONSHIP_ATTRIBUTES = MappedField(
    "relationship_attributes",
    "Relationship attributes",
    frozenset({"group"}),
    kind=FieldKind.OBJECT,
    help_text="An object describing how the person relates to the object (e.g. "
    "traits.relationship holding a role); ISO dates are sent as unix seconds.",
)


# -- operations -----------------------------------------------------------------------


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def with_created_at(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes with Segment's ``createdAt`` as Customer.io's reserved ``created_at``,
    and ISO dates as unix seconds."""
    attributes = dict(attributes)
    if "createdAt" in attributes and "created_at" not in attributes:
        attributes["created_at"] = attributes.pop("createdAt")
    return convert_dates(attributes)


def validate_object_type_id(value: str) -> None:
    if not value.isdigit() or int(value) < 1:
        raise ValidationError("must be a Customer.io object type id: 1, 2, 3…")


class Operation:
    """Builds the v2 operation of one event from the integration's mappings."""

    def __init__(self, event: EventData, config: IntegrationConfig, context: PlanContext) -> None:
        self.event = event
        self.config = config
        self.rules = context.rules
        self.scope = MessageScope(event, context)

    def field(self, spec: MappedField) -> Any:
        return spec.value(self.config.mappings, self.scope)

    def mapped_person(self) -> dict[str, str] | None:
        """The person named by the person-identifier mapping; None when it is not mapped.
        Raises ``Unsendable`` when it is mapped but gives nothing usable."""
        if PERSON_ID.override(self.config.mappings) is None:
            return None
        value = self.field(PERSON_ID)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return person_identifiers(str(value))
        if value is MISSING:
            return {}
        raise Unsendable(
            "the person identifier mapping gives an object or a list, not an identifier"
        )

    def actor(self) -> dict[str, str]:
        """The person an event, page, screen or relationship belongs to: the mapped
        identifier (or the user), else the anonymous visitor."""
        person = self.mapped_person()
        if person is None and self.event.user_id:
            person = person_identifiers(self.event.user_id)
        if person:
            return person
        if self.event.anonymous_id:
            return {"anonymous_id": self.event.anonymous_id}
        if person is None:
            raise Unsendable("the message has neither a userId nor an anonymousId")
        raise Unsendable(
            "the person identifier mapping gives nothing for this message, and it has no "
            "anonymousId"
        )

    def build(self) -> dict[str, Any]:
        """The v2 operation; raises ``Unsendable`` with the reason."""
        event = self.event
        if event.type == "identify":
            return self.identify()
        if event.type == "track":
            return self.event_operation("event", self.rules.event_name(event), self.data())
        if event.type == "page":
            data = self.data()
            name = event.payload.get("name")
            if isinstance(name, str) and name and "name" not in data:
                data["name"] = name
            return self.event_operation("page", page_name(event), data)
        if event.type == "screen":
            return self.event_operation("screen", screen_name(event), self.data())
        if event.type == "group":
            return self.group()
        if event.type == "alias":
            return alias(event)
        if event.type in REMOVALS:
            return self.removal()
        raise Unsendable(f"Customer.io does not take {event.type} calls")

    def removal(self) -> dict[str, Any]:
        """``delete`` or ``suppress`` of the person the request names: the mapped person
        identifier, else the userId (anonymous people cannot be deleted by id)."""
        identifiers = self.mapped_person()
        if identifiers == {}:
            raise Unsendable("the person identifier mapping gives nothing for this deletion")
        if identifiers is None:
            if not self.event.user_id:
                raise Unsendable("a deletion needs a userId")
            identifiers = person_identifiers(self.event.user_id)
        return {"type": "person", "identifiers": identifiers, "action": self.event.type}

    def identify(self) -> dict[str, Any]:
        event = self.event
        identifiers = self.mapped_person()
        if identifiers == {}:
            raise Unsendable("the person identifier mapping gives nothing for this identify")
        if identifiers is None and event.user_id:
            identifiers = person_identifiers(event.user_id)
        if identifiers is None:
            email = mapping(event.payload.get("traits")).get("email")
            if not (isinstance(email, str) and EMAIL.match(email)):
                raise Unsendable(
                    "Customer.io identifies a person by id or email: this identify has "
                    "no userId and no email trait"
                )
            identifiers = person_identifiers(email)
        attributes = with_created_at(mapping(self.field(PERSON_ATTRIBUTES)))
        if event.anonymous_id and "anonymous_id" not in attributes:
            attributes["anonymous_id"] = event.anonymous_id
        return {
            "type": "person",
            "identifiers": identifiers,
            "action": "identify",
            "attributes": attributes,
            "timestamp": unix_seconds(event.timestamp),
        }

    def data(self) -> dict[str, Any]:
        return convert_dates(mapping(self.field(EVENT_DATA)))

    def event_operation(self, action: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
        event = self.event
        if len(name.encode()) > MAX_EVENT_NAME_BYTES:
            raise Unsendable(
                f"the event name {name[:40]!r}... is over Customer.io's limit of "
                f"{MAX_EVENT_NAME_BYTES} bytes"
            )
        return {
            "type": "person",
            "identifiers": self.actor(),
            "action": action,
            "name": name,
            "id": stable_event_id(event.message_id, event.timestamp),
            "timestamp": unix_seconds(event.timestamp),
            "attributes": data,
        }

    def group(self) -> dict[str, Any]:
        """The group as a Customer.io object (its type from the settings), related to the
        person who sent the call: ``identify`` with ``cio_relationships``, or
        ``identify_anonymous`` for a visitor known only by anonymousId."""
        object_id = self.field(OBJECT_ID)
        if is_empty(object_id):
            raise Unsendable("the group call has no object id (groupId, or its mapping)")
        if len(object_id.encode()) > MAX_IDENTIFIER_BYTES:
            raise Unsendable(
                f"the object id {object_id[:40]!r}... is over Customer.io's limit of "
                f"{MAX_IDENTIFIER_BYTES} bytes"
            )
        person = self.actor()
        relationship: dict[str, Any] = {"identifiers": person}
        attributes = mapping(self.field(RELATIONSHIP_ATTRIBUTES))
        if attributes:
            relationship["relationship_attributes"] = convert_dates(attributes)
        return {
            "type": "object",
            "identifiers": {
                "object_type_id": self.config.get("object_type_id") or DEFAULT_OBJECT_TYPE,
                "object_id": object_id,
            },
            "action": "identify_anonymous" if "anonymous_id" in person else "identify",
            "attributes": with_created_at(mapping(self.field(OBJECT_ATTRIBUTES))),
            "cio_relationships": [relationship],
        }


def alias(event: EventData) -> dict[str, Any]:
    """``merge`` of ``previousId`` into ``userId``, or an identify carrying the
    anonymousId when ``previousId`` is the message's own anonymousId."""
    previous_id = str(event.payload.get("previousId") or "")
    if not event.user_id or not previous_id:
        raise Unsendable("an alias needs both a userId and a previousId")
    if previous_id == event.user_id:
        raise Unsendable("the alias's previousId is its userId: there is nothing to merge")
    primary = person_identifiers(event.user_id)
    if previous_id == event.anonymous_id:
        return {
            "type": "person",
            "identifiers": primary,
            "action": "identify",
            "attributes": {"anonymous_id": previous_id},
            "timestamp": unix_seconds(event.timestamp),
        }
    return {
        "type": "person",
        "action": "merge",
        "primary": primary,
        "secondary": person_identifiers(previous_id),
    }


def page_name(event: EventData) -> str:
    properties = mapping(event.payload.get("properties"))
    page = mapping(mapping(event.payload.get("context")).get("page"))
    for candidate in (properties.get("url"), page.get("url"), event.payload.get("name")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate
    raise Unsendable("a page call needs properties.url, context.page.url or a name")


def screen_name(event: EventData) -> str:
    properties = mapping(event.payload.get("properties"))
    for candidate in (event.payload.get("name"), properties.get("name")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate
    raise Unsendable("a screen call needs a name")


def encode(op: Mapping[str, Any]) -> str:
    return json.dumps(op, separators=(",", ":"))


def pack(
    encoded: Sequence[tuple[int, str]],
    max_bytes: int = MAX_BATCH_BYTES,
    max_operations: int = MAX_BATCH_OPERATIONS,
) -> list[list[tuple[int, str]]]:
    """Split (delivery index, encoded operation) pairs, in order, into groups whose
    ``{"batch":[...]}`` body stays within ``max_bytes`` and ``max_operations``."""
    groups: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    size = BATCH_ENVELOPE
    for item in encoded:
        extra = len(item[1]) + (1 if current else 0)
        if current and (size + extra > max_bytes or len(current) >= max_operations):
            groups.append(current)
            current, size = [], BATCH_ENVELOPE
            extra = len(item[1])
        current.append(item)
        size += extra
    if current:
        groups.append(current)
    return groups


def batch_body(group: Sequence[tuple[int, str]]) -> str:
    return '{"batch":[' + ",".join(body for _, body in group) + "]}"


def describe_error(error: Mapping[str, Any]) -> str:
    parts = [str(error[key]) for key in ("reason", "field", "message") if error.get(key)]
    return ": ".join(parts) or "no detail given"


def _host(config: IntegrationConfig) -> str:
    return (config.api_base_url or HOSTS[config.get("region") or "us"]).rstrip("/")


def _headers(config: IntegrationConfig) -> dict[str, str]:
    credentials = f"{config['site_id']}:{config['api_key']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


class CustomerIO(Destination):
    kind = "customerio"
    label = "Customer.io"
    segment_names = ("Customer.io",)
    supported_types = frozenset(
        {"identify", "track", "page", "screen", "group", "alias", *REMOVALS}
    )
    settings_schema = (
        SettingField(
            "site_id",
            "Site ID",
            help_text="Customer.io > Settings > API Credentials > Track API keys.",
            required=True,
        ),
        SettingField(
            "api_key",
            "Track API key",
            help_text="The API key paired with the Site ID.",
            required=True,
            secret=True,
        ),
        SettingField(
            "region",
            "Region",
            type="choice",
            choices=REGIONS,
            help_text="Where your Customer.io account lives.",
            default="us",
        ),
        SettingField(
            "object_type_id",
            "Object type id",
            help_text="The Customer.io object type group calls create objects of (Data & "
            "Integrations > Objects). Empty: 1, the first type a workspace has (e.g. "
            "Companies).",
            validator=validate_object_type_id,
        ),
    )
    mapped_fields = (
        PERSON_ID,
        PERSON_ATTRIBUTES,
        EVENT_DATA,
        OBJECT_ID,
        OBJECT_ATTRIBUTES,
        RELATIONSHIP_ATTRIBUTES,
    )
    max_batch_size = MAX_BATCH_OPERATIONS

    @classmethod
    def connection_test(cls, config: IntegrationConfig) -> OutboundRequest:
        """``GET /api/v1/accounts/region``: the Track API's cheapest authenticated call
        (200 with the account's region for valid credentials, 401 otherwise)."""
        return OutboundRequest("GET", _host(config) + REGION_PATH, _headers(config))

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        host = _host(config)
        headers = {**_headers(config), "Content-Type": "application/json"}
        plan = Plan()
        encoded: list[tuple[int, str]] = []
        for index, event in enumerate(events):
            try:
                body = encode(Operation(event, config, context).build())
            except (Unsendable, MappingError) as exc:
                plan.failures[index] = f"Not sent: {exc}."
                continue
            if len(body) > MAX_OPERATION_BYTES:
                plan.failures[index] = (
                    f"Not sent to Customer.io: the operation is {len(body):,} bytes, over its "
                    f"limit of {MAX_OPERATION_BYTES:,} bytes per person operation (32 KB); "
                    "send fewer or smaller traits/properties."
                )
                continue
            encoded.append((index, body))
        for group in pack(encoded):
            indexes = tuple(index for index, _ in group)
            if len(group) == 1:
                request = OutboundRequest(
                    "POST", host + ENTITY_PATH, headers, group[0][1], covers=indexes
                )
            else:
                request = OutboundRequest(
                    "POST",
                    host + BATCH_PATH,
                    headers,
                    batch_body(group),
                    covers=indexes,
                    state={"batch": list(indexes)},
                )
            plan.requests.append(request)
        return plan

    @classmethod
    def partial_failures(
        cls, request: OutboundRequest, status: int, body: str
    ) -> dict[int, PartialFailure]:
        """A 207 to a batch lists the failed operations as
        ``{"errors": [{"batch_index", "reason", "field", "message"}]}``; ``batch_index`` is
        the operation's position in the batch, mapped back to its delivery. Those are
        validation errors: sending the same operation again would fail again, so they
        fail for good. A 207 that names no operation we sent is unreadable: every delivery
        it carried is retried, which is safe (identify and merge are idempotent, events
        carry a stable id)."""
        if status != 207:
            return {}
        indexes = list(request.state.get("batch") or request.covers)
        try:
            errors = json.loads(body).get("errors")
        except (ValueError, AttributeError):
            errors = None
        failed: dict[int, list[str]] = {}
        for error in errors if isinstance(errors, list) else []:
            if not isinstance(error, Mapping):
                continue
            position = error.get("batch_index")
            if type(position) is int and 0 <= position < len(indexes):
                failed.setdefault(indexes[position], []).append(describe_error(error))
        if not failed:
            reason = (
                "Customer.io answered 207 (some operations failed) without saying which: "
                f"{' '.join(body.split())[:200]}"
            )
            return dict.fromkeys(indexes, PartialFailure(reason))
        return {
            index: PartialFailure(
                "Customer.io rejected this operation (HTTP 207): " + "; ".join(reasons),
                retry=False,
            )
            for index, reasons in failed.items()
        }
