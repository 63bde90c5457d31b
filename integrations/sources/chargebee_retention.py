"""Chargebee Retention's (formerly Brightback's) own webhooks.

The URL: ``/hooks/chargebee-retention/<token>/``.

Chargebee Retention posts its cancel-flow events (Settings > Alerts & Webhooks) as JSON,
signed with ``X-Hub-Signature``: the hex HMAC-SHA1 of the body with the subscription's
shared secret (``sha1=<hex>``, as GitHub writes it, is taken too). It does not follow
redirects.

Its documentation gives the signature but not the body, so this source takes what its
Segment integration is documented to send, with or without the envelope: the event type
in ``event`` (or ``event_type``), and the properties either in a ``properties`` object or
as the body's own fields (``app_id``, ``session``, ``user_id``, ``field.cancel.*``,
``survey.*``...). Type names are mapped onto the Segment integration's event names
(``page_loaded``, ``cancel``, ``save``, ``deflect``, ``accept_offer``...), so both paths
share one catalog; a type it does not know is kept under its own name, never refused.

Each event becomes a track call for the account's ``field.cancel.account.internal_id``
(the Segment integration's identify ``userId``; else ``userId`` in the body) and, as
``anonymousId``, Chargebee Retention's own ``user_id``. When the body carries the person
(``field.cancel.email``, names, account fields) and a user id, an identify call with those
traits comes first: a webhook may be subscribed to ``cancel`` only, so the identify the
Segment integration sends with ``page_loaded`` may never come. The ``messageId`` is the
body's own ``messageId``/``id`` when it has one, else derived from the whole body: a
redelivery of the same event has the same id, and ingest keeps it once.
"""

import hashlib
import hmac
import json
from typing import Any

from integrations.sources import segment_spec
from integrations.sources.base import KnownEvent, SignatureError, SignedCall, WebhookSource

GROUP = "Chargebee Retention"
KNOWN_EVENTS = tuple(
    KnownEvent(name, GROUP, description)
    for name, description in {
        "page_loaded": "The user visited a cancel page",
        "watchlist": "The user visited and did not cancel within 30 minutes",
        "cancel": "The user confirmed the cancel request",
        "save": "The watch-list session expired and the user did not cancel",
        "deflect": "The user took any action that leaves the cancel flow",
        "email": "The user sent the feedback form",
        "link": "The user clicked a link (modal actions and 'Nevermind' included)",
        "chat": "The user asked for a chat",
        "accept_offer": "The user accepted an offer",
        "schedule": "The user asked for a call to be scheduled",
    }.items()
)
_NAMES = frozenset(event.name for event in KNOWN_EVENTS)
# Other spellings of the same events (the dashboard's trigger names, past tenses).
ALIASES = {
    "page_load": "page_loaded",
    "page_view": "page_loaded",
    "page_viewed": "page_loaded",
    "watch_list": "watchlist",
    "cancelled": "cancel",
    "canceled": "cancel",
    "saved": "save",
    "deflected": "deflect",
    "feedback": "email",
    "offer_accepted": "accept_offer",
    "accepted_offer": "accept_offer",
    "scheduled": "schedule",
}
SIGNATURE_HEADER = "X-Hub-Signature"
SIGNATURE_PREFIX = "sha1="
LIBRARY = {"name": "chargebee-retention-webhook", "version": "1"}
IDENTIFY_SUFFIX = ":identify"
MAX_ID_LENGTH = segment_spec.MAX_MESSAGE_ID_LENGTH - len(IDENTIFY_SUFFIX)
DERIVED_ID_PREFIX = "cbr_"
# The fields the account's id and the person's traits are read from.
ACCOUNT_ID = "field.cancel.account.internal_id"
FIELD_PREFIX = "field."
PERSON_PREFIX = "field.cancel."
STANDARD_TRAITS = {
    "field.cancel.email": "email",
    "field.cancel.first_name": "firstName",
    "field.cancel.last_name": "lastName",
}
# The body's own fields that are not properties when the body has no properties object.
ENVELOPE = frozenset(
    {"event", "event_type", "messageId", "id", "userId", "anonymousId", "timestamp"}
    | {"originalTimestamp"}
)

SAMPLE_PROPERTIES = {
    "app_id": "9Nyv3KZvQJ",
    "session": "1kbVVDN7b6",
    "user_id": "KD21akKyAZ",
    "field.cancel.account.internal_id": "user-123",
    "field.cancel.account.plan": "Premium",
    "field.cancel.account.value": "1234",
    "field.cancel.email": "jane@example.com",
    "field.cancel.first_name": "Jane",
    "field.cancel.last_name": "Doe",
    "survey.brightback_reason": "too_expensive",
    "survey.display_reason": "Pricing - don't see value",
}


def segment_track(name: str) -> dict[str, Any]:
    """The track call Chargebee Retention's Segment integration sends for ``name``."""
    return {
        "type": "track",
        "userId": "user-123",
        "event": name,
        "properties": {
            "app_id": "9Nyv3KZvQJ",
            "field.cancel.account.plan": "Premium",
            "field.cancel.email": "jane@example.com",
            "survey.brightback_reason": "too_expensive",
            "survey.display_reason": "Pricing - don't see value",
        },
    }


def event_name(value: Any) -> str:
    """The catalog name of a Chargebee Retention event type."""
    if not isinstance(value, str) or not value.strip():
        raise segment_spec.MessageError(
            "missing_event",
            "event (the Chargebee Retention event type, e.g. cancel) is missing: this is not "
            "a Chargebee Retention event",
        )
    if len(value) > segment_spec.MAX_EVENT_NAME_LENGTH:
        raise segment_spec.MessageError(
            "event_name_too_long",
            f"event is longer than {segment_spec.MAX_EVENT_NAME_LENGTH} characters",
        )
    name = "_".join(value.strip().lower().replace("-", " ").split())
    return name if name in _NAMES else ALIASES.get(name, name)


def _message_id(payload: dict[str, Any]) -> str:
    for field in ("messageId", "id"):
        value = payload.get(field)
        if isinstance(value, str) and value:
            if len(value) > MAX_ID_LENGTH:
                raise segment_spec.MessageError(
                    "message_id_too_long", f"{field} is longer than {MAX_ID_LENGTH} characters"
                )
            return value
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))  # ASCII: any text
    return DERIVED_ID_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _timestamp(payload: dict[str, Any], properties: dict[str, Any]) -> Any:
    for value in (
        payload.get("timestamp"),
        payload.get("originalTimestamp"),
        properties.get("client_timestamp"),
    ):
        if value is not None:
            return value
    return None


class ChargebeeRetention(WebhookSource):
    kind = "chargebee_retention"
    label = "Chargebee Retention"
    path = "chargebee-retention"
    body_name = "A Chargebee Retention event"
    credential_headers = {"HTTP_X_HUB_SIGNATURE": SIGNATURE_HEADER}
    signature_help = "Bad or missing X-Hub-Signature (HMAC-SHA1 of the body)."
    known_events = KNOWN_EVENTS

    @classmethod
    def verify(cls, call: SignedCall) -> None:
        signature = call.headers.get(SIGNATURE_HEADER, "").strip().lower()
        if not signature:
            raise SignatureError(
                "X-Hub-Signature is missing: Chargebee Retention signs every webhook with "
                "the shared secret shown on its webhook's details."
            )
        signature = signature.removeprefix(SIGNATURE_PREFIX)
        expected = hmac.new(call.secret.encode(), call.raw, hashlib.sha1).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise SignatureError(
                "X-Hub-Signature does not match the source's shared secret (the hex HMAC-SHA1 "
                "of the body): copy the secret from the Chargebee Retention webhook's details."
            )

    @classmethod
    def signature_headers(cls, secret: str, raw: bytes) -> dict[str, str]:
        digest = hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
        return {SIGNATURE_HEADER: SIGNATURE_PREFIX + digest}

    @classmethod
    def to_messages(cls, event: Any) -> list[dict[str, Any]]:
        if not isinstance(event, dict):
            raise segment_spec.MessageError(
                "invalid_message", "a Chargebee Retention event is a JSON object"
            )
        name = event_name(event["event"] if "event" in event else event.get("event_type"))
        if isinstance(event.get("properties"), dict):
            properties = event["properties"]
        elif event.get("properties") is not None:
            raise segment_spec.MessageError("invalid_properties", "properties must be an object")
        else:
            properties = {key: value for key, value in event.items() if key not in ENVELOPE}
        message_id = _message_id(event)
        user_id = event.get("userId") or properties.get(ACCOUNT_ID) or None
        anonymous_id = event.get("anonymousId") or properties.get("user_id") or None
        if user_id is None and anonymous_id is None:
            anonymous_id = properties.get("session") or properties.get("field.session_id")
        common = {
            "userId": user_id,
            "anonymousId": anonymous_id,
            "timestamp": _timestamp(event, properties),
            "context": {"library": LIBRARY},
        }
        messages = []
        traits = {
            key.removeprefix(FIELD_PREFIX): value
            for key, value in properties.items()
            if key.startswith(PERSON_PREFIX)
        }
        # The account's id alone says nothing the track call does not.
        if user_id is not None and set(traits) - {ACCOUNT_ID.removeprefix(FIELD_PREFIX)}:
            traits |= {
                new: properties[old] for old, new in STANDARD_TRAITS.items() if properties.get(old)
            }
            messages.append(
                {
                    **common,
                    "type": "identify",
                    "messageId": message_id + IDENTIFY_SUFFIX,
                    "traits": traits,
                }
            )
        messages.append(
            {
                **common,
                "type": "track",
                "messageId": message_id,
                "event": name,
                "properties": properties,
            }
        )
        return messages

    @classmethod
    def sample_message(cls, name: str) -> dict[str, Any] | None:
        if name not in _NAMES:
            return None
        body = {"event": name, "id": f"sample-{name}", "properties": SAMPLE_PROPERTIES}
        return cls.to_messages(body)[-1]
