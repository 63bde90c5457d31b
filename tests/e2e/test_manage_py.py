"""The README's commands as written: ``python manage.py drf_create_token <user>`` with any
Python, and with DEBUG off once the production settings are given."""

import os
import shutil
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from tests.e2e.harness import REPO_ROOT, child_database_url

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "console.settings",
    "SECRET_KEY": "a-production-secret-key",
    "SECRETS_ENCRYPTION_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
}


def manage(python: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(  # noqa: S603 (our own command line)
        [python, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def python_without_django() -> str:
    for name in ("python3", "python"):
        found = shutil.which(name)
        if found and subprocess.run([found, "-c", "import django"], capture_output=True).returncode:  # noqa: S603
            return found
    pytest.skip("every Python on the PATH has Django: nothing to hand over from")


def test_create_a_token_with_debug_off_and_the_production_settings():
    user = get_user_model().objects.create_user("ops")
    result = manage(
        sys.executable, "drf_create_token", "ops", DATABASE_URL=child_database_url(), **PRODUCTION
    )
    assert result.returncode == 0, result.stderr
    assert Token.objects.get(user=user).key in result.stdout


def test_a_python_without_django_hands_over_to_the_virtualenv():
    if not (REPO_ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the project folder (make install creates it)")
    user = get_user_model().objects.create_user("ops")
    result = manage(
        python_without_django(),
        "drf_create_token",
        "ops",
        DATABASE_URL=child_database_url(),
        **PRODUCTION,
    )
    # Before: ModuleNotFoundError: No module named 'django'.
    assert result.returncode == 0, result.stderr
    assert Token.objects.get(user=user).key in result.stdout


def test_a_missing_setting_is_one_clear_line():
    result = manage(
        sys.executable, "drf_create_token", "ops", DJANGO_SETTINGS_MODULE="console.settings"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr  # before: a traceback ending in the message
    assert result.stderr.startswith("manage.py: SECRET_KEY must be set when DEBUG is off.")
    assert "DEBUG=1" in result.stderr
