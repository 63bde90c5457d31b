"""Keeping the rejected inbound calls of the ingest endpoints, in one place.

``console.middleware.RecordRejectedCallsMiddleware`` watches the tracking API and the
webhook endpoints: an answer of 400 or more, or a 200 whose ``errors`` lists refused
messages of a batch, becomes one ``RejectedCall`` row. The source, when the call named
one, is what the view identified (``identified``, called where the ingest resolves a
source), carried in a context variable for the time of the request.

What is kept: the time, the endpoint (webhook tokens left out), the status, error code
and message, how many messages were refused, the client's address (as the login
protection reads it), and a summary of what the call presented: body size, content
type, which credentials. Never the write key, signature, secret or body; of a write key
that matched no source, only its first ``KEY_HINT_CHARS`` characters and its length,
which tell an old key or another tool's apart without revealing it (the rest of a
32-character key still holds over 160 random bits).

Recording costs one insert (and, for about one call in ten of ``REJECTED_CALLS_KEEP``,
pruning the workspace's rows to the newest ``REJECTED_CALLS_KEEP``); a failure to record
is logged and never changes the answer.
"""

import base64
import binascii
import contextvars
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.db import models
from django.http import HttpRequest, HttpResponse

from integrations.models import RejectedCall, Source
from integrations.sources import registry

log = logging.getLogger(__name__)

#: The URL names of the ingest endpoints (console/urls.py, sources/urls.py).
INGEST_URL_NAMES = frozenset({"tracking-api", *registry.url_names()})
#: Headers that carry credentials: only whether they were sent is kept.
CREDENTIAL_HEADERS = registry.credential_headers()
KEY_HINT_CHARS = 4


def _max_length(name: str) -> int:
    field = RejectedCall._meta.get_field(name)
    if not isinstance(field, models.CharField) or field.max_length is None:
        raise TypeError(f"RejectedCall.{name} is not a CharField with a max_length")
    return field.max_length


MESSAGE_LIMIT = _max_length("message")
SUMMARY_LIMIT = _max_length("summary")


@dataclass
class IngestCall:
    """What the view learnt about the call while handling it."""

    source: Source | None = None


_current: contextvars.ContextVar[IngestCall | None] = contextvars.ContextVar(
    "ingest_call", default=None
)


@contextmanager
def watching() -> Iterator[IngestCall]:
    """The call being handled, for ``identified`` to fill in."""
    call = IngestCall()
    token = _current.set(call)
    try:
        yield call
    finally:
        _current.reset(token)


def identified(source: Source) -> None:
    """The ingest resolved the call's source (its write key or webhook URL is valid)."""
    call = _current.get()
    if call is not None:
        call.source = source


def is_ingest(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    return match is not None and match.url_name in INGEST_URL_NAMES


def record_if_rejected(request: HttpRequest, response: HttpResponse, call: IngestCall) -> None:
    """Keep the call if it was refused, or some of its messages were; never raises."""
    keep = settings.REJECTED_CALLS_KEEP
    if keep <= 0:
        return
    try:
        row = rejection(request, response, call)
        if row is None:
            return
        row.save(force_insert=True)
        if row.pk % max(1, keep // 10) == 0:
            RejectedCall.objects.prune(row.workspace_id, keep)
    except Exception:
        log.exception("could not record a rejected call to %s", request.path)


def rejection(
    request: HttpRequest, response: HttpResponse, call: IngestCall
) -> RejectedCall | None:
    """The row for the call, or None if nothing of it was refused."""
    data = getattr(response, "data", None)
    data = data if isinstance(data, dict) else {}
    errors = data.get("errors") if isinstance(data.get("errors"), list) else None
    status = response.status_code
    if status < 400:
        if not errors:
            return None
        code, message = _batch_errors(errors, data.get("accepted"))
    else:
        code = str(data.get("code") or f"http_{status}")
        message = str(data.get("message") or response.reason_phrase)
    source = call.source
    return RejectedCall(
        workspace_id=source.workspace_id if source else None,
        source=source,
        endpoint=_endpoint(request),
        status_code=status,
        code=code[:64],
        message=_clip(message, MESSAGE_LIMIT),
        rejected_messages=len(errors) if errors is not None else None,
        client_ip=get_client_ip_address(request),
        summary=_clip(summary(request, code), SUMMARY_LIMIT),
    )


def _batch_errors(errors: list[Any], accepted: Any) -> tuple[str, str]:
    codes = Counter(str(e.get("code")) for e in errors if isinstance(e, dict))
    code = codes.most_common(1)[0][0] if codes else "invalid_message"
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    total = f" of {len(errors) + accepted}" if isinstance(accepted, int) else ""
    message = (
        f"{len(errors)}{total} messages refused; the first, #{first.get('index')}: "
        f"{first.get('code')}: {first.get('message')}"
    )
    return code, message


def _endpoint(request: HttpRequest) -> str:
    """The path, with a webhook URL's token (a credential of sorts) left out."""
    token = request.resolver_match.kwargs.get("token") if request.resolver_match else None
    return "/".join("<token>" if part == token else part for part in request.path.split("/"))


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, none of them a NUL (which no text column takes)."""
    text = text.replace("\x00", "\\u0000")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(request: HttpRequest, code: str) -> str:
    """Size, content type and the credentials presented, without their values."""
    meta = request.META
    parts = [f"{meta.get('CONTENT_LENGTH') or 0} bytes"]
    if content_type := meta.get("CONTENT_TYPE", "").split(";")[0].strip():
        parts.append(content_type)
    if encoding := meta.get("HTTP_CONTENT_ENCODING"):
        parts.append(f"{encoding.strip()[:20]}-encoded")
    if "HTTP_AUTHORIZATION" in meta:
        key = basic_auth_user(meta["HTTP_AUTHORIZATION"])
        if key is None:
            parts.append("Authorization header (not Basic)")
        elif code == "invalid_write_key":
            parts.append(f"write key {key_hint(key)} (Basic auth)")
        else:
            parts.append("write key (Basic auth)")
    sent = [name for key, name in CREDENTIAL_HEADERS.items() if meta.get(key)]
    if sent:
        parts.append(f"{', '.join(sent)} sent")
    if agent := meta.get("HTTP_USER_AGENT"):
        parts.append(f"User-Agent: {agent[:80]}")
    return "; ".join(parts)


def basic_auth_user(header: str) -> str | None:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0]


def key_hint(key: str) -> str:
    """The first characters of an unknown write key and its length: enough to tell
    which key a client sends, never enough to use it."""
    if len(key) < 4 * KEY_HINT_CHARS:
        return f"of {len(key)} characters"
    hint = "".join(c if c.isprintable() else "?" for c in key[:KEY_HINT_CHARS])
    return f"“{hint}…” ({len(key)} characters)"
