"""Lean HTTP/1.1 load clients: an epoll engine for the sweep and open loop, asyncio for retries.

Both parse only the status line and the few headers the bench reads. Connections are kept
alive when the server allows it (granian, uvicorn) and opened anew when it closes them
(gunicorn's sync workers do, every request). EpollLoad, run in several processes by
bench/load.py, has two modes:

- closed: N connections, each sends its next request as soon as it has an answer;
- open: requests leave on a fixed schedule whatever the answers (an open loop), over as
  many connections as that needs; latency counts from the scheduled time, and how late
  each request actually left (lag) is kept, so a client that could not keep up shows.

Pool (asyncio) serves the retrying clients, whose rate is low and whose logic (waiting
Retry-After, one key per order) reads best as coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import re
import select
import socket
import time
from array import array
from collections import deque
from dataclasses import dataclass, field

# Negative "statuses" for requests that got no HTTP answer.
TIMEOUT = -1
CONNECT_ERROR = -2
BROKEN = -3  # the connection dropped or sent something that is not HTTP
ERROR_NAMES = {TIMEOUT: "timeout", CONNECT_ERROR: "connect", BROKEN: "broken"}

_REFERENCE = re.compile(rb'"reference"\s*:\s*"(\w+)"')
_SWEEP_SECONDS = 0.2


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: float | None = None
    body: bytes = b""
    keep_alive: bool = False
    age: int | None = None  # an answer from a cache (config.polls): seconds since it was made

    @property
    def reference(self) -> str | None:
        found = _REFERENCE.search(self.body)
        return found.group(1).decode() if found else None


def parse_response(buf: bytes | bytearray) -> tuple[Answer, int] | None:
    """(answer, bytes used) once `buf` holds a whole response, else None.

    A response without Content-Length or chunked encoding ends at EOF: the caller handles
    that (see _Conn.connection_lost).
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).split(b"\r\n")
    try:
        version, code = head[0].split(b" ", 2)[:2]
        status = int(code)
    except ValueError as exc:
        raise ValueError(f"not an HTTP status line: {head[0][:80]!r}") from exc
    length, chunked, retry_after, age = -1, False, None, None
    keep_alive = version == b"HTTP/1.1"
    for line in head[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = value.strip().lower() == b"keep-alive" or (
                keep_alive and value.strip().lower() != b"close"
            )
        elif name == b"retry-after":
            with contextlib.suppress(ValueError):
                retry_after = float(value)
        elif name == b"age":
            with contextlib.suppress(ValueError):
                age = int(value)
    start = end + 4
    if length >= 0:
        if len(buf) < start + length:
            return None
        body = bytes(buf[start : start + length])
        return Answer(status, retry_after, body, keep_alive, age), start + length
    if chunked:
        stop = buf.find(b"0\r\n\r\n", start)
        if stop < 0:
            return None
        return Answer(status, retry_after, bytes(buf[start:stop]), keep_alive, age), stop + 5
    return None


class _Conn(asyncio.Protocol):
    """One client connection; at most one request in flight (no pipelining)."""

    def __init__(self, on_lost) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self.sent_at = 0.0
        self.closed = False
        self._on_lost = on_lost

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, payload: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Answer]:
        self.waiter = loop.create_future()
        self.sent_at = time.monotonic()
        self.transport.write(payload)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            parsed = parse_response(self.buf)
        except ValueError:
            self._finish(Answer(BROKEN))
            self.abort()
            return
        if parsed is not None:
            answer, used = parsed
            del self.buf[:used]
            self._finish(answer)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            # A response delimited by EOF is complete now; anything else was cut short.
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0 and not exc:
                try:
                    status = int(bytes(self.buf[: self.buf.find(b"\r\n")]).split(b" ")[1])
                    self._finish(Answer(status, None, bytes(self.buf[end + 4 :]), False))
                except (ValueError, IndexError):
                    self._finish(Answer(BROKEN))
            else:
                self._finish(Answer(BROKEN))
        self._on_lost(self)

    def _finish(self, answer: Answer) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def expire(self) -> None:
        self._finish(Answer(TIMEOUT))
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def request_bytes(
    *, path: str, body: bytes, key: str = "", idempotency_key: str = "", close: bool = False
) -> bytes:
    headers = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if key:
        headers.append(f"Authorization: Api-Key {key}")
    if idempotency_key:
        headers.append(f"Idempotency-Key: {idempotency_key}")
    if close:
        headers.append("Connection: close")
    headers.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


@dataclass
class Tally:
    """What one client process saw; bench/load.py merges the processes' tallies."""

    statuses: array = field(default_factory=lambda: array("h"))
    latencies: array = field(default_factory=lambda: array("d"))  # seconds, same order as statuses
    lags: array = field(default_factory=lambda: array("d"))  # open loop: seconds late at send
    retry_after: int = 0  # refusals (429/503) that carried Retry-After
    references: list[str] = field(default_factory=list)
    sent: int = 0
    unsent: int = 0
    peak_connections: int = 0
    cpu_seconds: float = 0.0
    first_send: float = 0.0
    last_send: float = 0.0
    out_of_customers: bool = False

    def record(self, answer: Answer, latency: float) -> None:
        self.statuses.append(answer.status)
        self.latencies.append(latency)
        if answer.status == 202:
            ref = answer.reference
            if ref:
                self.references.append(ref)
        elif answer.status in (429, 503) and answer.retry_after is not None:
            self.retry_after += 1


class Pool:
    """Connections to one server: reuse idle kept-alive ones, open more up to a cap, and
    expire requests that outlive the timeout (one sweep for all, not a timer each)."""

    def __init__(self, *, host: str, port: int, max_connections: int, timeout: float, tally: Tally):
        self.host, self.port, self.timeout, self.tally = host, port, timeout, tally
        self.max_connections = max_connections
        self.idle: deque[_Conn] = deque()
        self.open: set[_Conn] = set()
        self.connecting = 0
        self.waiters: deque[asyncio.Future[_Conn | None]] = deque()
        self.loop = asyncio.get_running_loop()
        self._sweeper = self.loop.create_task(self._sweep())

    def _lost(self, conn: _Conn) -> None:
        self.open.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        self._wake()

    def _wake(self) -> None:
        while self.waiters and (self.idle or len(self.open) + self.connecting < self.max_connections):
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(self.idle.popleft() if self.idle else None)

    async def acquire(self) -> _Conn:
        """An idle connection, a new one, or the next to come free when at the cap."""
        while self.idle:
            conn = self.idle.popleft()
            if not conn.closed:
                return conn
        if len(self.open) + self.connecting >= self.max_connections:
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            conn = await waiter
            if conn is not None and not conn.closed:
                return conn
        self.connecting += 1
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Conn(self._lost), self.host, self.port), self.timeout
            )
        finally:
            self.connecting -= 1
        self.open.add(conn)
        self.tally.peak_connections = max(self.tally.peak_connections, len(self.open))
        return conn

    def release(self, conn: _Conn, answer: Answer) -> None:
        if answer.keep_alive and not conn.closed:
            self.idle.append(conn)
        else:
            conn.abort() if answer.status < 0 else conn.transport.close()
        self._wake()

    async def request(self, payload: bytes) -> Answer:
        try:
            conn = await self.acquire()
        except (OSError, TimeoutError):
            self._wake()
            return Answer(CONNECT_ERROR)
        answer = await conn.send(payload, self.loop)
        self.release(conn, answer)
        return answer

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            too_old = time.monotonic() - self.timeout
            for conn in list(self.open):
                if conn.waiter is not None and conn.sent_at < too_old:
                    conn.expire()

    async def close(self) -> None:
        self._sweeper.cancel()
        for conn in list(self.open):
            conn.abort()
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)


# --- the open loop's schedule -----------------------------------------------------------------


def schedule_share(*, total: int, processes: int, index: int) -> int:
    """How many of `total` scheduled requests process `index` of `processes` sends.

    Request j of the whole run leaves at j / rate and belongs to process j % processes, so
    the processes together offer one evenly spaced stream.
    """
    if index >= total:
        return 0
    return len(range(index, total, processes))


def due_count(*, elapsed: float, rate: float, processes: int, index: int, share: int) -> int:
    """How many of this process's requests are due `elapsed` seconds into the schedule.

    Its k-th request (k from 0) is request j = index + k * processes, due at j / rate.
    """
    if elapsed < index / rate:
        return 0
    return min(share, math.floor((elapsed * rate - index) / processes) + 1)


def scheduled_at(*, k: int, rate: float, processes: int, index: int) -> float:
    return (index + k * processes) / rate


# --- the load engine: one epoll loop per process, no asyncio ----------------------------------
#
# asyncio spends about 250 microseconds of CPU per request when every request needs a new
# connection (gunicorn's sync workers close each one): too much to offer 10x capacity from a
# 2-core machine that also runs the server. A bare epoll loop over non-blocking sockets does
# the same work in a fraction of that, which is what lets the open loop reach its rate.

_CONNECTING, _WAITING, _IDLE = 0, 1, 2


class _Sock:
    __slots__ = ("sock", "fd", "state", "buf", "payload", "started", "scheduled")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.state = _CONNECTING
        self.buf = bytearray()
        self.payload = b""
        self.started = 0.0  # when the request left (or its connect began)
        self.scheduled = 0.0  # open loop: when it was due; closed loop: = started


class EpollLoad:
    """Closed or open loop over many connections; answers go to `tally`.

    `next_payload()` gives the next request's bytes, or None when out of customers.
    Latency counts from `scheduled` (open loop) or from the send (closed loop).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        max_connections: int,
        timeout: float,
        tally: Tally,
        next_payload,
    ) -> None:
        self.addr = (host, port)
        self.max_connections = max_connections
        self.timeout = timeout
        self.tally = tally
        self.next_payload = next_payload
        self.ep = select.epoll()
        self.socks: dict[int, _Sock] = {}
        self.idle: list[_Sock] = []
        self.backlog: deque[tuple[bytes, float]] = deque()  # due, but every connection busy
        self.on_free = None  # closed loop: called when a request finishes (start the next)

    # requests

    def start(self, payload: bytes, scheduled: float) -> None:
        """Send on an idle kept-alive connection, else on a new one, else queue (at the cap)."""
        while self.idle and self.idle[-1].state != _IDLE:
            self.idle.pop()
        if not self.idle and len(self.socks) >= self.max_connections:
            self.backlog.append((payload, scheduled))
            return
        now = time.monotonic()
        # Lag: how late the request starts against its schedule: the client's own delay.
        # Connecting counts as latency, not lag: a full accept queue is the server's.
        self.tally.lags.append(now - scheduled)
        self.tally.sent += 1
        self.tally.last_send = now
        if self.idle:
            s = self.idle.pop()
            s.payload, s.started, s.scheduled = payload, now, scheduled
            if not self._send(s):
                self._record(Answer(BROKEN), time.monotonic(), scheduled)
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._record(Answer(CONNECT_ERROR), now, scheduled)
            return
        s = _Sock(sock)
        s.payload, s.started, s.scheduled = payload, now, scheduled
        self.socks[s.fd] = s
        self.tally.peak_connections = max(self.tally.peak_connections, len(self.socks))
        self.ep.register(s.fd, select.EPOLLOUT)

    def _send(self, s: _Sock) -> bool:
        try:
            s.sock.send(s.payload)
        except OSError:
            self._close(s)
            return False
        s.state = _WAITING
        self.ep.modify(s.fd, select.EPOLLIN)
        return True

    def _record(self, answer: Answer, now: float, scheduled: float) -> None:
        self.tally.record(answer, now - scheduled)

    def _finish(self, s: _Sock, answer: Answer) -> None:
        now = time.monotonic()
        self._record(answer, now, s.scheduled)
        if answer.keep_alive and answer.status > 0:
            s.state = _IDLE
            s.buf.clear()
            self.idle.append(s)
        else:
            self._close(s)
        self._freed()

    def _freed(self) -> None:
        if self.backlog:
            payload, scheduled = self.backlog.popleft()
            self.start(payload, scheduled)
        elif self.on_free is not None:
            self.on_free()

    def _close(self, s: _Sock) -> None:
        if self.socks.pop(s.fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self.ep.unregister(s.fd)
        s.state = -1
        s.sock.close()

    # events

    def poll(self, wait: float) -> None:
        for fd, events in self.ep.poll(wait):
            s = self.socks.get(fd)
            if s is None:
                continue
            if s.state == _CONNECTING:
                err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err or events & (select.EPOLLERR | select.EPOLLHUP):
                    self._close(s)
                    self._record(Answer(CONNECT_ERROR), time.monotonic(), s.scheduled)
                    self._freed()
                elif not self._send(s):
                    self._record(Answer(BROKEN), time.monotonic(), s.scheduled)
                    self._freed()
                continue
            self._readable(s)

    def _readable(self, s: _Sock) -> None:
        try:
            data = s.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = None
        if s.state == _IDLE:  # the server closed a kept-alive connection
            self._close(s)
            return
        if data:
            s.buf += data
            try:
                parsed = parse_response(s.buf)
            except ValueError:
                self._close(s)
                self._record(Answer(BROKEN), time.monotonic(), s.scheduled)
                self._freed()
                return
            if parsed is not None:
                self._finish(s, parsed[0])
            return
        # EOF (or reset): a response delimited by EOF is complete; anything else was cut.
        answer = Answer(BROKEN)
        end = s.buf.find(b"\r\n\r\n")
        if data is not None and end >= 0:
            with contextlib.suppress(ValueError, IndexError):
                status = int(bytes(s.buf[: s.buf.find(b"\r\n")]).split(b" ")[1])
                answer = Answer(status, None, bytes(s.buf[end + 4 :]), False)
        self._close(s)
        self._record(answer, time.monotonic(), s.scheduled)
        self._freed()

    def expire(self) -> None:
        """Give up on requests older than the timeout (one sweep for all, no timer each)."""
        too_old = time.monotonic() - self.timeout
        for s in [s for s in self.socks.values() if s.state != _IDLE and s.started < too_old]:
            self._close(s)
            self._record(Answer(TIMEOUT), time.monotonic(), s.scheduled)
            self._freed()

    def busy(self) -> bool:
        return any(s.state != _IDLE for s in self.socks.values()) or bool(self.backlog)

    def close(self) -> None:
        for s in list(self.socks.values()):
            self._close(s)
        self.ep.close()

    # the two loops

    def run_closed(self, *, connections: int, start: float, end: float) -> None:
        def next_request() -> None:
            if time.monotonic() >= end:
                return
            payload = self.next_payload()
            if payload is None:
                self.tally.out_of_customers = True
                return
            now = time.monotonic()
            self.start(payload, now)

        self.on_free = next_request
        _sleep_until(start)
        self.tally.first_send = time.monotonic()
        for _ in range(connections):
            next_request()
        last_sweep = time.monotonic()
        while self.busy() and time.monotonic() < end + self.timeout + 1:
            self.poll(0.05)
            if time.monotonic() - last_sweep > _SWEEP_SECONDS:
                self.expire()
                last_sweep = time.monotonic()
        self.tally.last_send = min(self.tally.last_send, end)
        self.close()

    def run_open(
        self, *, share: int, rate: float, processes: int, index: int, start: float, stop_by: float
    ) -> None:
        """Send this process's `share` of the schedule on time; stop sending at `stop_by`."""
        _sleep_until(start)
        self.tally.first_send = start
        k = 0
        last_sweep = time.monotonic()
        while k < share and time.monotonic() < stop_by:
            now = time.monotonic()
            due = due_count(elapsed=now - start, rate=rate, processes=processes, index=index, share=share)
            while k < due:
                payload = self.next_payload()
                if payload is None:
                    self.tally.out_of_customers = True
                    share = k
                    break
                self.start(payload, start + scheduled_at(k=k, rate=rate, processes=processes, index=index))
                k += 1
            if k < share:
                next_at = start + scheduled_at(k=k, rate=rate, processes=processes, index=index)
                self.poll(min(0.005, max(0.0, next_at - time.monotonic())))
            if now - last_sweep > _SWEEP_SECONDS:
                self.expire()
                last_sweep = now
        self.tally.unsent = share - k + len(self.backlog)
        self.backlog.clear()
        deadline = time.monotonic() + self.timeout + 1
        while self.busy() and time.monotonic() < deadline:
            self.poll(0.05)
            self.expire()
        self.close()


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))
