"""Launchday's settings common to every mode, read from the environment (django-environ).

The modes, and how they differ, at a glance:

| module        | used by                              | DEBUG | SECRET_KEY                   | HTTPS, secure cookies, HSTS |
| ------------- | ------------------------------------ | ----- | ---------------------------- | --------------------------- |
| local.py      | manage.py, `make demo`               | on    | a development key if unset   | off                         |
| production.py | wsgi.py, asgi.py, Celery, make serve | off   | required, 50+ characters     | on (env can relax them)     |
| test.py       | pytest                               | off   | a test key                   | off                         |

In every mode the services come from the environment alone: with nothing set, an SQLite
file, the local-memory cache and Celery tasks run eagerly in process (the embedded
default); with DATABASE_URL and REDIS_URL, PostgreSQL and Redis with real workers.
"""

import re
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.logfilters import client_errors_in_one_line

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
# Each mode decides what an unset key means (local: a development key; production: refuse).
SECRET_KEY = env.str("SECRET_KEY", default="")


def secret_key_check(key: str) -> None:
    """Refuse to start outside DEBUG with a missing, short or development key: it would sign
    sessions, CSRF tokens and unsubscribe links that anyone could forge."""
    if not key:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment (50 or more random characters), "
            "or use config.settings.local with DEBUG=1 for a development server (manage.py and make demo do)."
        )
    if len(key) < 50 or key.startswith(("django-insecure", "insecure")) or len(set(key)) < 10:
        raise ImproperlyConfigured(
            "SECRET_KEY is too weak to serve with: use 50 or more random characters, e.g. "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )


ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "simple_history",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "csp",
    # /readyz (config/health.py): its view and page.
    "health_check",
    "stores",
    "inventory",
    "customers",
    "orders",
]

MIDDLEWARE = [
    # Every request runs under a request id (X-Request-ID), in its log lines and its tasks.
    "config.logcontext.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Pages and polled panels leave compressed (a store panel's 5 KB is about 1.5 KB on the
    # wire); Django's gzip pads each response at random against BREACH. Static files come
    # precompressed from WhiteNoise.
    "django.middleware.gzip.GZipMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # NUL or a lone surrogate in the path, query or form: 400 before any view (config/inputs.py).
    "config.inputs.InputGuard",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): head office's second factor (stores.access enforces it).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: turns a lockout during sign-in into its answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "stores.context_processors.staff_role",
                "config.context_processors.brand",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# Embedded default: an SQLite file. With DATABASE_URL: PostgreSQL through psycopg 3 with
# Django's native connection pool, so a gunicorn worker does not reconnect per request.
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})
        if env.bool("DB_POOL", default=True):
            DATABASES["default"]["OPTIONS"]["pool"] = {
                "min_size": env.int("DB_POOL_MIN", default=2),
                "max_size": env.int("DB_POOL_MAX", default=8),
                "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
            }
        else:
            DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
            DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", default=str(BASE_DIR / "var" / "launchday.sqlite3")),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
# Parallel test sessions (and helpers) use distinct test database names.
if env.str("TEST_DB_NAME", default=""):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("TEST_DB_NAME")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USING_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

# --- Cache, Celery --------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="launchday"),
            # Redis is a helper: a stalled one must cost a request a fraction of a second,
            # then the caller goes on without it (every use of the cache says how).
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# With a host named, kombu's in-memory transport (eager tasks still take a producer from
# it) does not warn "No hostname was supplied" on every task the embedded demo runs.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://localhost/")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = "Europe/London"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task longer than the visibility timeout would be delivered twice; intake and
# campaigns are chunked far below this.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_connect_timeout": 0.5,
    "socket_timeout": 1.0,
}
# Web processes only nudge workers (the allocator, the outbox); beat catches up on its own,
# so a send to a broker that is away fails at once instead of retrying in the request.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# One queue per kind of work, so workers for each can run (and scale) apart: the
# allocator on the default queue must never wait behind a 20,000-message campaign.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "customers.tasks.*": {"queue": "email"},
    "inventory.tasks.*": {"queue": "intake"},
    # A partner's slow endpoint must never hold up the allocator or the email.
    "stores.tasks.*": {"queue": "webhooks"},
}

# --- Auth, i18n, static -----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# django-axes first: it refuses a locked-out (username, IP) before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in lockout (staff sign-in, /admin/, and the customer's account + postcode check):
# after AXES_FAILURE_LIMIT failures of one username from one IP address, that pair waits
# AXES_COOLOFF_MINUTES. Never by IP alone: a whole office behind one address is not locked
# out by one person's typos.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "stores.sign_in_views.signin_locked_out"
AXES_SENSITIVE_PARAMETERS = ["password", "postcode", "otp_token", "token"]
AXES_VERBOSE = False
# Behind TRUSTED_PROXIES proxies the client's address is read from X-Forwarded-For
# (config/client_ip.py); otherwise every sign-in would come from the proxy's address and
# lockouts would be per username only.
TRUSTED_PROXIES = env.int("TRUSTED_PROXIES", default=0)
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"
# One-time passwords (django-otp) for head office: TOTP apps, plus static recovery codes.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Launchday")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
# Nothing is translated (one language, en-gb formats still apply). With translation on,
# every number a template shows asked for the active language (asgiref's Local): 11 µs a
# number instead of 5.6, some 650 of them on the plan page.
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_BACKEND", default="whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security: production's values; local.py and test.py relax them ------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Bodies are bounded: a bulk request of 1,000 orders is about 150 kB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1_048_576)

# Content-Security-Policy (django-csp): every script and stylesheet is a file of our own
# (static/js, static/css, the brand stylesheet), so no page needs inline script, eval or
# inline style. Swagger UI's setup script is served as a file too (SpectacularSwaggerSplitView).
# The campaign preview alone relaxes style attributes, for the email inside its iframe.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- REST framework, OpenAPI ------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Every API error, from any app's DRF view, in API.md's envelope.
    "EXCEPTION_HANDLER": "orders.api.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Launchday partner API",
    "DESCRIPTION": "Orders, availability and stock for partners of a product launch, and webhooks when they change.",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.Order.Status",
        "WebhookDeliveryStatusEnum": "stores.models.WebhookDelivery.Status",
        "WebhookEventTypeEnum": "stores.models.WebhookEventType",
    },
    # 3.1 for the `webhooks` object: what Launchday POSTs to partners' endpoints.
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": [
        f"orders.api.webhook_schema.{name}"
        for name in (
            "ORDER_WAITLISTED",
            "ORDER_ALLOCATED",
            "ORDER_READY_TO_COLLECT",
            "ORDER_COLLECTED",
            "ORDER_COLLECTION_EXPIRED",
            "ORDER_CANCELLED",
            "STORE_STOCK_RECEIVED",
            "LAUNCH_SOLD_OUT",
        )
    ],  # fmt: skip
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orders.api.schema_hooks.request_bodies_required",
    ],
}
API_KEY_CUSTOM_HEADER = "HTTP_AUTHORIZATION"

# --- Email ------------------------------------------------------------------------------
# SMTP unless said otherwise: the console backend would write customers' names, addresses
# and order links to the log, so only local.py with DEBUG on uses it.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="127.0.0.1")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
# A relay that wants a login (the outbox sends on Django's SMTP connection, so these hold).
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Launchday <launch@launchday.example>")
# Links in emails. By default the address this machine serves on: `make demo` and
# `make serve` pass their PORT, so the links follow the port actually served.
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}")

# --- Look of the pages ------------------------------------------------------------------
# The operator's name and brand colour, shown on every page (config.context_processors).
OPERATOR_NAME = env.str("OPERATOR_NAME", default="Launchday Mobile")
BRAND_COLOUR = env.str("BRAND_COLOUR", default="#0550ae")
if not re.fullmatch(r"#[0-9a-fA-F]{6}", BRAND_COLOUR):
    raise ImproperlyConfigured(f"BRAND_COLOUR must be a colour like #0550ae, not {BRAND_COLOUR!r}.")

# --- Watching it live (config/health.py, config/metrics.py) --------------------------------
# /metrics answers this machine, or anyone sending `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Probes and Prometheus speak plain HTTP to the process itself, behind the TLS proxy:
# redirecting them to https would fail every probe.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# --- Launch-day behaviour -----------------------------------------------------------------
# Measured: 20,000 orders per batch allocate about 10% faster than 5,000; a batch holds
# the launch's stock rows for about a second.
ALLOCATOR_BATCH_SIZE = env.int("ALLOCATOR_BATCH_SIZE", default=20000)
ELIGIBILITY_CACHE_SECONDS = env.int("ELIGIBILITY_CACHE_SECONDS", default=3600)
# Each web process keeps the open launches' eligible customers in memory (about 200 bytes
# each): new registrations show within REFRESH, suspensions within RELOAD seconds.
ELIGIBILITY_IN_PROCESS = env.bool("ELIGIBILITY_IN_PROCESS", default=True)
ELIGIBILITY_REFRESH_SECONDS = env.float("ELIGIBILITY_REFRESH_SECONDS", default=5.0)
ELIGIBILITY_RELOAD_SECONDS = env.float("ELIGIBILITY_RELOAD_SECONDS", default=300.0)
DELIVERY_INBOX_DIR = env.str("DELIVERY_INBOX_DIR", default=str(BASE_DIR / "var" / "inbox"))

# One JSON object a line (python-json-logger), each with the request id and what the work
# concerns (config.logcontext): a log search for one order or request finds its lines in
# the web processes and in the Celery tasks it caused. LOG_JSON=0 writes plain text.
LOG_JSON = env.bool("LOG_JSON", default=True)
LOG_JSON_FORMAT = (
    "%(levelname)s %(name)s %(message)s %(request_id)s %(launch)s %(partner)s %(store)s %(order)s"
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "one_line_4xx": {"()": "django.utils.log.CallbackFilter", "callback": client_errors_in_one_line},
        "request_context": {"()": "config.logcontext.RequestContextFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": LOG_JSON_FORMAT,
            # "time": ISO 8601 in UTC with milliseconds, whatever the machine's zone.
            "timestamp": "time",
            "rename_fields": {"levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["one_line_4xx", "request_context"],
            **({"formatter": "json"} if LOG_JSON else {}),
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}

# --- Outbox -----------------------------------------------------------------------------
# Email senders (customers.tasks). Rate is per worker process; 0 means no limit.
EMAIL_SEND_RATE_PER_SECOND = env.float("EMAIL_SEND_RATE_PER_SECOND", default=0)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=200)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=8)
# A claimed batch belongs to its sender for this long; a sender stops a batch at half of
# it, so only a dead sender's rows are ever claimed again.
OUTBOX_LEASE_SECONDS = env.int("OUTBOX_LEASE_SECONDS", default=120)
OUTBOX_RETRY_BASE_SECONDS = env.float("OUTBOX_RETRY_BASE_SECONDS", default=30)
OUTBOX_RETRY_MAX_SECONDS = env.float("OUTBOX_RETRY_MAX_SECONDS", default=3600)
# One drain task runs at most this long, then hands over to a fresh one (far below the
# broker's visibility timeout).
OUTBOX_DRAIN_SECONDS = env.float("OUTBOX_DRAIN_SECONDS", default=60)
OUTBOX_NUDGE_TTL_SECONDS = env.int("OUTBOX_NUDGE_TTL_SECONDS", default=60)
OUTBOX_WAKE_MAX_SECONDS = env.int("OUTBOX_WAKE_MAX_SECONDS", default=300)
OUTBOX_DRAIN_ON_WORKER_START = env.bool("OUTBOX_DRAIN_ON_WORKER_START", default=True)
OUTBOX_MESSAGE_ID_DOMAIN = env.str("OUTBOX_MESSAGE_ID_DOMAIN", default="launchday.example")

# --- Webhooks (stores.services.webhooks) ---
# A delivery succeeds on a 2xx answer within this many seconds (per phase of the request,
# and in total).
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=15.0)
# Seconds to wait before each retry (Standard Webhooks), each with +-jitter.
WEBHOOK_RETRY_SCHEDULE = [
    float(s) for s in env.list("WEBHOOK_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000",
                                                                   "36000", "50400", "72000", "86400"])
]  # fmt: skip
WEBHOOK_RETRY_JITTER = env.float("WEBHOOK_RETRY_JITTER", default=0.2)
# An endpoint whose every delivery failed for this long is switched off, its contact told.
WEBHOOK_DISABLE_AFTER_SECONDS = env.float("WEBHOOK_DISABLE_AFTER_SECONDS", default=5 * 86400)
# After a rotation the previous secret signs too, for this long.
WEBHOOK_SECRET_OVERLAP_SECONDS = env.int("WEBHOOK_SECRET_OVERLAP_SECONDS", default=86400)
# Senders per drain task, requests at once to one endpoint (across every worker), and
# deliveries claimed per batch. A drain runs at most WEBHOOK_DRAIN_SECONDS, then hands over.
WEBHOOK_SENDER_THREADS = env.int("WEBHOOK_SENDER_THREADS", default=4)
WEBHOOK_ENDPOINT_CONCURRENCY = env.int("WEBHOOK_ENDPOINT_CONCURRENCY", default=2)
# A batch costs a few queries (find endpoints, take a slot, claim) whatever its size; 250
# spreads them thinner than 100 did and still lasts a fraction of a second at a fast
# endpoint (a slow endpoint's batch stops at half the lease anyway).
WEBHOOK_BATCH_SIZE = env.int("WEBHOOK_BATCH_SIZE", default=250)
# A sender writes successful attempts several at a time (one WAL flush for them all): once
# this many are waiting, or the oldest has waited this long. A SIGKILLed sender repeats at
# most these (and the request it was waiting on), with the same webhook-id. 1: each at once.
WEBHOOK_RECORD_EVERY = env.int("WEBHOOK_RECORD_EVERY", default=32)
WEBHOOK_RECORD_WAIT_SECONDS = env.float("WEBHOOK_RECORD_WAIT_SECONDS", default=0.05)
WEBHOOK_DRAIN_SECONDS = env.float("WEBHOOK_DRAIN_SECONDS", default=30.0)
WEBHOOK_EAGER_DRAIN_SECONDS = env.float("WEBHOOK_EAGER_DRAIN_SECONDS", default=2.0)
# A claimed batch belongs to its sender this long; a dead sender's rows are retaken after.
WEBHOOK_LEASE_SECONDS = env.float("WEBHOOK_LEASE_SECONDS", default=120.0)
# An endpoint that gave no answer at all is left alone this long before its next delivery.
WEBHOOK_DOWN_PAUSE_SECONDS = env.float("WEBHOOK_DOWN_PAUSE_SECONDS", default=5.0)
WEBHOOK_NUDGE_TTL_SECONDS = env.int("WEBHOOK_NUDGE_TTL_SECONDS", default=30)
# A drain schedules the next one for a retry or lease due within this (beat does the rest).
WEBHOOK_WAKE_MAX_SECONDS = env.int("WEBHOOK_WAKE_MAX_SECONDS", default=60)
WEBHOOK_REPLAY_MAX_EVENTS = env.int("WEBHOOK_REPLAY_MAX_EVENTS", default=50_000)
# Endpoints must be https, and on the public internet: networks listed here (CIDR) are
# let through anyway (the tests allow loopback, where their receivers listen).
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=True)
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])

# --- Inventory ---
# A supplier manifest is a few hundred lines; anything bigger is refused whole.
DELIVERY_MANIFEST_MAX_BYTES = env.int("DELIVERY_MANIFEST_MAX_BYTES", default=5 * 1024 * 1024)
# Seconds intake waits inside its distribution step: 0 in production; tests and demos
# raise it to interrupt a worker half way and watch nothing be applied twice or in half.
INTAKE_PAUSE_SECONDS = env.float("INTAKE_PAUSE_SECONDS", default=0.0)

# --- The beat schedule, all of it ---------------------------------------------------------
INTAKE_WEEKDAY = env.str("INTAKE_WEEKDAY", default="fri")
INTAKE_HOUR = env.int("INTAKE_HOUR", default=6)
CELERY_BEAT_SCHEDULE = {
    # Every second: the allocator's safety net, in case a nudge after admission was lost.
    "allocate-open-launches": {
        "task": "orders.tasks.allocate_open_launches",
        "schedule": 1.0,
        "options": {"expires": 5},
    },
    # Every five seconds: drain whatever a lost nudge or an ended lease left behind.
    "outbox-drain": {
        "task": "customers.tasks.outbox_drain_periodic",
        "schedule": 5.0,
        "options": {"expires": 10},
    },
    # Every minute: announce manifests the supplier dropped in DELIVERY_INBOX_DIR.
    "scan-delivery-inbox": {"task": "inventory.tasks.scan_delivery_inbox", "schedule": 60.0},
    # Every two seconds: deliver webhooks whose retry came due, or that a lost nudge or a
    # dead sender's lease left behind; and tell partners about endpoints switched off.
    "webhooks-deliver": {
        "task": "stores.tasks.webhooks_deliver_periodic",
        "schedule": 2.0,
        "options": {"expires": 10},
    },
    # Every five minutes: uncollected click-and-collect units go back to their pool.
    "expire-collect-deadlines": {"task": "inventory.tasks.expire_collect_deadlines", "schedule": 300.0},
    # Every thirty seconds: claim windows past their end give their unclaimed units back and
    # the next registered customers are told (orders.services.notices).
    "expire-claim-windows": {
        "task": "orders.tasks.expire_claim_windows",
        "schedule": 30.0,
        "options": {"expires": 60},
    },
    # Every ten seconds: recount the overview and demand-vs-supply snapshots of the launches
    # head office watches (open, or opened within a day), so a page load never finds one
    # expired and counts every order on its own request (130-300 ms at launch scale, every
    # 15 s on some head-office user). Each is kept 60 s (REFRESHED_SNAPSHOT_SECONDS), longer
    # than this, so it never expires between runs; a run beat could not start within 10 s
    # is dropped, as the next one counts afresh.
    "refresh-office-snapshots": {
        "task": "orders.tasks.refresh_office_snapshots",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
    # Weekly, on the supplier's delivery day (INTAKE_WEEKDAY at INTAKE_HOUR): intake.
    "intake-due-deliveries": {
        "task": "inventory.tasks.intake_due_deliveries",
        "schedule": crontab(day_of_week=INTAKE_WEEKDAY, hour=INTAKE_HOUR, minute=0),
    },
}

# --- Partner API ---
# Per-key rate limit of the partner API (orders.api.throttles), counted in the shared
# cache: "N/s", "N/min", "N/h"; empty means no limit.
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="2000/s")
# Wrong postcodes a partner key may send in orders before its orders are throttled
# (orders.api.throttles): a guard on guessing customers' postcodes, not on load.
PARTNER_PROOF_FAILURE_RATE = env.str("PARTNER_PROOF_FAILURE_RATE", default="50/h")
# A verified key is remembered in process this long, so a revoked key stops within it.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=10.0)
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=100)
# Load shedding of admissions (orders.api.overload.AdmissionShedder, first middleware):
# refuse with 503 a request that waited longer than this in the server's queue (0: never).
# Measured under 3x overload: 50 ms admits 0.36 of the unloaded rate, 200 ms 0.22 (a
# longer queue is more stale work per admission); unloaded p99 is about 30 ms.
ADMISSION_MAX_QUEUE_MS = env.int("ADMISSION_MAX_QUEUE_MS", default=50)
# or that would be one more than this many admissions at once in one process (threaded
# servers; beyond the DB pool they would only wait for a connection). 0 sheds everything.
ADMISSION_MAX_IN_FLIGHT = env.int("ADMISSION_MAX_IN_FLIGHT", default=env.int("DB_POOL_MAX", default=8))
ADMISSION_RETRY_AFTER_SECONDS = env.int("ADMISSION_RETRY_AFTER_SECONDS", default=1)
ADMISSION_SHED_PATHS = frozenset(
    env.list(
        "ADMISSION_SHED_PATHS",
        default=["/api/v1/orders/", "/api/v1/orders", "/api/v1/orders/bulk", "/api/v1/orders/bulk/"],
    )
)
MIDDLEWARE.insert(0, "orders.api.overload.AdmissionShedder")

# --- Admission under the ASGI server (orders.api.front, orders.services.group_commit) ---
# Single orders join a batch written as one statement (group commit); 0 writes one
# INSERT per request (the path before it, kept to compare in make bench).
ADMISSION_GROUP_COMMIT = env.bool("ADMISSION_GROUP_COMMIT", default=True)
ADMISSION_BATCH_MAX = env.int("ADMISSION_BATCH_MAX", default=500)
# A request that could not be answered within this is refused at once with 503 (the
# front's admission control); a burst that fits in it is queued, not refused.
ADMISSION_DEADLINE_MS = env.int("ADMISSION_DEADLINE_MS", default=1000)
# Admissions in flight per process before the process's measured pace says how many fit.
ADMISSION_MIN_IN_FLIGHT = env.int("ADMISSION_MIN_IN_FLIGHT", default=1000)
ADMISSION_PATHS = frozenset(env.list("ADMISSION_PATHS", default=["/api/v1/orders/", "/api/v1/orders"]))
# Everything else runs in Django (WSGI) on this many threads per process; bodies are read
# by the front first, up to this size (the largest a view accepts: a delivery manifest).
WEB_THREADS = env.int("WEB_THREADS", default=16)
WEB_MAX_BODY_BYTES = max(DATA_UPLOAD_MAX_MEMORY_SIZE, DELIVERY_MANIFEST_MAX_BYTES) + 64 * 1024
# Polls of a panel marked @panel_shared are answered from the process's latest Django
# answer, refreshed in the background once it is this old (config.polls); 0: every poll
# goes to Django.
POLL_SHARE_SECONDS = env.float("POLL_SHARE_SECONDS", default=1.0)
# ...to a session Django let in within this long; older, Django is asked again in the
# background, so a session signed out sees the panel this long and one poll more at most.
POLL_RECHECK_SECONDS = env.float("POLL_RECHECK_SECONDS", default=10.0)
