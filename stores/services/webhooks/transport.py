"""The HTTP transport of webhook senders: the standard library's http.client over one
keep-alive connection per endpoint origin, no redirects, and no private addresses.

Why http.client and not httpx: a sender POSTs thousands of small bodies, one after the
other, to the same few origins. httpx's layers (client, transport, httpcore's pool and
h11 state machine) cost several times the whole request on loopback
(bench/webhook_bench.py: bare httpx loop 346 POSTs/s against 2,322 for http.client), and
the sender needs none of what they add: one connection per origin, no pool, no
redirects, no proxies, no decoding.

What this module keeps from the httpx client it replaces:
- the address guard where the connection is made, after the name is resolved: a name
  that resolves to a private, loopback or link-local address is refused whatever the
  URL said, and a DNS answer cannot change between the check and the connection (the
  socket connects to the very address that was checked). WEBHOOK_ALLOWED_NETWORKS lets
  chosen networks through (the tests allow loopback, where their receivers listen);
- TLS verified against the URL's host name (server_hostname), with certifi's CA bundle
  as httpx used;
- timeouts: connecting and the whole answer (status line, headers and the part of the
  body we read) must fit in one deadline, `timeout` seconds from the start. Each read is
  given only the time left, so a receiver trickling bytes cannot stretch it;
- redirects are never followed (http.client never follows them);
- a bounded read of the answer: the first `keep` bytes kept, at most `drain` read;
- a keep-alive connection the server dropped while idle is noticed before reuse (the
  socket reads ready: EOF), and a request that meets a connection reset before any
  answer on a reused connection is sent once more on a fresh one. That second send
  carries the same webhook-id, as every retry does.
"""

from __future__ import annotations

import functools
import http.client
import io
import ipaddress
import select
import socket
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import certifi
from django.conf import settings

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

USER_AGENT = "Launchday-Webhooks/1"
# Idle connections a sender keeps open (one per origin), oldest closed first.
KEPT_CONNECTIONS = 8


class AddressRefused(ConnectionError):
    """The endpoint's address is private, loopback or otherwise not on the public internet."""


def address_is_public(address: _Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def address_allowed(address: _Address) -> bool:
    if address_is_public(address):
        return True
    return any(address in ipaddress.ip_network(net) for net in settings.WEBHOOK_ALLOWED_NETWORKS)


def guarded_connect(*, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP socket connected to an allowed address of `host` (tried in DNS order)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from exc
    allowed = [info for info in infos if address_allowed(ipaddress.ip_address(info[4][0]))]
    if not allowed:
        raise AddressRefused(f"address refused: {host} is {infos[0][4][0] if infos else '?'}")
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in allowed:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            # The checked address itself: no second resolution between check and connect.
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        # Headers and body go out in one write, but the answer's ACK must not wait on Nagle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    assert error is not None
    raise error


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One per process (loading the CA bundle takes milliseconds); verifies the
    certificate and that it names the host."""
    return ssl.create_default_context(cafile=certifi.where())


class _DeadlineReader(io.RawIOBase):
    """The socket as http.client reads an answer from it, each read allowed only the
    time left until the deadline (a socket timeout alone would restart with each byte)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self.sock = sock
        # A SocketIO holds a reference on the socket, as http.client's own makefile() does,
        # so a connection closed while its last answer is read stays open for the read.
        self.raw = sock.makefile("rb", buffering=0)
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer took too long")
        self.sock.settimeout(left)
        return self.raw.readinto(buffer)

    def close(self) -> None:
        self.raw.close()
        super().close()


class _DeadlineSocket:
    """Handed to http.client's HTTPResponse in place of the socket: it only calls makefile()."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self.sock, self.deadline))


class GuardedConnection(http.client.HTTPConnection):
    """An HTTP/1.1 keep-alive connection to one origin, through the address guard, with
    TLS when `tls` is given, reading each answer against `deadline` (time.monotonic)."""

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port)
        self.tls = tls
        # The Host header leaves out the scheme's own port (http.client's default is 80).
        self.default_port = 443 if tls is not None else 80
        self.deadline = 0.0
        self.holding = False  # send() keeps what it is given in `head` (see post)
        self.head = b""
        self.response_class = self._response  # type: ignore[assignment]

    def _response(self, sock: socket.socket, *args: Any, **kwargs: Any) -> http.client.HTTPResponse:
        reader = cast(socket.socket, _DeadlineSocket(sock, self.deadline))
        return http.client.HTTPResponse(reader, *args, **kwargs)

    def connect(self) -> None:
        left = max(self.deadline - time.monotonic(), 0.001)
        sock = guarded_connect(host=self.host, port=self.port, timeout=left)
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock

    def post(self, *, target: str, body: bytes, headers: dict[str, str]) -> None:
        """Send a POST, its head and body in one write: http.client writes them apart,
        two syscalls and two packets a request, the receiver woken twice."""
        self.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in headers.items():
            self.putheader(name, value)
        self.putheader("content-length", str(len(body)))
        self.head = b""
        self.holding = True
        try:
            self.endheaders()
        finally:
            self.holding = False
        self.send(self.head + body)

    def send(self, data: Any) -> None:
        if self.holding:
            self.head += data
            return
        super().send(data)

    def dropped(self) -> bool:
        """An idle keep-alive connection reads ready only if the server closed it (EOF) or
        sent something unasked: either way it cannot carry the next request."""
        if self.sock is None:
            return False
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))


@dataclass
class Reply:
    """What an endpoint answered: status, Retry-After, and the first bytes of the body."""

    status: int
    retry_after: str | None
    body: bytes


@functools.lru_cache(maxsize=256)
def _parts(url: str) -> tuple[str, str, int, str]:
    """(scheme, host as sent, port, request target) of an endpoint URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port, target


class Connections:
    """One sender's keep-alive connections, one per origin (scheme, host, port). Not
    shared between threads: each sender has its own."""

    def __init__(self, *, kept: int = KEPT_CONNECTIONS) -> None:
        self.kept = kept
        self.open: OrderedDict[tuple[str, str, int], GuardedConnection] = OrderedDict()

    def close(self) -> None:
        for conn in self.open.values():
            conn.close()
        self.open.clear()

    def _connection(self, scheme: str, host: str, port: int) -> GuardedConnection:
        key = (scheme, host, port)
        conn = self.open.get(key)
        if conn is None:
            conn = GuardedConnection(host, port, tls=_tls_context() if scheme == "https" else None)
            self.open[key] = conn
            while len(self.open) > self.kept:
                self.open.popitem(last=False)[1].close()
        self.open.move_to_end(key)
        return conn

    def post(
        self, *, url: str, body: bytes, headers: dict[str, str], timeout: float, keep: int, drain: int
    ) -> Reply:
        """POST `body` and read the answer within `timeout` seconds in all. Raises
        TimeoutError, AddressRefused, other OSErrors (refused, reset, TLS) and
        http.client.HTTPException (a malformed answer)."""
        scheme, host, port, target = _parts(url)
        conn = self._connection(scheme, host, port)
        conn.deadline = time.monotonic() + timeout
        try:
            response = self._exchange(conn, target=target, body=body, headers=headers)
            kept = response.read(keep)
            read = len(kept)
            while read < drain and not response.isclosed():
                chunk = response.read(min(16384, drain - read))
                if not chunk:
                    break
                read += len(chunk)
            if not response.isclosed():
                # Left unread (too big): this connection cannot carry another request.
                response.close()
                conn.close()
            return Reply(status=response.status, retry_after=response.getheader("retry-after"), body=kept)
        except BaseException:
            conn.close()  # in an unknown state: the next request starts a fresh one
            raise

    @staticmethod
    def _exchange(
        conn: GuardedConnection, *, target: str, body: bytes, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        """Send the request and read the status and headers; once more on a fresh
        connection when a reused one turns out to have been dropped."""
        if conn.dropped():
            conn.close()
        all_headers = {"user-agent": USER_AGENT, "content-type": "application/json", **headers}
        for fresh_retry in (False, True):
            reused = conn.sock is not None
            try:
                if conn.sock is None:
                    conn.connect()
                conn.sock.settimeout(max(conn.deadline - time.monotonic(), 0.001))
                conn.post(target=target, body=body, headers=all_headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if not reused or fresh_retry:
                    raise
        raise AssertionError("unreachable")
