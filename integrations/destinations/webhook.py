"""Generic webhook: the event JSON sent to a URL, signed per Standard Webhooks, the way
Segment's Webhooks destination signs (``X-Signature``), or not at all.

What is sent (each part a mapped field, whose preset is what the webhook always sent):

* **URL**: the ``url`` setting (or the API base URL); mapped, a template whose scheme
  and host are written out (``https://hooks.example.com/users/{{ userId }}``), each
  substitution percent-encoded, so the message chooses a path or a query, never a host;
* **method**: ``POST``; mapped, ``POST``, ``PUT`` or ``PATCH``;
* **headers**: the custom headers setting (values kept secret), plus the mapped headers
  (names to expressions or templates; a mapped header replaces a custom header of the
  same name, ignoring case);
* **body**: the Segment message with the integration's event-name override and property
  rules; mapped, a JSON template whose substitutions are written as JSON values
  (``{"email": {{ traits.email }}}``), or a path whose value is sent as JSON.

Batching (the ``batch_size`` setting, off by default): up to that many events per
request, as a JSON array of their bodies, in the order received. A batch holds events
that go to the same URL with the same method and headers (Segment's batch keys), and
stays under ``MAX_BATCH_BYTES``.

Signing schemes (the ``signing`` setting):

* ``standard`` (default), `Standard Webhooks <https://www.standardwebhooks.com/>`_:
  ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64 HMAC-SHA256
  of "<id>.<timestamp>.<body>">`` keyed with the ``whsec_…`` secret), over the exact body
  sent, a batch's whole array included;
* ``segment``, as Segment's Webhooks destination: ``X-Signature``, the hex HMAC-SHA1 of the
  body keyed with the shared secret (any string); for a batch, of its first element, as
  Segment signs batches;
* ``none``: no signature headers.

``webhook-id`` is the event's ``messageId`` when that is a printable ASCII token, else an
id derived from it (``msg_`` and the base32 SHA-256 of the ``messageId``): the same on every
retry, always a valid header value. A batch's is derived from its events' ``messageId``s
in order, so a batch sent again is the same message. The body keeps the original
``messageId``.
"""

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from integrations import credentials
from integrations.destinations.base import (
    CleanedSettings,
    Destination,
    OutboundRequest,
    Plan,
    SettingField,
)
from integrations.destinations.context import PlanContext, Rules
from integrations.destinations.mapping import (
    MISSING,
    Escape,
    Expression,
    FieldKind,
    Literal,
    MappedField,
    MappingError,
    Template,
    compile_mapping,
)
from integrations.destinations.scope import MessageScope
from integrations.destinations.values import EventData, IntegrationConfig

# Printable ASCII, no space at either end: a header value as is, on every HTTP stack.
HEADER_SAFE_ID = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
# A header value: printable ASCII and tabs (what every HTTP stack sends as is).
HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# The scheme and host a URL template must write out before its first substitution.
URL_PREFIX = re.compile(r"https?://[^/?#{}\s]+[/?#]", re.IGNORECASE)
METHODS = ("POST", "PUT", "PATCH")
MAX_BATCH_SIZE = 1000
# Under the 1 MB many servers take by default (nginx's client_max_body_size).
MAX_BATCH_BYTES = 1_000_000
CALLS = frozenset({"identify", "track", "page", "screen", "group", "alias"})


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


class NotSent(Exception):
    """An event the webhook cannot send as its mappings render it."""


def validate_whsec(value: Any) -> None:
    if not value.startswith("whsec_"):
        raise ValidationError("must start with whsec_ (a Standard Webhooks secret)")
    try:
        if not base64.b64decode(value.removeprefix("whsec_"), validate=True):
            raise ValidationError("the secret after whsec_ is empty")
    except binascii.Error as exc:
        raise ValidationError("the part after whsec_ must be base64") from exc


def validate_batch_size(value: str) -> None:
    if not value.isdigit() or not 1 <= int(value) <= MAX_BATCH_SIZE:
        raise ValidationError(f"must be a whole number from 1 to {MAX_BATCH_SIZE:,}")


def _derived_id(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return "msg_" + base64.b32encode(digest).decode().rstrip("=").lower()


def webhook_id(message_id: str) -> str:
    """The ``webhook-id`` of a message: its ``messageId`` when that is a header-safe token
    (every id this console generates is), else a stable id derived from it."""
    if HEADER_SAFE_ID.fullmatch(message_id):
        return message_id
    return _derived_id(message_id)


def batch_webhook_id(message_ids: Sequence[str]) -> str:
    """The ``webhook-id`` of a batch: derived from its events' ``messageId``s, in order
    (a batch of the same events is the same message, on every retry)."""
    return _derived_id("batch\n" + "\n".join(message_ids))


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
    config: IntegrationConfig, message_id: str, now: dt.datetime, body: str, signed: str = ""
) -> dict[str, str]:
    """The headers that sign ``body`` per the integration's signing scheme; ``message_id``
    is the ``webhook-id`` to use (Standard Webhooks), ``signed`` what Segment's scheme
    signs when it is not the whole body (a batch's first element)."""
    signing = config.get("signing", Signing.STANDARD)
    if signing == Signing.SEGMENT:
        digest = hmac.new(config["secret"].encode(), (signed or body).encode(), hashlib.sha1)
        return {"X-Signature": digest.hexdigest()}
    if signing == Signing.NONE:
        return {}
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": StandardWebhook(config["secret"]).sign(message_id, now, body),
    }


# -- mapped fields --------------------------------------------------------------------

URL = MappedField(
    "url",
    "URL",
    CALLS,
    kind=FieldKind.TEXT,
    escape=Escape.URL,
    preset_note="the URL setting (or the API base URL)",
    help_text="A template whose scheme and host are written out, e.g. "
    "https://hooks.example.com/users/{{ userId }}; substitutions are percent-encoded. "
    "Not secret: credentials go in the custom headers.",
)
METHOD = MappedField(
    "method",
    "Method",
    CALLS,
    preset='"POST"',
    kind=FieldKind.TEXT,
    help_text='POST, PUT or PATCH: a literal such as "PUT", or a path whose value is one.',
)
HEADERS = MappedField(
    "headers",
    "Headers",
    CALLS,
    kind=FieldKind.KEYVALUE,
    preset_note="the custom headers setting only",
    help_text='Header names to expressions or templates, e.g. {"X-User-Id": "userId"}, sent '
    "with the custom headers (one of the same name is replaced). Not secret: credentials "
    "go in the custom headers setting.",
)
BODY = MappedField(
    "body",
    "Body",
    CALLS,
    escape=Escape.JSON,
    preset_note="the Segment message, after this integration's event-name override and "
    "property rules",
    help_text="A JSON template, each substitution written as a JSON value, e.g. "
    '{"email": {{ traits.email }}, "plan": {{ traits.plan || "free" }}}; or a path whose '
    "value is sent as JSON (e.g. properties).",
)


URL_NOT_A_TEMPLATE = (
    "must be a template that starts with the scheme and host, e.g. "
    "https://hooks.example.com/users/{{ userId }} (for one fixed URL, set the URL setting "
    "instead)"
)


def _url_template_problem(source: str) -> str | None:
    """Why a URL mapping is refused: it must be a template whose scheme and host come
    first, as written, and that holds no credential."""
    compiled = compile_mapping(source, FieldKind.TEXT)
    if not isinstance(compiled, Template):
        return URL_NOT_A_TEMPLATE
    first = compiled.parts[0]
    if not isinstance(first, str) or not URL_PREFIX.match(first):
        return URL_NOT_A_TEMPLATE
    sample = "".join(part if isinstance(part, str) else "x" for part in compiled.parts)
    try:
        URLValidator(schemes=["https", "http"])(sample)
    except ValidationError:
        return "does not make a valid http(s) URL"
    if credentials.has_credentials(sample):
        return (
            "holds credentials, which a mapping would not keep secret: put them in the "
            "custom headers setting"
        )
    return None


def _method_problem(source: str) -> str | None:
    """Why a method mapping is refused: a literal that is no method the webhook sends."""
    compiled = compile_mapping(source, FieldKind.TEXT)
    alternatives = compiled.alternatives if isinstance(compiled, Expression) else ()
    for literal in alternatives:
        if isinstance(literal, Literal) and literal.value.strip().upper() not in METHODS:
            return f"{literal.value!r} is not one of {', '.join(METHODS)}"
    return None


def _body_problem(source: str) -> str | None:
    """Why a body template is refused: with every substitution a JSON value (a quoted
    string here, so that one written inside quotes shows), it must give JSON."""
    compiled = compile_mapping(source, FieldKind.VALUE)
    if not isinstance(compiled, Template):
        return None
    sample = "".join(part if isinstance(part, str) else '"x"' for part in compiled.parts)
    try:
        json.loads(sample)
    except ValueError as exc:
        return (
            f"does not give JSON ({exc}); each {{{{ … }}}} is written as a JSON value, "
            'quotes included: {"email": {{ traits.email }}}'
        )
    return None


def _headers_problem(source: Mapping[str, Any]) -> str | None:
    for name in source:
        if not HEADER_NAME.fullmatch(name):
            return f"{name!r} is not a valid header name"
    if len({name.lower() for name in source}) < len(source):
        return "a header name is listed twice (names ignore case)"
    return None


# -- what one event sends ---------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """One event as the webhook sends it (``index``: its place in the planned list):
    where, how, and its body."""

    index: int
    message_id: str
    url: str
    method: str
    headers: tuple[tuple[str, str], ...]
    body: str

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What events of one batch share (Segment's batch keys)."""
        return self.url, self.method, self.headers


def _header_values(value: Any) -> tuple[tuple[str, str], ...]:
    """The mapped headers that have a value (one that gives nothing is not sent)."""
    if value is MISSING:
        return ()
    headers = []
    for name, text in value.items():
        if not HEADER_VALUE.fullmatch(text):
            raise NotSent(
                f"the mapped header {name} would hold a line break or a character outside "
                "printable ASCII"
            )
        if text.strip():
            headers.append((name, text.strip()))
    return tuple(headers)


def _method(value: Any) -> str:
    method = value.strip().upper() if isinstance(value, str) else ""
    if method not in METHODS:
        raise NotSent(f"the method mapping gives {value!r}, not one of {', '.join(METHODS)}")
    return method


def _url(config: IntegrationConfig, scope: MessageScope) -> str:
    if URL.override(config.mappings) is None:
        return config.api_base_url or config["url"]
    url = URL.value(config.mappings, scope)
    try:
        URLValidator(schemes=["https", "http"])(url)
    except ValidationError:
        raise NotSent(f"the URL mapping gives {url[:200]!r}, which is not a valid URL") from None
    return url


def _body(
    config: IntegrationConfig, event: EventData, context: PlanContext, scope: MessageScope
) -> str:
    mapped = BODY.override(config.mappings)
    if mapped is None:
        return json.dumps(with_rules(dict(event.payload), context.rules), separators=(",", ":"))
    value = BODY.value(config.mappings, scope)
    if not isinstance(mapped, Template):
        if value is MISSING:
            raise NotSent("the body mapping gives nothing for this event")
        return json.dumps(value, separators=(",", ":"))
    try:
        json.loads(value)
    except ValueError as exc:
        raise NotSent(f"the body template does not give valid JSON ({exc})") from None
    return value


def render(
    config: IntegrationConfig, index: int, event: EventData, context: PlanContext
) -> Rendered:
    """What the webhook sends for one event; raises ``NotSent`` or ``MappingError``."""
    scope = MessageScope(event, context)
    headers = HEADERS.value(config.mappings, scope)
    return Rendered(
        index=index,
        message_id=event.message_id,
        url=_url(config, scope),
        method=_method(METHOD.value(config.mappings, scope)),
        headers=_header_values(headers),
        body=_body(config, event, context, scope),
    )


def _merged_headers(custom: Mapping[str, str], mapped: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The custom headers, each replaced by a mapped header of the same name (any case)."""
    names = {name.lower() for name, _ in mapped}
    return {
        **{name: value for name, value in custom.items() if name.lower() not in names},
        **dict(mapped),
    }


def _batches(rendered: Sequence[Rendered], size: int) -> list[list[Rendered]]:
    """Events grouped by URL, method and headers (in the order each first appears), each
    group cut, in order, into batches of at most ``size`` events and ``MAX_BATCH_BYTES``."""
    groups: dict[tuple[Any, ...], list[Rendered]] = {}
    for item in rendered:
        groups.setdefault(item.key, []).append(item)
    batches: list[list[Rendered]] = []
    for items in groups.values():
        current: list[Rendered] = []
        length = 2  # the brackets
        for item in items:
            extra = len(item.body.encode("utf-8", "surrogatepass")) + (1 if current else 0)
            if current and (len(current) >= size or length + extra > MAX_BATCH_BYTES):
                batches.append(current)
                current, length, extra = [], 2, extra - 1
            current.append(item)
            length += extra
        if current:
            batches.append(current)
    return batches


class Webhook(Destination):
    kind = "webhook"
    label = "Webhook"
    segment_names = ("Webhooks", "Webhook")
    settings_schema = (
        SettingField(
            "url",
            "URL",
            type="url",
            help_text="Where each event is sent as JSON. Credentials in it (user:password@, "
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
        SettingField(
            "batch_size",
            "Events per request",
            help_text=f"Empty or 1: each event in its own request. 2 to {MAX_BATCH_SIZE:,}: up "
            "to that many events per request, as a JSON array of their bodies (events to the "
            "same URL with the same method and headers, under 1 MB a request).",
            validator=validate_batch_size,
        ),
    )
    mapped_fields = (URL, METHOD, HEADERS, BODY)
    # What one run plans at once: the largest batch a setting may ask for.
    max_batch_size = MAX_BATCH_SIZE

    @classmethod
    def batch_limit(cls, settings: Mapping[str, Any]) -> int:
        """One event a request unless batching is on: the worker's chunks stay small."""
        return int(settings.get("batch_size") or 1)

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
        Webhooks takes a ``whsec_…`` secret, Segment's scheme any shared secret. The
        batch size may be given as a number."""
        if isinstance(data, Mapping) and type(data.get("batch_size")) is int:
            data = {**data, "batch_size": str(data["batch_size"])}
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
    def clean_mappings(cls, data: Any) -> dict[str, Any]:
        """The mappings, with what the webhook needs of them: a URL template that writes
        out its scheme and host and holds no credential, a method among POST, PUT and
        PATCH, valid header names, a body template that gives JSON. Every field's
        problem is reported."""
        if not isinstance(data, Mapping):
            return super().clean_mappings(data)
        checks: dict[str, Callable[[Any], str | None]] = {
            URL.name: _url_template_problem,
            METHOD.name: _method_problem,
            HEADERS.name: _headers_problem,
            BODY.name: _body_problem,
        }
        errors: dict[str, Any] = {}
        cleaned: dict[str, Any] = {}
        for name, source in data.items():
            if name == URL.name and isinstance(source, str) and "{{" not in source:
                if source.strip():  # a URL, or a path into the message: no template
                    errors[name] = URL_NOT_A_TEMPLATE
                continue
            try:
                cleaned.update(super().clean_mappings({name: source}))
            except ValidationError as exc:
                errors.update(exc.message_dict)
                continue
            check = checks.get(name)
            if name in cleaned and check is not None and (problem := check(cleaned[name])):
                errors[name] = problem
        if errors:
            raise ValidationError(errors)
        return cleaned

    @classmethod
    def request(
        cls,
        config: IntegrationConfig,
        webhook_message_id: str,
        body: str,
        covers: tuple[int, ...],
        *,
        url: str = "",
        method: str = "POST",
        mapped_headers: Sequence[tuple[str, str]] = (),
        signed: str = "",
    ) -> OutboundRequest:
        headers = {
            **_merged_headers(config.get("headers", {}), mapped_headers),
            "Content-Type": "application/json",
            **signature_headers(config, webhook_message_id, timezone.now(), body, signed),
        }
        url = url or config.api_base_url or config["url"]
        return OutboundRequest(method, url, headers, body, covers=covers)

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        """One signed request per event, or per batch of events (``batch_size``), as the
        mapped fields render them (their presets: the Segment message with the rules
        applied, POSTed to the URL setting)."""
        plan = Plan()
        rendered: list[Rendered] = []
        for index, event in enumerate(events):
            try:
                rendered.append(render(config, index, event, context))
            except (NotSent, MappingError) as exc:
                plan.failures[index] = f"Not sent: {exc}."
        size = int(config.get("batch_size") or 1)
        if size <= 1:
            plan.requests += [cls._request_for(config, [one], batched=False) for one in rendered]
        else:
            batches = _batches(rendered, size)
            plan.requests += [cls._request_for(config, batch, batched=True) for batch in batches]
        return plan

    @classmethod
    def _request_for(
        cls, config: IntegrationConfig, items: Sequence[Rendered], batched: bool
    ) -> OutboundRequest:
        first = items[0]
        if batched:
            body = "[" + ",".join(one.body for one in items) + "]"
            message_id = batch_webhook_id([one.message_id for one in items])
        else:
            body, message_id = first.body, webhook_id(first.message_id)
        return cls.request(
            config,
            message_id,
            body,
            tuple(one.index for one in items),
            url=first.url,
            method=first.method,
            mapped_headers=first.headers,
            signed=first.body if batched else "",
        )

    @classmethod
    def connection_test(cls, config: IntegrationConfig) -> OutboundRequest:
        """A ping, signed and with the custom headers like every event, POSTed to the URL
        setting (mapped fields need an event: they do not apply)::

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
