"""The overview and the demand report share one count of the launch's orders: each of
their figures is still what a count of its own orders says, and beat's recount counts the
orders once for both."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import UpgradeRegistration
from customers.tests.factories import CustomerFactory
from inventory.models import Location
from inventory.services import location_for_store, location_online_pool
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order
from orders.selectors import launches
from orders.selectors.demand import SERVED, WAITING, demand_vs_supply
from orders.selectors.launch_counts import LaunchCounts, launch_counts
from orders.selectors.store_page import COLLECT_WAITING_STATUSES
from stores.tests.factories import StoreFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def launch():
    """Orders in every status over two SKUs, home delivery and two stores; registrations
    with and without an order, at a store and for delivery."""
    black, white = SKUFactory(code="IP3G-8GB-BLACK"), SKUFactory(code="IP3G-16GB-WHITE")
    launch = LaunchFactory(slug="iphone-3g", skus=[black, white])
    online = location_online_pool()
    stores = [StoreFactory(code="S001"), StoreFactory(code="S002")]
    routes = itertools.cycle(itertools.product([black, white], [None, *stores], Order.Status.values))
    orders = []
    for n in range(75):
        sku, store, status = next(routes)
        customer = CustomerFactory()
        orders.append(
            Order(
                reference=f"C{n:05d}X",
                launch=launch,
                customer=customer,
                sku=sku,
                channel=Order.Channel.ONLINE,
                fulfilment="collect" if store else "delivery",
                store=store,
                pool=location_for_store(store=store) if store else online,
                status=status,
            )
        )
        if n % 3:
            UpgradeRegistration.objects.create(
                customer=customer, launch=launch, preferred_sku=sku, preferred_store=store
            )
    Order.objects.bulk_create(orders)
    for n in range(4):
        UpgradeRegistration.objects.create(
            customer=CustomerFactory(), launch=launch, preferred_sku=black, preferred_store=stores[n % 2]
        )
    return launch


def test_the_overviews_figures_are_each_a_count_of_their_own_orders(launch):
    overview = launches.launch_overview(launch=launch)

    for line in overview.sku_lines:
        for status, n in line.orders_by_status.items():
            assert n == Order.objects.filter(launch=launch, sku=line.sku, status=status).count()
    for status, n in overview.totals_by_status.items():
        assert n == Order.objects.filter(launch=launch, status=status).count()
    waiting_at_stores = 0
    for line in overview.store_lines:
        waiting = Order.objects.filter(
            launch=launch, store=line.store, fulfilment="collect", status__in=COLLECT_WAITING_STATUSES
        ).count()
        assert line.collect_waiting == waiting
        waiting_at_stores += waiting
    assert waiting_at_stores > 0
    assert overview.registrations_total == UpgradeRegistration.objects.filter(launch=launch).count()


def test_the_demand_reports_orders_per_pool_are_each_a_count_of_their_own(launch):
    rows, _ = demand_vs_supply(launch=launch)

    checked = 0
    for row in rows:
        mine = Order.objects.filter(launch=launch, pool_id=row.location_id, sku_id=row.sku_id)
        assert row.ordered == mine.exclude(status=Order.Status.CANCELLED).count()
        assert row.allocated == mine.filter(status__in=SERVED).count()
        assert row.waiting == mine.filter(status__in=WAITING).count()
        checked += row.ordered > 0
    assert checked == 6  # two SKUs at three pools


def test_the_demand_reports_registrations_count_at_their_preferred_pool(launch):
    rows, _ = demand_vs_supply(launch=launch)

    for row in rows:
        location = Location.objects.get(pk=row.location_id)
        mine = UpgradeRegistration.objects.filter(
            launch=launch, preferred_sku_id=row.sku_id, preferred_store=location.store
        )
        assert row.registered == mine.count() > 0
        without_order = mine.exclude(customer__orders__launch=launch).count()
        assert row.registered_without_order == without_order
    assert sum(row.registered_without_order for row in rows) == 4  # the four who never ordered


def test_beats_recount_counts_the_orders_once_for_both_snapshots(launch):
    with CaptureQueriesContext(connection) as ran:
        launches.office_snapshots_refresh()

    # Statements counting orders themselves (the demand report's registrations without an
    # order still look orders up, as a subquery: "orders_order" U0).
    order_counts = [q["sql"] for q in ran.captured_queries if 'FROM "orders_order" WHERE' in q["sql"]]
    assert len(order_counts) == 1, order_counts


@pytest.fixture
def early_launch():
    """A launch's first minutes: twenty registrations and five orders, from three of the
    registered customers (one ordered twice, one cancelled) and one who never registered."""
    black, white = SKUFactory(code="IP3G-8GB-BLACK"), SKUFactory(code="IP3G-16GB-WHITE")
    launch = LaunchFactory(slug="iphone-3g-early", skus=[black, white])
    store = StoreFactory(code="S001")
    location_for_store(store=store)  # its pool, where its registrations count
    registered = []
    for n in range(20):
        customer = CustomerFactory()
        where = None if n % 3 == 0 else store
        UpgradeRegistration.objects.create(
            customer=customer, launch=launch, preferred_sku=(black, white)[n % 2], preferred_store=where
        )
        registered.append(customer)
    ordering = [
        (registered[0], 1, Order.Status.ALLOCATED),
        (registered[1], 1, Order.Status.WAITLISTED),
        (registered[1], 2, Order.Status.QUEUED),
        (registered[2], 1, Order.Status.CANCELLED),
        (CustomerFactory(), 1, Order.Status.QUEUED),
    ]
    Order.objects.bulk_create(
        Order(
            reference=f"E{n:05d}X",
            launch=launch,
            customer=customer,
            slot=slot,
            sku=black,
            channel=Order.Channel.ONLINE,
            fulfilment="delivery",
            pool=location_online_pool(),
            status=status,
        )
        for n, (customer, slot, status) in enumerate(ordering)
    )
    return launch


# Early on, the registrations with an order are the fewer and are the ones counted; later,
# those without one.
@pytest.mark.parametrize(
    ("which", "without_order", "counts_those_without"), [("early_launch", 17, False), ("launch", 4, True)]
)
def test_registrations_without_an_order_are_counted_from_the_smaller_side_and_agree(
    which, without_order, counts_those_without, request
):
    launch = request.getfixturevalue(which)

    with CaptureQueriesContext(connection) as ran:
        rows, _ = demand_vs_supply(launch=launch)

    for row in rows:
        location = Location.objects.get(pk=row.location_id)
        mine = UpgradeRegistration.objects.filter(
            launch=launch, preferred_sku_id=row.sku_id, preferred_store=location.store
        )
        assert row.registered_without_order == mine.exclude(customer__orders__launch=launch).count()
    assert sum(row.registered_without_order for row in rows) == without_order
    looked_up = [q["sql"] for q in ran.captured_queries if '"orders_order" U0' in q["sql"]]
    assert len(looked_up) == 1, looked_up
    assert ("NOT (EXISTS" in looked_up[0]) == counts_those_without, looked_up


def test_a_registration_made_between_the_two_counts_never_takes_a_figure_below_zero(early_launch):
    """Registrations per preference are counted first, those with an order second: one
    made and ordered in between is in the second count only."""
    counts = launch_counts(launch_id=early_launch.pk)
    ordered = UpgradeRegistration.objects.filter(launch=early_launch, customer__orders__launch=early_launch)
    first = ordered.first()
    key = (first.preferred_store_id, first.preferred_sku_id)
    with_order = ordered.filter(preferred_store_id=key[0], preferred_sku_id=key[1]).distinct().count()
    # As the first count saw it: one of the registrations with an order not made yet.
    seen_first = LaunchCounts(
        orders=counts.orders, registrations={**counts.registrations, key: with_order - 1}
    )

    rows, _ = demand_vs_supply(launch=early_launch, counts=seen_first)

    pool = (
        location_for_store(store=first.preferred_store) if first.preferred_store else location_online_pool()
    )
    (row,) = [r for r in rows if (r.location_id, r.sku_id) == (pool.pk, key[1])]
    assert row.registered_without_order == 0
    assert all(r.registered_without_order >= 0 for r in rows)
