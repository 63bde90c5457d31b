"""ChartMogul: contacts and customers, through ChartMogul's Segment source (the default)
or, as an advanced option, written through its REST API v1.

Webhook mode (``mode = webhook``, the default)
    What ChartMogul's own Segment integration does: in ChartMogul, Settings & Data >
    Sources > Add source > Segment gives a webhook URL, and this destination POSTs to it
    the payloads Segment's ChartMogul (Actions) destination sends. ChartMogul then imports
    contacts and customers itself, following its source's "Create company in ChartMogul
    when" setting, with its re-sync and merge rules.

    * identify → ``{"type": "Send Contact", "message_id", "timestamp", "sent_at",
      "user_id", "anonymous_id", "email", "first_name", "last_name", "name", "title",
      "phone", "linked_in", "twitter", "company": {"id", "name"}}``;
    * group → ``{"type": "Send Customer", "message_id", "timestamp", "sent_at",
      "user_id", "group_id", "name", "description", "email", "website", "created_at",
      "address": {"street", "city", "state", "postal_code", "country"}}``;
    * track is not used (ChartMogul's Segment source takes identify and group calls): a
      track delivery is complete with nothing sent;
    * delete / suppress (a deletion request, ``integrations/deletion.py``): ChartMogul's
      Segment source takes no deletions (Segment's ChartMogul destination has no delete
      handler), so the delivery is skipped with the reason: the contact must be deleted
      in ChartMogul.

    Every field but the identifiers is a mapped field whose preset is the path Segment's
    destination reads (``traits.email``, ``traits.linkedIn``, ``traits.address.postalCode``
    …; the names also take Segment's spec spelling, ``firstName``/``lastName``). Fields
    with no value are left out; ``company`` only goes with its id. ``timestamp`` is the
    event's corrected timestamp, ``sent_at`` the client's ``sentAt`` (else our
    ``receivedAt``). An identify carrying none of the contact fields is not sent (there is
    nothing for ChartMogul to import); a group call without a userId fails (ChartMogul's
    source needs the user to attach to the customer). "Test connection" POSTs ``{}``, as
    Segment does. The webhook URL must be ``https://`` (plain http only where
    ``INTEGRATIONS_ALLOW_PRIVATE_URLS`` is on, in tests); it is a credential (whoever
    holds it can post into the source), so it is kept as a secret setting.

REST mode (``mode = rest``, advanced; the mode of integrations made before webhook mode)
    This console re-implements the importer on the REST API: customers of a custom data
    source (``data_source_uuid``), their contacts and custom attributes. Each event costs
    two to six requests, and ChartMogul's Segment source's re-sync and merge rules do not
    apply. ChartMogul has no event store: every call is an *upsert*:

    * **group**: the company is a customer of the data source, ``external_id`` = groupId.
      Known traits become the customer's fields (name, email, website_url, company, city,
      zip, and country/state when they are ISO codes) and every other trait a typed custom
      attribute. In "a user is added to a company" mode the user of the call also becomes
      a contact of that customer (their profile traits), so a user whose identify came
      before any group call is imported then.
    * **identify**: a contact (first/last name, email, title, phone, linked_in, twitter,
      ``external_id`` = userId) on the user's customer. "A user is added to a company":
      the customer is the user's company (``context.groupId``, else the profile store's
      latest group); a user without a company is not imported, and the failure says so.
      The company is created from its known group traits if ChartMogul does not have it
      yet (an identify often arrives before its group call). "The user is created": the
      customer is the user (``external_id`` = userId), upserted with the user's traits,
      plus the contact.
    * **track**: the event's properties become typed custom attributes of the user's
      customer (the same customer identify uses), and contact details the call carries in
      ``context.traits`` update the user's contact.

    * **delete / suppress** (a deletion request): the user's contact is found as
      identify finds it — the customer (the user's company, or in "the user is created"
      mode the user), then its contacts, by external id, then by the email of the
      user's profile — and deleted: ``DELETE /v1/contacts/{uuid}``. A user without a
      company in "a user is added to a company" mode cannot be looked up: the delivery
      fails with the reason. ChartMogul has no suppression: ``suppress`` deletes the
      contact too, and a later identify would import the user again. The customer record
      is left as it is (it may be merged with billing data).

    Every delivery is a chain of single requests, linked by ``follow_up``::

        GET  /v1/customers?data_source_uuid=..&external_id=..     find the customer
          found:   PATCH /v1/customers/{uuid}                      standard fields, if any
                   POST  /v1/customers/{uuid}/attributes/custom    new custom attributes
                   PUT   /v1/customers/{uuid}/attributes/custom    ones it already has
          missing: POST  /v1/customers                             fields + custom attributes
        GET  /v1/customers/{uuid}/contacts?per_page=200            find the user's contact
             (…&cursor=.. while ChartMogul says has_more)          (by external_id, then
          found:   PATCH /v1/contacts/{uuid}                        by email)
          missing: POST  /v1/contacts

    (a freshly created customer has no contacts, so its contact is created without
    looking). ChartMogul documents POST for adding custom attributes and PUT
    (``{"custom": {key: value}}``) for changing the value of one a customer has: the
    lookup's answer lists the customer's attributes, which decides which way each goes.

    Custom attributes: type from the value (bool Boolean, int Integer, float Decimal,
    ISO-8601 date or date-time string Timestamp, other strings String cut to 255
    characters); nested objects and lists are sent as compact JSON strings when they fit in
    255 characters and left out otherwise; nulls and empty strings are left out. Keys keep
    letters, digits and underscores, as ChartMogul requires (accents are dropped, anything
    else becomes ``_``). ChartMogul fixes an attribute's type when it is first created: a
    later value of another type is refused by ChartMogul (the delivery fails with its
    message). A track's name (and its event-name override) is not sent; the event rules'
    on/off switches still decide which tracks come here. "Test connection" is
    ``GET /v1/ping``.

Rate limit (REST mode): ChartMogul allows 40 requests/s per account and answers 429
beyond it; the engine retries 429 (and 5xx) with Retry-After, restarting a REST chain from
the lookup, which is safe because every step is an upsert. ``rate_limit`` makes the engine
space this integration's requests (every step counts) across all workers, so together
they stay under the limit. The Segment source's webhook has no documented limit: its
requests go out side by side like any webhook's (a 429 still pauses the integration).
Only identify and group calls, and deletion requests (to skip them with the reason),
are routed to the webhook mode (``call_types``).
"""

import base64
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.dateparse import parse_date, parse_datetime

from integrations.destinations.base import (
    CleanedSettings,
    Destination,
    OutboundRequest,
    Plan,
    SettingField,
)
from integrations.destinations.context import PlanContext
from integrations.destinations.mapping import MappedField, MappingError
from integrations.destinations.scope import MessageScope, group_of
from integrations.destinations.values import EventData, IntegrationConfig
from integrations.sources.segment_spec import isoformat

API_BASE = "https://api.chartmogul.com"
USER_CREATED = "user_created"
ADDED_TO_COMPANY = "user_added_to_company"
CREATE_COMPANY_WHEN = (
    (USER_CREATED, "The email or user id is created"),
    (ADDED_TO_COMPANY, "A user is added to a company"),
)
CREATE_COMPANY_LABELS = dict(CREATE_COMPANY_WHEN)
# Shown in ChartMogul next to each custom attribute we set.
ATTRIBUTE_SOURCE = "Segment"
STRING_LIMIT = 255
CONTACTS_PAGE = 200
# Pages of a customer's contacts read to find the user's (10,000 contacts); beyond, the
# contact found by email on those pages is updated, or a new one created.
MAX_CONTACT_PAGES = 50

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


# The steps of a deletion's chain (the other chains' steps are named where they are built).
ERASE_FIND_CUSTOMER = "erase_find_customer"
ERASE_FIND_CONTACT = "erase_find_contact"
ERASE_CONTACT = "erase_contact"


class NotSent(Exception):
    """A delivery that cannot be sent; the message says what is missing."""


class Mode(StrEnum):
    WEBHOOK = "webhook"
    REST = "rest"


MODES = (
    (Mode.WEBHOOK, "ChartMogul's Segment source (webhook URL)"),
    (Mode.REST, "REST API, written by this console (advanced)"),
)
# What each mode needs, besides the mode.
MODE_SETTINGS = {Mode.WEBHOOK: ("webhook_url",), Mode.REST: ("api_key", "data_source_uuid")}


def validate_data_source_uuid(value: str) -> None:
    if not value.startswith("ds_"):
        raise ValidationError("must be a ChartMogul data source uuid (ds_…)")


def validate_webhook_url(value: str) -> None:
    """An https:// URL; plain http only where private URLs are allowed (tests)."""
    URLValidator(schemes=["https", "http"])(value)
    if not value.startswith("https://") and not settings.INTEGRATIONS_ALLOW_PRIVATE_URLS:
        raise ValidationError("must start with https:// (ChartMogul's webhook URLs do)")


# -- webhook mode: the fields Segment's ChartMogul (Actions) destination sends ----------

IDENTIFY = frozenset({"identify"})
GROUP = frozenset({"group"})
# A deletion request's calls (``integrations/deletion.py``).
REMOVALS = frozenset({"delete", "suppress"})


def _webhook_field(name: str, label: str, calls: frozenset[str], preset: str) -> MappedField:
    return MappedField(name, label, calls, preset=preset, help_text="Webhook mode.")


CONTACT_WEBHOOK_FIELDS = {
    "email": _webhook_field("contact_email", "Contact: email", IDENTIFY, "traits.email"),
    "first_name": _webhook_field(
        "contact_first_name",
        "Contact: first name",
        IDENTIFY,
        "traits.first_name || traits.firstName",
    ),
    "last_name": _webhook_field(
        "contact_last_name", "Contact: last name", IDENTIFY, "traits.last_name || traits.lastName"
    ),
    "name": _webhook_field("contact_name", "Contact: full name", IDENTIFY, "traits.name"),
    "title": _webhook_field("contact_title", "Contact: title", IDENTIFY, "traits.title"),
    "phone": _webhook_field("contact_phone", "Contact: phone", IDENTIFY, "traits.phone"),
    "linked_in": _webhook_field(
        "contact_linked_in", "Contact: LinkedIn", IDENTIFY, "traits.linkedIn"
    ),
    "twitter": _webhook_field(
        "contact_twitter", "Contact: Twitter (X)", IDENTIFY, "traits.twitter"
    ),
}
COMPANY_WEBHOOK_FIELDS = {
    "id": _webhook_field(
        "contact_company_id", "Contact: company id", IDENTIFY, "traits.company.id"
    ),
    "name": _webhook_field(
        "contact_company_name", "Contact: company name", IDENTIFY, "traits.company.name"
    ),
}
CUSTOMER_WEBHOOK_FIELDS = {
    "name": _webhook_field("customer_name", "Customer: name", GROUP, "traits.name"),
    "description": _webhook_field(
        "customer_description", "Customer: description", GROUP, "traits.description"
    ),
    "email": _webhook_field("customer_email", "Customer: email", GROUP, "traits.email"),
    "website": _webhook_field("customer_website", "Customer: website", GROUP, "traits.website"),
    "created_at": _webhook_field(
        "customer_created_at", "Customer: created at", GROUP, "traits.createdAt"
    ),
}
ADDRESS_WEBHOOK_FIELDS = {
    "street": _webhook_field("customer_street", "Customer: street", GROUP, "traits.address.street"),
    "city": _webhook_field("customer_city", "Customer: city", GROUP, "traits.address.city"),
    "state": _webhook_field("customer_state", "Customer: state", GROUP, "traits.address.state"),
    "postal_code": _webhook_field(
        "customer_postal_code", "Customer: postal code", GROUP, "traits.address.postalCode"
    ),
    "country": _webhook_field(
        "customer_country", "Customer: country", GROUP, "traits.address.country"
    ),
}
WEBHOOK_FIELDS = (
    *CONTACT_WEBHOOK_FIELDS.values(),
    *COMPANY_WEBHOOK_FIELDS.values(),
    *CUSTOMER_WEBHOOK_FIELDS.values(),
    *ADDRESS_WEBHOOK_FIELDS.values(),
)


class ChartMogul(Destination):
    kind = "chartmogul"
    label = "ChartMogul"
    segment_names = ("ChartMogul",)
    supported_types = frozenset({"identify", "track", "group", *REMOVALS})
    settings_schema = (
        SettingField(
            "mode",
            "Send through",
            type="choice",
            choices=MODES,
            help_text="ChartMogul's Segment source (recommended): ChartMogul imports "
            "contacts and customers itself, with its re-sync and merge rules; one request "
            "per call; track calls are not used. REST API (advanced): this console writes "
            "customers, contacts and custom attributes into a custom data source, two to "
            "six requests per call, and track properties become custom attributes.",
            default=Mode.WEBHOOK,
        ),
        SettingField(
            "webhook_url",
            "Webhook URL",
            help_text="Segment source mode. In ChartMogul: Settings & Data > Sources > Add "
            "Source > Segment, then copy its Webhook URL (https://…). The API base URL "
            "below does not apply to it.",
            secret=True,
            validator=validate_webhook_url,
        ),
        SettingField(
            "api_key",
            "API key",
            help_text="REST mode. ChartMogul > Profile > API keys (a key with write access).",
            secret=True,
        ),
        SettingField(
            "data_source_uuid",
            "Data source UUID",
            help_text="REST mode. The ds_… uuid of the ChartMogul data source customers are "
            "created in.",
            validator=validate_data_source_uuid,
        ),
        SettingField(
            "create_company_when",
            "Create a company in ChartMogul when",
            type="choice",
            choices=CREATE_COMPANY_WHEN,
            help_text="REST mode (in Segment source mode, ChartMogul's source has this "
            "setting). The user is created: every user is a customer of its own. A user is "
            "added to a company: companies (group calls) are customers and users their "
            "contacts; users without a company are not imported.",
            default=ADDED_TO_COMPANY,
        ),
    )
    caveats = (
        "Segment source mode (recommended) needs only the webhook URL ChartMogul gives for "
        "a Segment source; ChartMogul then imports contacts and customers itself, as its "
        "source's settings say, and re-syncs and merges them. Track calls are not used.",
        "REST mode (advanced) writes into a custom data source, with two to six requests "
        "per call, and without ChartMogul's re-sync and merge rules.",
    )
    mapped_fields = WEBHOOK_FIELDS
    # One call a request in both modes (REST: no batch endpoint for customers, contacts
    # or attributes; webhook: Segment's destination posts one payload at a time).
    max_batch_size = 1
    # ChartMogul's limit per account: the engine spaces this integration's requests so
    # that all workers together stay under it (``delivery/throttle.py``).
    max_requests_per_second: ClassVar[float] = 40

    @classmethod
    def call_types(cls, settings: Mapping[str, Any]) -> frozenset[str]:
        """ChartMogul's Segment source takes identify and group calls only (and deletion
        requests, which it skips with the reason, so the request tells)."""
        if settings.get("mode") == Mode.REST:
            return cls.supported_types
        return frozenset({"identify", "group", *REMOVALS})

    @classmethod
    def rate_limit(cls, settings: Mapping[str, Any]) -> float | None:
        """The REST API's limit; a Segment source's webhook has none documented."""
        return cls.max_requests_per_second if settings.get("mode") == Mode.REST else None

    @classmethod
    def clean_settings(
        cls, data: Mapping[str, Any], existing_secrets: Mapping[str, Any] | None = None
    ) -> CleanedSettings:
        """The settings of the chosen mode are required (the others may stay, unused)."""
        errors: dict[str, list[str]] = {}
        try:
            cleaned = super().clean_settings(data, existing_secrets)
        except ValidationError as exc:
            errors, cleaned = exc.message_dict, None
        mode = (data.get("mode") if isinstance(data, Mapping) else None) or Mode.WEBHOOK
        if mode in MODE_SETTINGS:
            given = {**(existing_secrets or {}), **(data if isinstance(data, Mapping) else {})}
            label = dict(MODES)[Mode(mode)]
            for name in MODE_SETTINGS[Mode(mode)]:
                if not given.get(name) and name not in errors:
                    errors[name] = [f"this setting is required to send through {label}"]
        if errors or cleaned is None:
            raise ValidationError(errors)
        return cleaned

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        """Webhook mode: one POST per call. REST mode: the first step of each delivery,
        the lookup of its customer."""
        if config.get("mode") == Mode.REST:
            return _rest_plan(config, events, context)
        return _webhook_plan(config, events, context)

    @classmethod
    def follow_up(
        cls, config: IntegrationConfig, request: OutboundRequest, status: int, body: str
    ) -> OutboundRequest | None:
        """REST mode: the next step of the chain, from the answer to the previous one."""
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
            _split_custom(state, customer)
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
        if request.step in ("update_customer", "add_attributes", "update_attributes"):
            return _after(config, state, covers, request.step)
        if request.step == "find_contact":
            return _after_contact_page(config, state, covers, body)
        if request.step == ERASE_FIND_CUSTOMER:
            customer = _matching(_entries(body), lambda e: _has_external_id(e, state))
            if customer is None:
                return None  # ChartMogul has no such customer: no contact to delete
            state["customer_uuid"] = customer["uuid"]
            return _find_contacts(config, state, covers, step=ERASE_FIND_CONTACT)
        if request.step == ERASE_FIND_CONTACT:
            return _erase_after_contact_page(config, state, covers, body)
        return None

    @classmethod
    def connection_test(cls, config: IntegrationConfig) -> OutboundRequest:
        """Webhook mode: ``POST {}`` to the webhook URL, as Segment's destination tests it.
        REST mode: ``GET /v1/ping`` with the API key."""
        if config.get("mode") == Mode.REST:
            return _request(config, "GET", "/ping", "ping", {}, (0,))
        return OutboundRequest(
            "POST", config["webhook_url"], {"Content-Type": "application/json"}, "{}"
        )


# -- webhook mode -----------------------------------------------------------------------


def _webhook_plan(
    config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
) -> Plan:
    plan = Plan()
    url = config["webhook_url"]
    headers = {"Content-Type": "application/json"}
    for index, event in enumerate(events):
        try:
            payload = _webhook_payload(event, config, context)
        except NotSent as exc:
            plan.failures[index] = str(exc)
            continue
        except MappingError as exc:
            plan.failures[index] = f"Not sent: {exc}."
            continue
        except NothingToSend as exc:
            plan.skipped[index] = str(exc)
            continue
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        plan.requests.append(OutboundRequest("POST", url, headers, body, covers=(index,)))
    return plan


class NothingToSend(Exception):
    """A call ChartMogul's Segment source has no use for (complete, nothing sent)."""


def _webhook_payload(
    event: EventData, config: IntegrationConfig, context: PlanContext
) -> dict[str, Any]:
    if event.type in REMOVALS:
        raise NothingToSend(
            "ChartMogul's Segment source takes no deletions (Segment's ChartMogul "
            f"destination sends none): delete user {event.user_id!r}'s contact in ChartMogul "
            "itself, or use the REST mode"
        )
    if event.type not in ("identify", "group"):
        raise NothingToSend(
            f"ChartMogul's Segment source imports identify and group calls; a {event.type} "
            "call is not sent to it"
        )
    scope = MessageScope(event, context)

    def values(fields: Mapping[str, MappedField]) -> dict[str, str]:
        found = {key: _text(spec.value(config.mappings, scope)) for key, spec in fields.items()}
        return {key: value for key, value in found.items() if value}

    sent_at = event.payload.get("sentAt") or event.payload.get("receivedAt")
    common = {
        "message_id": event.message_id,
        "timestamp": isoformat(event.timestamp),
        "sent_at": sent_at,
        "user_id": event.user_id,
    }
    if event.type == "group":
        if not event.user_id:
            raise NotSent(
                "Not sent: ChartMogul's Segment source attaches a customer to the user of "
                "the group call, and this one has only an anonymousId."
            )
        payload = {"type": "Send Customer", **common, "group_id": event.group_id}
        payload.update(values(CUSTOMER_WEBHOOK_FIELDS))
        address = values(ADDRESS_WEBHOOK_FIELDS)
        if address:
            payload["address"] = address
        return {key: value for key, value in payload.items() if value not in (None, "")}
    details: dict[str, Any] = values(CONTACT_WEBHOOK_FIELDS)
    company = values(COMPANY_WEBHOOK_FIELDS)
    if "id" in company:
        details["company"] = company
    if not details:
        raise NothingToSend(
            "this identify carries nothing ChartMogul's Segment source imports (no email, "
            "name, title, phone, LinkedIn, Twitter or company id)"
        )
    payload = {"type": "Send Contact", **common, "anonymous_id": event.anonymous_id, **details}
    return {key: value for key, value in payload.items() if value not in (None, "")}


def _text(value: Any) -> str:
    """A mapped value as the text ChartMogul's fields take ("" for none, or an object)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return ""


# -- REST mode: what each call asks for -------------------------------------------------


def _rest_plan(
    config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
) -> Plan:
    mode = config.get("create_company_when") or ADDED_TO_COMPANY
    plan = Plan()
    for index, event in enumerate(events):
        try:
            state = _job(event, context, mode)
        except NotSent as exc:
            plan.failures[index] = str(exc)
            continue
        step = ERASE_FIND_CUSTOMER if event.type in REMOVALS else "find_customer"
        plan.requests.append(_find_customer(config, state, (index,), step))
    return plan


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
    if event.type in REMOVALS:
        return _erase_job(event, context, mode)
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
    group_id = group_of(event, profile.group_id)
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
    group_id = group_of(event, profile.group_id)
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


def _erase_job(event: EventData, context: PlanContext, mode: str) -> dict[str, Any]:
    """A deletion's chain state: the customer identify would have put the user's contact
    on, and how to know the contact (the user id, the profile's email)."""
    if not event.user_id:
        raise NotSent("Not sent: a deletion needs a userId.")
    profile = context.profile(event)
    email = context.rules.apply(profile.traits).get("email")
    contact = {
        "user_id": event.user_id,
        "fields": {"email": email.strip()} if isinstance(email, str) and email.strip() else {},
    }
    if mode == USER_CREATED:
        return {"external_id": event.user_id, "contact": contact}
    group_id = group_of(event, profile.group_id)
    if not group_id:
        raise NotSent(
            f"Not sent: in '{CREATE_COMPANY_LABELS[ADDED_TO_COMPANY]}' mode a user's contact "
            f"is found through their company, and user {event.user_id!r} has none in the "
            "profile store (no group call): if ChartMogul has a contact for them, delete it "
            "there."
        )
    return {"external_id": group_id, "contact": contact}


def _needs_company(event: EventData, call: str) -> str:
    who = f"user {event.user_id!r}" if event.user_id else "this anonymous user"
    return (
        f"Not sent: in '{CREATE_COMPANY_LABELS[ADDED_TO_COMPANY]}' mode ChartMogul only "
        f"imports users that belong to a company, and {who} has no group call yet (no "
        f"groupId in the {call}'s context nor in the profile store). Send a group call for "
        f"this user, or set "
        f"'Create a company in ChartMogul when' to '{CREATE_COMPANY_LABELS[USER_CREATED]}'."
    )


def _needs_user_id(call: str) -> str:
    return (
        f"Not sent: in '{CREATE_COMPANY_LABELS[USER_CREATED]}' mode each user is a ChartMogul "
        f"customer whose external id is the user id, and this {call} has only an anonymousId."
    )


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
    config: IntegrationConfig,
    state: Mapping[str, Any],
    covers: tuple[int, ...],
    step: str = "find_customer",
) -> OutboundRequest:
    query = urlencode(
        {"data_source_uuid": _data_source(config), "external_id": state["external_id"]}
    )
    return _request(config, "GET", f"/customers?{query}", step, state, covers)


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
    """The next write for an existing customer, in order: its fields, its new custom
    attributes, the values of those it has, then the contact."""
    uuid = quote(state["customer_uuid"], safe="")
    order = ["find_customer", "update_customer", "add_attributes", "update_attributes"]
    for step in [*order[order.index(done) + 1 :], "find_contact"]:
        if step == "update_customer" and state.get("update"):
            return _request(
                config, "PATCH", f"/customers/{uuid}", step, state, covers, state["update"]
            )
        if step == "add_attributes" and state.get("custom"):
            path = f"/customers/{uuid}/attributes/custom"
            payload = {"custom": state["custom"]}
            return _request(config, "POST", path, step, state, covers, payload)
        if step == "update_attributes" and state.get("custom_update"):
            path = f"/customers/{uuid}/attributes/custom"
            payload = {"custom": state["custom_update"]}
            return _request(config, "PUT", path, step, state, covers, payload)
        if step == "find_contact" and state.get("contact"):
            return _find_contacts(config, state, covers)
    return None


def _split_custom(state: dict[str, Any], customer: Mapping[str, Any]) -> None:
    """Custom attributes the found customer has already go by PUT (a new value), the
    others by POST (ChartMogul documents POST to add, PUT to update)."""
    attributes = customer.get("attributes")
    existing = attributes.get("custom") if isinstance(attributes, Mapping) else None
    if not isinstance(existing, Mapping) or not state.get("custom"):
        return
    state["custom_update"] = {c["key"]: c["value"] for c in state["custom"] if c["key"] in existing}
    state["custom"] = [c for c in state["custom"] if c["key"] not in existing]


def _find_contacts(
    config: IntegrationConfig,
    state: Mapping[str, Any],
    covers: tuple[int, ...],
    cursor: str = "",
    step: str = "find_contact",
) -> OutboundRequest:
    """A page of the customer's contacts (the next one, with ChartMogul's cursor)."""
    uuid = quote(state["customer_uuid"], safe="")
    query = {"per_page": CONTACTS_PAGE, **({"cursor": cursor} if cursor else {})}
    path = f"/customers/{uuid}/contacts?{urlencode(query)}"
    return _request(config, "GET", path, step, state, covers)


def _next_contacts_page(
    config: IntegrationConfig, state: dict[str, Any], covers: tuple[int, ...], body: str, step: str
) -> OutboundRequest | None:
    """The next page of the customer's contacts while ChartMogul says it has more (a
    cursor that moves, at most ``MAX_CONTACT_PAGES``), else None."""
    answer = _json(body)
    cursor = answer.get("cursor") if isinstance(answer, dict) else None
    pages = state.get("contact_pages", 1)
    more = isinstance(answer, dict) and answer.get("has_more") is True
    if (
        more
        and isinstance(cursor, str)
        and cursor  # a fresh cursor: one that moves
        and cursor != state.get("cursor")
        and pages < MAX_CONTACT_PAGES
    ):
        state.update(cursor=cursor, contact_pages=pages + 1)
        return _find_contacts(config, state, covers, cursor, step=step)
    return None


def _after_contact_page(
    config: IntegrationConfig, state: dict[str, Any], covers: tuple[int, ...], body: str
) -> OutboundRequest | None:
    """The user's contact on this page (by external id) is updated; otherwise the next
    page is read while ChartMogul has more, and at the end the first contact found by
    email is updated, or a new contact created."""
    entries = _entries(body)
    found = _by_external_id(entries, state)
    if found is not None:
        return _update_contact(config, state, covers, found["uuid"])
    _note_email_match(entries, state)
    following = _next_contacts_page(config, state, covers, body, "find_contact")
    if following is not None:
        return following
    if state.get("email_match"):
        return _update_contact(config, state, covers, state["email_match"])
    return _create_contact(config, state, covers)


def _note_email_match(entries: list[Mapping[str, Any]], state: dict[str, Any]) -> None:
    """Keep the first contact found by email (the fallback when no page has the user's
    external id)."""
    if not state.get("email_match"):
        by_email = _by_email(entries, state)
        if by_email is not None:
            state["email_match"] = by_email["uuid"]


def _erase_after_contact_page(
    config: IntegrationConfig, state: dict[str, Any], covers: tuple[int, ...], body: str
) -> OutboundRequest | None:
    """The user's contact on this page (by external id) is deleted; otherwise the next
    page is read, and at the end the contact found by email, if any, is deleted."""
    entries = _entries(body)
    found = _by_external_id(entries, state)
    if found is None:
        _note_email_match(entries, state)
        following = _next_contacts_page(config, state, covers, body, ERASE_FIND_CONTACT)
        if following is not None:
            return following
    uuid = found["uuid"] if found is not None else state.get("email_match")
    if not uuid:
        return None  # the customer has no contact for this user: nothing to delete
    path = f"/contacts/{quote(uuid, safe='')}"
    return _request(config, "DELETE", path, ERASE_CONTACT, state, covers)


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


def _by_external_id(
    entries: list[Mapping[str, Any]], state: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The user's contact among these: the one with the user's id as external id."""
    user_id = state["contact"].get("user_id")
    if not user_id:
        return None
    return _matching(entries, lambda e: e.get("external_id") == user_id)


def _by_email(
    entries: list[Mapping[str, Any]], state: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """A contact with the user's email, not claimed by another user's external id."""
    contact = state["contact"]
    user_id = contact.get("user_id")
    email = (contact["fields"].get("email") or "").lower()
    if not email:
        return None
    return _matching(
        entries,
        lambda e: (
            isinstance(e.get("email"), str)
            and e["email"].lower() == email
            and (not user_id or not e.get("external_id"))
        ),
    )
