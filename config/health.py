"""Is this process alive, and can it serve? /healthz and /readyz (django-health-check).

- /healthz: the process answers. Nothing else is asked, so a database outage never makes
  an orchestrator restart healthy web processes (which would only add a cold start to
  the outage).
- /readyz: PostgreSQL, Redis and the Celery broker each answer, within a short budget:
  200 when all do, 503 when one does not (a load balancer stops sending traffic here).

Each check has its own short timeout and its own connection: the database check opens a
fresh connection with connect_timeout rather than borrowing the pool's (whose wait is
DB_POOL_TIMEOUT, ten seconds), so a stalled PostgreSQL is reported within seconds and
the requests in flight keep their connections. The checks run side by side, so /readyz
takes as long as its slowest check, at most CHECK_SECONDS (+1 s of the library's grace).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime

import psycopg
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from health_check.base import HealthCheck
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView
from redis.asyncio import Redis as RedisClient

from config.asyncrun import run_to_completion

CHECK_SECONDS = 2.0


@dataclasses.dataclass
class PostgreSQL(HealthCheck):
    """SELECT 1 on a connection of its own, opened with connect_timeout."""

    label = "PostgreSQL"
    timeout = datetime.timedelta(seconds=CHECK_SECONDS)

    def run(self) -> None:
        db = settings.DATABASES["default"]
        if db["ENGINE"] != "django.db.backends.postgresql":
            return  # the embedded SQLite file: nothing to reach
        seconds = max(1, int(CHECK_SECONDS))
        try:
            with psycopg.connect(
                dbname=db["NAME"],
                user=db.get("USER") or None,
                password=db.get("PASSWORD") or None,
                host=db.get("HOST") or None,
                port=db.get("PORT") or None,
                connect_timeout=seconds,
                options=f"-c statement_timeout={seconds * 1000}",
                autocommit=True,
            ) as conn:
                row = conn.execute("SELECT 1").fetchone()
        except psycopg.Error as exc:
            raise ServiceUnavailable(f"PostgreSQL: {type(exc).__name__}") from exc
        if row != (1,):
            raise ServiceUnavailable("PostgreSQL answered SELECT 1 wrongly")


@dataclasses.dataclass
class CeleryBroker(HealthCheck):
    """The broker takes a connection: tasks (the allocator's nudge, email) can be sent.
    Not whether workers run: a web process is ready to admit orders without them."""

    label = "Celery broker"
    timeout = datetime.timedelta(seconds=CHECK_SECONDS)

    def run(self) -> None:
        from config.celery import app

        if app.conf.task_always_eager:
            return  # tasks run in process: there is no broker to reach
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_SECONDS)
                conn.default_channel  # noqa: B018 - opening the channel is the probe
        except Exception as exc:  # kombu raises the transport's own errors
            raise ServiceUnavailable(f"Celery broker: {type(exc).__name__}") from exc


def _redis_client() -> RedisClient:
    return RedisClient.from_url(
        settings.REDIS_URL, socket_connect_timeout=CHECK_SECONDS, socket_timeout=CHECK_SECONDS
    )


class RedisPing(Redis):
    """The library's PING of Redis (the cache, and the broker by default), within CHECK_SECONDS."""

    label = "Redis"
    timeout = datetime.timedelta(seconds=CHECK_SECONDS)


def readiness_checks() -> list[HealthCheck]:
    checks: list[HealthCheck] = [PostgreSQL()]
    if settings.REDIS_URL:
        checks.append(RedisPing(client_factory=_redis_client))
    checks.append(CeleryBroker())
    return checks


class ReadinessView(HealthCheckView):
    """The library's view with our checks; 503 (not its 500) when one fails, since a
    dependency being away is not this process's fault."""

    def get_checks(self):
        return readiness_checks()

    async def get(self, request, *args, **kwargs):
        response = await super().get(request, *args, **kwargs)
        if response.status_code == 500:
            response.status_code = 503
        return response


async def _readiness() -> dict[str, str]:
    results = await asyncio.gather(*(check.get_result() for check in readiness_checks()))
    return {
        getattr(r.check, "label", type(r.check).__name__): "OK" if r.error is None else str(r.error)
        for r in results
    }


def readiness() -> dict[str, str]:
    """Each service's state now ("OK" or why not), for head office's System page."""
    return run_to_completion(_readiness())


@require_GET
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers; nothing else is asked (see the module doc)."""
    return HttpResponse("ok\n", content_type="text/plain; charset=utf-8")
