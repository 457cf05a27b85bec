"""Load shedding for the admission endpoints: past capacity, refuse fast and write nothing.

Why not just queue? Under gunicorn's sync workers a request past capacity waits in the
kernel's accept queue, invisible to Django. The workers stay 100% busy, but they spend
that time on requests whose clients have already timed out (and retried), so orders are
written that nobody hears about and the admitted orders per second that clients *see*
collapse. The cure is to refuse work that has waited too long, and to make each refusal
so cheap that it barely takes time from the admissions still being served.

Signals, cheapest first, all read before authentication, parsing or any query:

1. Time queued (the main one, CoDel's idea): how long the request waited before a worker
   picked it up. Behind a proxy that sets `X-Request-Start` (nginx, Heroku, many load
   balancers: `t=<seconds>` or microseconds) that header says it. Under gunicorn with no
   proxy, the kernel says it: TCP_INFO's `tcpi_last_data_recv` on the request's socket
   (gunicorn puts it in the environ as `gunicorn.socket`) is the milliseconds since the
   client's last bytes arrived, which for a request just taken off the accept queue is
   its time in that queue. One getsockopt, about a microsecond. Over
   ADMISSION_MAX_QUEUE_MS -> 503.
2. Admissions in flight in this process (threaded servers: gthread, runserver). More than
   ADMISSION_MAX_IN_FLIGHT at once would only wait for a database connection from the
   pool (DB_POOL_MAX per process), so they are refused instead of queued. Under sync
   workers this is at most one; setting it to 0 sheds everything (tests, maintenance).

Considered and left out: a shared in-flight counter in Redis. It bounds concurrency across
machines, but costs two round trips on every admission (a tenth of a single-order
admission), and a worker killed between INCR and DECR leaks a slot unless entries expire;
the queue-time signal already tells every worker on every machine when the database, the
shared bottleneck, is behind, because then everyone's requests wait longer.

A refusal is a prebuilt 503 with Retry-After and the API.md envelope; the request body is
not read and nothing is written, so a client may retry it safely.
"""

import socket
import struct
import threading
import time

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config.metrics import order_refused
from orders.api.errors import MESSAGES
from orders.codes import ErrorCode, error_body

# struct tcp_info (linux/tcp.h): eight u8 fields, then u32s; tcpi_last_data_recv is the
# 12th u32, at byte 52.
_TCP_INFO_SIZE = 104
_LAST_DATA_RECV_OFFSET = 52
_TCP_INFO = getattr(socket, "TCP_INFO", None)


def socket_idle_ms(sock) -> int | None:
    """Milliseconds since data last arrived on a TCP socket (Linux), else None."""
    if _TCP_INFO is None or sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_SIZE)
    except (OSError, AttributeError, TypeError):
        return None
    if len(info) < _LAST_DATA_RECV_OFFSET + 4:
        return None
    return struct.unpack_from("I", info, _LAST_DATA_RECV_OFFSET)[0]


def header_queue_ms(value: str, now: float) -> float | None:
    """Milliseconds since a proxy's X-Request-Start (`t=1700000000.123`, or micro/milliseconds)."""
    raw = value.strip().removeprefix("t=")
    try:
        started = float(raw)
    except ValueError:
        return None
    if started > 1e14:  # microseconds
        started /= 1e6
    elif started > 1e11:  # milliseconds
        started /= 1e3
    return (now - started) * 1000.0


def queued_ms(meta: dict) -> float | None:
    """How long the request waited for a worker, from the WSGI environ (request.META)."""
    proxy = meta.get("HTTP_X_REQUEST_START")
    if proxy:
        waited = header_queue_ms(proxy, time.time())
        if waited is not None:
            return waited
    return socket_idle_ms(meta.get("gunicorn.socket"))


def overloaded_response(reason: str) -> HttpResponse:
    body = orjson.dumps(error_body(ErrorCode.OVERLOADED, MESSAGES[ErrorCode.OVERLOADED], {"reason": reason}))
    response = HttpResponse(body, status=503, content_type="application/json")
    response["Retry-After"] = str(settings.ADMISSION_RETRY_AFTER_SECONDS)
    return response


class AdmissionShedder:
    """Middleware: sheds POSTs to ADMISSION_SHED_PATHS when over capacity (see module doc).

    Install it first in MIDDLEWARE so a refusal costs nothing beyond this check.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.in_flight = 0
        self.shed = 0  # refusals by this process, for operators and the benchmark
        self._lock = threading.Lock()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path_info not in settings.ADMISSION_SHED_PATHS:
            return self.get_response(request)
        max_queue = settings.ADMISSION_MAX_QUEUE_MS
        if max_queue:
            waited = queued_ms(request.META)
            if waited is not None and waited > max_queue:
                return self._refuse("queued_too_long")
        with self._lock:
            if self.in_flight >= settings.ADMISSION_MAX_IN_FLIGHT:
                refuse = True
            else:
                refuse = False
                self.in_flight += 1
        if refuse:
            return self._refuse("too_many_in_flight")
        try:
            return self.get_response(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _refuse(self, reason: str) -> HttpResponse:
        self.shed += 1
        order_refused(reason)
        return overloaded_response(reason)


class AdmissionShedderWSGI:
    """The queue-time check, in front of Django itself (config/wsgi.py wraps the app).

    The middleware above already refuses before authentication or parsing, but a refusal
    there still pays for Django's request object, its signals and the middleware chain:
    measured at about half the cost of a bare one-INSERT request, which under three times
    the load ate a third of the workers' time. Here a refusal is a few microseconds, so
    nearly all the workers' time goes to the admissions they accept. The middleware
    stays for the in-flight check and for servers that don't go through this wrapper.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        max_queue = settings.ADMISSION_MAX_QUEUE_MS
        if (
            max_queue
            and environ.get("REQUEST_METHOD") == "POST"
            and environ.get("PATH_INFO") in settings.ADMISSION_SHED_PATHS
        ):
            waited = queued_ms(environ)
            if waited is not None and waited > max_queue:
                order_refused("queued_too_long")
                response = overloaded_response("queued_too_long")
                start_response(
                    "503 Service Unavailable",
                    [(k, v) for k, v in response.items()] + [("Content-Length", str(len(response.content)))],
                )
                return [response.content]
        return self.app(environ, start_response)
