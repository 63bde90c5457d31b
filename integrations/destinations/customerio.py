"""Customer.io: the Track API (v1 and v2 batch)."""

from integrations.destinations.base import Destination, SettingField
from integrations.destinations.registry import register

REGIONS = (("us", "United States"), ("eu", "European Union"))


@register
class CustomerIO(Destination):
    kind = "customerio"
    label = "Customer.io"
    segment_names = ("Customer.io",)
    settings_schema = (
        SettingField(
            "site_id",
            "Site ID",
            help_text="Customer.io > Settings > API Credentials > Track API keys.",
            required=True,
        ),
        SettingField(
            "api_key",
            "Track API key",
            help_text="The API key paired with the Site ID.",
            required=True,
            secret=True,
        ),
        SettingField(
            "region",
            "Region",
            type="choice",
            choices=REGIONS,
            help_text="Where your Customer.io account lives.",
            default="us",
        ),
    )
