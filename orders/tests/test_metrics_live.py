"""/metrics from the real stack agrees with the database: two uvicorn workers and a Celery
worker count into their own files (PROMETHEUS_MULTIPROC_DIR) and one scrape adds them up,
so orders admitted equal the orders table's rows, each refusal (and each shed 503) is
counted under its reason, allocator batches add up to the orders settled, and emails sent
equal the outbox rows sent."""

import http.client
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orders.models import Order
from orders.tests.api_support import ORDERS, order_body, partner_caller

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def post(port: int, key: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request(
        "POST",
        ORDERS,
        body=body,
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json", "Host": "127.0.0.1"},
    )
    status = conn.getresponse().status
    conn.close()
    return status


def scrape(port: int, headers: dict | None = None) -> tuple[int, dict[tuple[str, tuple], float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", "/metrics", headers={"Host": "127.0.0.1", **(headers or {})})
    response = conn.getresponse()
    text = response.read().decode()
    samples = {}
    if response.status == 200:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.status, samples


def test_metrics_summed_over_two_workers_equal_the_database(launch_with_stock, live_front_factory, tmp_path):
    launch_with_stock(online_units=0, customers=80)
    caller = partner_caller()
    # The shedder's deadline far out of reach: this counts answers, and a stall of the
    # machine in a cold worker once shed one of them (shedding has its own test below).
    live = live_front_factory(
        workers=2,
        extra_env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "ADMISSION_DEADLINE_MS": "60000"},
    )
    bodies = (
        [orjson.dumps(order_body(f"D{n:07d}")) for n in range(1, 61)]  # 60 new orders
        + [orjson.dumps(order_body(f"D{n:07d}")) for n in range(1, 11)]  # 10 customers twice
        + [orjson.dumps(order_body("X9999999"))] * 7  # not registered for the launch
        + [b"{not json"] * 5
    )
    # Many connections at once, so both workers take a share.
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda body: post(live.port, caller.key, body), bodies))
    assert statuses.count(503) == 0, statuses

    status, samples = scrape(live.port)
    assert status == 200
    admitted = samples[("launchday_orders_admitted_total", (("path", "single"),))]
    assert admitted == Order.objects.count() == statuses.count(202) == 60

    refused = {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "launchday_orders_refused_total"
    }
    assert refused == {"already_ordered": 10, "not_eligible": 7, "invalid_json": 5}, refused
    # Read from the database at scrape: no worker runs the allocator here, so all wait.
    assert samples[("launchday_orders_queued", ())] == Order.objects.filter(status="queued").count() == 60
    assert samples[("launchday_allocator_lag_seconds", ())] > 0
    # Every eligible request waited in a group commit and went into a batch: the 60
    # admitted and the 10 repeats, which only the batch's INSERT finds already ordered.
    assert samples[("launchday_admission_queue_seconds_count", ())] == 70
    assert samples[("launchday_batch_size_sum", (("stage", "admission"),))] == 70
    # Both workers counted: each wrote its own file.
    assert len({p.name for p in tmp_path.glob("counter_*.db")}) == 2, list(tmp_path.iterdir())


def test_metrics_answer_loopback_or_the_bearer_token_only(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert (
        client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    )
    allowed = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert allowed.status_code == 200
    assert b"launchday_outbox_depth" in allowed.content


def test_refusals_of_the_django_view_are_counted_by_reason(client, launch_with_stock):
    """The same endpoint under WSGI (tests, make demo) counts as the front does."""
    from prometheus_client import REGISTRY

    def counted() -> tuple[float, float]:
        return (
            REGISTRY.get_sample_value("launchday_orders_admitted_total", {"path": "single"}) or 0,
            REGISTRY.get_sample_value("launchday_orders_refused_total", {"reason": "already_ordered"}) or 0,
        )

    launch_with_stock(online_units=0, customers=3)
    caller = partner_caller()
    before = counted()
    headers = {"HTTP_AUTHORIZATION": f"Api-Key {caller.key}"}
    for _ in range(2):
        client.post(ORDERS, orjson.dumps(order_body("D0000001")), content_type="application/json", **headers)
    after = counted()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_sheds_under_overload_are_counted_by_reason_and_admissions_still_equal_the_rows(
    launch_with_stock, live_front_factory, tmp_path
):
    """A front told to answer within 1 ms sheds much of a burst: every 503 is counted under
    why it shed, and the admitted count still equals the rows written."""
    launch_with_stock(online_units=0, customers=400)
    caller = partner_caller()
    live = live_front_factory(
        workers=2,
        extra_env={
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            "ADMISSION_DEADLINE_MS": "1",
            "ADMISSION_MIN_IN_FLIGHT": "2",
        },
    )
    bodies = [orjson.dumps(order_body(f"D{n:07d}")) for n in range(1, 401)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(lambda body: post(live.port, caller.key, body), bodies))
    assert set(statuses) <= {202, 503}, set(statuses)
    assert statuses.count(503) > 0  # the burst was shed in part, as intended

    _, samples = scrape(live.port)
    assert samples[("launchday_orders_admitted_total", (("path", "single"),))] == Order.objects.count()
    assert Order.objects.count() == statuses.count(202)
    shed = {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "launchday_orders_refused_total"
    }
    assert set(shed) <= {"too_many_in_flight", "queued_too_long"}, shed
    assert sum(shed.values()) == statuses.count(503)


def test_one_scrape_adds_the_web_workers_and_the_celery_worker_and_agrees_with_the_tables(
    launch_with_stock, live_front_factory, celery_worker_factory, tmp_path
):
    """The morning's whole path: two web workers admit, a Celery worker allocates and sends
    the emails, all counting into one directory; one scrape agrees with every table."""
    from celery import current_app

    from customers.models import Message
    from orders.services.allocation import ALLOCATE_TASK

    launch, *_ = launch_with_stock(online_units=30, customers=60)
    caller = partner_caller()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    celery_worker_factory(concurrency=2, extra_env=env)
    live = live_front_factory(workers=2, extra_env=env)
    bodies = [orjson.dumps(order_body(f"D{n:07d}")) for n in range(1, 61)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(lambda body: post(live.port, caller.key, body), bodies)) == {202}
    # Beat is not running: a last nudge settles orders that came after the last one.
    current_app.send_task(ALLOCATE_TASK, args=[launch.pk])

    deadline = time.monotonic() + 60
    while (
        Order.objects.filter(status="queued").exists()
        or Message.objects.filter(status__in=["pending", "sending"]).exists()
    ):
        assert time.monotonic() < deadline, "the worker did not settle the orders and send their mail"
        time.sleep(0.2)

    _, samples = scrape(live.port)
    assert samples[("launchday_orders_admitted_total", (("path", "single"),))] == Order.objects.count() == 60
    allocated = samples[("launchday_batch_size_sum", (("stage", "allocation"),))]
    assert allocated == Order.objects.filter(status__in=["allocated", "waitlisted"]).count() == 60
    assert samples[("launchday_allocator_batch_seconds_count", ())] >= 1
    assert samples[("launchday_orders_queued", ())] == 0
    assert samples[("launchday_allocator_lag_seconds", ())] == 0
    sent = samples[("launchday_emails_total", (("outcome", "sent"),))]
    assert sent == Message.objects.filter(status="sent").count() > 0
    assert samples[("launchday_outbox_depth", ())] == 0
