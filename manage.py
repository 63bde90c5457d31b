#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

``python manage.py ...`` works with any Python: one without Django hands over to the
project's virtualenv (``.venv``, which ``make install`` creates). A missing or invalid
setting is reported in one line, not a traceback.
"""

import os
import sys
from pathlib import Path

VENV_PYTHON = Path(__file__).resolve().parent / ".venv" / "bin" / "python"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    try:
        from django.core.exceptions import ImproperlyConfigured
        from django.core.management import execute_from_command_line
    except ImportError:
        running_venv = Path(sys.prefix).resolve() == VENV_PYTHON.parent.parent
        if VENV_PYTHON.exists() and not running_venv:
            os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.argv])  # noqa: S606
        sys.exit(
            "manage.py: Django is not installed for this Python and there is no .venv: "
            "run `make install` first."
        )
    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        sys.exit(
            f"manage.py: {exc}\n"
            "Set it in the environment or in .env (the README's configuration table lists "
            "every setting); for local development, DEBUG=1 gives development defaults."
        )


if __name__ == "__main__":
    main()
