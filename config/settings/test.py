"""Test settings: the base settings on the services the machine has.

PostgreSQL and Redis are used when they answer (DATABASE_URL and REDIS_URL default to the
local ones). Without them the suite falls back to SQLite and local memory, and the tests
that need a real service skip; REQUIRE_SERVICES=1 turns that fallback into an error.
"""

import os
import shutil
import socket
import time
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 1):
            return True
    except OSError:
        return False


REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") not in ("", "0")
for var, default, port in (
    ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/launchday", 5432),
    ("REDIS_URL", "redis://127.0.0.1:6379/0", 6379),
):
    url = os.environ.get(var) or default
    if _answers(url, port):
        os.environ[var] = url
    elif REQUIRE_SERVICES:
        raise ImproperlyConfigured(f"REQUIRE_SERVICES=1 but {var}={url} does not answer.")
    else:
        os.environ.pop(var, None)

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# The browser tests drive Debian's Chromium (never a browser Playwright downloads): here,
# or where LAUNCHDAY_CHROMIUM says. Without it they skip, or fail with REQUIRE_SERVICES=1.
CHROMIUM_PATH = os.environ.get("LAUNCHDAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
os.environ["DEBUG"] = "0"

from .base import *  # noqa: E402,F403
from .base import STORAGES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
# Tests serve static files from the finders; an empty STATIC_ROOT keeps whitenoise quiet.
STATIC_ROOT = BASE_DIR / "var" / "test-static"  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
# Tests about the worker start a real one and switch this off; everything else runs
# tasks in process so that one test sees its own side effects.
# A real worker started by the celery_worker_factory fixture gets CELERY_WORKER_EAGER=0, so
# tasks it sends go to the broker rather than running inline inside the worker.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_WORKER_EAGER", "1") != "0"
# One test run (and the Celery workers it starts, which inherit the environment) shares
# a cache prefix and a queue, so parallel runs on one Redis never see each other's work.
# Unique per run: each run recreates the test database, so ids restart and a cached
# eligibility entry from an earlier run would name a customer that no longer exists.
# Under pytest-xdist each worker has its own database, so its own prefix and queue too
# (the workers inherit the run's id from the controller; a worker's Celery workers inherit
# PYTEST_XDIST_WORKER from it): otherwise one xdist worker's Celery worker takes the
# other's tasks and finds none of their rows.
TEST_RUN_ID = os.environ.setdefault("LAUNCHDAY_TEST_RUN", f"{os.getpid()}-{time.time_ns()}") + os.environ.get(
    "PYTEST_XDIST_WORKER", ""
)
CACHES["default"]["KEY_PREFIX"] = f"launchday-test-{TEST_RUN_ID}"  # noqa: F405
CELERY_TASK_DEFAULT_QUEUE = f"launchday-test-{TEST_RUN_ID}"
CELERY_TASK_ROUTES: dict = {}  # every task of a run on its one queue, which its workers read
# Webhook receivers of the tests listen on loopback, over plain HTTP.
WEBHOOK_REQUIRE_HTTPS = False
WEBHOOK_ALLOWED_NETWORKS = os.environ.get("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128").split(",")
