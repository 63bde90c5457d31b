"""Segment: forward messages to a Segment source through its HTTP Tracking API.

This is how a source that only speaks Segment (Chargebee Retention, for one) reaches a
customer's Segment workspace through us: every message goes to ``POST <host>/v1/batch``
of an HTTP API source, as Segment messages, with what makes them the same messages.

What is sent, per message (the stored, normalised message with these changes):

- ``messageId``, ``type``, ids, ``context`` and ``integrations`` are kept. Segment dedupes
  on ``messageId``, so a retried batch is stored once. The ``integrations`` object is
  forwarded as it came: our routing used it to send the message here, and Segment applies
  the same object to its own destinations (so ``{"All": false, "Segment": true}``, "only to
  Segment", reaches Segment but none of its destinations, only its warehouses).
- Timestamps: ``timestamp`` is our corrected timestamp; ``originalTimestamp``, ``sentAt``
  and ``receivedAt`` are left out and the batch has no ``sentAt``. Segment computes
  ``timestamp = receivedAt - (sentAt - originalTimestamp)``, taking a given ``timestamp``
  as ``originalTimestamp``; with no ``sentAt`` there is no correction, so Segment keeps
  exactly the ``timestamp`` we send. Sending the client's ``originalTimestamp`` would make
  Segment use that uncorrected value instead, and a ``sentAt`` of ours would shift the
  time by the network delay. ``receivedAt`` is Segment's to set. (The body is then a pure
  function of the deliveries: the same bytes on every retry.)
- Event-name overrides rename track events (``event``).
- Property rules (rename or leave out) apply to every trait and property object the
  message carries: ``properties`` of track, page and screen calls, ``traits`` of identify
  and group calls, and the user traits in ``context.traits`` of any call, so a property
  switched off for this integration does not reach Segment by another way. Only
  top-level names are matched, literally: dotted keys such as ``field.cancel.plan``
  (Chargebee Retention) are names, not paths. Alias calls carry no traits of their own.

Auth is HTTP Basic with the write key as user name (``base64("<writeKey>:")``), not
``writeKey`` in the body: Segment documents both; the header keeps the key out of the
body, so the delivery log redacts it by header name and the body as logged and previewed
is exactly the messages; our own ingest accepts it too.

Limits (Segment's HTTP API): a message over 32 KB is refused (it fails at once, with its
size in the reason); a batch holds at most 2500 messages and 500 KB, so the messages are
split over as many requests as needed, each carrying its own deliveries.
"""

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from integrations.destinations.base import (
    Destination,
    OutboundRequest,
    Plan,
    SettingField,
)
from integrations.destinations.context import PlanContext, Rules
from integrations.destinations.values import EventData, IntegrationConfig
from integrations.sources.segment_spec import isoformat

REGIONS = (("us", "United States (api.segment.io)"), ("eu", "Europe (events.eu1.segmentapis.com)"))
HOSTS = {"us": "https://api.segment.io", "eu": "https://events.eu1.segmentapis.com"}

# Segment's limits, as its own libraries apply them: 32 KB (32 << 10 bytes) per message;
# 500 KB per batch request, counted here as 500,000 bytes so the request is under the
# limit whichever "KB" Segment means (our own ingest takes 500 KiB).
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1000
MAX_BATCH_MESSAGES = 2500

# Set by the receiving Segment server (or recomputed by it): never forwarded.
SERVER_TIMESTAMPS = ("originalTimestamp", "sentAt", "receivedAt")
# The body around the messages: {"batch":[m1,m2,...]}
ENVELOPE_OPEN, ENVELOPE_CLOSE = '{"batch":[', "]}"
ENVELOPE_BYTES = len(ENVELOPE_OPEN) + len(ENVELOPE_CLOSE)


def batch_url(base: str) -> str:
    """``<base>/v1/batch``; a base that already ends in ``/v1`` or ``/v1/batch`` is kept."""
    base = base.rstrip("/")
    if base.endswith("/v1/batch"):
        return base
    if base.endswith("/v1"):
        return f"{base}/batch"
    return f"{base}/v1/batch"


def basic_auth(write_key: str) -> str:
    """Segment's Basic auth: the write key as user name, an empty password (mind the colon)."""
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def serialize(message: Mapping[str, Any]) -> tuple[str, int]:
    """Compact JSON, as Segment's libraries write it and measure it, and its size in bytes.

    UTF-8 rather than \\u escapes keeps messages small; a string that cannot be encoded in
    UTF-8 (a lone surrogate from a JSON escape) makes the message escaped instead.
    """
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    try:
        return text, len(text.encode())
    except UnicodeEncodeError:
        text = json.dumps(message, separators=(",", ":"))
        return text, len(text)


def _with_rules(values: Any, rules: Rules) -> Any:
    return rules.apply(values) if isinstance(values, Mapping) else values


def to_message(event: EventData, rules: Rules) -> dict[str, Any]:
    """The Segment message to forward for one event (see the module docstring)."""
    message = {k: v for k, v in event.payload.items() if k not in SERVER_TIMESTAMPS}
    message["type"] = event.type
    message["messageId"] = event.message_id
    message["timestamp"] = isoformat(event.timestamp)
    if event.type == "track":
        message["event"] = rules.event_name(event)
    field = {"identify": "traits", "group": "traits"}.get(event.type, "properties")
    if event.type != "alias" and field in message:
        message[field] = _with_rules(message[field], rules)
    context = message.get("context")
    if isinstance(context, Mapping) and "traits" in context:
        message["context"] = {**context, "traits": _with_rules(context["traits"], rules)}
    return message


def _url(config: IntegrationConfig) -> str:
    return batch_url(config.api_base_url or HOSTS[config.get("region") or "us"])


def _headers(config: IntegrationConfig) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": basic_auth(config["write_key"])}


class Segment(Destination):
    kind = "segment"
    label = "Segment"
    segment_names = ("Segment",)
    settings_schema = (
        SettingField(
            "write_key",
            "Write key",
            help_text="The write key of the Segment source (an HTTP API source) to forward to. "
            "Segment accepts any write key with a 200 (its edge does not check keys): check "
            "that events arrive in that source after saving.",
            required=True,
            secret=True,
        ),
        SettingField(
            "region",
            "Region",
            type="choice",
            choices=REGIONS,
            help_text="Segment rejects data sent to the wrong region.",
            default="us",
        ),
    )
    max_batch_size = MAX_BATCH_MESSAGES
    caveats = (
        "Segment answers 200 even to a wrong write key (its edge does not check keys): "
        "check that events arrive in the source after saving.",
    )
    connection_test_note = (
        "Segment answers 200 even to a wrong write key: a success shows that Segment is "
        "reachable in this region, not that the key is right."
    )

    @classmethod
    def connection_test(cls, config: IntegrationConfig) -> OutboundRequest:
        """An empty batch with the write key. Segment's edge answers 200 even to a wrong
        write key, so a success shows the host and region are reachable, not the key."""
        return OutboundRequest("POST", _url(config), _headers(config), '{"batch":[]}')

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        """The messages in as few ``/v1/batch`` requests as Segment's limits allow."""
        url = _url(config)
        headers = _headers(config)
        plan = Plan()
        parts: list[str] = []
        covers: list[int] = []
        size = ENVELOPE_BYTES

        def close_batch(parts: list[str], covers: list[int]) -> None:
            body = ENVELOPE_OPEN + ",".join(parts) + ENVELOPE_CLOSE
            plan.requests.append(OutboundRequest("POST", url, headers, body, tuple(covers)))

        for index, event in enumerate(events):
            text, length = serialize(to_message(event, context.rules))
            if length > MAX_MESSAGE_BYTES:
                plan.failures[index] = (
                    f"The message is {length:,} bytes as JSON; Segment accepts at most "
                    f"{MAX_MESSAGE_BYTES:,} bytes (32 KB) per message. Make it smaller, "
                    "e.g. with property rules that leave large properties out."
                )
                continue
            separator = 1 if parts else 0
            if parts and (
                len(parts) >= MAX_BATCH_MESSAGES or size + separator + length > MAX_BATCH_BYTES
            ):
                close_batch(parts, covers)
                parts, covers, size, separator = [], [], ENVELOPE_BYTES, 0
            parts.append(text)
            covers.append(index)
            size += separator + length
        if parts:
            close_batch(parts, covers)
        return plan
