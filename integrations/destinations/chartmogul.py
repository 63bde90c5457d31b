"""ChartMogul: customers, contacts and custom attributes through the REST API v1.

What each call becomes (ChartMogul has no event store: it keeps customers, their contacts
and custom attributes, so every call is an *upsert* of those):

* **group**: the company is a customer of the data source, ``external_id`` = groupId.
  Known traits become the customer's fields (name, email, website_url, company, city,
  zip, and country/state when they are ISO codes) and every other trait a typed custom
  attribute. In "a user is added to a company" mode the user of the call also becomes a
  contact of that customer (their profile traits), so a user whose identify came before
  any group call is imported then.
* **identify**: a contact (first/last name, email, title, phone, linked_in, twitter,
  ``external_id`` = userId) on the user's customer. "A user is added to a company": the
  customer is the user's company (``context.groupId``, else the profile store's latest
  group); a user without a company is not imported, and the failure says so. The company
  is created from its known group traits if ChartMogul does not have it yet (an identify
  often arrives before its group call). "The user is created": the customer is the user
  (``external_id`` = userId), upserted with the user's traits, plus the contact.
* **track**: the event's properties become typed custom attributes of the user's
  customer (the same customer identify uses), and contact details the call carries in
  ``context.traits`` update the user's contact.

Every delivery is a chain of single requests, linked by ``follow_up``::

    GET  /v1/customers?data_source_uuid=..&external_id=..      find the customer
      found:   PATCH /v1/customers/{uuid}                       standard fields, if any
               POST  /v1/customers/{uuid}/attributes/custom     custom attributes, if any
      missing: POST  /v1/customers                              fields + custom attributes
    GET  /v1/customers/{uuid}/contacts?per_page=200             find the user's contact
      found:   PATCH /v1/contacts/{uuid}                        (matched by external_id,
      missing: POST  /v1/contacts                                then by email)

(a freshly created customer has no contacts, so its contact is created without looking).

Custom attributes: type from the value (bool Boolean, int Integer, float Decimal,
ISO-8601 date or date-time string Timestamp, other strings String cut to 255
characters); nested objects and lists are sent as compact JSON strings when they fit in
255 characters and left out otherwise; nulls and empty strings are left out. Keys keep
letters, digits and underscores, as ChartMogul requires (accents are dropped, anything
else becomes ``_``). ChartMogul fixes an attribute's type when it is first created: a
later value of another type is refused by ChartMogul (the delivery fails with its message).

Event names: ChartMogul keeps no events, so a track's name (and its event-name override)
is not sent; the event rules' on/off switches still decide which tracks come here.

Rate limit: ChartMogul allows 40 requests/s per account and answers 429 beyond it; the
engine retries 429 (and 5xx) with Retry-After, restarting the chain from the lookup, which
is safe because every step is an upsert. ``max_requests_per_second`` makes the engine
space requests (every step counts) so all workers together stay under the limit.
"""

import base64
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_date, parse_datetime

from integrations.destinations.base import Destination, OutboundRequest, Plan, SettingField
from integrations.destinations.context import PlanContext
from integrations.destinations.values import EventData, IntegrationConfig

API_BASE = "https://api.chartmogul.com"
USER_CREATED = "user_created"
ADDED_TO_COMPANY = "user_added_to_company"
CREATE_COMPANY_WHEN = (
    (USER_CREATED, "The email or user id is created"),
    (ADDED_TO_COMPANY, "A user is added to a company"),
)
MODE_LABELS = dict(CREATE_COMPANY_WHEN)
# Shown in ChartMogul next to each custom attribute we set.
ATTRIBUTE_SOURCE = "Segment"
STRING_LIMIT = 255
CONTACTS_PAGE = 200

# Segment traits that are ChartMogul customer fields (after property rules).
CUSTOMER_FIELDS = {"name": "name", "email": "email", "website": "website_url"}
# Segment traits that are ChartMogul contact fields.
CONTACT_FIELDS = {
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
    "email": "email",
    "title": "title",
    "phone": "phone",
    "linkedIn": "linked_in",
    "linkedin": "linked_in",
    "linked_in": "linked_in",
    "twitter": "twitter",
}
COUNTRY_CODE = re.compile(r"^[A-Za-z]{2}$")
STATE_CODE = re.compile(r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$")
NOT_KEY_CHARACTER = re.compile(r"[^A-Za-z0-9_]")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


class NotSent(Exception):
    """A delivery that cannot be sent; the message says what is missing."""


def validate_data_source_uuid(value: str) -> None:
    if not value.startswith("ds_"):
        raise ValidationError("must be a ChartMogul data source uuid (ds_…)")


class ChartMogul(Destination):
    kind = "chartmogul"
    label = "ChartMogul"
    segment_names = ("ChartMogul",)
    supported_types = frozenset({"identify", "track", "group"})
    settings_schema = (
        SettingField(
            "api_key",
            "API key",
            help_text="ChartMogul > Profile > API keys (a key with write access).",
            required=True,
            secret=True,
        ),
        SettingField(
            "data_source_uuid",
            "Data source UUID",
            help_text="The ds_… uuid of the ChartMogul data source customers are created in.",
            required=True,
            validator=validate_data_source_uuid,
        ),
        SettingField(
            "create_company_when",
            "Create a company in ChartMogul when",
            type="choice",
            choices=CREATE_COMPANY_WHEN,
            help_text="The user is created: every user is a customer of its own. A user is "
            "added to a company: companies (group calls) are customers and users their "
            "contacts; users without a company are not imported.",
            default=ADDED_TO_COMPANY,
        ),
    )
    # No batch endpoint for customers, contacts or attributes.
    max_batch_size = 1
    # ChartMogul's limit per account; for an engine-side throttle (not enforced yet).
    max_requests_per_second: ClassVar[float] = 40

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        """The first step of each delivery: the lookup of its customer."""
        mode = config.get("create_company_when") or ADDED_TO_COMPANY
        plan = Plan()
        for index, event in enumerate(events):
            try:
                state = _job(event, context, mode)
            except NotSent as exc:
                plan.failures[index] = str(exc)
                continue
            plan.requests.append(_find_customer(config, state, (index,)))
        return plan

    @classmethod
    def follow_up(
        cls, config: IntegrationConfig, request: OutboundRequest, status: int, body: str
    ) -> OutboundRequest | None:
        """The next step of the chain, from the answer to the previous one."""
        state = dict(request.state)
        covers = request.covers
        if request.step == "find_customer":
            customer = _matching(_entries(body), lambda e: _has_external_id(e, state))
            if customer is None:
                if state.get("created"):
                    # Created (2xx) yet not found: nothing more can be attached to it.
                    return None
                return _create_customer(config, state, covers)
            state["customer_uuid"] = customer["uuid"]
            return _after(config, state, covers, "find_customer")
        if request.step == "create_customer":
            if not state.get("contact"):
                return None
            answer = _json(body)
            uuid = answer.get("uuid") if isinstance(answer, dict) else None
            if not isinstance(uuid, str) or not uuid:
                # Not ChartMogul's documented answer: look the new customer up to learn
                # its uuid (once; its fields are then written again, harmlessly).
                state["created"] = True
                return _find_customer(config, state, covers)
            state["customer_uuid"] = uuid
            return _create_contact(config, state, covers)
        if request.step in ("update_customer", "add_attributes"):
            return _after(config, state, covers, request.step)
        if request.step == "find_contact":
            contact = _contact_match(_entries(body), state)
            if contact is None:
                return _create_contact(config, state, covers)
            return _update_contact(config, state, covers, contact["uuid"])
        return None


# -- what each call asks for ----------------------------------------------------------


def _job(event: EventData, context: PlanContext, mode: str) -> dict[str, Any]:
    """The state of a delivery's chain: which customer, what to write, which contact.

    ``create`` is the body of POST /customers (without data source), ``update`` the
    PATCH of an existing customer, ``custom`` the custom attributes for an existing one,
    ``contact`` the contact's fields (or None when there is no contact to write).
    """
    if event.type == "group":
        return _group_job(event, context, mode)
    if event.type == "identify":
        return _identify_job(event, context, mode)
    if event.type == "track":
        return _track_job(event, context, mode)
    raise NotSent(f"Not sent: ChartMogul takes identify, group and track calls, not {event.type}.")


def _group_job(event: EventData, context: PlanContext, mode: str) -> dict[str, Any]:
    group_id = event.group_id
    traits = context.rules.apply(
        {**context.group_traits(group_id), **_mapping(event.payload.get("traits"))}
    )
    fields, custom = _customer_fields(traits)
    contact = None
    if mode == ADDED_TO_COMPANY and event.user_id:
        user_traits = context.rules.apply(context.profile(event).traits)
        details = _contact_fields(user_traits)
        if details:
            contact = {"user_id": event.user_id, "fields": details}
    return {
        "external_id": group_id,
        "create": {"name": group_id, **fields, **_attributes(custom)},
        "update": fields,
        "custom": custom,
        "contact": contact,
    }


def _identify_job(event: EventData, context: PlanContext, mode: str) -> dict[str, Any]:
    profile = context.profile(event)
    traits = context.rules.apply({**profile.traits, **_mapping(event.payload.get("traits"))})
    contact = {"user_id": event.user_id, "fields": _contact_fields(traits)}
    if mode == USER_CREATED:
        if not event.user_id:
            raise NotSent(_needs_user_id("identify"))
        fields, custom = _customer_fields(traits, contact_keys=True)
        create = {"name": _person_name(traits) or event.user_id, **fields}
        return {
            "external_id": event.user_id,
            "create": {**create, **_attributes(custom)},
            "update": fields,
            "custom": custom,
            "contact": contact,
        }
    group_id = _group_of(event, profile.group_id)
    if not group_id:
        raise NotSent(_needs_company(event, "identify"))
    if not event.user_id and "email" not in contact["fields"]:
        raise NotSent(
            "Not sent: a ChartMogul contact is matched by user id or email, and this "
            "identify has neither (only an anonymousId)."
        )
    return {
        "external_id": group_id,
        "create": _company_create(group_id, context),
        "update": {},
        "custom": [],
        "contact": contact,
    }


def _track_job(event: EventData, context: PlanContext, mode: str) -> dict[str, Any]:
    profile = context.profile(event)
    custom = _custom_attributes(context.rules.apply(_mapping(event.payload.get("properties"))))
    context_traits = context.rules.apply(
        _mapping(_mapping(event.payload.get("context")).get("traits"))
    )
    details = _contact_fields(context_traits)
    # A contact is matched by user id or email: without either it cannot be updated.
    identified = event.user_id or "email" in details
    contact = {"user_id": event.user_id, "fields": details} if details and identified else None
    if not custom and not contact:
        raise NotSent(
            f"Not sent: track {event.event!r} has no properties to store as ChartMogul "
            "custom attributes (after property rules) and no contact details in "
            "context.traits; ChartMogul keeps attributes, not events (switch this event "
            "off for this integration if it never carries any)."
        )
    if mode == USER_CREATED:
        if not event.user_id:
            raise NotSent(_needs_user_id("track"))
        traits = context.rules.apply({**profile.traits, **context_traits})
        fields, _ = _customer_fields(traits, contact_keys=True)
        create = {"name": _person_name(traits) or event.user_id, **fields}
        return {
            "external_id": event.user_id,
            "create": {**create, **_attributes(custom)},
            "update": {},
            "custom": custom,
            "contact": contact,
        }
    group_id = _group_of(event, profile.group_id)
    if not group_id:
        raise NotSent(_needs_company(event, "track"))
    create = _company_create(group_id, context)
    create_custom = {c["key"]: c for c in create.get("attributes", {}).get("custom", [])}
    create_custom.update({c["key"]: c for c in custom})
    if create_custom:
        create["attributes"] = {"custom": list(create_custom.values())}
    return {
        "external_id": group_id,
        "create": create,
        "update": {},
        "custom": custom,
        "contact": contact,
    }


def _needs_company(event: EventData, call: str) -> str:
    who = f"user {event.user_id!r}" if event.user_id else "this anonymous user"
    return (
        f"Not sent: in '{MODE_LABELS[ADDED_TO_COMPANY]}' mode ChartMogul only imports users "
        f"that belong to a company, and {who} has no group call yet (no groupId in the "
        f"{call}'s context nor in the profile store). Send a group call for this user, or set "
        f"'Create a company in ChartMogul when' to '{MODE_LABELS[USER_CREATED]}'."
    )


def _needs_user_id(call: str) -> str:
    return (
        f"Not sent: in '{MODE_LABELS[USER_CREATED]}' mode each user is a ChartMogul customer "
        f"whose external id is the user id, and this {call} has only an anonymousId."
    )


def _group_of(event: EventData, profile_group: str) -> str:
    """The user's company: the call's groupId, its context.groupId, else the profile's."""
    from_context = _mapping(event.payload.get("context")).get("groupId")
    for candidate in (event.group_id, from_context, profile_group):
        if candidate not in (None, ""):
            return str(candidate)
    return ""


def _company_create(group_id: str, context: PlanContext) -> dict[str, Any]:
    """The body that creates a company from its known group traits (rules applied)."""
    fields, custom = _customer_fields(context.rules.apply(context.group_traits(group_id)))
    return {"name": group_id, **fields, **_attributes(custom)}


# -- translating traits -----------------------------------------------------------------


def _customer_fields(
    traits: Mapping[str, Any], contact_keys: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """ChartMogul customer fields and custom attributes from (rule-applied) traits.

    With ``contact_keys`` (a user who is a customer of its own) the traits that are
    contact fields (first name, title, phone...) go to the contact only.
    """
    fields: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in traits.items():
        if key in CUSTOMER_FIELDS:
            if isinstance(value, str | int) and str(value).strip():
                fields[CUSTOMER_FIELDS[key]] = str(value).strip()
        elif key == "company" and isinstance(value, str | Mapping):
            name = value.get("name") if isinstance(value, Mapping) else value
            if isinstance(name, str) and name.strip():
                fields["company"] = name.strip()
        elif key == "address" and isinstance(value, Mapping):
            fields.update(_address(value, rest))
        elif contact_keys and key in CONTACT_FIELDS:
            continue
        else:
            rest[key] = value
    return fields, _custom_attributes(rest)


def _address(address: Mapping[str, Any], rest: dict[str, Any]) -> dict[str, str]:
    """City and zip as they are; country and state only as ISO codes (ChartMogul refuses
    anything else), otherwise as custom attributes."""
    fields: dict[str, str] = {}
    for trait, field in (("city", "city"), ("postal_code", "zip"), ("zip", "zip")):
        value = address.get(trait)
        if isinstance(value, str | int) and str(value).strip():
            fields[field] = str(value).strip()
    for trait, pattern in (("country", COUNTRY_CODE), ("state", STATE_CODE)):
        value = address.get(trait)
        if not isinstance(value, str) or not value.strip():
            continue
        if pattern.match(value.strip()):
            fields[trait] = value.strip().upper()
        else:
            rest[trait] = value
    return fields


def _contact_fields(traits: Mapping[str, Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in traits.items():
        if key in CONTACT_FIELDS and isinstance(value, str | int) and str(value).strip():
            fields[CONTACT_FIELDS[key]] = str(value).strip()
    name = traits.get("name")
    if isinstance(name, str) and name.strip() and not {"first_name", "last_name"} & set(fields):
        first, _, last = name.strip().partition(" ")
        fields["first_name"] = first
        if last.strip():
            fields["last_name"] = last.strip()
    return fields


def _person_name(traits: Mapping[str, Any]) -> str:
    name = traits.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    parts = [traits.get(k) for k in ("firstName", "first_name", "lastName", "last_name")]
    joined = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if joined:
        return joined
    email = traits.get("email")
    return email.strip() if isinstance(email, str) else ""


def _custom_attributes(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Typed custom attributes; values ChartMogul cannot hold are left out."""
    attributes: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        key = _attribute_key(name)
        typed = _typed(value)
        if key and typed is not None:
            attributes[key] = {
                "type": typed[0],
                "key": key,
                "value": typed[1],
                "source": ATTRIBUTE_SOURCE,
            }
    return list(attributes.values())


def _attribute_key(name: Any) -> str:
    """Letters, digits and underscores only (accents dropped, anything else ``_``)."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return NOT_KEY_CHARACTER.sub("_", ascii_name).strip("_")


def _typed(value: Any) -> tuple[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "Boolean", value
    if isinstance(value, int):
        return "Integer", value
    if isinstance(value, float):
        return "Decimal", value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _is_timestamp(text):
            return "Timestamp", text
        return "String", value[:STRING_LIMIT]
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        return ("String", text) if len(text) <= STRING_LIMIT else None
    return "String", str(value)[:STRING_LIMIT]


def _is_timestamp(text: str) -> bool:
    try:
        if ISO_DATETIME.match(text):
            return parse_datetime(text) is not None
        if ISO_DATE.match(text):
            return parse_date(text) is not None
    except ValueError:
        return False
    return False


def _attributes(custom: list[dict[str, Any]]) -> dict[str, Any]:
    return {"attributes": {"custom": custom}} if custom else {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# -- requests ---------------------------------------------------------------------------


def _base(config: IntegrationConfig) -> str:
    base = (config.api_base_url or API_BASE).rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


def _headers(config: IntegrationConfig, body: bool) -> dict[str, str]:
    token = base64.b64encode(f"{config['api_key']}:".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
    if body:
        headers["Content-Type"] = "application/json"
    return headers


def _request(
    config: IntegrationConfig,
    method: str,
    path: str,
    step: str,
    state: Mapping[str, Any],
    covers: tuple[int, ...],
    payload: Mapping[str, Any] | None = None,
) -> OutboundRequest:
    body = "" if payload is None else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return OutboundRequest(
        method,
        _base(config) + path,
        _headers(config, payload is not None),
        body,
        covers=covers,
        step=step,
        state=state,
    )


def _data_source(config: IntegrationConfig) -> str:
    return config["data_source_uuid"]


def _find_customer(
    config: IntegrationConfig, state: Mapping[str, Any], covers: tuple[int, ...]
) -> OutboundRequest:
    query = urlencode(
        {"data_source_uuid": _data_source(config), "external_id": state["external_id"]}
    )
    return _request(config, "GET", f"/customers?{query}", "find_customer", state, covers)


def _create_customer(
    config: IntegrationConfig, state: Mapping[str, Any], covers: tuple[int, ...]
) -> OutboundRequest:
    payload = {
        "data_source_uuid": _data_source(config),
        "external_id": state["external_id"],
        **state["create"],
    }
    return _request(config, "POST", "/customers", "create_customer", state, covers, payload)


def _after(
    config: IntegrationConfig, state: dict[str, Any], covers: tuple[int, ...], done: str
) -> OutboundRequest | None:
    """The next write for an existing customer, in order: its fields, its custom
    attributes, then the contact."""
    uuid = quote(state["customer_uuid"], safe="")
    order = ["find_customer", "update_customer", "add_attributes", "find_contact"]
    for step in order[order.index(done) + 1 :]:
        if step == "update_customer" and state.get("update"):
            return _request(
                config, "PATCH", f"/customers/{uuid}", step, state, covers, state["update"]
            )
        if step == "add_attributes" and state.get("custom"):
            path = f"/customers/{uuid}/attributes/custom"
            payload = {"custom": state["custom"]}
            return _request(config, "POST", path, step, state, covers, payload)
        if step == "find_contact" and state.get("contact"):
            path = f"/customers/{uuid}/contacts?{urlencode({'per_page': CONTACTS_PAGE})}"
            return _request(config, "GET", path, step, state, covers)
    return None


def _contact_body(state: Mapping[str, Any]) -> dict[str, Any]:
    contact = state["contact"]
    body: dict[str, Any] = dict(contact["fields"])
    if contact.get("user_id"):
        body["external_id"] = contact["user_id"]
    return body


def _create_contact(
    config: IntegrationConfig, state: Mapping[str, Any], covers: tuple[int, ...]
) -> OutboundRequest | None:
    if not state.get("contact"):
        return None
    payload = {
        "customer_uuid": state["customer_uuid"],
        "data_source_uuid": _data_source(config),
        **_contact_body(state),
    }
    return _request(config, "POST", "/contacts", "create_contact", state, covers, payload)


def _update_contact(
    config: IntegrationConfig, state: Mapping[str, Any], covers: tuple[int, ...], uuid: str
) -> OutboundRequest:
    path = f"/contacts/{quote(uuid, safe='')}"
    payload = _contact_body(state)
    return _request(config, "PATCH", path, "update_contact", state, covers, payload)


# -- reading answers --------------------------------------------------------------------


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _entries(body: str) -> list[Mapping[str, Any]]:
    """The ``entries`` of a list answer (none when the answer is not one)."""
    data = _json(body)
    entries = data.get("entries") if isinstance(data, dict) else None
    return [e for e in entries or () if isinstance(e, Mapping) and e.get("uuid")]


def _matching(
    entries: list[Mapping[str, Any]], test: Callable[[Mapping[str, Any]], bool]
) -> Mapping[str, Any] | None:
    return next((e for e in entries if test(e)), None)


def _has_external_id(customer: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """Whether a listed customer is ours (a merged customer lists all its external ids)."""
    merged = customer.get("external_ids")
    return customer.get("external_id") == state["external_id"] or (
        isinstance(merged, list) and state["external_id"] in merged
    )


def _contact_match(
    entries: list[Mapping[str, Any]], state: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The user's contact among the customer's: same external id, else same email."""
    contact = state["contact"]
    user_id = contact.get("user_id")
    if user_id:
        found = _matching(entries, lambda e: e.get("external_id") == user_id)
        if found is not None:
            return found
    email = (contact["fields"].get("email") or "").lower()
    if email:
        return _matching(
            entries,
            lambda e: (
                isinstance(e.get("email"), str)
                and e["email"].lower() == email
                and (not user_id or not e.get("external_id"))
            ),
        )
    return None
