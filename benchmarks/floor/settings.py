"""Settings of the floor project: no middleware, one app, the console's database settings.

The database configuration is imported from ``console.settings`` so that both servers talk
to the same database with the same options (SQLite WAL/IMMEDIATE, PostgreSQL
``CONN_MAX_AGE``...). That import needs the environment the console needs (``SECRET_KEY``,
``SECRETS_ENCRYPTION_KEYS`` when ``DEBUG`` is off); benchmarks/ingest.py provides it.
"""

import os

from console.settings import DATABASES  # noqa: F401  (same database, same options)

DEBUG = False
SECRET_KEY = os.environ.get("SECRET_KEY", "floor-benchmark-only")
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["benchmarks.floor"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "benchmarks.floor.urls"
WSGI_APPLICATION = "benchmarks.floor.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # The readiness probe's "GET /" is a 404; no need to log it.
    "loggers": {"django.request": {"level": "ERROR"}},
}
