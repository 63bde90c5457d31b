"""What every destination declares: its settings schema and how Segment names it."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from integrations import credentials
from integrations.destinations.context import PlanContext
from integrations.destinations.mapping import MappedField, MappingErrors, clean_mappings
from integrations.destinations.values import EventData, IntegrationConfig


@dataclass(frozen=True)
class SettingField:
    """One setting of a destination; the schema drives the admin form and API validation."""

    name: str
    label: str
    type: str = "string"  # string | url | choice | headers
    help_text: str = ""
    required: bool = False
    secret: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    default: Any = None
    validator: Callable[[Any], None] | None = None

    def clean(self, value: Any) -> Any:
        """Return the value in canonical form, or raise ValidationError saying what is wrong."""
        if self.type == "headers":
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValidationError("must be an object of header names to string values")
            for name in value:
                if not name or any(c in name for c in " :\r\n"):
                    raise ValidationError(f"{name!r} is not a valid header name")
            if len({name.lower() for name in value}) < len(value):
                raise ValidationError("a header name is listed twice (names ignore case)")
            if any("\r" in v or "\n" in v for v in value.values()):
                raise ValidationError("header values must not contain line breaks")
            return dict(value)
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        value = value.strip()
        if self.required and not value:
            raise ValidationError("this setting is required")
        if self.type == "url" and value:
            URLValidator(schemes=["https", "http"])(value)
            value = value.rstrip("/")
        if self.type == "choice" and value not in {key for key, _ in self.choices}:
            allowed = ", ".join(key for key, _ in self.choices)
            raise ValidationError(f"must be one of: {allowed}")
        if self.validator is not None and value:
            self.validator(value)
        return value


def _unmasked(spec: SettingField, value: Any, stored: Any) -> Any:
    """A headers or URL value with its masked credentials filled in from ``stored``."""
    try:
        if spec.type == "headers":
            return credentials.merged_headers(value, stored)
        if spec.type == "url" and isinstance(value, str):
            return credentials.unmasked_url(value.strip(), stored)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    return value


@dataclass(frozen=True)
class CleanedSettings:
    public: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)
    # The secrets generated for settings left empty, by name: shown once, never again.
    generated: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundRequest:
    """One HTTP request to a vendor, carrying one or more events.

    ``covers`` holds the indexes, in the list given to ``plan``, of the events this
    request carries: one for most calls, many for a vendor's batch endpoint.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    covers: tuple[int, ...] = (0,)
    # For a request that is one step of several (look a record up, then write it): which
    # step, and what ``follow_up`` needs to build the next one.
    step: str = ""
    state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PartialFailure:
    """One delivery a successful answer says failed: retried, or failed for good."""

    reason: str
    retry: bool = True


@dataclass
class Plan:
    """What to send for a list of events, and which of them cannot be sent at all.

    ``failures`` maps an event's index to the reason it cannot be delivered, a problem
    only configuration or data can fix (it fails at once, with that message).
    """

    requests: list[OutboundRequest] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)
    # Events that need no request at all (the vendor has nothing to receive), by index,
    # with the reason: they count as delivered, with the reason in the log.
    skipped: dict[int, str] = field(default_factory=dict)


class Destination:
    """Base class of a destination. Each subclass is listed in ``registry.py``."""

    kind: ClassVar[str]
    label: ClassVar[str]
    # Keys that name this destination in a message's Segment ``integrations`` object.
    segment_names: ClassVar[tuple[str, ...]]
    # Segment message types this destination takes; others get no delivery.
    supported_types: ClassVar[frozenset[str]] = frozenset(
        {"identify", "track", "page", "screen", "group", "alias"}
    )
    settings_schema: ClassVar[tuple[SettingField, ...]] = ()
    # The vendor fields a CSM can fill from other parts of the message (``mapping``).
    mapped_fields: ClassVar[tuple[MappedField, ...]] = ()

    @classmethod
    def fields(cls) -> dict[str, SettingField]:
        return {f.name: f for f in cls.settings_schema}

    @classmethod
    def secret_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in cls.settings_schema if f.secret)

    @classmethod
    def generate_secret(cls, name: str, data: Mapping[str, Any]) -> str | None:
        """A value for an absent secret setting (``data``: the submitted settings), or None
        when the user must provide it."""
        return None

    @classmethod
    def clean_settings(
        cls, data: Mapping[str, Any], existing_secrets: Mapping[str, Any] | None = None
    ) -> CleanedSettings:
        """Validate settings for this kind.

        ``data`` holds the submitted settings; a secret left out (or submitted empty) keeps
        its ``existing_secrets`` value. Credentials within settings are secret too: the
        values of ``headers`` settings (their names are public) and the user info and
        credential query parameters of ``url`` settings (the public URL has them masked);
        a masked part submitted back keeps the stored value (see ``integrations.credentials``).
        Unknown keys, missing required settings and bad values raise a ``ValidationError``
        whose dict maps each setting to its problem.
        """
        if not isinstance(data, Mapping):
            raise ValidationError({"settings": "must be an object"})
        known = cls.fields()
        errors: dict[str, str] = {}
        for key in data:
            if key not in known:
                errors[key] = f"unknown setting for {cls.label}; known: {', '.join(known)}"
        public: dict[str, Any] = {}
        secrets: dict[str, Any] = {}
        generated: dict[str, str] = {}
        stored = existing_secrets or {}
        for name, spec in known.items():
            value = data.get(name)
            if spec.secret and (value is None or value == ""):
                value = stored.get(name)
                if not value and (value := cls.generate_secret(name, data)) is not None:
                    generated[name] = value
            if value is None and spec.type == "headers":
                value = stored.get(name)  # left out: the stored headers are kept
            if value is None or value == "":
                # Left out or left empty: the default, else not set.
                value = spec.default
            if value is None or value == "":
                if spec.required:
                    errors[name] = "this setting is required"
                continue
            try:
                value = spec.clean(_unmasked(spec, value, stored.get(name)))
            except ValidationError as exc:
                errors[name] = "; ".join(exc.messages)
                continue
            if spec.type == "headers":
                # Header values may be credentials: only the names are public.
                public[name], secrets[name] = list(value), value
            elif spec.type == "url" and credentials.has_credentials(value):
                # The URL's credentials are secret: the public URL has them masked.
                public[name], secrets[name] = credentials.masked_url(value), value
            else:
                (secrets if spec.secret else public)[name] = value
        if errors:
            raise ValidationError(errors)
        return CleanedSettings(public=public, secrets=secrets, generated=generated)

    @classmethod
    def clean_mappings(cls, data: Any) -> dict[str, Any]:
        """Validate an integration's field mappings for this kind: the canonical mappings,
        or a ``ValidationError`` whose dict maps each field to its problem."""
        try:
            return clean_mappings(cls.mapped_fields, data, owner=cls.label)
        except MappingErrors as exc:
            raise ValidationError(exc.errors) from exc

    # How many events one request may carry (1: the vendor has no batch endpoint).
    max_batch_size: ClassVar[int] = 1
    # The vendor's rate limit per integration (all workers together), or None.
    max_requests_per_second: ClassVar[float | None] = None

    @classmethod
    def call_types(cls, settings: Mapping[str, Any]) -> frozenset[str]:
        """The Segment calls an integration of this kind takes with these (public)
        settings; the router gives it no other."""
        return cls.supported_types

    @classmethod
    def batch_limit(cls, settings: Mapping[str, Any]) -> int:
        """How many events one request of an integration with these (public) settings
        may carry: the worker plans its events in chunks at least this big."""
        return cls.max_batch_size

    @classmethod
    def rate_limit(cls, settings: Mapping[str, Any]) -> float | None:
        """Requests per second an integration with these settings may send (all workers
        together), or None."""
        return cls.max_requests_per_second

    @classmethod
    def plan(
        cls, config: IntegrationConfig, events: Sequence[EventData], context: PlanContext
    ) -> Plan:
        """The requests that deliver these events: a pure function of its arguments (no
        I/O, no database), so it can be previewed and unit-tested."""
        raise NotImplementedError(f"{cls.label} does not build requests")

    @classmethod
    def follow_up(
        cls, config: IntegrationConfig, request: OutboundRequest, status: int, body: str
    ) -> OutboundRequest | None:
        """The next request after a successful step (e.g. a write after a lookup), or None
        when the delivery is complete. Pure, like ``plan``."""
        return None

    # What a CSM must know about the vendor, shown with its settings (sentences).
    caveats: ClassVar[tuple[str, ...]] = ()
    # Shown with every "Test connection" result: what a success does not prove, or why
    # there is no test at all.
    connection_test_note: ClassVar[str] = ""

    @classmethod
    def connection_test(cls, config: IntegrationConfig) -> OutboundRequest | None:
        """A cheap authenticated request that shows whether the settings work ("Test
        connection"), or None when the vendor offers none. Pure, like ``plan``."""
        return None

    @classmethod
    def partial_failures(
        cls, request: OutboundRequest, status: int, body: str
    ) -> dict[int, PartialFailure]:
        """Events a successful (2xx) answer says failed, by index (Customer.io's 207)."""
        return {}
