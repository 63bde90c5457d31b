"""Field mappings: which part of a message fills each field a destination sends.

A destination declares its mappable fields (``MappedField``): a name, a label, the calls
it applies to, the kind of value, and its *preset*, the expression used when the
integration maps nothing. Presets are what the destination sends without any mapping; a
field whose preset is empty is either computed by the destination itself (``preset_note``
says how) or not sent at all. Per integration, a CSM can give any field another expression
(``Integration.field_mappings``: a JSON object of field name to mapping). Planning compiles
an integration's mappings once per run (``compile_mappings``) and passes them in
``IntegrationConfig.mappings``; a destination reads a field for an event with
``FIELD.value(config.mappings, scope)``, where ``scope`` gives the event's data
(``integrations.destinations.scope.MessageScope``).

The language (deliberately tiny: no code, no functions, no loops)
------------------------------------------------------------------
An **expression** reads a value::

    traits.email                  a path: keys separated by dots
    context.traits.company.id     as deep as needed
    properties["field.cancel"]    a key holding dots, spaces, quotes: in brackets, as a JSON string
    properties.items[0].sku       a list item by position
    userId                        any top-level field of the message
    $profile.traits.email         the user's traits in the profile store (merged identifies)
    $profile.groupId              the group a group call last put the user in
    $group.traits.plan            the traits of the call's group (a group call's own group;
                                  otherwise ``context.groupId``, else the user's latest group)
    traits.email || userId        the first alternative present and not empty (null, "" and
                                  a missing key count as empty)
    traits.plan || "free"         a literal, in double quotes (JSON string syntax)

A **template** is text with ``{{ expression }}`` substitutions and always gives text::

    {{ traits.firstName }} {{ traits.lastName }}
    Plan: {{ traits.plan || "free" }}

A mapping containing ``{{`` is a template, anything else an expression. In a template,
``}}`` outside a substitution is plain text (JSON bodies need it). A missing value or null
renders as nothing, true/false and numbers as JSON writes them, objects and lists as
compact JSON. A field may ask for its substitutions to be escaped: ``Escape.JSON`` writes
each one as a JSON value (``{"email": {{ traits.email }}}`` gives ``{"email": "a@b.c"}``),
``Escape.URL`` percent-encodes it; plain text fields are not escaped.

A **key-value** field (``FieldKind.KEYVALUE``, e.g. headers) takes a JSON object whose
values are expressions or templates: ``{"X-Plan": "{{ traits.plan }}"}``.

Paths read the message *after* the integration's property rules: a property switched off
is not there (it cannot be mapped out again), a renamed one is read under its new name, and
``event`` is the name after the event-name override.

Bounds: a mapping holds at most ``MAX_SOURCE`` characters, ``MAX_SUBSTITUTIONS``
substitutions, ``MAX_ALTERNATIVES`` alternatives per expression and ``MAX_DEPTH`` path
segments; a template renders to at most ``MAX_RENDERED`` characters (beyond, the event
fails with the reason).
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import quote

MAX_SOURCE = 2000
MAX_SUBSTITUTIONS = 50
MAX_ALTERNATIVES = 8
MAX_DEPTH = 16
MAX_KEYS = 50
MAX_RENDERED = 64_000
ROOTS = ("$profile", "$group")

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
KEY = re.compile(r"[A-Za-z0-9_-]+")
INDEX = re.compile(r"\[(\d{1,6})\]")
_JSON = json.JSONDecoder()


class Missing:
    """The value of a path that leads nowhere (distinct from a null in the message)."""

    _instance: "Missing | None" = None

    def __new__(cls) -> "Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()


class FieldKind(StrEnum):
    """What a field's mapping gives."""

    VALUE = "value"  # any JSON value a path reads (a template or a literal gives text)
    TEXT = "text"  # text: a path's value is written as a template writes it
    OBJECT = "object"  # an object: paths only; a value that is not an object counts as missing
    KEYVALUE = "keyvalue"  # an object of names to expressions or templates (headers)


class Escape(StrEnum):
    """How a template's substitutions are written."""

    NONE = "none"
    JSON = "json"
    URL = "url"


class MappingError(ValueError):
    """A mapping that cannot be compiled, or a template whose result is too large."""


class MappingErrors(ValueError):
    """Problems of several fields' mappings, by field name."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in errors.items()))
        self.errors = dict(errors)


class Scope(Protocol):
    """Where paths start: ``root(name)`` gives a top-level value or ``MISSING``."""

    def root(self, name: str) -> Any: ...


def is_empty(value: Any) -> bool:
    return value is MISSING or value is None or value == ""


def as_text(value: Any) -> str:
    """A value as a template writes it."""
    if is_empty(value):
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


# -- compiled forms --------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    root: str
    keys: tuple[str | int, ...] = ()

    def get(self, scope: Scope) -> Any:
        value = scope.root(self.root)
        for key in self.keys:
            if isinstance(key, int):
                if not isinstance(value, list) or key >= len(value):
                    return MISSING
                value = value[key]
            elif isinstance(value, Mapping):
                value = value.get(key, MISSING)
            else:
                return MISSING
        return value

    def __str__(self) -> str:
        text = self.root
        for key in self.keys:
            if isinstance(key, int):
                text += f"[{key}]"
            elif KEY.fullmatch(key):
                text += f".{key}"
            else:
                text += f"[{json.dumps(key)}]"
        return text


@dataclass(frozen=True)
class Literal:
    value: str

    def get(self, scope: Scope) -> Any:
        return self.value


@dataclass(frozen=True)
class Expression:
    """Alternatives, the first present and not empty wins."""

    alternatives: tuple[Path | Literal, ...]
    source: str = field(default="", compare=False)

    def evaluate(self, scope: Scope) -> Any:
        for alternative in self.alternatives:
            value = alternative.get(scope)
            if not is_empty(value):
                return value
        return MISSING

    def paths(self) -> tuple[Path, ...]:
        return tuple(a for a in self.alternatives if isinstance(a, Path))


@dataclass(frozen=True)
class Template:
    """Literal text and expressions, rendered as text."""

    parts: tuple[str | Expression, ...]
    source: str = field(default="", compare=False)

    def render(self, scope: Scope, escape: Escape = Escape.NONE) -> str:
        out: list[str] = []
        size = 0
        for part in self.parts:
            if isinstance(part, str):
                text = part
            else:
                value = part.evaluate(scope)
                if escape is Escape.JSON:
                    text = json.dumps(
                        None if value is MISSING else value, ensure_ascii=False, default=str
                    )
                elif escape is Escape.URL:
                    text = quote(as_text(value), safe="")
                else:
                    text = as_text(value)
            size += len(text)
            if size > MAX_RENDERED:
                raise MappingError(f"the template renders to more than {MAX_RENDERED:,} characters")
            out.append(text)
        return "".join(out)

    def paths(self) -> tuple[Path, ...]:
        return tuple(p for part in self.parts if isinstance(part, Expression) for p in part.paths())


@dataclass(frozen=True)
class KeyValue:
    """Names to expressions or templates (each written as text)."""

    items: tuple[tuple[str, "Expression | Template"], ...]
    source: str = field(default="", compare=False)

    def evaluate(self, scope: Scope, escape: Escape = Escape.NONE) -> dict[str, str]:
        result: dict[str, str] = {}
        for name, item in self.items:
            if isinstance(item, Template):
                result[name] = item.render(scope, escape)
            else:
                value = item.evaluate(scope)
                if not is_empty(value):
                    result[name] = as_text(value)
        return result

    def paths(self) -> tuple[Path, ...]:
        return tuple(p for _, item in self.items for p in item.paths())


Compiled = Expression | Template | KeyValue


# -- parsing ---------------------------------------------------------------------------


class _Parser:
    """A recursive-descent parser over one mapping's text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str) -> MappingError:
        return MappingError(f"{problem} at character {self.pos + 1} of {self.text!r}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def at_end(self, stop: str) -> bool:
        return self.pos >= len(self.text) or bool(stop and self.text.startswith(stop, self.pos))

    def expression(self, stop: str = "") -> Expression:
        alternatives: list[Path | Literal] = []
        while True:
            self.skip_spaces()
            if self.at_end(stop):
                raise self.fail("expected a path or a quoted literal")
            alternatives.append(self.literal() if self.text[self.pos] == '"' else self.path())
            if len(alternatives) > MAX_ALTERNATIVES:
                raise self.fail(f"more than {MAX_ALTERNATIVES} alternatives")
            self.skip_spaces()
            if self.at_end(stop):
                return Expression(tuple(alternatives), self.text if not stop else "")
            if not self.text.startswith("||", self.pos):
                raise self.fail(f"unexpected {self.text[self.pos]!r} (alternatives take ||)")
            self.pos += 2

    def literal(self) -> Literal:
        try:
            value, end = _JSON.raw_decode(self.text, self.pos)
        except ValueError:
            raise self.fail("unterminated or invalid quoted literal") from None
        self.pos = end
        return Literal(value)

    def path(self) -> Path:
        start = self.pos
        prefix = "$" if self.text.startswith("$", self.pos) else ""
        match = NAME.match(self.text, self.pos + len(prefix))
        if match is None:
            raise self.fail("expected a name (a path starts like traits or userId)")
        root = prefix + match.group()
        if prefix and root not in ROOTS:
            raise self.fail(f"unknown root {root!r} (the roots with $ are {', '.join(ROOTS)})")
        self.pos = match.end()
        keys: list[str | int] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == ".":
                match = KEY.match(self.text, self.pos + 1)
                if match is None:
                    self.pos += 1
                    raise self.fail("expected a key after '.'")
                keys.append(match.group())
                self.pos = match.end()
            elif char == "[":
                keys.append(self.bracket())
            else:
                break
            if len(keys) > MAX_DEPTH:
                self.pos = start
                raise self.fail(f"a path of more than {MAX_DEPTH} keys")
        return Path(root, tuple(keys))

    def bracket(self) -> str | int:
        index = INDEX.match(self.text, self.pos)
        if index is not None:
            self.pos = index.end()
            return int(index.group(1))
        self.pos += 1
        key = self.literal().value if self.text.startswith('"', self.pos) else None
        if not isinstance(key, str) or not self.text.startswith("]", self.pos):
            raise self.fail('expected [<position>] or ["<key>"]')
        self.pos += 1
        return key

    def template(self) -> Template:
        parts: list[str | Expression] = []
        substitutions = 0
        while self.pos < len(self.text):
            opening = self.text.find("{{", self.pos)
            if opening < 0:
                parts.append(self.text[self.pos :])
                break
            if opening > self.pos:
                parts.append(self.text[self.pos : opening])
            self.pos = opening + 2
            parts.append(self.expression(stop="}}"))
            if not self.text.startswith("}}", self.pos):
                raise self.fail("'{{' without its '}}'")
            self.pos += 2
            substitutions += 1
            if substitutions > MAX_SUBSTITUTIONS:
                raise self.fail(f"more than {MAX_SUBSTITUTIONS} substitutions")
        return Template(tuple(parts), self.text)


@lru_cache(maxsize=4096)
def _compile_text(source: str) -> Expression | Template:
    if len(source) > MAX_SOURCE:
        raise MappingError(f"longer than {MAX_SOURCE:,} characters")
    parser = _Parser(source)
    return parser.template() if "{{" in source else parser.expression()


def compile_mapping(source: Any, kind: FieldKind = FieldKind.VALUE) -> Compiled:
    """The compiled form of one field's mapping; raises ``MappingError`` saying what is
    wrong."""
    if kind is FieldKind.KEYVALUE:
        if not isinstance(source, Mapping):
            raise MappingError('must be an object of names to mappings, e.g. {"X-Id": "userId"}')
        if len(source) > MAX_KEYS:
            raise MappingError(f"more than {MAX_KEYS} names")
        items = []
        for name, value in source.items():
            if not isinstance(name, str) or not name.strip():
                raise MappingError("names must be non-empty strings")
            if not isinstance(value, str) or not value.strip():
                raise MappingError(f"{name}: must be a non-empty expression or template")
            try:
                items.append((name, _compile_text(value.strip())))
            except MappingError as exc:
                raise MappingError(f"{name}: {exc}") from None
        return KeyValue(tuple(items), json.dumps(dict(source), ensure_ascii=False))
    if not isinstance(source, str) or not source.strip():
        raise MappingError("must be a non-empty expression or template")
    compiled = _compile_text(source.strip())
    if kind is FieldKind.OBJECT and (
        not isinstance(compiled, Expression)
        or any(isinstance(a, Literal) for a in compiled.alternatives)
    ):
        raise MappingError("takes a path to an object (e.g. traits), not a template or a literal")
    return compiled


# -- declared fields -------------------------------------------------------------------


@dataclass(frozen=True)
class MappedField:
    """A vendor field a CSM can fill from another part of the message.

    ``preset`` is the expression used when the integration maps nothing (empty: the
    destination computes the value itself, as ``preset_note`` says, or sends nothing).
    ``calls`` are the message types the field is read for.
    """

    name: str
    label: str
    calls: frozenset[str]
    preset: str = ""
    kind: FieldKind = FieldKind.VALUE
    escape: Escape = Escape.NONE
    help_text: str = ""
    preset_note: str = ""
    compiled_preset: Compiled | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.preset:
            object.__setattr__(self, "compiled_preset", compile_mapping(self.preset, self.kind))

    @property
    def preset_description(self) -> str:
        """What the field holds when it is not mapped, for the console."""
        return self.preset or self.preset_note or "not sent unless mapped"

    def override(self, mappings: Mapping[str, Compiled]) -> Compiled | None:
        """The integration's own mapping of this field, if any."""
        return mappings.get(self.name)

    def expression(self, mappings: Mapping[str, Compiled]) -> Compiled | None:
        """The mapping in force: the integration's, else the preset."""
        return mappings.get(self.name) or self.compiled_preset

    def value(self, mappings: Mapping[str, Compiled], scope: Scope) -> Any:
        """The field's value for one event, or ``MISSING``; raises ``MappingError`` when a
        template's result is too large."""
        compiled = self.expression(mappings)
        return MISSING if compiled is None else evaluate(compiled, self.kind, scope, self.escape)

    def reads(self, mappings: Mapping[str, Compiled]) -> tuple[Path, ...]:
        """The paths the mapping in force reads."""
        compiled = self.expression(mappings)
        return () if compiled is None else compiled.paths()

    def describe(self) -> dict[str, Any]:
        """The field as the console and the API show it."""
        return {
            "name": self.name,
            "label": self.label,
            "calls": sorted(self.calls),
            "kind": str(self.kind),
            "preset": self.preset,
            "preset_description": self.preset_description,
            "help_text": self.help_text,
        }


def evaluate(
    compiled: Compiled, kind: FieldKind, scope: Scope, escape: Escape = Escape.NONE
) -> Any:
    if isinstance(compiled, KeyValue):
        return compiled.evaluate(scope, escape)
    if isinstance(compiled, Template):
        return compiled.render(scope, escape)
    value = compiled.evaluate(scope)
    if kind is FieldKind.OBJECT:
        return value if isinstance(value, Mapping) else MISSING
    if kind is FieldKind.TEXT and value is not MISSING:
        return as_text(value)
    return value


def clean_mappings(
    fields: Sequence[MappedField], data: Any, owner: str = "this destination"
) -> dict[str, Any]:
    """An integration's mappings in canonical form (stripped, empty ones dropped); raises
    ``MappingErrors`` naming every problem (unknown field, bad path or template)."""
    if not isinstance(data, Mapping):
        raise MappingErrors({"field_mappings": "must be an object of field names to mappings"})
    known = {f.name: f for f in fields}
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for name, source in data.items():
        spec = known.get(name)
        if spec is None:
            listed = ", ".join(known) or "none"
            errors[str(name)] = f"unknown field for {owner}; its fields: {listed}"
            continue
        if source is None or source == "" or source == {}:
            continue
        if isinstance(source, str):
            source = source.strip()
        try:
            compile_mapping(source, spec.kind)
        except MappingError as exc:
            errors[name] = str(exc)
            continue
        cleaned[name] = source
    if errors:
        raise MappingErrors(errors)
    return cleaned


def compile_mappings(fields: Sequence[MappedField], data: Mapping[str, Any]) -> dict[str, Compiled]:
    """The integration's mappings compiled, by field name (what ``IntegrationConfig``
    carries). Names no field declares are left out; use ``clean_mappings`` to validate."""
    kinds = {f.name: f.kind for f in fields}
    return {
        name: compile_mapping(source, kinds[name])
        for name, source in data.items()
        if name in kinds and source not in (None, "", {})
    }
