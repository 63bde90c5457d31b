"""Destinations are pure by import: planning needs no ORM, no database, no settings."""

import subprocess
import sys

from integrations.destinations import registry
from integrations.destinations.base import Destination

CHECK = """
import sys
from integrations.destinations import registry
loaded = [m for m in sys.modules if m.startswith(("integrations.models", "django.db"))]
assert not loaded, loaded
print(len(registry.all_destinations()))
"""


def test_importing_the_destinations_loads_no_orm():
    result = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", CHECK],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(registry.all_destinations())


def test_the_registry_lists_each_kind_once():
    kinds = [cls.kind for cls in registry.all_destinations()]
    assert len(kinds) == len(set(kinds))
    assert all(issubclass(cls, Destination) for cls in registry.all_destinations())
    assert registry.kind_choices() == [(cls.kind, cls.label) for cls in registry.DESTINATIONS]
