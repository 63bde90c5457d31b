"""The webhook machinery every source shares: ``/hooks/<path>/<token>/``.

The token in the URL names the source (of the view's kind: another kind's token is a
404), a disabled source answers 403, the body is read within the source's limit (gzip
allowed), the signature is checked when the source has a secret (a 401 with the source's
reason), and the body becomes stored events, all in one transaction: Segment messages as
they are (``segment_messages``), or the messages ``to_messages`` makes of one vendor event
(a 400 naming what is wrong when it is not one). Refused calls are recorded by
``console.middleware.RecordRejectedCallsMiddleware`` (``integrations/rejections.py``).
"""

import datetime as dt
from typing import Any, ClassVar

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
from integrations.sources import delete_notice, segment_spec
from integrations.sources.base import SignatureError, SignedCall, WebhookSource
from integrations.sources.batch import accept_batch, accept_one, ensure_enabled
from integrations.sources.body import (
    JSONBody,
    checked_json,
    parse_json,
    read_body,
    refuse_unstorable,
)


def source_for_token(token: str, kind: str) -> Source:
    """The enabled source of ``kind`` whose webhook URL holds ``token``, or a 404/403."""
    source = (
        Source.objects.select_related("workspace").filter(webhook_token=token, kind=kind).first()
    )
    if source is None:
        raise APIError(status.HTTP_404_NOT_FOUND, "unknown_webhook", "No source has this URL.")
    return ensure_enabled(source)


class WebhookView(APIView):
    """One source's webhook (``view_for`` makes the view of each registered source)."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    renderer_classes = [JSONRenderer]
    source_class: ClassVar[type[WebhookSource]]

    def receive(self, request: Request, token: str) -> Response:
        received_at = timezone.now()
        kind = self.source_class
        source = source_for_token(token, kind.kind)
        raw = read_body(request, kind.max_body_bytes, kind.body_name)
        # Segment messages are parsed first (their signature covers a batch's first
        # element); a vendor event only once its signature holds.
        parsed = parse_json(raw) if kind.segment_messages else None
        if source.webhook_secret:
            self.verify(request, source, raw, parsed)
        if parsed is not None:
            return accept_segment_messages(source, parsed, received_at)
        return accept_vendor_event(source, kind, checked_json(raw), received_at)

    def verify(self, request: Request, source: Source, raw: bytes, parsed: JSONBody | None) -> None:
        def body() -> Any:
            return (parsed or parse_json(raw)).value

        call = SignedCall(
            raw=raw,
            headers=request.headers,
            secret=source.webhook_secret,
            accept_legacy_signatures=source.accept_legacy_signatures,
            body=body,
        )
        try:
            self.source_class.verify(call)
        except SignatureError as exc:
            raise APIError(status.HTTP_401_UNAUTHORIZED, "invalid_signature", exc.message) from exc


def accept_segment_messages(source: Source, parsed: JSONBody, received_at: dt.datetime) -> Response:
    """A Segment message, an array of them (answered by index), or a delete notice."""
    body = parsed.value
    if delete_notice.is_delete_notice(body):  # a user deletion, not a Segment call
        return delete_notice.accept(source, body, received_at)

    def normalize(item: Any) -> dict[str, Any]:
        return segment_spec.normalize(item, received_at=received_at, trust_timestamp=True)

    if isinstance(body, list):
        return accept_batch(source, body, normalize, suspect=parsed.suspect)
    refuse_unstorable(body, suspect=parsed.suspect)
    return accept_one(source, body, normalize)


def accept_vendor_event(
    source: Source, kind: type[WebhookSource], event: Any, received_at: dt.datetime
) -> Response:
    """The messages of one vendor event, all stored or none; ``duplicate`` when its own
    track call was stored before (a redelivery)."""
    try:
        messages = [
            segment_spec.normalize(message, received_at=received_at)
            for message in kind.to_messages(event)
        ]
    except segment_spec.MessageError as exc:
        raise APIError(status.HTTP_400_BAD_REQUEST, exc.code, exc.message) from exc
    result = ingest.accept(source, messages)
    track = messages[-1]["messageId"]
    duplicate = all(stored.message_id != track for stored in result.accepted)
    return Response({"success": True, "duplicate": duplicate})


def view_for(kind: type[WebhookSource]) -> type[WebhookView]:
    """The webhook view of a source kind, documented in the API schema under its name."""
    what = "Invalid JSON or message." if kind.segment_messages else f"Not a {kind.label} event."

    @extend_schema(
        operation_id=f"{kind.kind}_webhook",
        request={"application/json": {"type": "object"}},
        responses={
            200: OpenApiResponse(description="Stored durably (or already stored)."),
            400: OpenApiResponse(description=what),
            401: OpenApiResponse(description=kind.signature_help),
            403: OpenApiResponse(description="Source disabled."),
            404: OpenApiResponse(description="Unknown webhook URL."),
            413: OpenApiResponse(description="Over the size limit."),
        },
        tags=["Webhooks"],
    )
    def post(self: WebhookView, request: Request, token: str) -> Response:
        return self.receive(request, token)

    name = f"{kind.__name__}WebhookView"
    return type(name, (WebhookView,), {"source_class": kind, "post": post, "__doc__": kind.__doc__})
