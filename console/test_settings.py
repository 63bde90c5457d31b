"""Settings for the test suite: the production settings with test-friendly environment."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ.setdefault("SECRETS_ENCRYPTION_KEYS", "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=")
os.environ.setdefault("INTEGRATIONS_ALLOW_PRIVATE_URLS", "true")
os.environ.setdefault("DELIVERY_RETRY_BASE_SECONDS", "0.01")
# Configuration changes apply at once (no per-process cache; its own tests turn it on).
os.environ.setdefault("INGEST_CONFIG_CACHE_SECONDS", "0")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from console.settings import *  # noqa: F403
from console.settings import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_AUTOREFRESH = True  # no collectstatic in tests
# Live-server threads must not keep connections to the test database open.
DATABASES["default"]["CONN_MAX_AGE"] = 0
