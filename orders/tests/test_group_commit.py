"""Group commit: concurrent single orders written together, each answered from its own row.

Threads race on real PostgreSQL (transactional tests, so the flusher's own connection
sees the rows); the engine is also driven with hand-made batches to pin each row's fate.
"""

import threading

import pytest
from django.db import OperationalError, connection

from orders.codes import ErrorCode
from orders.models import Order
from orders.services import group_commit as gc
from orders.services.admission import AdmissionRefused, OrderRequest
from orders.services.bulk import candidate_check, candidates_admit
from orders.services.catalogue import catalogue_clear

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def admit(account: str, **extra):
    return gc.order_admit_grouped(
        launch="iphone-3g",
        customer=account,
        sku="IP3G-8GB-BLACK",
        fulfilment="delivery",
        channel=Order.Channel.PARTNER,
        **extra,
    )


def race(count: int, target) -> list:
    """`target(i)` from `count` threads released together; their results (or exceptions)."""
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = target(i)
        except Exception as exc:  # kept for the assertion to show
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_forty_concurrent_orders_share_batches_and_each_hears_its_own(launch_with_stock):
    launch_with_stock(online_units=0, customers=40)  # all wait: every place told is distinct
    stats = gc.group_commit().stats
    batches, rows = stats.batches, stats.rows
    results = race(40, lambda i: admit(f"D{i + 1:07d}"))
    assert all(isinstance(r, gc.GroupedAdmission) for r in results), results
    # Each answer is that customer's own order: its reference, its customer, its place.
    for i, result in enumerate(results):
        order = Order.objects.get(reference=result.order.reference)
        assert order.customer.account_number == f"D{i + 1:07d}" == result.order.customer
    assert len({r.order.reference for r in results}) == 40
    positions = sorted(r.order.queue_position for r in results)
    assert positions == list(range(1, 41))  # one pool, nothing to allocate: 1..40, none told twice
    assert stats.rows - rows == 40
    assert stats.batches - batches < 40  # requests that arrived together went together


def test_one_bad_row_never_fails_its_neighbours(launch_with_stock):
    """A batch holding a fresh order, a replay, a conflicting key, a customer who already
    ordered and a second order of the same customer: each gets its own answer."""
    launch_with_stock(online_units=10, customers=6)
    first = admit("D0000001", idempotency_key="k1", idempotency_scope="partner:1")
    admit("D0000002")
    catalogue_clear()

    def candidate(index: int, account: str, sku: str = "IP3G-8GB-BLACK", key: str | None = None):
        request = OrderRequest(launch="iphone-3g", customer=account, sku=sku, fulfilment="delivery")
        c = candidate_check(
            request, channel=Order.Channel.PARTNER, partner_id=None, now=first.order.created_at, index=index
        )
        c.customer_id = (
            Order.objects.model._meta.get_field("customer")
            .related_model.objects.get(account_number=account)
            .pk
        )
        c.idempotency_scope, c.idempotency_key = ("partner:1", key) if key else ("", None)
        return c

    outcomes = candidates_admit(
        [
            candidate(0, "D0000003"),  # fresh
            candidate(1, "D0000001", key="k1"),  # the same request again: a replay
            candidate(2, "D0000004", key="k1"),  # the same key, another body: a conflict
            candidate(3, "D0000002"),  # already ordered (in an earlier batch)
            candidate(4, "D0000005"),  # fresh
            candidate(5, "D0000005"),  # the same customer twice in one batch
        ]
    )
    assert [o.index for o in outcomes] == list(range(6))
    assert outcomes[0].order is not None and outcomes[4].order is not None
    assert outcomes[1].replayed and outcomes[1].order.reference == first.order.reference
    assert outcomes[2].refusal.code == ErrorCode.IDEMPOTENCY_CONFLICT
    assert outcomes[3].refusal.code == ErrorCode.ALREADY_ORDERED
    assert outcomes[5].refusal.code == ErrorCode.ALREADY_ORDERED
    assert outcomes[5].refusal.details["reference"] == outcomes[4].order.reference
    assert Order.objects.count() == 4


def test_a_batch_that_cannot_be_written_tells_its_requests_and_the_next_one_works(
    launch_with_stock, monkeypatch
):
    launch_with_stock(online_units=10, customers=4)
    real = gc.candidates_admit

    def database_away(candidates):
        raise OperationalError("the database went away")

    monkeypatch.setattr(gc, "candidates_admit", database_away)
    with pytest.raises(gc.BatchFailed):
        admit("D0000001")
    assert not Order.objects.exists()
    monkeypatch.setattr(gc, "candidates_admit", real)
    assert admit("D0000001").order.reference == Order.objects.get().reference


def test_refusals_are_order_admits_own(launch_with_stock):
    launch_with_stock(online_units=1, customers=2)
    with pytest.raises(AdmissionRefused) as refused:
        admit("N0000001")
    assert refused.value.code == ErrorCode.NOT_ELIGIBLE
    with pytest.raises(AdmissionRefused) as refused:
        gc.order_admit_grouped(
            launch="iphone-3g", customer="D0000001", sku="NOPE", fulfilment="delivery", channel="partner"
        )
    assert refused.value.code == ErrorCode.UNKNOWN_SKU
    assert not Order.objects.exists()


def test_the_pace_can_be_read_while_the_flusher_adds_to_it():
    """The event loop reads the flusher's pace while the flusher thread adds batches: the
    read must never fail (it raised "deque mutated during iteration": a 500 under load)
    and must be the pace of the last batches."""
    from orders.services.group_commit import FlushStats

    stats = FlushStats()
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                stats.rows_per_second()
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                failures.append(exc)
                return

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    for n in range(200_000):
        stats.add(n % 7 + 1, 0.001)
    stop.set()
    for thread in readers:
        thread.join()
    assert failures == []
    last = list(stats.recent)
    assert stats.rows_per_second() == pytest.approx(sum(s for s, _ in last) / sum(t for _, t in last))
