"""Property: any interleaving of freed units, claims, expiries, admissions and
cancellations keeps first come first served and no oversell (units held for claim windows
counted), tells customers strictly in registration order and never twice, and lets no
claim take more units than its window held."""

import datetime

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import Customer, UpgradeRegistration
from customers.services.outbox import claim_token_make
from inventory.services import location_for_store, location_online_pool, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import ClaimWindow, Order, StockNotice
from orders.services.admission import AdmissionRefused, order_admit
from orders.services.cancellation import order_cancel
from orders.services.catalogue import catalogue_clear
from orders.services.notices import (
    ClaimProblem,
    ClaimRefused,
    claim_windows_expire,
    launch_free_units_serve,
    stock_notice_claim,
)
from orders.tests.invariants import fcfs_violations, oversold
from stores.tests.factories import StoreFactory

CUSTOMERS = 12
STORES = [None, "S001"]  # the online pool and one store

operations = st.lists(
    st.one_of(
        st.tuples(st.just("free"), st.integers(0, 1), st.integers(1, 3)),
        st.tuples(st.just("claim"), st.integers(0, 40)),
        st.tuples(st.just("rush")),  # every customer told clicks, in the order they were told
        st.tuples(st.just("expire")),
        st.tuples(st.just("admit"), st.integers(1, CUSTOMERS), st.integers(0, 1)),
        st.tuples(st.just("cancel"), st.integers(1, CUSTOMERS)),
    ),
    min_size=3,
    max_size=25,
)


def told_in_registration_order(*, launch) -> list[str]:
    """Per pool, notices by (window, rank) follow registration order, and nobody without an
    order or a notice registered before the last customer told (nobody was passed over)."""
    problems = []
    registered = {
        r.customer_id: (r.registered_at, r.pk, r.preferred_store_id)
        for r in UpgradeRegistration.objects.filter(launch=launch)
    }
    ordered = set(Order.objects.filter(launch=launch).values_list("customer_id", flat=True))
    by_pool: dict = {}
    for notice in (
        StockNotice.objects.filter(launch=launch).select_related("window").order_by("window_id", "rank")
    ):
        by_pool.setdefault((notice.window.sku_id, notice.window.pool_id), []).append(notice.customer_id)
    for pool, customers in by_pool.items():
        times = [registered[c][:2] for c in customers]
        if times != sorted(times):
            problems.append(f"pool {pool}: told out of registration order {customers}")
        store_id = (
            ClaimWindow.objects.filter(pool_id=pool[1]).values_list("pool__store_id", flat=True).first()
        )
        passed_over = [
            c
            for c, (at, pk, preferred) in registered.items()
            if preferred == store_id and c not in ordered and c not in customers and (at, pk) < times[-1]
        ]
        if passed_over:
            problems.append(f"pool {pool}: passed over {passed_over}")
    return problems


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_frees_claims_and_expiries_keep_fcfs_no_oversell_and_registration_order(ops):
    with transaction.atomic():
        catalogue_clear()
        sku = SKUFactory(code="IP3G-8GB-BLACK")
        launch = LaunchFactory(slug="notice-prop", skus=[sku])
        store = StoreFactory(code="S001")
        locations = {None: location_online_pool(), "S001": location_for_store(store=store)}
        customers = Customer.objects.bulk_create(
            [
                Customer(account_number=f"P{n:07d}", name="P", email=f"p{n}@example.com", postcode="X")
                for n in range(1, CUSTOMERS + 1)
            ]
        )
        base = timezone.now() - datetime.timedelta(days=1)
        registrations = UpgradeRegistration.objects.bulk_create(
            [
                # Every third customer wants home delivery; registration order is shuffled.
                UpgradeRegistration(
                    customer=c,
                    launch=launch,
                    preferred_sku=sku,
                    preferred_store=None if n % 3 == 0 else store,
                )
                for n, c in enumerate(customers)
            ]
        )
        for n, registration in enumerate(registrations):
            registration.registered_at = base + datetime.timedelta(seconds=(n * 7) % CUSTOMERS)
        UpgradeRegistration.objects.bulk_update(registrations, ["registered_at"])

        clock = timezone.now()
        for op in ops:
            with time_machine.travel(clock, tick=False):
                if op[0] == "free":
                    stock_receive(
                        location=locations[STORES[op[1]]], sku=sku, quantity=op[2], reference="prop"
                    )
                    launch_free_units_serve(launch_id=launch.pk)
                elif op[0] in ("claim", "rush"):
                    notices = list(
                        StockNotice.objects.filter(launch=launch).select_related("window").order_by("pk")
                    )
                    if op[0] == "claim" and notices:
                        notices = [notices[op[1] % len(notices)]]
                    for notice in notices:
                        token = claim_token_make(notice_id=notice.pk, expires_at=notice.window.closes_at)
                        before = ClaimWindow.objects.get(pk=notice.window_id)
                        try:
                            order = stock_notice_claim(token=token)
                            assert before.claimed < before.units and order.pool_id == before.pool_id
                        except ClaimRefused as refused:
                            if refused.problem is ClaimProblem.GONE:  # told honestly: all were taken
                                assert before.claimed == before.units
                elif op[0] == "expire":
                    clock += datetime.timedelta(minutes=launch.claim_window_minutes + 1)
                    with time_machine.travel(clock, tick=False):
                        claim_windows_expire()
                elif op[0] == "admit":
                    try:
                        order_admit(
                            launch=launch.slug,
                            customer=f"P{op[1]:07d}",
                            sku=sku.code,
                            fulfilment="collect" if STORES[op[2]] else "delivery",
                            store=STORES[op[2]],
                            channel=Order.Channel.ONLINE,
                        )
                    except AdmissionRefused as refused:
                        assert refused.code == "already_ordered"
                else:
                    order = Order.objects.filter(
                        launch=launch, customer__account_number=f"P{op[1]:07d}"
                    ).first()
                    if order is not None and order.status != Order.Status.CANCELLED:
                        order_cancel(order=order, reason="property test")
                        launch_free_units_serve(launch_id=launch.pk)  # what the cancellation's nudge runs
            assert fcfs_violations(launch_id=launch.pk) == []
            assert oversold(launch_id=launch.pk) == []
            assert told_in_registration_order(launch=launch) == []
            for window in ClaimWindow.objects.filter(launch=launch):
                assert window.claimed <= window.units <= window.notified
                assert (
                    StockNotice.objects.filter(window=window, order__isnull=False).count() == window.claimed
                )
        transaction.set_rollback(True)
