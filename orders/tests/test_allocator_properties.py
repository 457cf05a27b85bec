"""Property: any interleaving of admissions, allocator runs, stock arrivals and
cancellations keeps invariants 1 (first come, first served) and 2 (no oversell), and a
full allocator run leaves no order waiting while its pool has a free unit."""

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import Customer, UpgradeRegistration
from inventory.services import location_for_store, location_online_pool, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order
from orders.services.admission import AdmissionRefused, order_admit
from orders.services.allocation import launch_allocate
from orders.services.cancellation import order_cancel
from orders.services.catalogue import catalogue_clear
from orders.tests.invariants import fcfs_violations, oversold, position_gaps, starved_pools
from stores.tests.factories import StoreFactory

# Few customers and pools, so generated histories collide in the same pool often.
CUSTOMERS = 8
POOLS = [("IP3G-8GB-BLACK", None), ("IP3G-8GB-BLACK", "S001")]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(1, CUSTOMERS), st.integers(0, len(POOLS) - 1)),
        st.tuples(st.just("allocate"), st.integers(1, 4)),
        st.tuples(st.just("arrive"), st.integers(0, len(POOLS) - 1), st.integers(1, 3)),
        st.tuples(st.just("cancel"), st.integers(1, CUSTOMERS)),
    ),
    min_size=4,
    max_size=30,
)


@pytest.mark.django_db
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_any_interleaving_keeps_fcfs_and_no_oversell(ops):
    with transaction.atomic():
        catalogue_clear()
        skus = {code: SKUFactory(code=code) for code in ("IP3G-8GB-BLACK", "IP3G-16GB-WHITE")}
        launch = LaunchFactory(slug="prop", skus=list(skus.values()))
        store = StoreFactory(code="S001")
        locations = {None: location_online_pool(), "S001": location_for_store(store=store)}
        customers = Customer.objects.bulk_create(
            [
                Customer(account_number=f"P{n:07d}", name="P", email=f"p{n}@example.com", postcode="X")
                for n in range(1, CUSTOMERS + 1)
            ]
        )
        UpgradeRegistration.objects.bulk_create(
            [
                UpgradeRegistration(customer=c, launch=launch, preferred_sku=skus["IP3G-8GB-BLACK"])
                for c in customers
            ]
        )
        for op in ops:
            if op[0] == "admit":
                sku, store_code = POOLS[op[2]]
                try:
                    order_admit(
                        launch="prop",
                        customer=f"P{op[1]:07d}",
                        sku=sku,
                        fulfilment="collect" if store_code else "delivery",
                        store=store_code,
                        channel=Order.Channel.ONLINE,
                    )
                except AdmissionRefused as refused:
                    assert refused.code == "already_ordered"
            elif op[0] == "allocate":
                launch_allocate(launch_id=launch.pk, batch_size=op[1])
            elif op[0] == "arrive":
                sku, store_code = POOLS[op[1]]
                stock_receive(location=locations[store_code], sku=skus[sku], quantity=op[2], reference="prop")
            else:
                order = Order.objects.filter(launch=launch, customer__account_number=f"P{op[1]:07d}").first()
                if order is not None and order.status != Order.Status.CANCELLED:
                    order_cancel(order=order, reason="property test")
            assert fcfs_violations(launch_id=launch.pk) == []
            assert oversold(launch_id=launch.pk) == []
        launch_allocate(launch_id=launch.pk)
        assert fcfs_violations(launch_id=launch.pk) == []
        assert oversold(launch_id=launch.pk) == []
        assert position_gaps(launch_id=launch.pk) == []
        assert starved_pools(launch_id=launch.pk) == []
        transaction.set_rollback(True)
