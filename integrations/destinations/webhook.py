"""Generic webhook: the event JSON POSTed to a URL, signed per Standard Webhooks."""

import base64
import binascii
import json
import secrets
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from integrations.destinations.base import Destination, OutboundRequest, Plan, SettingField
from integrations.destinations.context import PlanContext, Rules
from integrations.destinations.values import EventData, IntegrationConfig


def validate_whsec(value: Any) -> None:
    if not value.startswith("whsec_"):
        raise ValidationError("must start with whsec_ (a Standard Webhooks secret)")
    try:
        if not base64.b64decode(value.removeprefix("whsec_"), validate=True):
            raise ValidationError("the secret after whsec_ is empty")
    except binascii.Error as exc:
        raise ValidationError("the part after whsec_ must be base64") from exc


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


class Webhook(Destination):
    kind = "webhook"
    label = "Webhook"
    segment_names = ("Webhooks", "Webhook")
    settings_schema = (
        SettingField(
            "url",
            "URL",
            type="url",
            help_text="Where each event is POSTed as JSON.",
            required=True,
        ),
        SettingField(
            "secret",
            "Signing secret",
            help_text="A whsec_... Standard Webhooks secret; one is generated when left empty.",
            secret=True,
            validator=validate_whsec,
        ),
        SettingField(
            "headers",
            "Custom headers",
            type="headers",
            help_text='Extra headers sent with every request, as {"Name": "value"}.',
            default={},
        ),
    )

    @classmethod
    def generate_secret(cls, name: str) -> str | None:
        return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        """The Segment message, one signed POST per event, with the integration's rules
        applied: the track event's name override, and property rules on ``properties``,
        ``traits`` and ``context.traits``."""
        url = config.api_base_url or config["url"]
        signer = StandardWebhook(config["secret"])
        requests = []
        for index, event in enumerate(events):
            body = json.dumps(with_rules(dict(event.payload), context.rules), separators=(",", ":"))
            message_id = event.message_id
            now = timezone.now()
            headers = {
                **config.get("headers", {}),
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(message_id, now, body),
            }
            requests.append(OutboundRequest("POST", url, headers, body, covers=(index,)))
        return Plan(requests=requests)
