"""Settings for the integration console, read from the environment (django-environ).

Every variable is listed, with its default, in the README's configuration table.
"""

import datetime as dt
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from console import sqlite_backend

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"  # noqa: S105 (DEBUG only)
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin with the console's site (its "Audit trail" page).
    "console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served here (no CDN)
    "simple_history",
    "axes",
    "rangefilter",
    # Before django_tasks_db: its db_worker command is extended by ours.
    "integrations",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "console.middleware.RefuseNulInURLMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Keeps the refused calls of the ingest endpoints (reason, time; no secrets).
    "console.middleware.RecordRejectedCallsMiddleware",
    # Records who made each configuration change (admin, and API: DRF puts the user it
    # authenticated, token users included, on the request this middleware keeps).
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last: locks out repeated failed logins (django-axes).
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Brute-force protection of the admin login: after AXES_FAILURE_LIMIT failed logins for a
# user name from one address, that pair is locked out for AXES_COOLOFF_HOURS.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(hours=env.float("AXES_COOLOFF_HOURS", default=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
# The client address: REMOTE_ADDR, unless the console runs behind AXES_PROXY_COUNT trusted
# proxies that append to X-Forwarded-For (a client could forge the header otherwise).
_trusted_proxies = env.int("AXES_PROXY_COUNT", default=0)
AXES_IPWARE_PROXY_COUNT = _trusted_proxies or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if _trusted_proxies else ["REMOTE_ADDR"]
)

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Write transactions queue on a lock file; WAL checkpoints run outside it.
    DATABASES["default"]["ENGINE"] = "console.sqlite_backend"
    DATABASES["default"].setdefault("OPTIONS", {}).update(sqlite_backend.OPTIONS)
# Connections are kept between requests (SQLite too: opening one and running its PRAGMAs
# costs as much as a small request).
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Behind a TLS-terminating proxy in production.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG

# Ingest endpoints read the raw body themselves (gzip, size limits); this only bounds
# what Django will buffer for any other request.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only: settings and rules are nested objects, which form encodings
    # cannot carry faithfully (an omitted boolean would read as false).
    "DEFAULT_PARSER_CLASSES": ["integrations.api.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # drf-spectacular's, documenting every operation's error answers too.
    "DEFAULT_SCHEMA_CLASS": "integrations.api.schema.AutoSchema",
    # ?limit= (1 to 500, default 50) and ?offset=; out of range is a 400.
    "DEFAULT_PAGINATION_CLASS": "integrations.api.pagination.LimitOffsetPagination",
    "EXCEPTION_HANDLER": "integrations.api.errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Integration console API",
    "DESCRIPTION": (
        "Configuration API and Segment-compatible ingest of the integration console. "
        "Errors are JSON objects with a machine-readable `code` and a `message` (validation "
        "errors also carry `errors`, field by field). Lists page with `limit` (1 to 500) "
        "and `offset`. No string, in a body, a path or a query, may contain U+0000 (NUL)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components: write-only fields (secrets) are in the
    # request ones only.
    "COMPONENT_SPLIT_REQUEST": True,
    # /api/docs/ loads Swagger UI from this server (drf-spectacular-sidecar), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status" or a "kind": each enum gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "DeliveryStatusEnum": "integrations.models.deliveries.Delivery.Status",
        "ConnectionStatusEnum": "integrations.delivery.connection_test.ConnectionStatus",
        "SourceKindEnum": "integrations.sources.registry.kind_choices",
        "DestinationKindEnum": "integrations.destinations.registry.kind_choices",
    },
}

# Configuration history (django-simple-history). Reverting from the admin is off: history
# never holds secrets, so a revert would save an object without them.
SIMPLE_HISTORY_REVERT_DISABLED = True

TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

# --- Integration console ---------------------------------------------------------------

# Outbound calls to loopback, private, link-local and metadata addresses are refused
# unless this is on (tests and local fakes turn it on).
INTEGRATIONS_ALLOW_PRIVATE_URLS = env.bool("INTEGRATIONS_ALLOW_PRIVATE_URLS", default=False)

# Multiplies every delay of the retry schedule; tests set it small.
DELIVERY_RETRY_BASE_SECONDS = env.float("DELIVERY_RETRY_BASE_SECONDS", default=1.0)
# A vendor's Retry-After is honoured up to this many seconds.
DELIVERY_RETRY_AFTER_MAX_SECONDS = env.float("DELIVERY_RETRY_AFTER_MAX_SECONDS", default=3600)
DELIVERY_CONNECT_TIMEOUT = env.float("DELIVERY_CONNECT_TIMEOUT", default=5)
DELIVERY_READ_TIMEOUT = env.float("DELIVERY_READ_TIMEOUT", default=15)
# After an unanswered or rate-limited request the integration pauses, starting at
# DELIVERY_BACKOFF_SECONDS and doubling while the vendor keeps failing, up to
# DELIVERY_BACKOFF_MAX_SECONDS (both scaled by DELIVERY_RETRY_BASE_SECONDS); a vendor's
# Retry-After replaces it.
DELIVERY_BACKOFF_SECONDS = env.float("DELIVERY_BACKOFF_SECONDS", default=5)
DELIVERY_BACKOFF_MAX_SECONDS = env.float("DELIVERY_BACKOFF_MAX_SECONDS", default=60)
# How long a worker holds a delivery it is sending; after that another worker takes it up
# (the first one is presumed dead). Must exceed one request's connect + read timeouts.
DELIVERY_LEASE_SECONDS = env.float("DELIVERY_LEASE_SECONDS", default=30)
# One delivery task works this long at most, then hands the rest to a new task, so that
# a slow integration cannot hold a worker.
DELIVERY_TASK_TIME_BUDGET = env.float("DELIVERY_TASK_TIME_BUDGET", default=20)
# Requests one worker process has in flight at once (per integration run); requests about
# the same person still go one after another.
DELIVERY_CONCURRENCY = env.int("DELIVERY_CONCURRENCY", default=8)
# How often each worker's router looks for newly accepted events when it found none.
ROUTING_INTERVAL = env.float("ROUTING_INTERVAL", default=0.1)
# The worker's recovery sweep re-enqueues due deliveries that have no live task.
DELIVERY_RECOVERY_INTERVAL = env.float("DELIVERY_RECOVERY_INTERVAL", default=60)
# How far X-PURCHASELY-TIMESTAMP may be from now for a signature to be accepted.
PURCHASELY_SIGNATURE_TOLERANCE_SECONDS = env.float(
    "PURCHASELY_SIGNATURE_TOLERANCE_SECONDS", default=300
)
# Seconds a web process keeps a write key's source and a workspace's routing (integrations,
# event rules) in memory: a change applies at once in the process that saved it, within
# this delay in the others. 0: no cache.
INGEST_CONFIG_CACHE_SECONDS = env.float("INGEST_CONFIG_CACHE_SECONDS", default=5)
# Events, deliveries, attempts and finished tasks older than this are pruned.
EVENT_RETENTION_DAYS = env.int("EVENT_RETENTION_DAYS", default=30)

# Alerts: the worker judges the periodic conditions (failure rate, backlog age, stalled
# worker) every ALERTS_INTERVAL_SECONDS (0: never); a failure rate is measured over the
# last ALERTS_WINDOW_MINUTES, once at least ALERTS_MIN_DELIVERIES deliveries finished in it.
ALERTS_INTERVAL_SECONDS = env.float("ALERTS_INTERVAL_SECONDS", default=60)
ALERTS_WINDOW_MINUTES = env.float("ALERTS_WINDOW_MINUTES", default=15)
ALERTS_MIN_DELIVERIES = env.int("ALERTS_MIN_DELIVERIES", default=20)
# Health (integration list, dashboard, API): an integration whose deliveries are being
# retried, or whose oldest waiting event has waited longer than this, is in an outage.
HEALTH_OUTAGE_MINUTES = env.float("HEALTH_OUTAGE_MINUTES", default=5)
# The delivery log's search on databases without trigram indexes (SQLite): a part of an id,
# event name or email is looked for among this many of the newest events.
EVENT_SEARCH_SCAN_LIMIT = env.int("EVENT_SEARCH_SCAN_LIMIT", default=100_000)
# The rejected inbound calls kept per workspace (and for calls of no known source); 0: none.
REJECTED_CALLS_KEEP = env.int("REJECTED_CALLS_KEEP", default=1000)

# Email (alert notifications): EMAIL_URL as django-environ reads it, e.g.
# smtp+tls://user:password@smtp.example.com:587; the console backend with DEBUG.
vars().update(
    env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="console@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Fernet keys for integration secrets at rest, newest first (comma-separated). With DEBUG
# on and no key set, a key derived from SECRET_KEY is used so that `make run` just works.
SECRETS_ENCRYPTION_KEYS = env.list("SECRETS_ENCRYPTION_KEYS", default=[])
if not SECRETS_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        "SECRETS_ENCRYPTION_KEYS must be set when DEBUG is off "
        "(generate one with: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())')."
    )

# Base URL used to build absolute webhook URLs shown to users; when empty the URL of the
# current request is used.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
