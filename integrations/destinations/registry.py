"""The registry of destination kinds: adding a vendor is one module plus one line here."""

from integrations.destinations.base import Destination
from integrations.destinations.chartmogul import ChartMogul
from integrations.destinations.churnzero import ChurnZero
from integrations.destinations.customerio import CustomerIO
from integrations.destinations.segment import Segment
from integrations.destinations.slack import Slack
from integrations.destinations.webhook import Webhook

DESTINATIONS: tuple[type[Destination], ...] = (
    ChartMogul,
    ChurnZero,
    CustomerIO,
    Segment,
    Slack,
    Webhook,
)

_BY_KIND: dict[str, type[Destination]] = {cls.kind: cls for cls in DESTINATIONS}


def get(kind: str) -> type[Destination]:
    return _BY_KIND[kind]


def all_destinations() -> list[type[Destination]]:
    return list(DESTINATIONS)


def kind_choices() -> list[tuple[str, str]]:
    return [(cls.kind, cls.label) for cls in DESTINATIONS]
