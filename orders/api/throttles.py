"""Rate limits per partner key, counted in the shared cache (Redis in production).

DRF's SimpleRateThrottle keeps a list of timestamps per client and rewrites it on every
request: at thousands of requests a second that list is megabytes. This is a fixed-window
counter instead (SET NX EX + INCRBY in one Redis round trip), shared by every gunicorn
worker and machine. For high limits each process adds its requests to the shared count in
small groups (at most one in fifty of the limit), so the hot path pays a Redis round trip
for one request in sixteen, and the limit can be overshot by at most that group size per
process; limits under fifty per window are counted exactly. Like any DRF throttle it is a
fairness measure, not a security one. If the cache is down the request is let through:
a throttle must not turn a cache outage into an API outage.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from config.cache import shared_redis
from stores.services.keys import partner_key_proof_failures_add

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """'1000/s' -> (1000, 1); '600/min' -> (600, 60); None or '' -> no limit."""
    if not rate:
        return None
    number, _, period = rate.partition("/")
    return int(number), _PERIODS[period.strip()[0].lower()]


def _count(key: str, ttl: int, add: int = 1) -> int:
    """Add `add` to a counter that expires ttl seconds after its first use; return it."""
    client = shared_redis()
    if client is not None:  # django RedisCache
        full_key = cache.make_key(key)
        pipe = client.pipeline(transaction=False)
        pipe.set(full_key, 0, ex=ttl, nx=True)
        pipe.incrby(full_key, add)
        return int(pipe.execute()[1])
    cache.add(key, 0, ttl)
    try:
        return cache.incr(key, add)
    except ValueError:  # expired between add and incr
        cache.add(key, add, ttl)
        return add


MAX_GROUP = 16
# counter key -> [requests not yet added to the shared count, shared count when last read]
_pending: dict[str, list[int]] = {}


def _count_grouped(key: str, ttl: int, limit: int) -> int:
    """This request's place in the window's count, adding to the shared count in groups."""
    group = max(1, min(MAX_GROUP, limit // 50))
    entry = _pending.get(key)
    if entry is None:
        if len(_pending) > 1000:  # old windows' counters
            _pending.clear()
        entry = _pending[key] = [0, 0]
    entry[0] += 1
    if entry[0] >= group:
        entry[1], entry[0] = _count(key, ttl, entry[0]), 0
    return entry[1] + entry[0]


def throttle_wait(*, key_id: str, setting: str = "API_THROTTLE_RATE") -> float | None:
    """None if this key may make one more request now, else the seconds until it may."""
    limit = parse_rate(getattr(settings, setting, None))
    if limit is None:
        return None
    number, period = limit
    now = time.time()
    window = int(now // period)
    try:
        count = _count_grouped(f"api-throttle:{setting}:{key_id}:{window}", period + 1, number)
    except Exception:  # the cache is down: let the request through
        logger.warning("Throttle cache unavailable; not throttling", exc_info=True)
        return None
    if count > number:
        return (window + 1) * period - now
    return None


class PartnerKeyThrottle(BaseThrottle):
    """API_THROTTLE_RATE requests per key (e.g. '1000/s'), counted per fixed window."""

    setting = "API_THROTTLE_RATE"

    def __init__(self):
        self._wait = 1.0

    def allow_request(self, request, view) -> bool:
        holder = request.auth
        if holder is None:
            return True
        wait = throttle_wait(key_id=holder.key_id, setting=self.setting)
        if wait is None:
            return True
        self._wait = wait
        return False

    def wait(self) -> float:
        return self._wait


# Failed proofs (a known customer named with a wrong postcode), per key and window. The
# count is shared; each process keeps only "this key is blocked until", learnt when it
# adds a failure, so a request pays no round trip to be checked. Another process learns
# it with its own next failure: a key can overshoot by one failure per process.
_proof_blocked: dict[str, float] = {}


def proof_failures_wait(*, key_id: str) -> float | None:
    """None if this key may place orders now, else the seconds until its window ends."""
    until = _proof_blocked.get(key_id)
    if until is None:
        return None
    wait = until - time.time()
    if wait > 0:
        return wait
    _proof_blocked.pop(key_id, None)
    return None


def proof_failures_add(*, key_id: str, count: int = 1) -> None:
    """Count `count` failed proofs against a key: in the window (which may block it) and
    on the key itself, where head office sees them. Queries: call it from a thread."""
    if count <= 0:
        return
    partner_key_proof_failures_add(prefix=key_id, count=count)
    limit = parse_rate(settings.PARTNER_PROOF_FAILURE_RATE)
    if limit is None:
        return
    number, period = limit
    now = time.time()
    window = int(now // period)
    try:
        total = _count(f"api-proof-failures:{key_id}:{window}", period + 1, count)
    except Exception:  # the cache is down: the key's own count still grows
        logger.warning("Throttle cache unavailable; proof failures not windowed", exc_info=True)
        return
    if total >= number:
        if len(_proof_blocked) > 1000:
            _proof_blocked.clear()
        _proof_blocked[key_id] = (window + 1) * period


def proof_failures_clear() -> None:
    """Forget this process's blocks (tests)."""
    _proof_blocked.clear()
