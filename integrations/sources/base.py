"""What every source declares: its kind, its webhook and what the console knows of it.

A source is one class listed in ``registry.py``. The shared webhook machinery
(``webhooks.py``: the token in the URL, the enabled check, the body, the signature's 401,
rejected-call records, ingest) calls its hooks; the class itself is pure: it needs no ORM
and no view, so the ``Source`` model can take its kinds from the registry.

A webhook call goes: the body is read (at most ``max_body_bytes``, gzip allowed), the
signature checked by ``verify`` when the source has a secret, the body parsed, then either
taken as Segment messages (``segment_messages``: one object, or an array answered message
by message), or turned by ``to_messages`` into the Segment messages of one vendor event,
all of them stored or none.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from integrations.sources.segment_spec import MessageError

KB = 1024


@dataclass(frozen=True)
class KnownEvent:
    """An event name a source is known to send: listed in the catalog of a workspace that
    has such a source, and a sample of the event tester."""

    name: str
    group: str
    description: str = ""


class SignatureError(Exception):
    """A webhook call whose signature is missing or does not match (answered 401)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SignedCall:
    """What a signature check reads: the raw body, the headers (any case), the source's
    secret and its option; ``body`` parses the body (once), for schemes that sign a part
    of it."""

    raw: bytes
    headers: Mapping[str, str]
    secret: str
    accept_legacy_signatures: bool
    body: Callable[[], Any]


class WebhookSource:
    """Base class of a source. Each subclass is listed in ``registry.py``."""

    kind: ClassVar[str]
    label: ClassVar[str]
    #: The webhook URL's segment: ``/hooks/<path>/<token>/``.
    path: ClassVar[str]
    #: The largest body taken, and how an error names the body.
    max_body_bytes: ClassVar[int] = 64 * KB
    body_name: ClassVar[str] = "A webhook request"
    #: Headers that carry credentials, as ``request.META`` names them, to their names:
    #: only whether they were sent is ever recorded.
    credential_headers: ClassVar[Mapping[str, str]] = {}
    #: How the webhook's calls are signed (the API schema's 401).
    signature_help: ClassVar[str] = ""
    #: The body is Segment messages (an object, or an array of them answered by index),
    #: and ``{"type": "delete"}`` notices are deletion requests (Segment's Webhooks).
    segment_messages: ClassVar[bool] = False
    #: Whether the source's "accept legacy signatures" option means anything.
    legacy_signatures_option: ClassVar[bool] = False
    #: The events it is known to send (the catalog, the event tester's samples).
    known_events: ClassVar[tuple[KnownEvent, ...]] = ()

    @classmethod
    def verify(cls, call: SignedCall) -> None:
        """Raise ``SignatureError`` unless the call is signed with the source's secret."""
        raise NotImplementedError

    @classmethod
    def signature_headers(cls, secret: str, raw: bytes) -> dict[str, str]:
        """The headers a sender signs ``raw`` with (by header name): ``verify``'s other
        half, with which the contract tests sign every fixture."""
        raise NotImplementedError

    @classmethod
    def to_messages(cls, event: Any) -> list[dict[str, Any]]:
        """The Segment messages (not yet normalised) of one vendor event, the event's own
        track call last (its ``messageId`` tells a redelivery); a ``MessageError`` when it
        is not such an event. Not called when ``segment_messages``."""
        raise NotImplementedError

    @classmethod
    def sample_message(cls, name: str) -> dict[str, Any] | None:
        """The Segment message of the known event ``name`` (the event tester's sample)."""
        return None

    @classmethod
    def known_event_names(cls) -> list[str]:
        return [event.name for event in cls.known_events]


def required_string(payload: Mapping[str, Any], field: str, limit: int, missing: str) -> str:
    """A required string field of a vendor payload, at most ``limit`` characters
    (``missing``: the error code when it is absent or empty)."""
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise MessageError(missing, f"{field} is missing")
    if len(value) > limit:
        raise MessageError(f"{field}_too_long", f"{field} is longer than {limit} characters")
    return value
