"""ChurnZero: the push HTTP API (``/i``) of a ChurnZero instance.

What is sent
    Every pending event becomes one or more ChurnZero *actions*; the actions of up to
    ``max_batch_size`` events go in one ``POST <instance>/i`` whose JSON body is an array.
    Every action carries ``appKey`` (ChurnZero's only authentication; the delivery log
    redacts it), ``accountExternalId``, ``contactExternalId`` and ``action``:

    * identify: one ``setAttribute`` (``entity: contact``) per trait;
    * group: one ``setAttribute`` (``entity: account``) per trait;
    * track: one ``trackEvent`` with ``eventName`` (after the event-name override),
      ``eventDate`` (the event's corrected timestamp, ISO-8601 in UTC), and ``description``
      (property ``description``, cut to 255 characters) and ``quantity`` (property
      ``quantity``, a number) when present. Other properties are not sent: ChurnZero's
      event custom fields must be created in ChurnZero first, and their wire format is
      not documented.

    Property rules apply to traits and properties before anything else, so a trait can
    be renamed to a ChurnZero field name (``plan`` → ``Plan Tier``), switched off, or
    renamed *to* ``accountExternalId``/``contactExternalId`` to become the identifier.
    Engage audiences need nothing special: their identify calls carry a snake_cased
    audience name with ``true``/``false``, which becomes a contact attribute like any
    boolean trait.

Who the account and contact are
    ChurnZero requires both on every call. They are read from the traits
    ``accountExternalId``/``contactExternalId`` (or the ``...ExternalID`` spellings of
    Segment's docs), in this order: the call itself (identify traits; track properties,
    then ``context.traits``), then the user's profile (merged identify traits). The
    account then falls back to the group a group call last put the user in: that group's
    ``accountExternalId`` trait, else its ``groupId``.

    A group call's account is the group: its ``accountExternalId`` trait (in the call,
    else in the stored group traits), else the ``groupId``. It never comes from the
    user's profile, which may name an account the user has since left. Its contact
    comes from the user's profile (a group call has no contact of its own).

    An event whose account or contact cannot be found fails at once with a message
    saying which trait is missing; it is never dropped.

Values (ChurnZero's "Data Input Formats")
    Strings and numbers are sent as they are (JSON numbers have no spaces); booleans as
    the strings ``"True"``/``"False"``, the first of ChurnZero's documented value sets,
    so nothing depends on how ChurnZero's JSON binder stringifies a JSON boolean; a list
    of plain values as a multi-select, ``"a, b, c"`` (comma and one space). ``null``,
    nested objects and lists holding objects are left out: ChurnZero attributes are flat
    typed fields, and a JSON blob would not fit a ChurnZero number, date or list field
    (flatten such traits upstream, e.g. ``address.city`` → ``city``). The identifier
    traits themselves are never sent as attributes.

What "delivered" means: the 200 and the GIF
    ChurnZero's push API answers **every** request with HTTP 200 and a 1x1 transparent
    GIF, whatever happened to it: a wrong app key, an unknown account, a misspelt
    attribute or a value of the wrong type all look exactly like success, and there is
    no per-action status. So a ChurnZero delivery marked *delivered* only means that
    ChurnZero's server accepted the HTTP request; whether the event or attribute shows
    up must be checked in ChurnZero itself. The log shows the request as sent (app key
    redacted) and a 200 whose body is that image, which says nothing about the actions;
    only a non-2xx answer (ChurnZero or a proxy in trouble) or no answer at all is a
    failure or a retry, as for any destination. This is also why everything that can be
    checked here (account, contact, call type) is checked before sending, and fails with
    a message instead of vanishing into a 200.

    ChurnZero reportedly ignores an event whose date, account, contact and description
    equal one it already has; since ``eventDate`` is the event's own timestamp (to the
    millisecond), an event sent again after a retry is not counted twice, while distinct
    events keep distinct dates.
"""

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.destinations.base import Destination, OutboundRequest, Plan, SettingField
from integrations.destinations.context import PlanContext, Rules
from integrations.destinations.mapping import FieldKind, MappedField
from integrations.destinations.scope import MessageScope
from integrations.destinations.values import EventData, IntegrationConfig

ACCOUNT_KEYS = ("accountExternalId", "accountExternalID")
CONTACT_KEYS = ("contactExternalId", "contactExternalID")
IDENTITY_KEYS = frozenset(ACCOUNT_KEYS + CONTACT_KEYS)
MAX_DESCRIPTION_LENGTH = 255
# Actions per request: a request still carries whole events, so one event with more
# traits than this goes alone.
MAX_ACTIONS_PER_REQUEST = 500
SCALARS = (str, int, float)


class Undeliverable(Exception):
    """An event ChurnZero cannot take as it stands; the message says what is missing."""


@dataclass(frozen=True)
class Who:
    account: str
    contact: str


def endpoint(base: str) -> str:
    """``<base>/i``; a base already ending in ``/i`` (as copied from ChurnZero) is kept."""
    base = base.rstrip("/")
    return base if base.endswith("/i") else f"{base}/i"


def attribute_value(value: Any) -> str | int | float | None:
    """A trait as ChurnZero's input formats want it, or None when it is left out."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, SCALARS):
        return value
    if isinstance(value, list) and all(isinstance(v, SCALARS) for v in value):
        return ", ".join(str(attribute_value(v)) for v in value)
    return None


def number(value: Any) -> int | float | None:
    """A finite number from a number or a numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
        if math.isfinite(value) and value.is_integer():
            return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def iso_date(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mapping(value: Any) -> Mapping[str, Any]:
    """Traits, properties or context as sent; anything but an object counts as empty."""
    return value if isinstance(value, Mapping) else {}


def _views(rules: Rules, values: Any) -> list[Mapping[str, Any]]:
    """Traits as the rules rename them, then as received: a trait renamed to
    ``accountExternalId`` counts, and renaming or switching off the identifier trait
    itself does not lose it."""
    if not isinstance(values, Mapping):
        return []
    return [rules.apply(values), values]


def _first_id(sources: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> str:
    for values in sources:
        for key in keys:
            value = values.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)
    return ""


def _missing(account: str, contact: str) -> str:
    pairs = (("accountExternalId", account), ("contactExternalId", contact))
    return " or ".join(name for name, found in pairs if not found)


def _id_text(value: Any) -> str:
    """A mapped identifier as text ("" when the mapping gives nothing usable)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


# -- mapped fields --------------------------------------------------------------------

ID_CALLS = frozenset({"identify", "track", "group"})
ACCOUNT_ID = MappedField(
    "account_external_id",
    "Account external id",
    ID_CALLS,
    kind=FieldKind.TEXT,
    preset_note="the accountExternalId (or accountExternalID) trait of the call, else of "
    "the user's profile, else of the user's group, else that group's id; a group call: "
    "its own accountExternalId trait, else its groupId",
    help_text="Must match an account that exists in ChurnZero: ChurnZero silently drops "
    "what it cannot match (and still answers 200). E.g. traits.company.id || "
    "$profile.traits.company.id || $group.groupId.",
)
CONTACT_ID = MappedField(
    "contact_external_id",
    "Contact external id",
    ID_CALLS,
    kind=FieldKind.TEXT,
    preset_note="the contactExternalId (or contactExternalID) trait of the call (track: "
    "its properties, then context.traits), else of the user's profile",
    help_text="E.g. traits.email || $profile.traits.email, or userId.",
)
EVENT_DESCRIPTION = MappedField(
    "event_description",
    "Event description",
    frozenset({"track"}),
    preset="properties.description",
    help_text="Text, cut to 255 characters. E.g. {{ properties.plan }} via {{ properties.store }}.",
)
EVENT_QUANTITY = MappedField(
    "event_quantity",
    "Event quantity",
    frozenset({"track"}),
    preset="properties.quantity",
    help_text="A number (or a numeric string).",
)


@dataclass(frozen=True)
class StandardField:
    """A ChurnZero standard field, set by its display name."""

    spec: MappedField
    entity: str
    churnzero_name: str


def _standard(entity: str, churnzero_name: str, calls: frozenset[str]) -> StandardField:
    slug = churnzero_name.lower().replace(" ", "_")
    return StandardField(
        MappedField(
            f"{entity}_{slug}",
            f"{entity.title()}: {churnzero_name}",
            calls,
            help_text=f"Sets the {entity}'s {churnzero_name!r} field (ChurnZero takes "
            "standard fields by their display name, as Admin > Custom Fields shows it). "
            "Not sent unless mapped.",
        ),
        entity,
        churnzero_name,
    )


IDENTIFY = frozenset({"identify"})
IDENTIFY_AND_GROUP = frozenset({"identify", "group"})
STANDARD_FIELDS = (
    _standard("contact", "First Name", IDENTIFY),
    _standard("contact", "Last Name", IDENTIFY),
    _standard("contact", "Email", IDENTIFY),
    _standard("contact", "Phone", IDENTIFY),
    _standard("contact", "Title", IDENTIFY),
    _standard("account", "Name", IDENTIFY_AND_GROUP),
    _standard("account", "Start Date", IDENTIFY_AND_GROUP),
    _standard("account", "End Date", IDENTIFY_AND_GROUP),
    _standard("account", "Next Renewal Date", IDENTIFY_AND_GROUP),
    _standard("account", "Total Contract Amount", IDENTIFY_AND_GROUP),
    _standard("account", "Is Active", IDENTIFY_AND_GROUP),
)


class EventActions:
    """The ChurnZero actions of one event, from the integration's rules and mappings."""

    def __init__(
        self, event: EventData, config: IntegrationConfig, context: PlanContext, app_key: str
    ) -> None:
        self.event = event
        self.mappings = config.mappings
        self.context = context
        self.rules = context.rules
        self.app_key = app_key
        self.scope = MessageScope(event, context)

    def build(self) -> list[dict[str, Any]]:
        """Raises ``Undeliverable``."""
        event, rules = self.event, self.rules
        payload = event.payload
        context_traits = _mapping(payload.get("context")).get("traits")
        if event.type == "identify":
            traits = _mapping(payload.get("traits"))
            who = self.who(_views(rules, traits))
            return self.attributes(who, "contact", rules.apply(traits)) + self.standard(who)
        if event.type == "track":
            properties = payload.get("properties")
            return [
                self.track_event(
                    self.who(_views(rules, properties) + _views(rules, context_traits))
                )
            ]
        if event.type == "group":
            traits = _mapping(payload.get("traits"))
            who = self.group_who(traits, context_traits)
            return self.attributes(who, "account", rules.apply(traits)) + self.standard(who)
        raise Undeliverable(
            f"ChurnZero takes identify, track and group calls; a {event.type} call has no "
            "ChurnZero equivalent"
        )

    def base(self, who: Who, action: str) -> dict[str, Any]:
        return {
            "appKey": self.app_key,
            "accountExternalId": who.account,
            "contactExternalId": who.contact,
            "action": action,
        }

    def mapped_traits(self) -> set[str]:
        """Traits a mapping of this call reads: sent where the mapping puts them only."""
        fields = [ACCOUNT_ID, CONTACT_ID, *(s.spec for s in STANDARD_FIELDS)]
        return {
            path.keys[0]
            for spec in fields
            if self.event.type in spec.calls and spec.override(self.mappings) is not None
            for path in spec.reads(self.mappings)
            if path.root == "traits" and path.keys and isinstance(path.keys[0], str)
        }

    def attributes(self, who: Who, entity: str, traits: Mapping[str, Any]) -> list[dict[str, Any]]:
        skipped = IDENTITY_KEYS | self.mapped_traits()
        actions = []
        for name, raw in traits.items():
            value = attribute_value(raw)
            if not name or name in skipped or value is None:
                continue
            action = self.base(who, "setAttribute")
            actions.append({**action, "entity": entity, "name": name, "value": value})
        return actions

    def standard(self, who: Who) -> list[dict[str, Any]]:
        """The mapped standard fields, by their ChurnZero display names."""
        actions = []
        for field in STANDARD_FIELDS:
            if self.event.type not in field.spec.calls:
                continue
            value = attribute_value(field.spec.value(self.mappings, self.scope))
            if value is None or value == "":
                continue
            action = self.base(who, "setAttribute")
            actions.append(
                {**action, "entity": field.entity, "name": field.churnzero_name, "value": value}
            )
        return actions

    def track_event(self, who: Who) -> dict[str, Any]:
        event = self.event
        action = {
            **self.base(who, "trackEvent"),
            "eventName": self.rules.event_name(event),
            "eventDate": iso_date(event.timestamp),
        }
        description = EVENT_DESCRIPTION.value(self.mappings, self.scope)
        if isinstance(description, SCALARS) and not isinstance(description, bool):
            description = str(description)[:MAX_DESCRIPTION_LENGTH]
            if description:
                action["description"] = description
        quantity = number(EVENT_QUANTITY.value(self.mappings, self.scope))
        if quantity is not None:
            action["quantity"] = quantity
        return action

    def mapped_id(self, spec: MappedField) -> str | None:
        """The mapped identifier ("" when its mapping gives nothing), or None: not mapped."""
        if spec.override(self.mappings) is None:
            return None
        return _id_text(spec.value(self.mappings, self.scope))

    def mapping_gave_nothing(self, spec: MappedField) -> Undeliverable:
        override = spec.override(self.mappings)
        source = override.source if override is not None else spec.preset_description
        return Undeliverable(
            f"ChurnZero needs the account and contact of every call: the {spec.label.lower()} "
            f"mapping ({source}) gives nothing for this {self.event.type} call"
        )

    def who(self, own: list[Mapping[str, Any]]) -> Who:
        """The account and contact of an identify or track call (see the module doc)."""
        event, rules, context = self.event, self.rules, self.context
        profile = context.profile(event)
        sources = own + _views(rules, profile.traits)
        account = self.mapped_id(ACCOUNT_ID)
        if account == "":
            raise self.mapping_gave_nothing(ACCOUNT_ID)
        if account is None:
            account = _first_id(sources, ACCOUNT_KEYS)
            if not account and profile.group_id:
                group = _views(rules, context.group_traits(profile.group_id))
                account = _first_id(group, ACCOUNT_KEYS) or profile.group_id
        contact = self.mapped_id(CONTACT_ID)
        if contact == "":
            raise self.mapping_gave_nothing(CONTACT_ID)
        if contact is None:
            contact = _first_id(sources, CONTACT_KEYS)
        if account and contact:
            return Who(account, contact)
        missing = _missing(account, contact)
        if event.type == "identify":
            remedy = "add accountExternalId and contactExternalId to this user's identify traits"
        else:
            remedy = "send an identify call with accountExternalId and contactExternalId first"
        remedy += ", or map them from other traits in this integration's field mappings"
        if not event.user_id:
            raise Undeliverable(
                f"ChurnZero needs the account and contact of every call: this anonymous "
                f"{event.type} call (anonymousId {event.anonymous_id!r}) has no {missing} "
                f"and no userId whose profile could supply it ({remedy}, with a userId)"
            )
        where = "in this call or in the user's profile"
        if not account:
            where += ", and no group call has put the user in a group"
        raise Undeliverable(
            f"ChurnZero needs the account and contact of user {event.user_id!r}: "
            f"no {missing} trait {where} ({remedy})"
        )

    def group_who(self, traits: Any, context_traits: Any) -> Who:
        """The group's account and the contact of the user who sent the group call."""
        event, rules, context = self.event, self.rules, self.context
        account = self.mapped_id(ACCOUNT_ID)
        if account == "":
            raise self.mapping_gave_nothing(ACCOUNT_ID)
        if account is None:
            group = _views(rules, traits) + _views(rules, context.group_traits(event.group_id))
            account = _first_id(group, ACCOUNT_KEYS) or event.group_id
        contact = self.mapped_id(CONTACT_ID)
        if contact == "":
            raise self.mapping_gave_nothing(CONTACT_ID)
        if contact is None:
            profile = context.profile(event)
            sources = _views(rules, context_traits) + _views(rules, profile.traits)
            contact = _first_id(sources, CONTACT_KEYS)
        if contact:
            return Who(account, contact)
        remedy = (
            "send an identify call with accountExternalId and contactExternalId first, or "
            "map the contact external id from another trait in this integration's field "
            "mappings"
        )
        if not event.user_id:
            raise Undeliverable(
                f"ChurnZero needs a contact on every call: this anonymous group call for "
                f"{event.group_id!r} (anonymousId {event.anonymous_id!r}) has no userId "
                f"whose profile could supply a contactExternalId ({remedy}, with a userId)"
            )
        raise Undeliverable(
            f"ChurnZero needs a contact on every call: the group call for {event.group_id!r} "
            f"was sent by user {event.user_id!r}, and neither it nor the user's profile has "
            f"a contactExternalId trait ({remedy})"
        )


class ChurnZero(Destination):
    kind = "churnzero"
    label = "ChurnZero"
    segment_names = ("ChurnZero", "Churnzero")
    supported_types = frozenset({"identify", "track", "group"})
    max_batch_size = 100
    settings_schema = (
        SettingField(
            "app_key",
            "Application key",
            help_text="ChurnZero > Admin > Application Keys (use the Production key). "
            "ChurnZero answers every request with 200, even with a wrong key: check that "
            "events arrive in ChurnZero after saving (there is no test connection).",
            required=True,
            secret=True,
        ),
        SettingField(
            "instance_url",
            "Instance URL",
            type="url",
            help_text="The HTTP API host shown next to the key, e.g. https://analytics.churnzero.net"
            " (EU: https://eu1analytics.churnzero.net). The API base URL below, when set, "
            "wins over this one.",
            required=True,
            default="https://analytics.churnzero.net",
        ),
    )
    caveats = (
        "ChurnZero answers every request with HTTP 200 (a 1x1 image), even with a wrong "
        "application key, an unknown account or a misspelt field: “delivered” means "
        "ChurnZero accepted the request, not that it used it. Check ChurnZero's own logs.",
        "Every call needs the ChurnZero account and contact it belongs to: the "
        "accountExternalId and contactExternalId traits, or the traits you map to them in "
        "the field mappings below (e.g. the email). ChurnZero drops what it cannot match to "
        "an existing account; calls without them fail here, with the reason.",
        "Two URL settings: the API base URL, when set, wins over the instance URL.",
    )
    connection_test_note = (
        "ChurnZero answers every request with 200, even with a wrong application key or an "
        "unknown account, so no request can check the settings: after saving, check in "
        "ChurnZero that events arrive."
    )
    mapped_fields = (
        ACCOUNT_ID,
        CONTACT_ID,
        EVENT_DESCRIPTION,
        EVENT_QUANTITY,
        *(field.spec for field in STANDARD_FIELDS),
    )

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        """The events' actions as JSON arrays POSTed to ``/i``, up to ``max_batch_size``
        events a request; events without an account or contact fail with the reason."""
        url = endpoint(config.api_base_url or config["instance_url"])
        plan = Plan()
        ready: list[tuple[int, list[dict[str, Any]]]] = []
        for index, event in enumerate(events):
            try:
                ready.append(
                    (index, EventActions(event, config, context, config["app_key"]).build())
                )
            except Undeliverable as exc:
                plan.failures[index] = str(exc)
        for batch in cls.batches(ready):
            # An event with nothing to set (an identify carrying only the identifiers, a
            # group call without traits) rides along with the others; alone, it goes as
            # an empty array, which ChurnZero answers like any other request.
            body = json.dumps([a for _, actions in batch for a in actions], separators=(",", ":"))
            plan.requests.append(
                OutboundRequest(
                    "POST",
                    url,
                    {"Content-Type": "application/json"},
                    body,
                    covers=tuple(index for index, _ in batch),
                )
            )
        return plan

    @classmethod
    def batches(
        cls, ready: list[tuple[int, list[dict[str, Any]]]]
    ) -> list[list[tuple[int, list[dict[str, Any]]]]]:
        """Whole events, in order, at most ``max_batch_size`` events and
        ``MAX_ACTIONS_PER_REQUEST`` actions a request."""
        batches: list[list[tuple[int, list[dict[str, Any]]]]] = []
        current: list[tuple[int, list[dict[str, Any]]]] = []
        size = 0
        for item in ready:
            full = len(current) >= cls.max_batch_size
            if current and (full or size + len(item[1]) > MAX_ACTIONS_PER_REQUEST):
                batches.append(current)
                current, size = [], 0
            current.append(item)
            size += len(item[1])
        if current:
            batches.append(current)
        return batches
