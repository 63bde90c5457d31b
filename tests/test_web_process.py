"""The WSGI application as a web server loads it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_loading_the_application_freezes_what_loading_made():
    """In a process of its own: the frozen objects are out of the collector's sight."""
    code = "import gc, console.wsgi; print(gc.get_freeze_count())"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.test_settings"}
    out = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert int(out.stdout.split()[-1]) > 10_000
