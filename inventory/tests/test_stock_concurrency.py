"""Real threads on PostgreSQL: walk-in sales, allocations and an intake on the same store
and SKU never take stock negative, never sell a unit twice, and leave zero drift."""

import threading
import time

import pytest
from django.conf import settings
from django.db import connection

from inventory.models import Stock, StockMovement
from inventory.services import (
    InsufficientStock,
    StockChange,
    location_for_store,
    stock_apply,
    stock_receive,
    stock_reconcile,
)
from inventory.tests.world import add_orders, make_launch, make_stores
from orders.models import Order, Ticket
from orders.services.allocation import launch_allocate
from orders.services.intake import delivery_intake, store_delivery_confirm
from orders.services.walkin import SoldOut, ticket_issue, ticket_serve_next

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.USING_POSTGRES, reason="concurrency needs PostgreSQL"),
]


def run_threads(targets) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(fn):
        def run():
            try:
                barrier.wait()
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_racing_sales_and_reservations_on_one_row_never_oversell():
    launch, (sku,) = make_launch()
    (store,) = make_stores(1)
    stock_receive(location=store, sku=sku, quantity=50, reference="seed")
    outcomes = {"sold": 0, "reserved": 0, "refused": 0}
    lock = threading.Lock()

    def worker(kind: str):
        def run():
            for _ in range(15):
                change = (
                    StockChange(location=store, sku=sku, kind=StockMovement.Kind.SALE, on_hand_delta=-1)
                    if kind == "sold"
                    else StockChange(
                        location=store, sku=sku, kind=StockMovement.Kind.ALLOCATION, reserved_delta=1
                    )
                )
                try:
                    stock_apply(changes=[change])
                    with lock:
                        outcomes[kind] += 1
                except InsufficientStock:
                    with lock:
                        outcomes["refused"] += 1

        return run

    errors = run_threads(
        [worker("sold"), worker("sold"), worker("sold"), worker("reserved"), worker("reserved")]
    )
    assert errors == []
    stock = Stock.objects.get(location=store, sku=sku)
    assert outcomes["sold"] + outcomes["reserved"] == 50  # 75 attempts for 50 units
    assert outcomes["refused"] == 25
    assert (stock.on_hand, stock.reserved) == (50 - outcomes["sold"], outcomes["reserved"])
    assert stock_reconcile() == []


def test_walk_ins_allocator_and_intake_at_once_on_one_store_and_sku():
    launch, (sku,) = make_launch(auto_apply=True)
    (store_location,) = make_stores(1)
    store = store_location.store
    stock_receive(location=store_location, sku=sku, quantity=12, reference="opening stock")
    collect = add_orders(launch=launch, sku=sku, pool=store_location, count=20)
    for _ in range(25):
        ticket_issue(launch=launch, store=store)
    from inventory.manifests import manifest_parse
    from inventory.services import delivery_announce

    delivery, _ = delivery_announce(
        manifest=manifest_parse(
            content=f"reference,expected_on,sku,quantity\nDLV-RACE,2008-07-18,{sku.code},30\n".encode()
        ),
        source="test",
    )
    stop = threading.Event()
    refused = []

    def walk_in():
        while not stop.is_set():
            try:
                if ticket_serve_next(launch=launch, store=store, sku=sku) is None:
                    return
            except SoldOut:
                refused.append(1)
                time.sleep(0.005)

    def allocator():
        while not stop.is_set():
            launch_allocate(launch_id=launch.pk)
            time.sleep(0.002)

    def intake():
        delivery_intake(delivery_id=delivery.pk)
        sent = Stock.objects.get(location=store_location, sku=sku).in_transit
        store_delivery_confirm(
            delivery_id=delivery.pk, location=location_for_store(store=store), received={sku.pk: sent}
        )
        time.sleep(0.5)
        stop.set()

    errors = run_threads([walk_in, walk_in, allocator, intake])
    stop.set()
    assert errors == []
    launch_allocate(launch_id=launch.pk)
    stock = Stock.objects.get(location=store_location, sku=sku)
    received = 12 + sum(
        StockMovement.objects.filter(
            location=store_location, kind=StockMovement.Kind.STORE_RECEIPT
        ).values_list("on_hand_delta", flat=True)
    )
    sold = Ticket.objects.filter(store=store, status=Ticket.Status.SERVED).count()
    allocated = Order.objects.filter(pk__in=[o.pk for o in collect], status=Order.Status.ALLOCATED).count()
    assert stock.on_hand >= 0 and 0 <= stock.reserved <= stock.on_hand and stock.in_transit == 0
    assert sold == StockMovement.objects.filter(location=store_location, kind=StockMovement.Kind.SALE).count()
    assert sold + allocated <= received  # never more handed out than arrived
    assert allocated == 20 and sold > 0  # every collect order served, and walk-ins bought the rest
    assert stock.on_hand == received - sold and stock.reserved == allocated
    # Collect orders are served in sequence order: no later order allocated while an earlier waits.
    statuses = list(
        Order.objects.filter(pool=store_location).order_by("sequence").values_list("status", flat=True)
    )
    assert statuses == sorted(statuses, key=lambda s: s != Order.Status.ALLOCATED)
    assert stock_reconcile() == []
