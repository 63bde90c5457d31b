"""``make test`` and ``make test-fast`` fail on a model change without its migration and on
a type error, and ``make test-fast`` leaves out the end-to-end and browser tests."""

import shutil
import subprocess

import pytest

from tests.e2e.harness import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def planned(target: str) -> str:
    """The commands ``make <target>`` would run (``make -n``: nothing is run)."""
    result = subprocess.run(  # noqa: S603 (our own command line)
        ["make", "-n", target],  # noqa: S607
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize("target", ["test", "test-fast"])
def test_missing_migrations_fail_the_tests(target):
    assert "manage.py makemigrations --check --dry-run" in planned(target)


@pytest.mark.parametrize("target", ["test", "test-fast"])
def test_type_errors_fail_the_tests(target):
    # Without DEBUG: the Django plugin loads the test settings, as the other lint steps do.
    mypy = next(line for line in planned(target).splitlines() if "/mypy" in line)
    assert "DJANGO_SETTINGS_MODULE=console.test_settings" in mypy


def test_the_fast_run_leaves_out_e2e_and_browser_tests():
    commands = planned("test-fast")
    assert 'pytest -m "not e2e and not browser"' in commands
    assert "ensure-chromium" not in commands
