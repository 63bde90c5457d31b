"""The admin login resists brute force, and the production settings pass check --deploy."""

import os
import subprocess
import sys

from django.conf import settings


def login(client, password: str):
    return client.post("/admin/login/?next=/admin/", {"username": "jane", "password": password})


def test_repeated_failed_logins_lock_the_account_out(client, django_user_model):
    django_user_model.objects.create_user("jane", password="right-password", is_staff=True)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "wrong").status_code == 200  # the form again, with an error
    locked = login(client, "wrong")
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    # Even the right password is refused while locked out.
    assert login(client, "right-password").status_code == 429


def test_a_successful_login_resets_the_count(client, django_user_model):
    django_user_model.objects.create_user("jane", password="right-password", is_staff=True)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "wrong")
    assert login(client, "right-password").status_code == 302
    client.logout()
    assert login(client, "wrong").status_code == 200


def test_production_settings_pass_check_deploy(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DEBUG", "SECRET", "ALLOWED", "SECURE"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        SECRET_KEY="x" * 20 + "production-secret-key-with-enough-entropy-0123456789",
        SECRETS_ENCRYPTION_KEYS="ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
        ALLOWED_HOSTS="console.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
