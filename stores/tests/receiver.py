"""A real webhook receiver on loopback for the tests: a threaded HTTP/1.1 server with
keep-alive that records every request and answers as a test scripts it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import standardwebhooks


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> dict:
        """The payload, if `secret` verifies it (partners' own library); raises otherwise."""
        return standardwebhooks.Webhook(secret).verify(self.body, self.headers)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False  # never answer (until the receiver stops)
    delay: float = 0.0


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.scripts: dict[str, list[Answer]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without this, Nagle holds the body
            # for the client's delayed ACK (40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                path = self.path
                with receiver.lock:
                    receiver.requests.append(
                        Request(path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                    )
                    script = receiver.scripts.get(path)
                    answer = (
                        script.pop(0) if script and len(script) > 1 else (script[0] if script else Answer())
                    )
                    receiver.in_flight[path] = receiver.in_flight.get(path, 0) + 1
                    receiver.max_in_flight[path] = max(
                        receiver.max_in_flight.get(path, 0), receiver.in_flight[path]
                    )
                try:
                    if answer.hang:
                        receiver.stopping.wait(120)
                        return
                    if answer.delay:
                        time.sleep(answer.delay)
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                finally:
                    with receiver.lock:
                        receiver.in_flight[path] -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def script(self, path: str, *answers: Answer) -> None:
        """Answer the next requests to `path` in this order; the last one from then on."""
        with self.lock:
            self.scripts[path] = list(answers)

    def at(self, path: str = "/hook") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, n: int, timeout: float, path: str = "/hook") -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.at(path)) >= n:
                return True
            time.sleep(0.02)
        return len(self.at(path)) >= n
