"""One Redis client per process for the admission hot path.

Django's RedisCache builds a client object on every call; on the hot path (throttle,
eligibility) that showed up in profiles. This returns one long-lived client on the same
connection pool and key scheme as `django.core.cache.cache`, or None when the cache is
not Redis (the embedded default), in which case callers use the cache API.
"""

from django.core.cache import cache

_client = None


def shared_redis():
    global _client
    if _client is None:
        backend = getattr(cache, "_cache", None)
        if backend is None or not hasattr(backend, "get_client"):
            return None
        _client = backend.get_client(write=True)
    return _client


class NotCached(Exception):
    """The answer is not in this process's memory: finding it means a query or a round trip.

    Raised by the `*_cached` readers, which an event loop calls on the hot path so that a
    miss can be sent to a thread instead of blocking the loop.
    """
