"""WSGI entry point of the floor (gunicorn benchmarks.floor.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.floor.settings")

application = get_wsgi_application()
