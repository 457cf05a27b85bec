"""A request's id (X-Request-ID) is on its answer and follows it into the Celery tasks it
causes: the allocator run that a partner's bulk nudged logs, in a real worker, a JSON
line carrying the same request id and the launch."""

import json
import time

import orjson
import pytest

from orders.tests.api_support import BULK, order_body, partner_caller

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            lines.append(record)
    return lines


def test_the_request_id_follows_a_bulk_into_the_allocator_run_it_nudged(
    client, launch_with_stock, celery_worker_factory
):
    launch, *_ = launch_with_stock(online_units=5, customers=3)
    caller = partner_caller()
    worker = celery_worker_factory()
    response = client.post(
        BULK,
        orjson.dumps({"orders": [order_body(f"D{n:07d}") for n in (1, 2, 3)]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {caller.key}",
        HTTP_X_REQUEST_ID="rehearsal-0800-42",
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "rehearsal-0800-42"

    deadline = time.monotonic() + 30
    runs: list[dict] = []
    while time.monotonic() < deadline and not runs:
        runs = [r for r in json_lines(worker.log()) if str(r.get("message", "")).startswith("allocator run")]
        time.sleep(0.2)
    assert runs, worker.log()[-3000:]
    run = runs[0]
    assert run["request_id"] == "rehearsal-0800-42"
    assert run["launch"] == str(launch.pk)
    assert run["allocated"] == 3
    assert {"time", "level", "logger"} <= set(run)


def test_a_request_without_an_id_gets_a_new_one_and_a_forged_one_is_replaced(client):
    fresh = client.get("/healthz")
    assert len(fresh["X-Request-ID"]) == 32
    forged = client.get("/healthz", HTTP_X_REQUEST_ID='x"\n{"level": "CRITICAL"}')
    assert forged["X-Request-ID"] != 'x"\n{"level": "CRITICAL"}'
    assert len(forged["X-Request-ID"]) == 32
