"""Generic webhook: the event JSON POSTed to a URL, signed per Standard Webhooks, the way
Segment's Webhooks destination signs (``X-Signature``), or not at all.

Signing schemes (the ``signing`` setting):

* ``standard`` (default), `Standard Webhooks <https://www.standardwebhooks.com/>`_:
  ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64 HMAC-SHA256
  of "<id>.<timestamp>.<body>">`` keyed with the ``whsec_…`` secret);
* ``segment``, as Segment's Webhooks destination: ``X-Signature``, the hex HMAC-SHA1 of the
  body keyed with the shared secret (any string);
* ``none``: no signature headers.

``webhook-id`` is the event's ``messageId`` when that is a printable ASCII token, else an
id derived from it (``msg_`` and the base32 SHA-256 of the ``messageId``): the same on every
retry, always a valid header value. The body keeps the original ``messageId``.
"""

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from integrations.destinations.base import (
    CleanedSettings,
    Destination,
    OutboundRequest,
    Plan,
    SettingField,
)
from integrations.destinations.context import PlanContext, Rules
from integrations.destinations.values import EventData, IntegrationConfig

# Printable ASCII, no space at either end: a header value as is, on every HTTP stack.
HEADER_SAFE_ID = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


class Signing(StrEnum):
    """How requests are signed (the ``signing`` setting)."""

    STANDARD = "standard"
    SEGMENT = "segment"
    NONE = "none"


SIGNING_CHOICES = (
    (Signing.STANDARD.value, "Standard Webhooks (webhook-signature)"),
    (Signing.SEGMENT.value, "Segment (X-Signature: HMAC-SHA1 of the body)"),
    (Signing.NONE.value, "None (unsigned)"),
)


def validate_whsec(value: Any) -> None:
    if not value.startswith("whsec_"):
        raise ValidationError("must start with whsec_ (a Standard Webhooks secret)")
    try:
        if not base64.b64decode(value.removeprefix("whsec_"), validate=True):
            raise ValidationError("the secret after whsec_ is empty")
    except binascii.Error as exc:
        raise ValidationError("the part after whsec_ must be base64") from exc


def webhook_id(message_id: str) -> str:
    """The ``webhook-id`` of a message: its ``messageId`` when that is a header-safe token
    (every id this console generates is), else a stable id derived from it."""
    if HEADER_SAFE_ID.fullmatch(message_id):
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).digest()
    return "msg_" + base64.b32encode(digest).decode().rstrip("=").lower()


def with_rules(message: dict[str, Any], rules: Rules) -> dict[str, Any]:
    """The message with the track name override and the property rules applied."""
    message = dict(message)
    if message.get("type") == "track" and message.get("event") in rules.event_names:
        message["event"] = rules.event_names[message["event"]]
    for key in ("properties", "traits"):
        if isinstance(message.get(key), dict):
            message[key] = rules.apply(message[key])
    if isinstance(message.get("context"), dict) and isinstance(
        message["context"].get("traits"), dict
    ):
        message["context"] = {
            **message["context"],
            "traits": rules.apply(message["context"]["traits"]),
        }
    return message


def signature_headers(
    config: IntegrationConfig, message_id: str, now: dt.datetime, body: str
) -> dict[str, str]:
    """The headers that sign ``body`` per the integration's signing scheme."""
    signing = config.get("signing", Signing.STANDARD)
    if signing == Signing.SEGMENT:
        digest = hmac.new(config["secret"].encode(), body.encode(), hashlib.sha1)
        return {"X-Signature": digest.hexdigest()}
    if signing == Signing.NONE:
        return {}
    msg_id = webhook_id(message_id)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": StandardWebhook(config["secret"]).sign(msg_id, now, body),
    }


class Webhook(Destination):
    kind = "webhook"
    label = "Webhook"
    segment_names = ("Webhooks", "Webhook")
    settings_schema = (
        SettingField(
            "url",
            "URL",
            type="url",
            help_text="Where each event is POSTed as JSON. Credentials in it (user:password@, "
            "api_key=…) are kept secret and shown masked.",
            required=True,
        ),
        SettingField(
            "signing",
            "Signing",
            type="choice",
            help_text="How requests are signed: Standard Webhooks, Segment's X-Signature (for "
            "receivers built for Segment's Webhooks destination), or not at all.",
            choices=SIGNING_CHOICES,
            default=Signing.STANDARD.value,
        ),
        SettingField(
            "secret",
            "Signing secret",
            help_text="Standard Webhooks: a whsec_… secret. Segment: the shared secret, any "
            "string. Generated when left empty (shown once, after saving).",
            secret=True,
        ),
        SettingField(
            "headers",
            "Custom headers",
            type="headers",
            help_text="Extra headers sent with every request; their values are kept secret.",
            default={},
        ),
    )

    @classmethod
    def generate_secret(cls, name: str, data: Mapping[str, Any]) -> str | None:
        signing = data.get("signing") or Signing.STANDARD
        if signing == Signing.STANDARD:
            return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        if signing == Signing.SEGMENT:
            return secrets.token_urlsafe(32)
        return None  # unsigned: no secret needed

    @classmethod
    def clean_settings(
        cls, data: Mapping[str, Any], existing_secrets: Mapping[str, Any] | None = None
    ) -> CleanedSettings:
        """The settings, with the secret checked against the signing scheme: Standard
        Webhooks takes a ``whsec_…`` secret, Segment's scheme any shared secret."""
        cleaned = super().clean_settings(data, existing_secrets)
        secret = cleaned.secrets.get("secret", "")
        if cleaned.public["signing"] == Signing.STANDARD:
            try:
                validate_whsec(secret)
            except ValidationError as exc:
                typed = data.get("secret")
                problem = "; ".join(exc.messages)
                if not typed:
                    problem = f"the stored secret does not suit Standard Webhooks ({problem})"
                raise ValidationError({"secret": problem}) from exc
        return cleaned

    @classmethod
    def request(
        cls, config: IntegrationConfig, message_id: str, body: str, covers: tuple[int, ...]
    ) -> OutboundRequest:
        headers = {
            **config.get("headers", {}),
            "Content-Type": "application/json",
            **signature_headers(config, message_id, timezone.now(), body),
        }
        return OutboundRequest(
            "POST", config.api_base_url or config["url"], headers, body, covers=covers
        )

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        """The Segment message, one signed POST per event, with the integration's rules
        applied: the track event's name override, and property rules on ``properties``,
        ``traits`` and ``context.traits``."""
        requests = []
        for index, event in enumerate(events):
            body = json.dumps(with_rules(dict(event.payload), context.rules), separators=(",", ":"))
            requests.append(cls.request(config, event.message_id, body, covers=(index,)))
        return Plan(requests=requests)

    @classmethod
    def connection_test(cls, config: IntegrationConfig) -> OutboundRequest:
        """A ping, signed and with the custom headers like every event::

            {"type": "ping", "messageId": "ping_<unix time>", "timestamp": "<ISO 8601>"}

        It is no Segment call: a receiver should answer it with a 2xx and store nothing.
        """
        now = timezone.now()
        message_id = f"ping_{int(now.timestamp())}"
        body = json.dumps(
            {"type": "ping", "messageId": message_id, "timestamp": now.isoformat()},
            separators=(",", ":"),
        )
        return cls.request(config, message_id, body, covers=())
