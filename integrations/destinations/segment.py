"""Segment: forward messages to a Segment source through its HTTP Tracking API."""

from integrations.destinations.base import Destination, SettingField
from integrations.destinations.registry import register

REGIONS = (("us", "United States (api.segment.io)"), ("eu", "Europe (events.eu1.segmentapis.com)"))


@register
class Segment(Destination):
    kind = "segment"
    label = "Segment"
    segment_names = ("Segment",)
    settings_schema = (
        SettingField(
            "write_key",
            "Write key",
            help_text="The write key of the Segment source (an HTTP API source) to forward to.",
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
