"""ChurnZero: the push HTTP API (``/i``) of a ChurnZero instance."""

from integrations.destinations.base import Destination, SettingField
from integrations.destinations.registry import register


@register
class ChurnZero(Destination):
    kind = "churnzero"
    label = "ChurnZero"
    segment_names = ("ChurnZero", "Churnzero")
    supported_types = frozenset({"identify", "track", "group"})
    settings_schema = (
        SettingField(
            "app_key",
            "Application key",
            help_text="ChurnZero > Admin > Application Keys (use the Production key).",
            required=True,
            secret=True,
        ),
        SettingField(
            "instance_url",
            "Instance URL",
            type="url",
            help_text="The HTTP API host shown next to the key, e.g. https://analytics.churnzero.net"
            " (EU: https://eu1analytics.churnzero.net).",
            required=True,
            default="https://analytics.churnzero.net",
        ),
    )
