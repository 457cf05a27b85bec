"""The senders' HTTP transport on its own (stores/services/webhooks/transport.py): the
address guard after name resolution, the whole-answer deadline, the bounded read, and a
keep-alive connection the receiver dropped. Real sockets on loopback, no database."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

from stores.services.webhooks import transport
from stores.services.webhooks.transport import AddressRefused, Connections
from stores.tests.receiver import Answer

HEADERS = {"webhook-id": "msg_x", "webhook-timestamp": "0", "webhook-signature": "v1,x"}


def post(connections: Connections, url: str, timeout: float = 5.0) -> transport.Reply:
    return connections.post(
        url=url, body=b'{"a":1}', headers=HEADERS, timeout=timeout, keep=2048, drain=65536
    )


def resolving(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Names resolve to the given addresses (others as usual); returns the names looked up."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(transport.socket, "getaddrinfo", getaddrinfo)
    return asked


class RawServer:
    """A loopback server whose every connection is handled by `handle(conn)` in a thread."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.handle = handle
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


def read_request(conn: socket.socket) -> bool:
    """Read one request (headers and a content-length body); False at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
    )
    while len(rest) < length:
        rest += conn.recv(65536)
    return True


def test_a_name_resolving_to_a_private_address_is_refused_before_any_connection(monkeypatch, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    resolving(monkeypatch, {"hooks.partner.example": ["10.1.2.3"]})
    connects: list[object] = []
    monkeypatch.setattr(transport.socket.socket, "connect", lambda self, addr: connects.append(addr))
    with pytest.raises(AddressRefused, match="address refused: hooks.partner.example is 10.1.2.3"):
        post(Connections(), "https://hooks.partner.example/hook")
    assert connects == []


def test_the_name_is_looked_up_once_and_the_checked_address_is_the_one_connected(
    monkeypatch, settings, receiver
):
    """Of a name's addresses only the allowed ones are tried, and the socket connects to
    the very address checked (no second lookup a DNS answer could change); the Host
    header still names the URL's host."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    port = receiver.server.server_address[1]
    asked = resolving(monkeypatch, {"partner.example": ["10.9.9.9", "127.0.0.1"]})
    reply = post(Connections(), f"http://partner.example:{port}/hook")
    assert reply.status == 200 and reply.body == b"ok"
    assert asked == ["partner.example"]
    (request,) = receiver.at()
    assert request.headers["host"] == f"partner.example:{port}"


def test_a_receiver_trickling_its_answer_cannot_stretch_it_past_the_timeout():
    def trickle(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        try:
            for _ in range(200):
                conn.sendall(b"x-slow: y\r\n")  # a header line every 50 ms, never the end
                time.sleep(0.05)
        except OSError:
            pass
        conn.close()

    server = RawServer(trickle)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post(Connections(), f"http://127.0.0.1:{server.port}/hook", timeout=0.5)
    assert time.monotonic() - started < 1.5
    server.close()


def test_a_big_answer_is_read_only_so_far_and_the_next_request_gets_a_fresh_connection(receiver):
    receiver.script("/hook", Answer(200, body=b"x" * 300_000), Answer(200))
    connections = Connections()
    first = post(connections, receiver.url())
    assert first.status == 200 and first.body == b"x" * 2048
    second = post(connections, receiver.url())
    assert second.status == 200 and second.body == b"ok"


@pytest.mark.parametrize("pause", [0.0, 0.1])
def test_a_keep_alive_connection_the_receiver_dropped_is_replaced(pause):
    """The receiver closes each connection after one answer: noticed before reuse (after
    a pause) or when the reused connection is found closed (at once); either way the
    request goes out once on a fresh connection."""

    def one_answer(conn: socket.socket) -> None:
        if read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        conn.close()

    server = RawServer(one_answer)
    connections = Connections()
    for _ in range(3):
        assert post(connections, f"http://127.0.0.1:{server.port}/hook").status == 200
        time.sleep(pause)
    assert server.accepted == 3
    server.close()


def test_requests_to_one_origin_share_one_keep_alive_connection():
    def answer_all(conn: socket.socket) -> None:
        while read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        conn.close()

    server = RawServer(answer_all)
    connections = Connections()
    for _ in range(5):
        assert post(connections, f"http://127.0.0.1:{server.port}/hook").status == 200
    assert server.accepted == 1
    connections.close()
    server.close()
