"""Reading a JSON request body: gzip, size limits, parse errors and values that cannot be
stored (deep nesting, non-finite numbers, NUL and surrogates) as clear API errors."""

import codecs
import json
import math
import re
import zlib
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from rest_framework import status

from integrations.api.errors import APIError
from integrations.sources.segment_spec import MessageError

KB = 1024


def _too_large(limit: int, what: str) -> APIError:
    return APIError(
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        "payload_too_large",
        f"{what} exceeds the {limit // KB} KB limit.",
    )


def read_body(request: HttpRequest, limit: int, what: str = "The request body") -> bytes:
    """The raw body, decompressed when ``Content-Encoding: gzip``, at most ``limit`` bytes."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, what)
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise _too_large(limit, what) from exc
    if len(body) > limit:
        raise _too_large(limit, what)

    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise APIError(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding.",
        )
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # Bounded: never inflate more than one byte past the limit (zip bombs).
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise APIError(
            status.HTTP_400_BAD_REQUEST, "invalid_gzip", f"The gzip body cannot be read: {exc}."
        ) from exc
    if len(data) > limit or decompressor.unconsumed_tail:
        raise _too_large(limit, f"{what} (decompressed)")
    if not decompressor.eof:
        raise APIError(status.HTTP_400_BAD_REQUEST, "invalid_gzip", "The gzip body is truncated.")
    return data


MAX_NESTING_DEPTH = 64

# What in a raw body may make a string impossible to store, found by cheap scans (most
# bodies have none, and skip the per-value check): an escaped NUL or surrogate half, or a
# surrogate half written as UTF-8 (which Python's JSON decoder lets through). Two patterns,
# not one alternation: each starts with a literal, which the regex engine scans for fast.
SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
SUSPECT_UTF8 = re.compile(rb"\xed[\xa0-\xbf]")


@dataclass(frozen=True)
class JSONBody:
    """A parsed request body; ``suspect``: it may hold a string or number that cannot be
    stored (see ``check_content``), which its values must then be checked for;
    ``batch_lengths``: when asked for and the body is an object with a ``batch`` array,
    the length of each of its elements as written, in characters; ``batch_openings``,
    then, how many ``{`` and ``[`` each holds as written (in its strings too): one that
    holds at most ``MAX_NESTING_DEPTH`` cannot nest deeper, and need not be walked."""

    value: Any
    suspect: bool
    batch_lengths: list[int] | None = None
    batch_openings: list[int] | None = None

    def may_nest_too_deep(self) -> set[int] | None:
        """The indexes of the batch's elements that may nest deeper than allowed (None:
        not measured, any may)."""
        if self.batch_openings is None:
            return None
        return {i for i, n in enumerate(self.batch_openings) if n > MAX_NESTING_DEPTH}


# A value's compact JSON in UTF-8 is at most this many times as long as the value as
# written, in characters: whitespace goes, a character takes at most 4 bytes, and the
# longest a number grows is ``1e15`` written back as ``1000000000000000.0``.
MAX_EXPANSION = 4.5


def _invalid_json(message: str) -> APIError:
    return APIError(status.HTTP_400_BAD_REQUEST, "invalid_json", message)


def decode(data: bytes) -> str:
    """The body as text: UTF-8 (a leading byte-order mark is skipped), as RFC 8259 asks.

    Surrogate halves written as UTF-8 are let through (``surrogatepass``), as Python's JSON
    decoder does, so that in a batch they cost only the message that holds them."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if b"\x00" in data:
        raise _invalid_json("The request body is not UTF-8 JSON: it holds NUL bytes (UTF-16?).")
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise _invalid_json(
            f"The request body is not valid UTF-8: {exc.reason} at byte {exc.start}."
        ) from exc


def parse_json(data: bytes, *, measure_batch: bool = False) -> JSONBody:
    """The parsed body, or a 400 saying why it is not JSON (values are not checked: see
    ``checked_json``; a batch checks each message, so that one bad message does not cost
    the others). ``measure_batch``: with the lengths of a ``batch`` array's elements."""
    non_finite = False

    # Python's decoder takes NaN, Infinity and numbers beyond a double (1e999 becomes inf);
    # these hooks see every one of them, and cost little: only numbers with a fraction or
    # an exponent go through parse_float.
    def constant(name: str) -> float:
        nonlocal non_finite
        non_finite = True
        return float(name)

    def number(text: str) -> float:
        nonlocal non_finite
        value = float(text)
        if math.isinf(value):
            non_finite = True
        return value

    text = decode(data)
    measured = None
    try:
        if measure_batch:
            value, measured = _measuring_batch(text, parse_float=number, parse_constant=constant)
        else:
            value = json.loads(text, parse_float=number, parse_constant=constant)
    except RecursionError as exc:
        raise APIError(
            status.HTTP_400_BAD_REQUEST,
            "nesting_too_deep",
            f"The request body nests objects and arrays deeper than the "
            f"{MAX_NESTING_DEPTH} levels allowed.",
        ) from exc
    except ValueError as exc:
        raise _invalid_json(f"The request body is not valid JSON: {exc}.") from exc
    suspect = non_finite or bool(SUSPECT_ESCAPE.search(data) or SUSPECT_UTF8.search(data))
    if measured is None:
        return JSONBody(value, suspect)
    return JSONBody(value, suspect, *measured)


class _Irregular(Exception):
    """Not an object read by ``_measuring_batch``: the body is parsed whole instead."""


_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's own


def _skip(text: str, index: int) -> int:
    """The first index at or after ``index`` that is not JSON whitespace."""
    match = _WHITESPACE.match(text, index)
    return match.end() if match else index


# Each element of a batch array as written: its length, and how many ``{`` and ``[`` it holds.
_Measured = tuple[list[int], list[int]]


def _measuring_batch(text: str, **hooks: Any) -> tuple[Any, _Measured | None]:
    """``json.loads(text, **hooks)`` and, when the value is an object with a ``batch``
    array, each element as written measured (``_Measured``): the object is read key by key and that
    array element by element with the decoder's own scanner, so each value is parsed
    once. Anything else, or anything wrong (whose error ``json.loads`` then words), is
    parsed whole."""
    try:
        # scan_once: the decoder's scanner (set by JSONDecoder, not declared in its stubs).
        scan = json.JSONDecoder(**hooks).scan_once  # type: ignore[attr-defined]
        return _object_measuring_batch(text, scan)
    except (_Irregular, StopIteration, ValueError):
        return json.loads(text, **hooks), None


def _object_measuring_batch(text: str, scan: Any) -> tuple[dict[str, Any], _Measured | None]:
    index = _skip(text, 0)
    if text[index : index + 1] != "{":
        raise _Irregular
    value: dict[str, Any] = {}
    measured = None
    index = _skip(text, index + 1)
    closed = text[index : index + 1] == "}"
    if closed:
        index = _skip(text, index + 1)
    while not closed:
        if text[index : index + 1] != '"':
            raise _Irregular
        key, index = scan(text, index)
        index = _skip(text, index)
        if text[index : index + 1] != ":":
            raise _Irregular
        index = _skip(text, index + 1)
        if key == "batch":
            value[key], index, measured = _array_measured(text, index, scan)
        else:
            value[key], index = scan(text, index)
        index = _skip(text, index)
        separator = text[index : index + 1]
        if separator not in (",", "}"):
            raise _Irregular
        closed = separator == "}"
        index = _skip(text, index + 1)
    if index != len(text):
        raise _Irregular  # "Extra data"
    return value, measured


def _array_measured(text: str, index: int, scan: Any) -> tuple[Any, int, _Measured | None]:
    """The value at ``index``, where it ends, and each element measured if an array."""
    if text[index : index + 1] != "[":
        value, end = scan(text, index)
        return value, end, None
    items: list[Any] = []
    lengths: list[int] = []
    openings: list[int] = []
    index = _skip(text, index + 1)
    if text[index : index + 1] == "]":
        return items, index + 1, (lengths, openings)
    while True:
        item, end = scan(text, index)
        items.append(item)
        lengths.append(end - index)
        openings.append(text.count("{", index, end) + text.count("[", index, end))
        index = _skip(text, end)
        separator = text[index : index + 1]
        if separator == "]":
            return items, index + 1, (lengths, openings)
        if separator != ",":
            raise _Irregular
        index = _skip(text, index + 1)


def checked_json(data: bytes) -> Any:
    """The parsed body, or a 400 when it is not JSON or holds a value that cannot be stored."""
    body = parse_json(data)
    # A body that opens few objects and arrays cannot nest deep: no need to walk it.
    brackets = data.count(b"{") + data.count(b"[")
    refuse_unstorable(body.value, suspect=body.suspect, nesting=brackets > MAX_NESTING_DEPTH)
    return body.value


def refuse_unstorable(value: Any, *, suspect: bool, nesting: bool = True) -> None:
    """A 400 when ``value`` cannot be stored: it nests too deep (checked with ``nesting``)
    or, when ``suspect``, holds a string or number that cannot be stored."""
    try:
        if nesting:
            check_nesting(value)
        if suspect:
            check_content(value)
    except MessageError as exc:
        raise APIError(status.HTTP_400_BAD_REQUEST, exc.code, exc.message) from exc


def check_nesting(value: Any) -> None:
    """A ``MessageError`` when ``value`` nests objects and arrays deeper than
    ``MAX_NESTING_DEPTH`` levels: deeper values would exhaust the recursion of the JSON
    encoders and walkers further on (storing, delivering, rendering)."""
    if isinstance(value, dict | list) and _deeper(value, MAX_NESTING_DEPTH - 1):
        raise MessageError(
            "nesting_too_deep",
            f"the message nests objects and arrays deeper than {MAX_NESTING_DEPTH} levels",
        )


def _deeper(container: dict | list, room: int) -> bool:
    """Whether ``container`` holds objects or arrays more than ``room`` levels down (the
    recursion stops at ``room``, however deep the value)."""
    for item in container.values() if type(container) is dict else container:
        kind = type(item)
        if (kind is dict or kind is list) and (room == 0 or _deeper(item, room - 1)):
            return True
    return False


def check_content(value: Any) -> None:
    """A ``MessageError`` when ``value`` (its nesting checked) holds a number or string
    that cannot be stored and read back: JSON has no NaN or Infinity (PostgreSQL refuses
    them), PostgreSQL refuses NUL characters, UTF-8 cannot encode a lone surrogate half."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise MessageError(
            "invalid_number",
            "a number is not finite (NaN, Infinity, or beyond the range of a double, about "
            "1.8e308), which JSON cannot carry",
        ) from exc
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MessageError(
            "invalid_string",
            "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid text",
        ) from exc
    if _holds_nul(value):
        raise MessageError(
            "invalid_string", "a string holds a NUL character (\\u0000), which cannot be stored"
        )


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
