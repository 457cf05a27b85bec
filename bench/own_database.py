"""A bench on a database of its own: made afresh, migrated, and its processes' environment.

The intake, notice, email, webhook and orders-page benches (and allocperf) each measure
on their own database, with the production settings, in processes of their own, so their
figures never mix with the stack's (bench/stack.py, which serves launchday_bench with
bench.settings) nor with a test run's. This is how such a database is made and what its
processes are told.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
PG_URL = "postgres://postgres@127.0.0.1:5432"

# For a bench that times work inside one process: the tasks it enqueues (outbox drains,
# allocator nudges) go to an in-memory broker nobody reads, mail goes nowhere and Redis is
# not used. email_bench and webhook_bench time the sending.
IN_PROCESS: dict[str, str | None] = {
    "REDIS_URL": None,
    "DB_POOL": "0",
    "CELERY_TASK_ALWAYS_EAGER": "0",
    "CELERY_BROKER_URL": "memory://",
    "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
}


def worker_queue(*, queue: str, redis_url: str) -> dict[str, str]:
    """The settings of a bench that times a Celery worker of its own on the shared Redis:
    its tasks on `queue` and its cache keys under it, so no other run takes or sees them."""
    return {
        "REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": queue,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
    }


def database_env(*, name: str, **settings: str | None) -> dict[str, str]:
    """The environment of a process on the database `name`: this one's, without a test
    run's variables, with the production settings, then `settings` (None removes one)."""
    env = dict(os.environ)
    for var in ("TEST_DB_NAME", "LAUNCHDAY_TEST_RUN"):
        env.pop(var, None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DATABASE_URL": f"{PG_URL}/{name}",
            "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    for var, value in settings.items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    return env


def database_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_recreate(name: str) -> None:
    """An empty database `name`, whatever was there (its sessions are ended)."""
    import psycopg

    database_drop(name)
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def database_fresh(*, name: str, env: dict[str, str], timeout: float = 600) -> None:
    """The database `name` created afresh and migrated, by manage.py run with `env`."""
    database_recreate(name)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=timeout,
    )


def child_json(args: list[str], *, env: dict[str, str], timeout: float) -> dict:
    """Run `python args` with `env` and return the JSON its last line of output prints;
    what it logs goes to this process's stderr as it comes."""
    out = subprocess.run(
        [PYTHON, *args], cwd=ROOT, env=env, check=True, timeout=timeout, stdout=subprocess.PIPE, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(*, run: Callable[[], object], child: Callable[[], dict]) -> None:
    """A bench script's entry: `--child` measures and prints its figures as JSON (what
    child_json reads); without it, the whole run."""
    if "--child" in sys.argv:
        print(json.dumps(child()))
    else:
        run()
