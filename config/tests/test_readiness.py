"""/healthz and /readyz on the real stack, with its services taken away and given back.

The live front talks to PostgreSQL through a TCP proxy the test can stall or cut, and to a
redis-server of its own (cache and Celery broker): /readyz must say 503 within 5 s of
either going away, and 200 again within 5 s of its return, while /healthz, which asks
nothing of them, keeps answering 200.
"""

import http.client
import time

import orjson
import pytest
from django.conf import settings

from config.tests.outage import TcpProxy, ThrowawayRedis

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

WITHIN = 5.0


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request("GET", path, headers={"Host": "127.0.0.1", "Accept": "application/json"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def seconds_until(port: int, status: int) -> tuple[float, bytes]:
    """Seconds from now until /readyz answers `status` (a request in flight counts)."""
    started = time.monotonic()
    while time.monotonic() - started < 20:
        answered, body = get(port, "/readyz")
        if answered == status:
            return time.monotonic() - started, body
        time.sleep(0.1)
    raise AssertionError(f"/readyz never answered {status}")


@pytest.fixture
def stack(live_front_factory):
    if not ThrowawayRedis.available():
        pytest.fail("needs redis-server (apt-get install redis-server)")
    db = settings.DATABASES["default"]
    proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))).start()
    redis = ThrowawayRedis().start()
    live = live_front_factory(
        workers=1,
        extra_env={
            "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
            "REDIS_URL": redis.url,
            "CELERY_BROKER_URL": redis.url,
        },
    )
    yield live, proxy, redis
    live.stop()
    proxy.close()
    redis.stop()


def test_readyz_follows_postgresql_and_redis_going_away_and_coming_back(stack):
    live, proxy, redis = stack
    assert seconds_until(live.port, 200)[0] < WITHIN
    status, body = get(live.port, "/readyz")
    assert status == 200
    assert set(orjson.loads(body).values()) == {"OK"}, body  # PostgreSQL, Redis, the broker

    proxy.stall()  # PostgreSQL hangs: the hardest case, no error, just silence
    took, body = seconds_until(live.port, 503)
    assert took < WITHIN, took
    assert b"PostgreSQL" in body
    assert get(live.port, "/healthz")[0] == 200  # the process itself is fine
    proxy.restore()
    assert seconds_until(live.port, 200)[0] < WITHIN

    proxy.cut()  # PostgreSQL stopped: connections closed, new ones refused
    assert seconds_until(live.port, 503)[0] < WITHIN
    proxy.restore()
    assert seconds_until(live.port, 200)[0] < WITHIN

    redis.stop()
    took, body = seconds_until(live.port, 503)
    assert took < WITHIN, took
    assert b"Redis" in body
    assert get(live.port, "/healthz")[0] == 200
    redis.start()
    assert seconds_until(live.port, 200)[0] < WITHIN


def test_healthz_asks_no_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response["X-Request-ID"]
