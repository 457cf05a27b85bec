"""The admission front under a real uvicorn: what only a real server and real sockets show.

- A worker SIGKILLed while batches are in flight loses nothing: every order a client was
  told about (202) exists exactly once, and a client whose connection died gets the same
  order back when it retries with its Idempotency-Key.
- Slow or stalled request bodies hold no admitting worker: admissions beside a hundred of
  them are answered as fast as without.
- What the server refuses before Django sees it (a request line over the parser's
  limit, a byte HTTP forbids in a header) is still answered in the API's envelope.
"""

import http.client
import os
import signal
import socket
import threading
import time

import orjson
import pytest

from orders.models import Order
from orders.tests.api_support import ORDERS, order_body, partner_caller

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def post(port: int, key: str, account: str, idempotency_key: str | None = None, timeout: float = 10):
    """(status, reference or None); status -1 when the connection failed or died."""
    body = orjson.dumps(order_body(account))
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json", "Host": "127.0.0.1"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("POST", ORDERS, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
    except (OSError, http.client.HTTPException):
        return -1, None
    reference = orjson.loads(payload).get("reference") if response.status == 202 else None
    return response.status, reference


def test_a_worker_killed_mid_batch_loses_no_acknowledged_order(launch_with_stock, live_front_factory):
    launch_with_stock(online_units=0, customers=400)
    caller = partner_caller()
    live = live_front_factory(workers=2)
    told: dict[str, list[str]] = {}  # customer -> every reference a 202 named
    statuses: list[int] = []
    lock = threading.Lock()
    progress = threading.Semaphore(0)

    def client(first: int) -> None:
        for n in range(first, first + 25):
            account = f"D{n:07d}"
            for _attempt in range(50):
                status, reference = post(live.port, caller.key, account, idempotency_key=f"kill-{account}")
                with lock:
                    statuses.append(status)
                if status == 202:
                    with lock:
                        told.setdefault(account, []).append(reference)
                    # Half of the acknowledged orders are asked again, as a client unsure of
                    # its answer would: the same key must name the same order.
                    if n % 2 == 0:
                        again, reference = post(
                            live.port, caller.key, account, idempotency_key=f"kill-{account}"
                        )
                        if again == 202:
                            with lock:
                                told[account].append(reference)
                    break
                time.sleep(0.05)  # no answer, or a refusal: the same request again
            progress.release()

    threads = [threading.Thread(target=client, args=(1 + 25 * i,)) for i in range(16)]
    for t in threads:
        t.start()
    for _ in range(60):  # a seventh of the way in, with batches in flight
        progress.acquire(timeout=30)
    victim = live.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    for t in threads:
        t.join(120)

    assert len(told) == 400, (len(told), live.log()[-2000:])
    for account, references in told.items():
        assert len(set(references)) == 1, (account, references)
        order = Order.objects.get(reference=references[0])
        assert order.customer.account_number == account
    assert Order.objects.count() == 400  # nothing twice, nothing unannounced
    counts = {status: statuses.count(status) for status in set(statuses)}
    assert set(counts) <= {202, 503, -1}, counts  # never a 409 for a retried key, never a 5xx but 503
    assert victim not in live.worker_pids()  # the kill did land


def test_slow_bodies_hold_no_admitting_worker(launch_with_stock, live_front_factory):
    launch_with_stock(online_units=0, customers=60)
    caller = partner_caller()
    live = live_front_factory(workers=1)  # one worker: nothing else to fall back on

    def timed_orders(first: int) -> list[float]:
        times = []
        for n in range(first, first + 20):
            started = time.monotonic()
            status, _ = post(live.port, caller.key, f"D{n:07d}")
            assert status == 202
            times.append(time.monotonic() - started)
        return times

    before = timed_orders(1)
    stalled = []
    for _ in range(100):  # headers, a promised body, and then nothing
        sock = socket.create_connection(("127.0.0.1", live.port))
        sock.sendall(
            f"POST {ORDERS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {caller.key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        stalled.append(sock)
    try:
        beside = timed_orders(21)
        page = http.client.HTTPConnection("127.0.0.1", live.port, timeout=5)
        page.request("GET", "/api/v1/launches/", headers={"Authorization": f"Api-Key {caller.key}"})
        assert page.getresponse().status == 200  # Django's threads are free too
    finally:
        for sock in stalled:
            sock.close()
    assert max(beside) < 1.0, beside  # one worker, a hundred stalled bodies: no wait
    assert Order.objects.count() == 40
    assert sum(beside) < 5 * sum(before) + 1.0


def raw_answer(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /api/v1/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nIdempotency-Key: a\x7fb\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        b"GET /api/v1/orders/"
        + b"a" * 100_000
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    ],
    ids=["del-in-a-header", "request-line-of-100k"],
)
def test_what_the_server_refuses_itself_is_answered_in_the_envelope(live_front_factory, request_bytes):
    front = live_front_factory(workers=1)
    status, headers, body = raw_answer(front.port, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    error = orjson.loads(body)["error"]
    assert error["code"] == "validation_error" and error["message"]
    assert not Order.objects.exists()
