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
            help_text="ChurnZero > Admin > Application Keys (use the Production key).",
            required=True,
            secret=True,
        ),
        SettingField(
            "instance_url",
            "Instance URL",
            type="url",
            help_text="The HTTP API host shown next to the key, e.g. https://analytics.churnzero.net"
            " (EU: https://eu1analytics.churnzero.net).",
            required=True,
            default="https://analytics.churnzero.net",
        ),
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
                ready.append((index, cls.actions(event, context, config["app_key"])))
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

    @classmethod
    def actions(cls, event: EventData, context: PlanContext, app_key: str) -> list[dict[str, Any]]:
        """The ChurnZero actions of one event; raises ``Undeliverable``."""
        payload = event.payload
        rules = context.rules
        context_traits = _mapping(payload.get("context")).get("traits")
        if event.type == "identify":
            traits = _mapping(payload.get("traits"))
            who = cls.who(event, context, _views(rules, traits))
            return cls.attributes(app_key, who, "contact", rules.apply(traits))
        if event.type == "track":
            properties = payload.get("properties")
            who = cls.who(event, context, _views(rules, properties) + _views(rules, context_traits))
            return [cls.track_event(app_key, who, event, rules)]
        if event.type == "group":
            traits = _mapping(payload.get("traits"))
            who = cls.group_who(event, context, traits, context_traits)
            return cls.attributes(app_key, who, "account", rules.apply(traits))
        raise Undeliverable(
            f"ChurnZero takes identify, track and group calls; a {event.type} call has no "
            "ChurnZero equivalent"
        )

    @staticmethod
    def base(app_key: str, who: Who, action: str) -> dict[str, Any]:
        return {
            "appKey": app_key,
            "accountExternalId": who.account,
            "contactExternalId": who.contact,
            "action": action,
        }

    @classmethod
    def attributes(
        cls, app_key: str, who: Who, entity: str, traits: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        actions = []
        for name, raw in traits.items():
            value = attribute_value(raw)
            if not name or name in IDENTITY_KEYS or value is None:
                continue
            action = cls.base(app_key, who, "setAttribute")
            actions.append({**action, "entity": entity, "name": name, "value": value})
        return actions

    @classmethod
    def track_event(cls, app_key: str, who: Who, event: EventData, rules: Rules) -> dict:
        properties = rules.apply(_mapping(event.payload.get("properties")))
        action = {
            **cls.base(app_key, who, "trackEvent"),
            "eventName": rules.event_name(event),
            "eventDate": iso_date(event.timestamp),
        }
        description = properties.get("description")
        if isinstance(description, SCALARS) and not isinstance(description, bool):
            description = str(description)[:MAX_DESCRIPTION_LENGTH]
            if description:
                action["description"] = description
        quantity = number(properties.get("quantity"))
        if quantity is not None:
            action["quantity"] = quantity
        return action

    @classmethod
    def who(cls, event: EventData, context: PlanContext, own: list[Mapping[str, Any]]) -> Who:
        """The account and contact of an identify or track call (see the module doc)."""
        rules = context.rules
        profile = context.profile(event)
        sources = own + _views(rules, profile.traits)
        account = _first_id(sources, ACCOUNT_KEYS)
        if not account and profile.group_id:
            group = _views(rules, context.group_traits(profile.group_id))
            account = _first_id(group, ACCOUNT_KEYS) or profile.group_id
        contact = _first_id(sources, CONTACT_KEYS)
        if account and contact:
            return Who(account, contact)
        missing = _missing(account, contact)
        if event.type == "identify":
            remedy = "add accountExternalId and contactExternalId to this user's identify traits"
        else:
            remedy = "send an identify call with accountExternalId and contactExternalId first"
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

    @classmethod
    def group_who(
        cls, event: EventData, context: PlanContext, traits: Any, context_traits: Any
    ) -> Who:
        """The group's account and the contact of the user who sent the group call."""
        rules = context.rules
        group = _views(rules, traits) + _views(rules, context.group_traits(event.group_id))
        account = _first_id(group, ACCOUNT_KEYS) or event.group_id
        profile = context.profile(event)
        sources = _views(rules, context_traits) + _views(rules, profile.traits)
        contact = _first_id(sources, CONTACT_KEYS)
        if contact:
            return Who(account, contact)
        remedy = "send an identify call with accountExternalId and contactExternalId first"
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
