"""Purchasely's server-to-server webhook: ``/hooks/purchasely/<token>/``.

Signature (current scheme): ``X-PURCHASELY-REQUEST-SIGNATURE`` is the hex HMAC-SHA256,
keyed with the source's shared secret, of the ``X-PURCHASELY-TIMESTAMP`` value followed by
the raw body; the timestamp must be recent. The older scheme (HMAC of the secret followed
by the body, no timestamp) is accepted only when the source allows it.

Each Purchasely event becomes a track call named by its ``event_name`` for ``user_id`` (or
``anonymous_user_id``) with the payload as properties, deduplicated on ``event_id``. For
a known user it is preceded by an identify call carrying the user properties Purchasely
keeps (subscription status, plan, store...), so the profile store and tools such as
Customer.io see them as Purchasely's own integrations do.
"""

import hashlib
import hmac
import time
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations import ingest
from integrations.api.errors import APIError
from integrations.models import Source
from integrations.sources import segment_spec
from integrations.sources.body import KB, checked_json, read_body
from integrations.sources.segment_webhook import source_for_token

MAX_BODY = 64 * KB
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


def _matches(secret: str, message: bytes, signature: str) -> bool:
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def verify(source: Source, request: Request, raw: bytes) -> None:
    """Raise a 401 APIError unless the request carries a valid signature."""
    signature = request.META.get("HTTP_X_PURCHASELY_REQUEST_SIGNATURE", "").strip().lower()
    stamp = request.META.get("HTTP_X_PURCHASELY_TIMESTAMP", "").strip()
    secret = source.webhook_secret
    if signature and stamp:
        # ASCII digits only (str.isdigit also takes "²"), and few enough to be a time.
        if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > MAX_STAMP_DIGITS:
            raise _unauthorized("X-PURCHASELY-TIMESTAMP is not a unix timestamp.")
        tolerance = settings.PURCHASELY_SIGNATURE_TOLERANCE_SECONDS
        if abs(time.time() - int(stamp)) > tolerance:
            raise _unauthorized(
                f"X-PURCHASELY-TIMESTAMP is more than {tolerance:.0f} s away from now."
            )
        if _matches(secret, stamp.encode() + raw, signature):
            return
    elif (
        signature
        and source.accept_legacy_signatures
        and _matches(secret, secret.encode() + raw, signature)
    ):
        return
    raise _unauthorized(
        "X-PURCHASELY-REQUEST-SIGNATURE is missing or does not match the source's shared secret."
    )


def _unauthorized(message: str) -> APIError:
    return APIError(status.HTTP_401_UNAUTHORIZED, "invalid_signature", message)


def _timestamp(payload: dict[str, Any]) -> str | None:
    millis = payload.get("event_created_at_ms")
    if isinstance(millis, int | float) and not isinstance(millis, bool):
        return segment_spec.isoformat(segment_spec.from_unix_millis(millis, "event_created_at_ms"))
    created = payload.get("event_created_at")
    return created if isinstance(created, str) else None


def _checked(payload: dict[str, Any], field: str, limit: int, missing: str) -> str:
    """A required string field of the payload, at most ``limit`` characters (``missing``:
    the error code when it is not there)."""
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise segment_spec.MessageError(missing, f"{field} is missing")
    if len(value) > limit:
        raise segment_spec.MessageError(
            f"{field}_too_long", f"{field} is longer than {limit} characters"
        )
    return value


def to_messages(payload: Any) -> list[dict[str, Any]]:
    """The Segment messages for one Purchasely event (raises MessageError when invalid)."""
    if not isinstance(payload, dict):
        raise segment_spec.MessageError("invalid_message", "the body must be a JSON object")
    name = _checked(payload, "event_name", segment_spec.MAX_EVENT_NAME_LENGTH, "missing_event")
    event_id = _checked(payload, "event_id", MAX_EVENT_ID_LENGTH, "missing_event_id")
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


class PurchaselyWebhookView(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="purchasely_webhook",
        request={"application/json": {"type": "object"}},
        responses={
            200: OpenApiResponse(description="Stored durably (or already stored)."),
            400: OpenApiResponse(description="Not JSON, or not a Purchasely event."),
            401: OpenApiResponse(description="Bad, missing or stale signature."),
            404: OpenApiResponse(description="Unknown webhook URL."),
        },
        tags=["Webhooks"],
    )
    def post(self, request: Request, token: str) -> Response:
        received_at = timezone.now()
        source = source_for_token(token, Source.Kind.PURCHASELY)
        raw = read_body(request, MAX_BODY, "A Purchasely event")
        if source.webhook_secret:
            verify(source, request, raw)
        try:
            messages = [
                segment_spec.normalize(message, received_at=received_at)
                for message in to_messages(checked_json(raw))
            ]
        except segment_spec.MessageError as exc:
            raise APIError(status.HTTP_400_BAD_REQUEST, exc.code, exc.message) from exc
        result = ingest.accept(source, messages)
        track = messages[-1]["messageId"]
        duplicate = all(event.message_id != track for event in result.accepted)
        return Response({"success": True, "duplicate": duplicate})
