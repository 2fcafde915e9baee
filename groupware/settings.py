"""Django settings. Everything configurable is read from the environment in config.py."""

from __future__ import annotations

from groupware import config
from groupware.config import env_bool, env_int, env_list, env_str
from groupware.mail.submission.config import submission_settings

BASE_DIR = config.BASE_DIR
DATA_DIR = config.data_dir()

SECRET_KEY = config.secret_key(DATA_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
PUBLIC_URL = config.public_url()
CSRF_TRUSTED_ORIGINS = [PUBLIC_URL] if PUBLIC_URL else []

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "accounts",
    "groupware.core",
    "groupware.mail",
    "groupware.mail.submission",
    "groupware.push",
    "jmap",
    "webmail",
    *env_list("EXTRA_INSTALLED_APPS", []),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "groupware.urls"
WSGI_APPLICATION = "groupware.wsgi.application"
ASGI_APPLICATION = "groupware.asgi.application"

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

DATABASES = {"default": config.database(env_str("DATABASE_URL"), DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.auth.EmailBackend"]

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
if env_bool("FAST_PASSWORD_HASHER", False):  # tests and benchmarks only
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Redis: absent means the embedded default (in-process channel layer, tasks run in-process).
REDIS_URL = config.redis_url()
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 times reads out after 5 s by default, the same time channels-redis
            # blocks in BRPOP waiting for messages: an idle push connection would then fail.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = REDIS_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_DEFAULT_QUEUE", "groupware")
CELERY_TASK_ROUTES = {"groupware.core.tasks.*": {"queue": env_str("CELERY_MAINTENANCE_QUEUE", "groupware")}}

# Blob storage (RFC 8620 §6): content-addressed files through Django's storage API.
BLOB_STORAGE = config.blob_storage(DATA_DIR)
if BLOB_STORAGE.backend == "s3":
    _blob_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": BLOB_STORAGE.options}
else:
    _blob_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": BLOB_STORAGE.location},
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "blobs": _blob_storage,
}
# An uploaded blob that nothing references is removed after this many seconds.
BLOB_UNREFERENCED_TTL = env_int("BLOB_UNREFERENCED_TTL", 24 * 3600, minimum=60)
CELERY_BEAT_SCHEDULE = {
    "blob-gc": {"task": "groupware.core.tasks.blob_gc", "schedule": env_int("BLOB_GC_INTERVAL", 3600, minimum=60)},
    "purge-changes": {"task": "groupware.core.tasks.purge_changes", "schedule": 24 * 3600},
    "purge-push-subscriptions": {"task": "groupware.push.tasks.purge_expired", "schedule": 3600},
    "purge-delivery-records": {"task": "groupware.mail.tasks.purge_delivery_records", "schedule": 3600},
}

# Sending mail (groupware/mail/submission/config.py): smarthost, limits, retries.
_submission = submission_settings()
globals().update(_submission)
# Sends delayed mail when due and retries temporary failures (also in-process, embedded).
CELERY_BEAT_SCHEDULE["relay-due"] = {
    "task": "groupware.mail.submission.tasks.relay_due",
    "schedule": _submission["SUBMISSION_SWEEP_INTERVAL"],
}

# Receiving mail (groupware.mail.delivery): the LMTP and SMTP listeners of `manage.py
# serve_mail` ("host:port"; "off" disables one), how long a retransmitted message is
# recognised, and the smarthost that vacation replies and redirects go to (unset: kept
# stored, unsent, and logged).
MAIL_LMTP_LISTEN = env_str("MAIL_LMTP_LISTEN", "127.0.0.1:8024")
MAIL_SMTP_LISTEN = env_str("MAIL_SMTP_LISTEN", "127.0.0.1:2525")
MAIL_HOSTNAME = env_str("MAIL_HOSTNAME", None)
MAIL_DEDUP_WINDOW = env_int("MAIL_DEDUP_WINDOW", 7 * 24 * 3600, minimum=60)
MAIL_DELIVERY_THREADS = env_int("MAIL_DELIVERY_THREADS", 4, minimum=1)
# Worker processes that deliver (parse, Sieve, store); 0: threads of serve_mail itself.
MAIL_DELIVERY_WORKERS = env_int("MAIL_DELIVERY_WORKERS", 0, minimum=0)
MAIL_VACATION_DAYS = env_int("MAIL_VACATION_DAYS", 7, minimum=1)
SMTP_RELAY_HOST = env_str("SMTP_RELAY_HOST", None)
SMTP_RELAY_PORT = env_int("SMTP_RELAY_PORT", 25, minimum=1, maximum=65535)

# JMAP core limits (RFC 8620 §2), advertised in the session and enforced.
JMAP = {
    "maxSizeUpload": env_int("JMAP_MAX_SIZE_UPLOAD", 50_000_000, minimum=1),
    "maxConcurrentUpload": env_int("JMAP_MAX_CONCURRENT_UPLOAD", 4, minimum=1),
    "maxSizeRequest": env_int("JMAP_MAX_SIZE_REQUEST", 10_000_000, minimum=1024),
    "maxConcurrentRequests": env_int("JMAP_MAX_CONCURRENT_REQUESTS", 8, minimum=1),
    "maxCallsInRequest": env_int("JMAP_MAX_CALLS_IN_REQUEST", 64, minimum=1),
    "maxObjectsInGet": env_int("JMAP_MAX_OBJECTS_IN_GET", 1000, minimum=1),
    "maxObjectsInSet": env_int("JMAP_MAX_OBJECTS_IN_SET", 1000, minimum=1),
    "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap", "i;octet"],
}
# Tombstones and changes older than this many seconds may be purged; /changes from a state
# older than the purge horizon answers cannotCalculateChanges.
JMAP_CHANGES_RETENTION = env_int("JMAP_CHANGES_RETENTION", 60 * 24 * 3600, minimum=3600)

# Push (RFC 8620 §7, RFC 8887, RFC 9749).
# Changes within this many milliseconds of the previous StateChange go out as one.
PUSH_COALESCE_SECONDS = env_int("PUSH_COALESCE_MS", 50, minimum=0) / 1000
# Without Redis (the in-memory channel layer), how often a push process reads the state of
# the accounts it reports on, to hear of changes other processes (serve_mail) committed.
PUSH_POLL_SECONDS = env_int("PUSH_POLL_MS", 500, minimum=50) / 1000
# EventSource ping interval bounds (RFC 8620 §7.3: minimum at most 30, maximum at least 300).
PUSH_PING_MIN = env_int("PUSH_PING_MIN", 30, minimum=1, maximum=30)
PUSH_PING_MAX = env_int("PUSH_PING_MAX", 600, minimum=300)
# Threads (each with its own database connection) for JMAP requests over WebSocket, per process.
PUSH_DB_THREADS = env_int("PUSH_DB_THREADS", 4, minimum=1)
# Lifetime of the query-string access tokens for browsers' EventSource and WebSocket.
PUSH_TOKEN_SECONDS = env_int("PUSH_TOKEN_SECONDS", 60, minimum=5)
# Web origins (besides the server's own) allowed to open push connections.
PUSH_ALLOWED_ORIGINS = env_list("PUSH_ALLOWED_ORIGINS", [])
# PushSubscription limits (RFC 8620 §7.2, §9.3): the longest expiry, how many per user,
# and how many a user may create per hour.
PUSH_SUBSCRIPTION_MAX_DAYS = env_int("PUSH_SUBSCRIPTION_MAX_DAYS", 7, minimum=2)
PUSH_SUBSCRIPTIONS_PER_USER = env_int("PUSH_SUBSCRIPTIONS_PER_USER", 20, minimum=1)
PUSH_SUBSCRIPTIONS_PER_HOUR = env_int("PUSH_SUBSCRIPTIONS_PER_HOUR", 20, minimum=1)
# Web Push (RFC 8030): message TTL in seconds, and the VAPID "sub" claim (RFC 8292 §2.1).
WEB_PUSH_TTL = env_int("WEB_PUSH_TTL", 3600, minimum=0)
VAPID_SUBJECT = env_str("VAPID_SUBJECT") or (
    PUBLIC_URL if PUBLIC_URL and PUBLIC_URL.startswith("https://") else "mailto:postmaster@localhost"
)
# The Celery queue for Web Push deliveries.
WEB_PUSH_QUEUE = env_str("CELERY_PUSH_QUEUE", CELERY_TASK_DEFAULT_QUEUE)
# Tests only: allow http:// and loopback push URLs (never in production: SSRF).
WEB_PUSH_ALLOW_LOOPBACK = env_bool("WEB_PUSH_ALLOW_LOOPBACK", False)

# Authentication: failed logins are rate limited per user and per client address.
AUTH_FAILURE_LIMIT = env_int("AUTH_FAILURE_LIMIT", 10, minimum=1)
AUTH_FAILURE_WINDOW = env_int("AUTH_FAILURE_WINDOW", 300, minimum=1)
# Verified Basic credentials are remembered (as a keyed digest, in process memory) this long.
AUTH_CACHE_SECONDS = env_int("AUTH_CACHE_SECONDS", 300, minimum=0)

# Security (manage.py check --deploy): strict by default, loosened only for local HTTP.
SECURE_HTTPS = env_bool("SECURE_HTTPS", bool(PUBLIC_URL and PUBLIC_URL.startswith("https://")))
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY", False) else None
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# The provisioning API's OpenAPI schema (/api/admin/v1/schema/, accounts/api/).
SPECTACULAR_SETTINGS = {
    "TITLE": "Groupware provisioning API",
    "DESCRIPTION": "Domains, users, aliases, quotas and API tokens. Authenticate with a staff user's API token: "
    "Authorization: Bearer <token>.",
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": "/api/admin/v1",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# Modules that register JMAP capabilities and methods (imported once, then frozen).
JMAP_METHOD_MODULES = [
    "jmap.core_methods",
    "jmap.blob_methods",
    "jmap.mail_capability",
    "jmap.mailbox",
    "jmap.thread",
    "jmap.email",
    "jmap.email_query",
    "jmap.quota",
    "jmap.blob_management",
    "jmap.identity",
    "jmap.email_submission",
    "jmap.mdn",
    "jmap.push.methods",
    "jmap.sieve_script",
    "jmap.vacation_response",
    *env_list("EXTRA_JMAP_METHOD_MODULES", []),
]
