"""Generic webhook: the event JSON POSTed to a URL, signed per Standard Webhooks."""

import base64
import secrets

from integrations.destinations.base import Destination, SettingField
from integrations.destinations.registry import register


@register
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
            help_text="A whsec_… Standard Webhooks secret; one is generated when left empty.",
            secret=True,
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
