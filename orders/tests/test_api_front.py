"""The ASGI front answers single orders exactly as the partner API's DRF view does.

Under uvicorn, POST /api/v1/orders/ is served by orders.api.front in the event loop; under
WSGI (tests, make demo) by the DRF view. Every request below goes both ways, with the
same state before it, and the answers must match: status, code, message, details, headers
that matter, and for an admission the order's shape. Then what only the front does:
refusing at the door when it cannot answer in time, and handing the rest to Django.
"""

import asyncio
import concurrent.futures
import time

import orjson
import pytest
from django.core.wsgi import get_wsgi_application
from rest_framework.test import APIClient

from orders.api.front import AdmissionFront, Pace
from orders.models import Order
from orders.tests.api_support import ORDERS, order_body, partner_caller
from stores.models import PartnerAPIKey

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

_app: AdmissionFront | None = None


def front() -> AdmissionFront:
    global _app
    if _app is None:
        _app = AdmissionFront(get_wsgi_application())
    return _app


def via_front(
    path: str, body: bytes, headers: dict[str, str], method: str = "POST"
) -> tuple[int, dict, bytes]:
    """One request through the ASGI app: (status, headers, body)."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "headers": [(b"host", b"testserver")]
        + [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
    sent: list[dict] = []
    delivered = False

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    # A loop of its own, in a thread: a browser test in this process may hold this one's.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, front()(scope, receive, send)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, payload


def via_drf(body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    response = APIClient().post(ORDERS, data=body, content_type="application/json", **extra)
    return response.status_code, {k.lower(): v for k, v in response.items()}, response.content


def same_answer(front_answer, drf_answer) -> None:
    (fs, fh, fb), (ds, dh, db) = front_answer, drf_answer
    assert fs == ds, (fb, db)
    f, d = orjson.loads(fb), orjson.loads(db)
    if "error" in d:
        # A refusal that names an order names each path's own (two customers' orders).
        f_ref = f["error"].get("details", {}).pop("reference", None)
        d_ref = d["error"].get("details", {}).pop("reference", None)
        assert (f_ref is None) == (d_ref is None)
        assert f == d
    else:  # two orders of two customers: the same shape, fields and state
        assert set(f) == set(d)
        for field in ("launch", "sku", "fulfilment", "store", "channel", "status"):
            assert f[field] == d[field], field
        # Both wait in one pool, one behind the other: each is told its own place.
        assert {f["queue_position"], d["queue_position"]} <= set(range(1, 50))
    for name in ("retry-after", "www-authenticate", "content-type"):
        assert fh.get(name) == dh.get(name), name


def body(account: str, **fields) -> bytes:
    return orjson.dumps(order_body(account, **fields))


def test_every_answer_of_the_front_is_the_drf_views_answer(launch_with_stock):
    launch_with_stock(online_units=0, customers=20)
    caller = partner_caller()
    supplier = partner_caller(code="apple-supply", scope=PartnerAPIKey.Scope.DELIVERIES)
    auth = {"Authorization": f"Api-Key {caller.key}"}
    # The DRF view gets odd customers, the front even ones: the same story, side by side.
    cases = [
        ({}, lambda n: body(f"D{n:07d}")),
        ({"Authorization": "Api-Key nope.nope"}, lambda n: body(f"D{n:07d}")),
        ({"Authorization": f"Api-Key {supplier.key}"}, lambda n: body(f"D{n:07d}")),
        (auth, lambda n: b""),
        (auth, lambda n: b"[1, 2]"),
        (auth, lambda n: b'{"launch": '),
        ({**auth, "Idempotency-Key": "x" * 256}, lambda n: body(f"D{n:07d}")),
        (auth, lambda n: orjson.dumps({"launch": "iphone-3g"})),
        (auth, lambda n: body(f"D{n:07d}", sku="IP3G-64GB-GOLD")),
        (auth, lambda n: body(f"N{n:07d}")),
        (auth, lambda n: body(f"D{n + 10:07d}", postcode="ZZ9 9ZZ")),  # a wrong postcode
        (auth, lambda n: body(f"D{n:07d}", fulfilment="collect", store="S999")),
        (auth, lambda n: body(f"D{n:07d}")),  # admitted
        (auth, lambda n: body(f"D{n:07d}")),  # the same customer again: already ordered
        ({**auth, "Idempotency-Key": "k-{n}"}, lambda n: body(f"D{n + 2:07d}")),  # admitted with a key
        ({**auth, "Idempotency-Key": "k-{n}"}, lambda n: body(f"D{n + 2:07d}")),  # replayed
        ({**auth, "Idempotency-Key": "k-{n}"}, lambda n: body(f"D{n + 4:07d}")),  # the key, another body
    ]
    for headers, make in cases:
        drf_headers = {k: v.format(n=1) for k, v in headers.items()}
        front_headers = {k: v.format(n=2) for k, v in headers.items()}
        same_answer(via_front(ORDERS, make(2), front_headers), via_drf(make(1), drf_headers))
    # Replays name the first answer's order, on both paths.
    assert Order.objects.filter(idempotency_key="k-1").count() == 1
    assert Order.objects.filter(idempotency_key="k-2").count() == 1


def test_throttled_requests_get_429_with_retry_after_on_both_paths(launch_with_stock, settings):
    launch_with_stock(online_units=0, customers=6)
    # Windows are fixed (a day here): three requests across midnight would all pass, rightly.
    settings.API_THROTTLE_RATE = "2/day"
    first, second = partner_caller(code="p1"), partner_caller(code="p2")
    for caller, send in ((first, lambda b, h: via_drf(b, h)), (second, lambda b, h: via_front(ORDERS, b, h))):
        headers = {"Authorization": f"Api-Key {caller.key}"}
        day = int(time.time() // 86400)
        answers = [send(body(f"D{n:07d}"), headers)[0] for n in range(1, 4)]
        if int(time.time() // 86400) != day:
            continue
        assert answers[2] == 429, answers
        status, response_headers, payload = send(body("D0000004"), headers)
        assert status == 429 and int(response_headers["retry-after"]) >= 1
        assert orjson.loads(payload)["error"]["code"] == "throttled"


def test_the_door_refuses_at_once_when_the_process_could_not_answer_in_time(launch_with_stock, settings):
    launch_with_stock(online_units=0, customers=2)
    caller = partner_caller()
    app = front()
    settings.ADMISSION_MIN_IN_FLIGHT = 1
    app.in_flight = 1  # one admission already in hand...
    measured, app.pace = app.pace, Pace()  # ...and no pace measured beyond it (earlier tests ran here)
    try:
        status, headers, payload = via_front(
            ORDERS, body("D0000001"), {"Authorization": f"Api-Key {caller.key}"}
        )
    finally:
        app.in_flight = 0
        app.pace = measured
    assert status == 503 and headers["retry-after"] == str(settings.ADMISSION_RETRY_AFTER_SECONDS)
    assert orjson.loads(payload)["error"]["code"] == "overloaded"
    app.lag.lag = 10.0  # the event loop is seconds behind: whoever waits that long is refused
    try:
        status, _, _ = via_front(ORDERS, body("D0000001"), {"Authorization": f"Api-Key {caller.key}"})
    finally:
        app.lag.lag = 0.0
    assert status == 503
    assert not Order.objects.exists()
    status, _, _ = via_front(ORDERS, body("D0000001"), {"Authorization": f"Api-Key {caller.key}"})
    assert status == 202


def test_everything_else_is_served_by_django(launch_with_stock):
    launch_with_stock(online_units=3, customers=1)
    caller = partner_caller()
    status, _, payload = via_front(
        "/api/v1/launches/iphone-3g/availability",
        b"",
        {"Authorization": f"Api-Key {caller.key}"},
        method="GET",
    )
    assert status == 200 and orjson.loads(payload)["skus"][0]["online_available"] == 3
    status, _, payload = via_front(
        "/api/v1/orders/bulk",
        orjson.dumps({"orders": [orjson.loads(body("D0000001"))]}),
        {"Authorization": f"Api-Key {caller.key}", "Content-Type": "application/json"},
    )
    assert status == 200, payload
    assert orjson.loads(payload)["results"][0]["status"] == 202


def test_a_body_over_the_servers_limit_is_refused_in_the_envelope(settings, db):
    """Bodies for Django are read whole by the front first; one over the limit is refused
    there, as an envelope the partner's client can parse, never a bare status."""
    settings.WEB_MAX_BODY_BYTES = 1000
    status, headers, body = via_front(
        "/api/v1/deliveries/", b"x" * 1001, {"Authorization": "Api-Key nope", "Content-Type": "text/csv"}
    )
    assert status == 413 and headers["content-type"] == "application/json"
    assert orjson.loads(body)["error"]["code"] == "payload_too_large"


def test_a_body_still_arriving_is_not_counted_in_flight(settings, db):
    """A client trickling its body costs a coroutine; counting it as an admission in hand
    made the door refuse ready orders beside a hundred slow bodies (503s in make bench)."""
    settings.ADMISSION_MIN_IN_FLIGHT = 1
    app = front()
    seen: list[int] = []

    async def scenario() -> None:
        never = asyncio.Event()

        async def receive():
            await never.wait()  # the body never comes
            return {"type": "http.disconnect"}

        async def send(message):
            pass

        scope = {"type": "http", "method": "POST", "path": ORDERS, "raw_path": ORDERS.encode(),
                 "query_string": b"", "headers": [(b"host", b"testserver")], "http_version": "1.1"}  # fmt: skip
        slow = [asyncio.create_task(app.admit(scope, receive, send)) for _ in range(5)]
        await asyncio.sleep(0.05)
        seen.append(app.in_flight)
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
    assert seen == [0] and app.door() is None
