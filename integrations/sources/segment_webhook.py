"""The URL Segment's Webhooks destination posts to: ``/hooks/segment/<token>/``.

Segment signs with ``X-Signature``: the hex HMAC-SHA1 of the body with the shared secret;
for a batched (array) delivery, of the first element only, as ``JSON.stringify`` wrote it.
"""

import hashlib
import hmac
import json
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.api.errors import APIError
from integrations.models import Source
from integrations.sources import delete_notice, segment_spec
from integrations.sources.batch import accept_batch, accept_one, ensure_enabled
from integrations.sources.body import decode, parse_json, read_body, refuse_unstorable
from integrations.sources.http_api import MAX_BATCH_BYTES


def source_for_token(token: str, kind: str) -> Source:
    source = (
        Source.objects.select_related("workspace").filter(webhook_token=token, kind=kind).first()
    )
    if source is None:
        raise APIError(status.HTTP_404_NOT_FOUND, "unknown_webhook", "No source has this URL.")
    return ensure_enabled(source)


def first_element_text(raw: bytes) -> bytes:
    """The exact bytes of the first element of a JSON array body (one that parsed)."""
    text = decode(raw)
    start = text.index("[") + 1
    while text[start].isspace():
        start += 1
    _, end = json.JSONDecoder().raw_decode(text, start)
    # Decoding with surrogatepass and encoding back give the very bytes that were sent.
    return text[start:end].encode("utf-8", "surrogatepass")


def signature_is_valid(secret: str, raw: bytes, body: object, signature: str) -> bool:
    signed = first_element_text(raw) if isinstance(body, list) and body else raw
    expected = hmac.new(secret.encode(), signed, hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


class SegmentWebhookView(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="segment_webhook",
        request={"application/json": {"type": "object"}},
        responses={
            200: OpenApiResponse(description="Stored durably."),
            400: OpenApiResponse(description="Invalid JSON or message."),
            401: OpenApiResponse(description="Bad or missing X-Signature."),
            404: OpenApiResponse(description="Unknown webhook URL."),
        },
        tags=["Webhooks"],
    )
    def post(self, request: Request, token: str) -> Response:
        received_at = timezone.now()
        source = source_for_token(token, Source.Kind.SEGMENT)
        raw = read_body(request, MAX_BATCH_BYTES, "A webhook request")
        parsed = parse_json(raw)
        body = parsed.value
        if source.webhook_secret:
            signature = request.META.get("HTTP_X_SIGNATURE", "")
            if not signature or not signature_is_valid(source.webhook_secret, raw, body, signature):
                raise APIError(
                    status.HTTP_401_UNAUTHORIZED,
                    "invalid_signature",
                    "X-Signature is missing or does not match the source's shared secret.",
                )
        if delete_notice.is_delete_notice(body):  # a user deletion, not a Segment call
            return delete_notice.accept(source, body, received_at)

        def normalize(item: Any) -> dict[str, Any]:
            return segment_spec.normalize(item, received_at=received_at, trust_timestamp=True)

        if isinstance(body, list):
            return accept_batch(source, body, normalize, suspect=parsed.suspect)
        refuse_unstorable(body, suspect=parsed.suspect)
        return accept_one(source, body, normalize)
