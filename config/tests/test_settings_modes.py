"""The settings pick the embedded or the service mode from the environment alone, and
each mode (local, production) keeps its own promises.

Each case imports a settings module in a fresh interpreter with a clean environment,
because settings are read once per process.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent.parent
PROBE = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("PROBE_SETTINGS", "config.settings.local")
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"],
    "name": str(db["NAME"]),
    "pool": db.get("OPTIONS", {}).get("pool"),
    "cache": settings.CACHES["default"]["BACKEND"],
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "broker": settings.CELERY_BROKER_URL,
    "debug": settings.DEBUG,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
}))
"""


def run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SQLITE_PATH": str(tmp_path / "x.sqlite3"),
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=60
    )


def probe(tmp_path: Path, **env: str) -> dict:
    result = run(PROBE, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_mode_with_nothing_set(tmp_path):
    s = probe(tmp_path, DEBUG="1")
    assert s["engine"] == "django.db.backends.sqlite3"
    assert s["name"] == str(tmp_path / "x.sqlite3")
    assert s["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert s["eager"] is True
    assert s["broker"] == "memory://localhost/"
    assert s["ssl_redirect"] is False


def test_service_mode_with_database_and_redis_urls(tmp_path):
    s = probe(
        tmp_path,
        PROBE_SETTINGS="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL="postgres://launchday@db.internal:5432/launchday",
        REDIS_URL="redis://cache.internal:6379/0",
    )
    assert s["engine"] == "django.db.backends.postgresql"
    assert s["pool"] and s["pool"]["max_size"] >= 1
    assert s["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert s["eager"] is False
    assert s["broker"] == "redis://cache.internal:6379/0"
    assert s["debug"] is False
    assert s["ssl_redirect"] is True


def test_database_alone_keeps_celery_in_process(tmp_path):
    s = probe(tmp_path, DEBUG="1", DATABASE_URL="postgres://launchday@db.internal:5432/launchday")
    assert s["engine"] == "django.db.backends.postgresql"
    assert s["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert s["eager"] is True


def test_pool_can_be_switched_off(tmp_path):
    s = probe(
        tmp_path, DEBUG="1", DB_POOL="0", DATABASE_URL="postgres://launchday@db.internal:5432/launchday"
    )
    assert s["pool"] is None


@pytest.mark.parametrize("debug", ["0", "1", None])
def test_production_without_a_secret_key_is_refused_whatever_debug_says(tmp_path, debug):
    env = {"DEBUG": debug} if debug is not None else {}
    result = run(PROBE, tmp_path, PROBE_SETTINGS="config.settings.production", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize("key", ["x", "s3cret-but-short", "django-insecure-" + "k" * 50])
def test_production_with_a_weak_secret_key_is_refused(tmp_path, key):
    result = run(PROBE, tmp_path, PROBE_SETTINGS="config.settings.production", SECRET_KEY=key)
    assert result.returncode != 0
    assert "SECRET_KEY is too weak" in result.stderr


def test_production_is_never_in_debug(tmp_path):
    s = probe(
        tmp_path, PROBE_SETTINGS="config.settings.production", SECRET_KEY=secrets.token_urlsafe(50), DEBUG="1"
    )
    assert s["debug"] is False and s["ssl_redirect"] is True


def test_local_needs_nothing_set(tmp_path):
    s = probe(tmp_path)
    assert s["debug"] is True and s["ssl_redirect"] is False


def test_check_deploy_with_production_like_environment_has_no_warnings(tmp_path):
    """`manage.py check --deploy` lists nothing the settings could fix themselves."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "launchday.example,www.launchday.example",
        "DATABASE_URL": "postgres://launchday@db.internal:5432/launchday",
        "REDIS_URL": "redis://cache.internal:6379/0",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_catches_a_weak_secret_key(tmp_path):
    """The check above can fail: a short key is reported."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SQLITE_PATH": str(tmp_path / "x.sqlite3"),
        "SECRET_KEY": "short",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "launchday.example",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    # Refused before the checks even run: outside DEBUG a weak key stops the settings loading.
    assert "SECRET_KEY is too weak" in result.stdout + result.stderr


@pytest.mark.parametrize("key", ["", "x", "insecure-development-key-for-local-settings-only", "a" * 60])
def test_local_settings_without_debug_refuse_a_short_or_default_key(tmp_path, key):
    """SECRET_KEY=x booted with DEBUG off (issue 12): outside DEBUG every mode refuses it."""
    result = run(PROBE, tmp_path, DEBUG="0", SECRET_KEY=key)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


EMAIL_PROBE = """
import os
os.environ["DJANGO_SETTINGS_MODULE"] = os.environ["PROBE_SETTINGS"]
from django.conf import settings
print(settings.EMAIL_BACKEND)
"""


@pytest.mark.parametrize(
    ("settings_module", "debug", "backend"),
    [
        ("config.settings.local", "1", "django.core.mail.backends.console.EmailBackend"),
        ("config.settings.local", "0", "django.core.mail.backends.smtp.EmailBackend"),
        ("config.settings.production", "0", "django.core.mail.backends.smtp.EmailBackend"),
    ],
)
def test_emails_go_to_the_console_only_while_debugging(tmp_path, settings_module, debug, backend):
    """The console backend writes customers' names, addresses and order links to the log."""
    result = run(
        EMAIL_PROBE,
        tmp_path,
        PROBE_SETTINGS=settings_module,
        DEBUG=debug,
        SECRET_KEY=secrets.token_urlsafe(50),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == backend
