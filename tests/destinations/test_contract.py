"""The contract every registered destination keeps: fixtures exist, every fixture
passes, and the presets of its mapped fields are exactly what it sends unmapped.

Parametrised over the registry, so a destination added without fixtures fails here.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from integrations.destinations import registry
from integrations.destinations.mapping import FieldKind
from tests.destinations.fixtures import FIXTURES, check_case, load

KINDS = [destination.kind for destination in registry.all_destinations()]


def fixture_paths(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.json"))


def all_cases() -> list[Any]:
    return [
        pytest.param(kind, path, id=f"{kind}/{path.stem}")
        for kind in KINDS
        for path in fixture_paths(kind)
    ]


def unmapped_cases() -> list[Any]:
    return [
        case
        for case in all_cases()
        if not load(case.values[1]).get("integration", {}).get("mappings")
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_every_destination_has_fixtures(kind):
    assert fixture_paths(kind), f"no fixture cases in {FIXTURES / kind}"


@pytest.mark.parametrize(("kind", "path"), all_cases())
def test_fixture(kind, path):
    check_case(kind, path)


@pytest.mark.parametrize(("kind", "path"), unmapped_cases())
def test_presets_written_out_as_mappings_send_the_same_requests(kind, path, tmp_path):
    """Every fixture without mappings, again with each field that has a preset mapped to
    that preset explicitly: the expected requests (today's behaviour) do not change."""
    case = load(path)
    presets = {
        spec.name: spec.preset
        for spec in registry.get(kind).mapped_fields
        if spec.preset and spec.kind is not FieldKind.KEYVALUE
    }
    case.setdefault("integration", {})["mappings"] = presets
    written = tmp_path / path.name
    written.write_text(json.dumps(case))
    check_case(kind, written)
