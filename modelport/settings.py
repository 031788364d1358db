"""Modelport settings: one module, driven by environment variables.

Every variable has an embedded default that gives a self-contained
development setup (SQLite, local disk under ``var/``, a filesystem Celery
broker). Production sets the variables listed in README.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from botocore.config import Config as BotoConfig
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


VAR_DIR = Path(env("MODELPORT_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-for-debug-mode"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

# Absolute base used for model_url in API responses and for snippets. Empty
# means "derive from the request", which is right behind a correct proxy.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "registry",
    "conversions",
    "webhooks",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "registry.middleware.ModelFilesMiddleware",
]
# For reading /m/ (modelport/wsgi.py): MIDDLEWARE without what only pages and forms need.
PAGES_ONLY_MIDDLEWARE = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
}
MODEL_FILES_MIDDLEWARE = [m for m in MIDDLEWARE if m not in PAGES_ONLY_MIDDLEWARE]

ROOT_URLCONF = "modelport.urls"
WSGI_APPLICATION = "modelport.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# A kept connection is checked before a request uses it: a restarted database costs a reconnect, not a 500.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so a Celery worker process started by the tests
    # sees the same test database as the test process; one per test run.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
    # Writers begin IMMEDIATE: a deferred transaction that reads and then
    # writes gets "database is locked" at once, without waiting, when another
    # writer holds the file (a burst of uploads answered 500). WAL lets
    # readers go on while one writes.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# On PostgreSQL each web process LISTENs for the read generation instead of
# reading it on every /m/ request (registry/readcache.py).
READCACHE_LISTEN = envbool("MODELPORT_READCACHE_LISTEN", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve from app directories without collectstatic in development.
WHITENOISE_USE_FINDERS = DEBUG
STATICFILES_DIRS = [BASE_DIR / "static"]
_TFJS_DIST = BASE_DIR / "node_modules" / "@tensorflow" / "tfjs" / "dist"
if _TFJS_DIST.is_dir():
    STATICFILES_DIRS.append(("vendor/tfjs", _TFJS_DIST))
_TFJS_WASM_DIST = BASE_DIR / "node_modules" / "@tensorflow" / "tfjs-backend-wasm" / "dist"
if _TFJS_WASM_DIST.is_dir():  # the playground's wasm backend
    STATICFILES_DIRS.append(("vendor/tfjs-backend-wasm", _TFJS_WASM_DIST))

# Storage: local disk by default, any S3-compatible server when S3_BUCKET is set.
S3_BUCKET = env("S3_BUCKET")
S3_ENDPOINT_URL = env("S3_ENDPOINT_URL")
S3_REGION = env("S3_REGION", "us-east-1")
if S3_BUCKET:
    _model_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL or None,
            "region_name": S3_REGION,
            "access_key": env("S3_ACCESS_KEY_ID"),
            "secret_key": env("S3_SECRET_ACCESS_KEY"),
            "location": env("S3_PREFIX"),
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
            # boto3 >= 1.36 sends CRC checksums by default; several
            # S3-compatible servers reject them. Only when S3 demands it.
            "client_config": BotoConfig(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        },
    }
else:
    _model_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env("MODELPORT_STORAGE_DIR", str(VAR_DIR / "storage"))},
    }
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "media")},
    },
    "models": _model_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# How weight blobs reach browsers: "app" streams them through Modelport;
# "redirect" answers with a redirect to BLOB_BASE_URL (a CDN in front of the
# bucket, for public models) or to a short-lived signed storage URL.
BLOB_DELIVERY = env("MODELPORT_BLOB_DELIVERY", "app")
if BLOB_DELIVERY not in ("app", "redirect"):
    raise ImproperlyConfigured("MODELPORT_BLOB_DELIVERY must be 'app' or 'redirect'")
BLOB_BASE_URL = env("MODELPORT_BLOB_BASE_URL").rstrip("/")
BLOB_SIGNED_URL_SECONDS = envint("MODELPORT_BLOB_SIGNED_URL_SECONDS", 3600)
# Origins allowed in the S3 bucket's CORS rule (set by `manage.py s3cors`).
S3_CORS_ORIGINS = envlist("S3_CORS_ORIGINS", "*")

# Upload limits. Django has no total cap of its own.
MAX_UPLOAD_BYTES = envint("MODELPORT_MAX_UPLOAD_BYTES", 2 * 1024**3)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# A model folder (SavedModel, TF.js shards) can hold many files.
DATA_UPLOAD_MAX_NUMBER_FILES = envint("MODELPORT_MAX_UPLOAD_FILES", 10_000)

# Conversion sandbox limits.
CONVERSION_TIMEOUT_SECONDS = envint("MODELPORT_CONVERSION_TIMEOUT", 900)
CONVERSION_MEMORY_BYTES = envint("MODELPORT_CONVERSION_MEMORY_BYTES", 8 * 1024**3)
CONVERSION_MAX_ATTEMPTS = envint("MODELPORT_CONVERSION_MAX_ATTEMPTS", 3)
# A conversion that hit a storage or system error is tried again this long
# after, then twice as long; no jitter, which could retry at once and spend
# every attempt within seconds of an outage.
CONVERSION_RETRY_BASE_SECONDS = envint("MODELPORT_CONVERSION_RETRY_BASE_SECONDS", 30)
# A converting worker renews its lease every third of this; a lease that
# runs out means the worker died and the job is taken again.
CONVERSION_LEASE_SECONDS = envint("MODELPORT_CONVERSION_LEASE_SECONDS", 60)
# How often each worker looks for stalled jobs, and how old a pending job
# must be before its message is presumed lost and sent again.
CONVERSION_RECOVERY_INTERVAL = envint("MODELPORT_CONVERSION_RECOVERY_INTERVAL", 60)
CONVERSION_PENDING_RESEND_SECONDS = envint("MODELPORT_CONVERSION_PENDING_RESEND_SECONDS", 1800)
# The warm converter process is replaced after this many jobs.
CONVERTER_RECYCLE_AFTER = envint("MODELPORT_CONVERTER_RECYCLE_AFTER", 100)
# The converter sandbox (conversions/sandbox.py): "bwrap" (bubblewrap; the
# default, and the only safe choice) or "off", which converts uploads with
# no isolation at all: only for uploads you trust. Without bubblewrap,
# conversions fail closed.
SANDBOX = env("MODELPORT_SANDBOX", "bwrap")
if SANDBOX not in ("bwrap", "off"):
    raise ImproperlyConfigured("MODELPORT_SANDBOX must be 'bwrap' or 'off'")
# Each worker's sandbox gets a directory here; a job sees only its own.
CONVERSION_SCRATCH_DIR = Path(env("MODELPORT_SCRATCH_DIR", str(VAR_DIR / "scratch")))
# What one job may write (upload, unpacked archive, outputs), and how many
# processes and threads it may run.
CONVERSION_SCRATCH_BYTES = envint("MODELPORT_CONVERSION_SCRATCH_BYTES", 16 * 1024**3)
CONVERSION_MAX_PROCESSES = envint("MODELPORT_CONVERSION_MAX_PROCESSES", 1024)
# The worker's private copies of what it publishes (never shown to a sandbox).
PUBLISH_DIR = Path(env("MODELPORT_PUBLISH_DIR", str(VAR_DIR / "publish")))
WEIGHT_SHARD_BYTES = envint("MODELPORT_WEIGHT_SHARD_BYTES", 4 * 1024 * 1024)
# A conversion is ready only if TF.js matches TensorFlow on every output
# element within atol + rtol * |value|.
PARITY_ATOL = envfloat("MODELPORT_PARITY_ATOL", 1e-4)
PARITY_RTOL = envfloat("MODELPORT_PARITY_RTOL", 1e-3)
# After a version is ready, its worker runs it in headless Chromium on these
# TF.js backends (inside the sandbox) and records parity and timings per
# backend. Empty: no browser check. Skipped, and said so, without Chromium.
BROWSER_BACKENDS = [b for b in env("MODELPORT_BROWSER_BACKENDS", "wasm,webgl").split(",") if b]
# The browser binary itself: Debian's /usr/bin/chromium is a shell script that
# reads /etc/chromium.d, which the sandbox does not show.
BROWSER_CHROMIUM = env(
    "MODELPORT_CHROMIUM",
    next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).is_file()), "/usr/bin/chromium"),
)
BROWSER_CHECK_SECONDS = envint("MODELPORT_BROWSER_CHECK_SECONDS", 120)
# True: a backend that fails the check fails the version (checked before it is ready).
BROWSER_BACKENDS_REQUIRED = env("MODELPORT_BROWSER_BACKENDS_REQUIRED", "") in ("1", "true", "yes")

# CORS. /m/ (model files) and the API are open to every origin, without
# credentials (registry/signals.py): access control there is by token, never
# by a cookie a browser would send on its own, and a browser app on any
# origin must be able to load a public model or save one it trained. An
# owner may restrict a model's files to some origins (Model.allowed_origins).
# CORS_ALLOWED_ORIGINS adds origins for every other URL.
CORS_ALLOWED_ORIGINS = envlist("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/(api|m)/.*$"
CORS_EXPOSE_HEADERS = ["ETag", "Content-Length", "Content-Type", "Content-Range", "X-Modelport-Version"]
CORS_PREFLIGHT_MAX_AGE = 86400

# Celery. Job state lives in the database; Celery only carries primary keys.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        # The default 1 s poll adds ~0.9 s to every job on this broker.
        "polling_interval": 0.1,
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Redis re-delivers an unacked message (its worker died) after this
        # long. Early redelivery of a live job is harmless (the version's
        # lease refuses it) but wasteful, so keep it above a long conversion.
        "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", CONVERSION_TIMEOUT_SECONDS * 2 + 600),
    }
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", "modelport")
CELERY_TASK_IGNORE_RESULT = True
# Acknowledge after the task finishes, so a worker killed mid-conversion
# leaves the message for another worker instead of losing the job.
CELERY_TASK_ACKS_LATE = True
# ... and treat a worker that died (kill -9, OOM) as "redeliver", not "done".
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Conversions are long: never let one worker hoard queued jobs.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The sandbox has its own timeout; this is the backstop for the task itself.
# A conversion, then the browser checks of the version and of its graph variant.
CELERY_TASK_TIME_LIMIT = CONVERSION_TIMEOUT_SECONDS + 2 * BROWSER_CHECK_SECONDS + 300
CELERY_TASK_SOFT_TIME_LIMIT = CONVERSION_TIMEOUT_SECONDS + 2 * BROWSER_CHECK_SECONDS + 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Tests (and anyone debugging) can run tasks inline.
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticatedOrReadOnly",
        "accounts.permissions.ReadOnlyToken",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "registry.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
AUTHENTICATION_BACKENDS = ["accounts.backends.PeopleOnlyBackend"]

# Download counts are summed in memory and written this often (registry/downloads.py).
DOWNLOAD_FLUSH_SECONDS = envint("MODELPORT_DOWNLOAD_FLUSH_SECONDS", 5)
# True behind deploy/nginx.conf: the front logs every model.json it answers, from
# its cache or not, for `manage.py downloads_from_log`; the app then counts none itself.
DOWNLOADS_COUNTED_BY_FRONT = envbool("MODELPORT_DOWNLOADS_COUNTED_BY_FRONT", False)

# Webhooks (webhooks/). Targets on non-public addresses are refused (SSRF):
# "" none, "loopback" 127.0.0.0/8 and ::1 (the development default), "all".
WEBHOOKS_ALLOW_PRIVATE = env("MODELPORT_WEBHOOKS_ALLOW_PRIVATE", "loopback" if DEBUG else "")
if WEBHOOKS_ALLOW_PRIVATE not in ("", "loopback", "all"):
    raise ImproperlyConfigured("MODELPORT_WEBHOOKS_ALLOW_PRIVATE must be empty, 'loopback' or 'all'.")
WEBHOOK_TIMEOUT_SECONDS = envint("MODELPORT_WEBHOOK_TIMEOUT_SECONDS", 10)
WEBHOOK_MAX_ATTEMPTS = envint("MODELPORT_WEBHOOK_MAX_ATTEMPTS", 6)
# Retries wait base, 2×base, 4×base… seconds (10 s … 160 s with the defaults).
WEBHOOK_RETRY_BASE_SECONDS = envint("MODELPORT_WEBHOOK_RETRY_BASE_SECONDS", 10)

# API tokens are django-rest-knox tokens (accounts.AccessToken): stored as a
# SHA-512 digest, shown once; "mp_" makes a leaked one easy to recognise.
KNOX_TOKEN_MODEL = "accounts.AccessToken"
# knox's migrations would create its own token table even though the model is
# swapped for ours (and that table's key to auth_user breaks TRUNCATE on
# PostgreSQL); without them Django creates nothing for the swapped model.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {"TOKEN_PREFIX": "mp_", "TOKEN_TTL": None, "AUTH_HEADER_PREFIX": "Token"}
SPECTACULAR_SETTINGS = {
    "TITLE": "Modelport API",
    "DESCRIPTION": "Host, version and serve TensorFlow.js models.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("BEHIND_PROXY", False) else None
USE_X_FORWARDED_HOST = envbool("BEHIND_PROXY", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}

FILE_UPLOAD_HANDLERS = [
    "registry.uploads.LimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
