"""A request's id (X-Request-ID) is on its answer and follows it into the Celery tasks it
causes: the allocator run that a partner's bulk nudged logs, in a real worker, a JSON
line carrying the same request id and the launch. A single order written by group
commit's batch thread carries its own request's id too, whoever else is in the batch."""

import json
import logging
import threading
import time

import orjson
import pytest
from celery.signals import before_task_publish
from django.db import OperationalError, connection
from django.utils import timezone

from config.asyncrun import run_to_completion
from config.logcontext import TASK_HEADER, log_context_end, log_context_start
from orders.models import Order
from orders.services import group_commit as gc
from orders.services.admission import OrderRequest
from orders.services.allocation import ALLOCATE_TASK
from orders.services.bulk import candidate_check, candidates_admit
from orders.tests.api_support import BULK, ORDERS, order_body, partner_caller

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


def allocator_runs(worker, *, seconds: float = 30) -> list[dict]:
    deadline = time.monotonic() + seconds
    runs: list[dict] = []
    while time.monotonic() < deadline and not runs:
        runs = [r for r in json_lines(worker.log()) if str(r.get("message", "")).startswith("allocator run")]
        time.sleep(0.2)
    return runs


def test_the_request_id_follows_a_single_order_through_group_commit_into_the_allocator_run(
    client, launch_with_stock, celery_worker_factory, settings
):
    """One order through the partner API, written by group commit's batch thread: the
    allocator run it nudged logs the request's own id."""
    settings.ADMISSION_GROUP_COMMIT = True
    launch, *_ = launch_with_stock(online_units=5, customers=1)
    caller = partner_caller()
    worker = celery_worker_factory()
    response = client.post(
        ORDERS,
        orjson.dumps(order_body("D0000001")),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {caller.key}",
        HTTP_X_REQUEST_ID="single-0800-7",
    )
    assert response.status_code == 202, response.content
    assert response["X-Request-ID"] == "single-0800-7"
    runs = allocator_runs(worker)
    assert runs, worker.log()[-3000:]
    assert runs[0]["request_id"] == "single-0800-7"
    assert runs[0]["launch"] == str(launch.pk)
    assert runs[0]["allocated"] == 1


@pytest.fixture
def published(celery_worker_factory):
    """The request id header of each allocator task sent, in order. Tasks are sent for
    real (the worker fixture turns eager Celery off and purges the queue after), but no
    worker is started: the header is what is looked at."""
    sent: list[str | None] = []

    def record(sender=None, headers=None, **kwargs):
        if sender == ALLOCATE_TASK:
            sent.append((headers or {}).get(TASK_HEADER))

    before_task_publish.connect(record, weak=False, dispatch_uid="test-request-id-published")
    yield sent
    before_task_publish.disconnect(dispatch_uid="test-request-id-published")


def in_request(request_id: str, work):
    """Run `work()` in a thread of its own, under a request id, as a web request would;
    its result (or exception)."""
    result: list = [None]

    def run() -> None:
        token = log_context_start(request_id)
        try:
            result[0] = work()
        except Exception as exc:  # kept for the assertion to show
            result[0] = exc
        finally:
            log_context_end(token)
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    return result[0]


def admit_grouped(account: str):
    return gc.order_admit_grouped(
        launch="iphone-3g", customer=account, sku="IP3G-8GB-BLACK", fulfilment="delivery", channel="partner"
    )


def test_a_single_order_written_by_the_batch_thread_sends_its_task_under_its_own_request_id(
    launch_with_stock, published
):
    launch_with_stock(online_units=5, customers=1)
    admitted = in_request("grouped-one-1", lambda: admit_grouped("D0000001"))
    assert isinstance(admitted, gc.GroupedAdmission), admitted
    assert published == ["grouped-one-1"]


def test_an_order_from_the_event_loop_sends_its_task_under_its_own_request_id(launch_with_stock, published):
    """The admission front's path: a coroutine awaits its batch (holding no thread); the
    flusher still works on its order under that coroutine's request id."""
    launch_with_stock(online_units=5, customers=1)

    async def request() -> gc.GroupedAdmission:
        token = log_context_start("front-1")
        try:
            return await gc.order_admit_grouped_async(
                launch="iphone-3g",
                customer="D0000001",
                sku="IP3G-8GB-BLACK",
                fulfilment="delivery",
                channel="partner",
            )
        finally:
            log_context_end(token)

    admitted = in_request("not-this-one", lambda: run_to_completion(request()))
    assert isinstance(admitted, gc.GroupedAdmission), admitted
    assert published == ["front-1"]


def test_a_batch_of_several_requests_nudges_under_the_first_of_them(launch_with_stock, published):
    """Three requests' orders written by one multi-row insert, in a thread with no request
    of its own (as the flusher is): the launch's one nudge carries the first one's id, as
    a coalesced nudge carries the first single order's."""
    launch_with_stock(online_units=5, customers=3)

    def candidate(index: int, account: str):
        request = OrderRequest(
            launch="iphone-3g", customer=account, sku="IP3G-8GB-BLACK", fulfilment="delivery"
        )
        c = candidate_check(
            request, channel=Order.Channel.PARTNER, partner_id=None, now=timezone.now(), index=index
        )
        c.customer_id = Order._meta.get_field("customer").related_model.objects.get(account_number=account).pk
        c.log_fields = {"request_id": f"batch-{account}"}
        return c

    candidates = [candidate(i, f"D{i + 1:07d}") for i in range(3)]
    outcomes: list = []
    thread = threading.Thread(
        target=lambda: (outcomes.extend(candidates_admit(candidates)), connection.close())
    )
    thread.start()
    thread.join(60)
    assert [o.order is not None for o in outcomes] == [True] * 3
    assert published == ["batch-D0000001"]


def test_a_batch_that_fails_logs_the_ids_of_its_requests(launch_with_stock, monkeypatch, caplog):
    """The batch's own failure line belongs to no one request: it lists the ids of all."""
    launch_with_stock(online_units=1, customers=1)

    def database_away(candidates):
        raise OperationalError("the database went away")

    monkeypatch.setattr(gc, "candidates_admit", database_away)
    with caplog.at_level(logging.WARNING, logger=gc.logger.name):
        failed = in_request("doomed-1", lambda: admit_grouped("D0000001"))
    assert isinstance(failed, gc.BatchFailed)
    [line] = [r for r in caplog.records if r.getMessage().startswith("group commit of 1 orders failed")]
    assert line.request_ids == ["doomed-1"]


def test_a_request_without_an_id_gets_a_new_one_and_a_forged_one_is_replaced(client):
    fresh = client.get("/healthz")
    assert len(fresh["X-Request-ID"]) == 32
    forged = client.get("/healthz", HTTP_X_REQUEST_ID='x"\n{"level": "CRITICAL"}')
    assert forged["X-Request-ID"] != 'x"\n{"level": "CRITICAL"}'
    assert len(forged["X-Request-ID"]) == 32
