"""The registry of source kinds: adding a source is one module plus one line here.

The ``Source`` model's kinds, the webhook URLs (``sources/urls.py``), the rejected-call
records' credential headers, the catalog and the event tester's samples all come from
this list.
"""

from integrations.sources.base import WebhookSource
from integrations.sources.chargebee_retention import ChargebeeRetention
from integrations.sources.purchasely import Purchasely
from integrations.sources.segment_webhook import SegmentWebhooks

# In this order the catalog lists their known events and the tester takes their samples.
SOURCES: tuple[type[WebhookSource], ...] = (Purchasely, SegmentWebhooks, ChargebeeRetention)

_BY_KIND: dict[str, type[WebhookSource]] = {cls.kind: cls for cls in SOURCES}

#: The kind a new source gets when none is given (the tracking API's and Segment's).
DEFAULT_KIND = SegmentWebhooks.kind


def get(kind: str) -> type[WebhookSource]:
    return _BY_KIND[kind]


def all_sources() -> list[type[WebhookSource]]:
    return list(SOURCES)


def kind_choices() -> list[tuple[str, str]]:
    return [(cls.kind, cls.label) for cls in SOURCES]


def url_name(kind: str) -> str:
    """The name of the kind's webhook URL (``sources/urls.py`` names them so)."""
    return f"{kind}-webhook"


def url_names() -> frozenset[str]:
    return frozenset(url_name(cls.kind) for cls in SOURCES)


def credential_headers() -> dict[str, str]:
    """Every source's credential headers, ``request.META`` names to header names."""
    return {key: name for cls in SOURCES for key, name in cls.credential_headers.items()}
