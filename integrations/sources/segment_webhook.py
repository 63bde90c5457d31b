"""Segment's Webhooks destination as a source: ``/hooks/segment/<token>/``.

The same kind takes the tracking API (``/v1/...``) with the source's write key. Segment
signs with ``X-Signature``: the hex HMAC-SHA1 of the body with the shared secret; for a
batched (array) delivery, of the first element only, as ``JSON.stringify`` wrote it. The
body is Segment messages, and ``{"type": "delete"}`` notices are deletion requests.

Chargebee Retention's Segment integration sends its cancel-flow events to Segment, so a
Segment source knows them too (they reach the console through Segment's Webhooks
destination, or through the tracking API from a Segment library).
"""

import codecs
import hashlib
import hmac
import json
from typing import Any

from integrations.sources import chargebee_retention
from integrations.sources.base import KB, SignatureError, SignedCall, WebhookSource

SIGNATURE_HEADER = "X-Signature"


def first_element_text(raw: bytes) -> bytes:
    """The exact bytes of the first element of a JSON array body (one that parsed)."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    text = raw.decode("utf-8", "surrogatepass")
    start = text.index("[") + 1
    while text[start].isspace():
        start += 1
    _, end = json.JSONDecoder().raw_decode(text, start)
    # Decoding with surrogatepass and encoding back give the very bytes that were sent.
    return text[start:end].encode("utf-8", "surrogatepass")


def _signed_part(raw: bytes, body: Any) -> bytes:
    return first_element_text(raw) if isinstance(body, list) and body else raw


class SegmentWebhooks(WebhookSource):
    kind = "segment"
    label = "Segment"
    path = "segment"
    max_body_bytes = 500 * KB  # the tracking API's batch limit
    credential_headers = {"HTTP_X_SIGNATURE": SIGNATURE_HEADER}
    signature_help = "Bad or missing X-Signature."
    segment_messages = True
    known_events = chargebee_retention.KNOWN_EVENTS

    @classmethod
    def verify(cls, call: SignedCall) -> None:
        signature = call.headers.get(SIGNATURE_HEADER, "").strip().lower()
        signed = _signed_part(call.raw, call.body()) if signature else b""
        expected = hmac.new(call.secret.encode(), signed, hashlib.sha1).hexdigest()
        if not signature or not hmac.compare_digest(expected.encode(), signature.encode()):
            raise SignatureError(
                "X-Signature is missing or does not match the source's shared secret."
            )

    @classmethod
    def signature_headers(cls, secret: str, raw: bytes) -> dict[str, str]:
        signed = _signed_part(raw, json.loads(raw))
        return {SIGNATURE_HEADER: hmac.new(secret.encode(), signed, hashlib.sha1).hexdigest()}

    @classmethod
    def sample_message(cls, name: str) -> dict[str, Any] | None:
        if name in cls.known_event_names():
            return chargebee_retention.segment_track(name)
        return None
