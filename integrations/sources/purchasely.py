"""Purchasely's server-to-server webhook as a source: ``/hooks/purchasely/<token>/``.

Signature (current scheme): ``X-PURCHASELY-REQUEST-SIGNATURE`` is the hex HMAC-SHA256,
keyed with the source's shared secret, of the ``X-PURCHASELY-TIMESTAMP`` value followed by
the raw body; the timestamp must be recent. The older scheme (HMAC of the secret followed
by the body, no timestamp) is accepted only when the source allows it.

Each Purchasely event becomes a track call named by its ``event_name`` for ``user_id`` (or
``anonymous_user_id``) with the payload as properties, deduplicated on ``event_id``. For
a known user it is preceded by an identify call carrying the user properties Purchasely
keeps (subscription status, plan, store...), so the profile store and tools such as
Customer.io see them as Purchasely's own integrations do.

Events of the webhook before api_version 3 (``name``, ``user.vendor_id``, nested
``properties``, no ``event_id``) are flattened into the version 3 attributes, as
Purchasely's migration guide maps them, and then handled alike; their ``event_id`` is
derived from the whole body, so a redelivery has the same one.
"""

import hashlib
import hmac
import json
import time
from typing import Any

from django.conf import settings

from integrations.sources import segment_spec
from integrations.sources.base import (
    KnownEvent,
    SignatureError,
    SignedCall,
    WebhookSource,
    required_string,
)

SIGNATURE_HEADER = "X-PURCHASELY-REQUEST-SIGNATURE"
TIMESTAMP_HEADER = "X-PURCHASELY-TIMESTAMP"
MAX_STAMP_DIGITS = 12  # unix seconds: enough for the next 30,000 years
# Subscription statuses in which the user still has access.
ACTIVE_STATUSES = frozenset({"AUTO_RENEWING", "AUTO_RENEWING_CANCELED", "IN_GRACE_PERIOD"})
# Payload fields that are user properties (kept up to date on the user's profile).
USER_PROPERTIES = (
    "subscription_status",
    "plan",
    "product",
    "offer_type",
    "store",
    "store_country",
    "purchased_at",
    "effective_next_renewal_at",
    "is_family_shared",
    "promotional_offer_id",
)
LIBRARY = {"name": "purchasely-webhook", "version": "3"}
IDENTIFY_SUFFIX = ":identify"
# The identify call's messageId is the event_id with a suffix, and must fit too.
MAX_EVENT_ID_LENGTH = segment_spec.MAX_MESSAGE_ID_LENGTH - len(IDENTIFY_SUFFIX)
V2_ID_PREFIX = "v2_"

EVENTS: dict[str, tuple[str, ...]] = {
    "Entitlement": ("ACTIVATE", "DEACTIVATE"),
    "Transaction": ("TRANSACTION_PROCESSED",),
    "Lifecycle": (
        "SUBSCRIPTION_STARTED",
        "RENEWAL_DISABLED",
        "RENEWAL_ENABLED",
        "SUBSCRIPTION_TERMINATED",
        "FAMILY_SHARED_REVOKED",
        "GRACE_PERIOD_STARTED",
        "GRACE_PERIOD_TERMINATED",
        "SUBSCRIPTION_CANCELLED_DURING_GRACE_PERIOD",
        "SUBSCRIPTION_RECOVERED_FROM_GRACE_PERIOD",
        "ENTERED_BILLING_RETRY",
        "SUBSCRIPTION_RECOVERED_FROM_BILLING_RETRY",
        "SUBSCRIPTION_RENEWED",
        "SUBSCRIPTION_DEFERRED",
        "SUBSCRIPTION_REACTIVATED",
        "SUBSCRIPTION_CROSSGRADED",
        "SUBSCRIPTION_DOWNGRADED",
        "SUBSCRIPTION_UPGRADED",
        "SUBSCRIPTION_REFUNDED_REVOKED",
        "SUBSCRIPTION_TRANSFERRED",
        "SUBSCRIPTION_RECEIVED",
        "ONE_TIME_PURCHASE_TRANSFERRED",
        "ONE_TIME_PURCHASE_RECEIVED",
        "SUBSCRIPTION_WILL_PAUSE",
        "SUBSCRIPTION_PAUSED",
        "SUBSCRIPTION_UNPAUSED",
        "SUBSCRIPTION_CANCELLED_DURING_PAUSE",
        "SUBSCRIPTION_WILL_NOT_PAUSE",
    ),
    "Offer": (
        "TRIAL_STARTED",
        "INTRO_OFFER_STARTED",
        "PROMO_CODE_STARTED",
        "TRIAL_CONVERTED",
        "INTRO_OFFER_CONVERTED",
        "PROMO_CODE_CONVERTED",
        "TRIAL_NOT_CONVERTED",
        "INTRO_OFFER_NOT_CONVERTED",
        "PROMO_CODE_NOT_CONVERTED",
        "PROMOTIONAL_OFFER_STARTED",
        "PROMOTIONAL_OFFER_CONVERTED",
        "PROMOTIONAL_OFFER_NOT_CONVERTED",
    ),
}

SAMPLE_EVENT = {
    "api_version": 3,
    "event_id": "sample-event",
    "event_created_at": "2024-03-01T10:00:00.000Z",
    "user_id": "user-123",
    "store": "APPLE_APP_STORE",
    "plan": "premium_monthly",
    "product": "premium",
    "purchase_type": "RENEWING_SUBSCRIPTION",
    "subscription_status": "AUTO_RENEWING",
    "offer_type": "FREE_TRIAL",
    "store_country": "FR",
    "customer_currency": "EUR",
    "plan_price_in_customer_currency": 9.99,
}

# Before api_version 3: where each version 3 attribute was (Purchasely's migration guide).
V2_PROPERTIES = {
    ("app", "package_id"): "store_app_bundle_id",
    ("app", "platform"): "platform",
    ("content_id",): "content_id",
    ("expires_at",): "effective_next_renewal_at",
    ("original_purchased_at",): "original_purchased_at",
    ("original_transaction_id",): "store_original_transaction_id",
    ("product", "plan", "store_product_id"): "store_product_id",
    ("product", "plan", "type"): "purchase_type",
    ("product", "plan", "vendor_id"): "plan",
    ("product", "vendor_id"): "product",
    ("purchased_at",): "purchased_at",
    ("store",): "store",
}
# period_type became offer_type, and its NORMAL became NONE.
V2_PERIODS = {"period_type": "offer_type", "previous_period_type": "previous_offer_type"}
# Properties read by the maps above; the others are kept as they are.
V2_MAPPED = frozenset({path[0] for path in V2_PROPERTIES} | {"purchase_id", *V2_PERIODS})
V2_USER = {"vendor_id": "user_id", "anonymous_id": "anonymous_user_id"}


def _matches(secret: str, message: bytes, signature: str) -> bool:
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def _timestamp(payload: dict[str, Any]) -> str | None:
    millis = payload.get("event_created_at_ms")
    if isinstance(millis, int | float) and not isinstance(millis, bool):
        return segment_spec.isoformat(segment_spec.from_unix_millis(millis, "event_created_at_ms"))
    created = payload.get("event_created_at")
    return created if isinstance(created, str) else None


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise segment_spec.MessageError("invalid_message", f"{where} must be an object")
    return value


def _dig(properties: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = properties
    for depth, key in enumerate(path):
        value = _object(value, ".".join(("properties", *path[:depth]))).get(key)
    return value


def is_before_v3(payload: dict[str, Any]) -> bool:
    """Whether ``payload`` has the shape of the webhook before api_version 3."""
    return "event_name" not in payload and "name" in payload


def flatten_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """A pre-version-3 event as the version 3 attributes (unknown properties kept)."""
    properties = _object(payload.get("properties"), "properties")
    user = _object(payload.get("user"), "user")
    flat: dict[str, Any] = {key: value for key, value in properties.items() if key not in V2_MAPPED}
    for path, name in V2_PROPERTIES.items():
        value = _dig(properties, path)
        if value is not None:
            flat[name] = value
    for old, new in V2_PERIODS.items():
        if (value := properties.get(old)) is not None:
            flat[new] = "NONE" if value == "NORMAL" else value
    if (purchase_id := properties.get("purchase_id")) is not None:
        renewing = flat.get("purchase_type") == "RENEWING_SUBSCRIPTION"
        flat["purchasely_subscription_id" if renewing else "purchasely_one_time_purchase_id"] = (
            purchase_id
        )
    for old, new in V2_USER.items():
        if (value := user.get(old)) is not None:
            flat[new] = value
    if (received_at := payload.get("received_at")) is not None:
        flat["event_created_at"] = received_at
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))  # ASCII: any text
    return {
        **flat,
        "api_version": payload.get("api_version", 2),
        "event_name": payload.get("name"),
        "event_id": V2_ID_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:64],
    }


class Purchasely(WebhookSource):
    kind = "purchasely"
    label = "Purchasely"
    path = "purchasely"
    body_name = "A Purchasely event"
    credential_headers = {
        "HTTP_X_PURCHASELY_REQUEST_SIGNATURE": SIGNATURE_HEADER,
        "HTTP_X_PURCHASELY_TIMESTAMP": TIMESTAMP_HEADER,
    }
    signature_help = "Bad, missing or stale signature."
    legacy_signatures_option = True
    known_events = tuple(
        KnownEvent(name, f"Purchasely: {group}")
        for group, names in EVENTS.items()
        for name in names
    )

    @classmethod
    def verify(cls, call: SignedCall) -> None:
        signature = call.headers.get(SIGNATURE_HEADER, "").strip().lower()
        stamp = call.headers.get(TIMESTAMP_HEADER, "").strip()
        secret = call.secret
        if signature and stamp:
            # ASCII digits only (str.isdigit also takes "²"), and few enough to be a time.
            if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > MAX_STAMP_DIGITS:
                raise SignatureError("X-PURCHASELY-TIMESTAMP is not a unix timestamp.")
            tolerance = settings.PURCHASELY_SIGNATURE_TOLERANCE_SECONDS
            if abs(time.time() - int(stamp)) > tolerance:
                raise SignatureError(
                    f"X-PURCHASELY-TIMESTAMP is more than {tolerance:.0f} s away from now."
                )
            if _matches(secret, stamp.encode() + call.raw, signature):
                return
        elif (
            signature
            and call.accept_legacy_signatures
            and _matches(secret, secret.encode() + call.raw, signature)
        ):
            return
        raise SignatureError(
            "X-PURCHASELY-REQUEST-SIGNATURE is missing or does not match the source's shared "
            "secret."
        )

    @classmethod
    def signature_headers(cls, secret: str, raw: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        signature = hmac.new(secret.encode(), stamp.encode() + raw, hashlib.sha256).hexdigest()
        return {SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: stamp}

    @classmethod
    def to_messages(cls, event: Any) -> list[dict[str, Any]]:
        if not isinstance(event, dict):
            raise segment_spec.MessageError("invalid_message", "the body must be a JSON object")
        payload = flatten_v2(event) if is_before_v3(event) else event
        name = required_string(
            payload, "event_name", segment_spec.MAX_EVENT_NAME_LENGTH, "missing_event"
        )
        event_id = required_string(payload, "event_id", MAX_EVENT_ID_LENGTH, "missing_event_id")
        user = {"userId": payload.get("user_id"), "anonymousId": payload.get("anonymous_user_id")}
        common = {**user, "timestamp": _timestamp(payload), "context": {"library": LIBRARY}}
        messages = []
        if payload.get("user_id"):
            traits = {key: payload[key] for key in USER_PROPERTIES if key in payload}
            if "subscription_status" in payload:
                status = payload["subscription_status"]
                traits["has_active_subscription"] = isinstance(status, str) and (
                    status in ACTIVE_STATUSES
                )
            messages.append(
                {
                    **common,
                    "type": "identify",
                    "messageId": f"{event_id}{IDENTIFY_SUFFIX}",
                    "traits": traits,
                }
            )
        messages.append(
            {**common, "type": "track", "messageId": event_id, "event": name, "properties": payload}
        )
        return messages

    @classmethod
    def sample_message(cls, name: str) -> dict[str, Any] | None:
        if name not in cls.known_event_names():
            return None
        return cls.to_messages({**SAMPLE_EVENT, "event_name": name})[-1]
