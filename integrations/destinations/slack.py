"""Slack: a message per event, posted to a channel through an incoming webhook.

Each event whose name has a message template is posted as ``{"text": ...}`` to the
incoming-webhook URL (Slack > Apps > Incoming Webhooks). The template comes from the
``messages`` mapping, an object of event names — a track call's name as received, or the
call type: ``identify``, ``group``… — to templates, else from the ``default_template``
setting; an event with neither is not posted (it is delivered with nothing sent, and the
reason). A team that wants only a few events posted switches the rest off (the "only
what is on" event mode).

Templates are the field mappings' templates (``integrations.destinations.mapping``), read
after the property rules; ``traits`` of a call without traits of its own (a track call)
are the user's (``SlackScope``). Slack needs this of the values they substitute:

* ``&``, ``<`` and ``>`` are escaped (``&amp;``, ``&lt;``, ``&gt;``), as Slack asks, so a
  value cannot turn into a link or a mention (``<!channel>``); the template's own text is
  sent as written, Slack formatting included (``*bold*``, ``<https://…|a link>``);
* numbers are written with thousands separators (``1234`` → ``1,234``), for people to
  read; true and false as such, objects and lists as compact JSON.

So a Chargebee Retention ``cancel`` mapped to ::

    {{ traits.name }} ({{ $group.traits.name }}, ${{ properties.mrr }}) cancelled:
    {{ properties.reason }}

is posted as "Jane (Acme, $1,234) cancelled: too expensive". A message is cut to Slack's
40,000 characters.

Slack allows about one message a second per incoming webhook (short bursts beyond it,
then 429 with Retry-After): the engine spaces this integration's requests accordingly.
The webhook URL is a credential — whoever has it can post to the channel — so it is a
secret setting, and must be https (plain http only where private URLs are allowed).
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from integrations.destinations.base import Destination, OutboundRequest, Plan, SettingField
from integrations.destinations.context import PlanContext
from integrations.destinations.mapping import (
    MAX_RENDERED,
    Compiled,
    FieldKind,
    KeyValue,
    MappedField,
    MappingError,
    Template,
    as_text,
    compile_mapping,
    is_empty,
)
from integrations.destinations.scope import MessageScope
from integrations.destinations.values import EventData, IntegrationConfig

CALLS = frozenset({"identify", "track", "page", "screen", "group", "alias"})
MAX_TEXT = 40_000
SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
TEST_MESSAGE = (
    "Test message from the integration console: messages of this integration will be "
    "posted to this channel."
)


def validate_webhook_url(value: str) -> None:
    """An https:// URL; plain http only where private URLs are allowed (tests)."""
    URLValidator(schemes=["https", "http"])(value)
    if not value.startswith("https://") and not settings.INTEGRATIONS_ALLOW_PRIVATE_URLS:
        raise ValidationError("must start with https:// (Slack's incoming webhook URLs do)")


#: Said with a message that does not compile and has no substitution.
FIXED_TEXT_HINT = (
    "a message without {{ … }} is read as a path: write fixed text in quotes, e.g. "
    '"A customer cancelled"'
)


def validate_template(value: str) -> None:
    try:
        compile_mapping(value, FieldKind.TEXT)
    except MappingError as exc:
        hint = f" ({FIXED_TEXT_HINT})" if "{{" not in value else ""
        raise ValidationError(f"{exc}{hint}") from exc


def slack_text(value: Any) -> str:
    """A substituted value as Slack text: escaped, numbers with thousands separators."""
    if is_empty(value):
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{int(value):,}" if value.is_integer() else f"{value:,}"
    else:
        text = as_text(value)
    return text.translate(SLACK_ESCAPES)


class SlackScope(MessageScope):
    """What a message template reads: the message as for any mapping, except that a
    call that carries no traits of its own (track, page, screen, alias) reads as
    ``traits`` the user's: the profile store's, overlaid by the call's ``context.traits``
    (both after the property rules), so ``{{ traits.name }}`` names the user of a track
    call as of an identify."""

    __slots__ = ("_own_traits",)

    def __init__(self, event: EventData, context: PlanContext) -> None:
        super().__init__(event, context)
        self._own_traits = event.type in ("identify", "group")

    def root(self, name: str) -> Any:
        if name != "traits" or self._own_traits:
            return super().root(name)
        profile = self.root("$profile")["traits"]
        context = super().root("context")
        traits = context.get("traits") if isinstance(context, Mapping) else None
        return {**profile, **(traits if isinstance(traits, Mapping) else {})}


def render(compiled: Compiled, scope: MessageScope) -> str:
    """A message template (or expression) rendered as Slack text; raises ``MappingError``
    when it grows over the mappings' ``MAX_RENDERED`` characters."""
    parts = compiled.parts if isinstance(compiled, Template) else (compiled,)
    out: list[str] = []
    size = 0
    for part in parts:
        text = part if isinstance(part, str) else slack_text(part.evaluate(scope))
        size += len(text)
        if size > MAX_RENDERED:
            raise MappingError(f"the message renders to more than {MAX_RENDERED:,} characters")
        out.append(text)
    return "".join(out)


MESSAGES = MappedField(
    "messages",
    "Messages by event",
    CALLS,
    kind=FieldKind.KEYVALUE,
    preset_note="the default message (a setting) for every event",
    help_text="Event names (a track call's name as received, or identify, group…) to message "
    'templates, e.g. {"cancel": "{{ traits.name }} ({{ $group.traits.name }}, '
    '${{ properties.mrr }}) cancelled: {{ properties.reason }}"}; the traits of a track '
    "call are the user's. Substituted values are escaped for Slack and numbers written as "
    "1,234; Slack formatting in the template itself (*bold*, <https://…|links>) is kept.",
)


def _request(config: IntegrationConfig, text: str, covers: tuple[int, ...]) -> OutboundRequest:
    body = json.dumps({"text": text}, ensure_ascii=False, separators=(",", ":"))
    return OutboundRequest(
        "POST", config["webhook_url"], {"Content-Type": "application/json"}, body, covers=covers
    )


class Slack(Destination):
    kind = "slack"
    label = "Slack"
    segment_names = ("Slack",)
    settings_schema = (
        SettingField(
            "webhook_url",
            "Incoming webhook URL",
            help_text="In Slack: Apps > Incoming Webhooks > Add to Slack, pick the channel, "
            "then copy the Webhook URL (https://hooks.slack.com/services/…). Whoever has it "
            "can post to the channel: it is kept secret. The API base URL below does not "
            "apply to it.",
            required=True,
            secret=True,
            validator=validate_webhook_url,
        ),
        SettingField(
            "default_template",
            "Default message",
            help_text="The message for events without their own under Messages by event "
            "(field mappings); empty: those events are not posted. A template, e.g. "
            '{{ event }} from {{ userId }}; fixed text in quotes: "Something happened".',
            validator=validate_template,
        ),
    )
    mapped_fields = (MESSAGES,)
    # Slack's limit per incoming webhook (the engine spaces requests across workers).
    max_requests_per_second: ClassVar[float] = 1
    caveats = (
        "Only events with a message template are posted: give one per event under Messages "
        "by event, or a default message; switch off the events the channel need not see.",
        "Slack takes about one message a second per incoming webhook: a burst of events is "
        "posted at that pace.",
    )
    connection_test_note = "Test connection posts a short test message to the channel."

    @classmethod
    def clean_mappings(cls, data: Any) -> dict[str, Any]:
        """The mappings; a message that does not compile and has no substitution gets a
        hint (fixed text is written in quotes)."""
        try:
            return super().clean_mappings(data)
        except ValidationError as exc:
            errors = exc.message_dict
            messages = data.get(MESSAGES.name) if isinstance(data, Mapping) else None
            fixed_text = isinstance(messages, Mapping) and any(
                isinstance(v, str) and "{{" not in v for v in messages.values()
            )
            if MESSAGES.name in errors and fixed_text:
                errors[MESSAGES.name] = [f"{errors[MESSAGES.name][0]} ({FIXED_TEXT_HINT})"]
            raise ValidationError(errors) from exc

    @classmethod
    def template(cls, config: IntegrationConfig, event: EventData) -> Compiled | None:
        """The event's message template: its own under ``messages`` (by the name event
        rules use), else the default message, else None."""
        messages = MESSAGES.override(config.mappings)
        if isinstance(messages, KeyValue):
            own = dict(messages.items).get(event.rule_name)
            if own is not None:
                return own
        default = config.get("default_template")
        return compile_mapping(default, FieldKind.TEXT) if default else None

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        """One ``{"text": ...}`` POST per event that has a message template."""
        plan = Plan()
        for index, event in enumerate(events):
            template = cls.template(config, event)
            if template is None:
                plan.skipped[index] = (
                    f"no Slack message for {event.rule_name!r} (give it one under Messages "
                    "by event, or set a default message)"
                )
                continue
            try:
                text = render(template, SlackScope(event, context))
            except MappingError as exc:
                plan.failures[index] = f"Not sent: {exc}."
                continue
            if not text.strip():
                plan.skipped[index] = f"the Slack message for {event.rule_name!r} is empty"
                continue
            plan.requests.append(_request(config, text[:MAX_TEXT], (index,)))
        return plan

    @classmethod
    def connection_test(cls, config: IntegrationConfig) -> OutboundRequest:
        """A short test message, posted to the channel (an incoming webhook has no request
        that checks it without posting)."""
        return _request(config, TEST_MESSAGE, ())
