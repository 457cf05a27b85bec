"""Many clients racing for fewer units than they want, on real PostgreSQL."""

import threading

import pytest
from django.db import connection

from orders.models import Order
from orders.services.admission import AdmissionRefused, order_admit
from orders.services.allocation import launch_allocate
from orders.tests.invariants import fcfs_violations, oversold, position_gaps

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def race(workers: int, work) -> list[BaseException]:
    """Run work(i) in `workers` threads released together; return what they raised."""
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_racing_admissions_and_allocators_allocate_exactly_the_units_in_sequence_order(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=10, store_units=4, customers=64)
    per_thread = 8

    def work(i: int) -> None:
        for n in range(per_thread):
            number = i * per_thread + n + 1
            collect = number % 3 == 0
            # Eager Celery runs the allocator inline after each commit, so admissions and
            # allocator runs interleave across the threads.
            order_admit(
                launch="iphone-3g",
                customer=f"D{number:07d}",
                sku="IP3G-8GB-BLACK",
                fulfilment="collect" if collect else "delivery",
                store="S001" if collect else None,
                channel=Order.Channel.ONLINE,
            )

    assert race(8, work) == []
    launch_allocate(launch_id=launch.pk)

    assert Order.objects.count() == 64
    delivery_allocated = Order.objects.filter(status="allocated", fulfilment="delivery").count()
    collect_allocated = Order.objects.filter(status="allocated", fulfilment="collect").count()
    assert (delivery_allocated, collect_allocated) == (10, 4)
    assert Order.objects.filter(status="waitlisted").count() == 50
    assert fcfs_violations(launch_id=launch.pk) == []
    assert oversold(launch_id=launch.pk) == []
    assert position_gaps(launch_id=launch.pk) == []


def test_one_customer_racing_themselves_gets_one_order(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5, customers=1)
    outcomes: list[str] = []

    def work(i: int) -> None:
        try:
            order_admit(
                launch="iphone-3g",
                customer="D0000001",
                sku="IP3G-8GB-BLACK",
                fulfilment="delivery",
                channel=Order.Channel.PARTNER if i % 2 else Order.Channel.ONLINE,
            )
            outcomes.append("admitted")
        except AdmissionRefused as refused:
            outcomes.append(refused.code)

    assert race(10, work) == []
    assert sorted(outcomes) == ["admitted"] + ["already_ordered"] * 9
    assert Order.objects.count() == 1


def test_concurrent_allocator_runs_serve_each_unit_once(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=25, customers=60)
    for number in range(1, 61):
        Order.objects.create(
            reference=f"LDTEST{number:04d}",
            launch=launch,
            customer_id=number and _customer_id(number),
            sku=launch.skus.get(),
            channel="online",
            fulfilment="delivery",
            pool_id=_online_pool_id(),
        )
    assert race(6, lambda i: launch_allocate(launch_id=launch.pk, batch_size=7)) == []
    assert Order.objects.filter(status="allocated").count() == 25
    assert fcfs_violations(launch_id=launch.pk) == []
    assert oversold(launch_id=launch.pk) == []
    assert position_gaps(launch_id=launch.pk) == []


def _customer_id(number: int) -> int:
    from customers.models import Customer

    return Customer.objects.get(account_number=f"D{number:07d}").pk


def _online_pool_id() -> int:
    from inventory.services import location_online_pool

    return location_online_pool().pk
