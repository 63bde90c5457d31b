"""Fixture-driven source tests: what each source's webhook makes of what its vendor posts.

Each ``tests/fixtures/sources/<kind>/<case>.json`` holds::

    {
      "description": "what the case shows",
      "body": <the JSON the vendor posts>,
      "expected": {
        "response": {<subset of the answer's JSON>},
        "messages": [<subset of each stored event's payload, in any order>]
      }
    }

Expected values match recursively: an object's listed keys only, any other value exactly,
and a string holding ``*`` as a glob (derived message ids: ``"cbr_*"``).
"""

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sources"


def paths(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.json"))


def cases(kinds: list[str]) -> list[Any]:
    return [
        pytest.param(kind, path, id=f"{kind}-{path.stem}") for kind in kinds for path in paths(kind)
    ]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, str) and "*" in expected:
        return isinstance(actual, str) and fnmatch.fnmatchcase(actual, expected)
    return expected == actual and type(expected) is type(actual)


def unmatched(expected: list[Any], stored: list[Any]) -> list[Any]:
    """The expected messages no stored one matches (each stored message matches one)."""
    left = list(stored)
    missing = []
    for message in expected:
        found = next((i for i, payload in enumerate(left) if matches(message, payload)), None)
        if found is None:
            missing.append(message)
        else:
            left.pop(found)
    return missing
