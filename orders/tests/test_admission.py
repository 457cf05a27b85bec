import datetime

import pytest
from django.utils import timezone

from customers.models import UpgradeRegistration
from orders.models import Order
from orders.selectors.positions import order_queue_position
from orders.services.admission import AdmissionRefused, order_admit
from orders.services.allocation import launch_allocate

pytestmark = pytest.mark.django_db


def admit(account: str, **overrides):
    kwargs = {
        "launch": "iphone-3g",
        "customer": account,
        "sku": "IP3G-8GB-BLACK",
        "fulfilment": "delivery",
        "channel": Order.Channel.ONLINE,
    }
    kwargs.update(overrides)
    return order_admit(**kwargs)


def test_admitted_order_is_allocated_when_the_pool_has_units(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=1, customers=2)
    first = admit("D0000001").order
    second = admit("D0000002").order
    assert order_queue_position(order=second).position == 2  # both still queued
    launch_allocate(launch_id=launch.pk)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Order.Status.ALLOCATED
    assert second.status == Order.Status.WAITLISTED
    assert order_queue_position(order=first).position is None
    assert order_queue_position(order=second).position == 1


def test_second_order_of_a_customer_is_already_ordered_with_the_first_reference(launch_with_stock):
    launch_with_stock(online_units=5)
    first = admit("D0000001").order
    with pytest.raises(AdmissionRefused) as refused:
        admit("D0000001", sku="IP3G-8GB-BLACK")
    assert refused.value.code == "already_ordered"
    assert refused.value.details["reference"] == first.reference
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"launch": "no-such-launch"}, "not_found"),
        ({"customer": "N0000001"}, "not_eligible"),
        ({"customer": "D9999999"}, "not_eligible"),
        ({"sku": "IP3G-64GB-GOLD"}, "unknown_sku"),
        ({"fulfilment": "collect"}, "validation_error"),
        ({"fulfilment": "collect", "store": "S999"}, "validation_error"),
        ({"fulfilment": "teleport"}, "validation_error"),
    ],
)
def test_refusals_name_their_code_and_write_nothing(launch_with_stock, overrides, code):
    launch_with_stock(online_units=5)
    with pytest.raises(AdmissionRefused) as refused:
        admit("D0000001", **overrides)
    assert refused.value.code == code
    assert Order.objects.count() == 0


def test_orders_outside_the_window_are_refused(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5)
    with pytest.raises(AdmissionRefused) as refused:
        admit("D0000001", now=launch.closes_at + datetime.timedelta(seconds=1))
    assert refused.value.code == "launch_not_open"
    with pytest.raises(AdmissionRefused):
        admit("D0000001", now=launch.opens_at - datetime.timedelta(seconds=1))
    assert Order.objects.count() == 0


def test_collect_order_is_served_from_its_store(launch_with_stock):
    launch, sku, store, _ = launch_with_stock(store_units=1)
    order = admit("D0000001", fulfilment="collect", store="S001").order
    launch_allocate(launch_id=launch.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.ALLOCATED
    assert order.pool.store == store
    assert order.collect_by > timezone.now()


def test_replay_with_same_key_returns_the_original_and_a_different_body_conflicts(launch_with_stock):
    launch_with_stock(online_units=5)
    first = admit("D0000001", idempotency_key="k-1", idempotency_scope="partner:1")
    again = admit("D0000001", idempotency_key="k-1", idempotency_scope="partner:1")
    assert again.replayed and again.order.reference == first.order.reference
    with pytest.raises(AdmissionRefused) as refused:
        admit("D0000002", idempotency_key="k-1", idempotency_scope="partner:1")
    assert refused.value.code == "idempotency_conflict"
    assert Order.objects.count() == 1


def test_selling_out_online_starts_the_apology_when_head_office_asked_for_it(launch_with_stock):
    from customers.models import Campaign, Message

    launch, *_ = launch_with_stock(online_units=1, customers=3)
    launch.auto_apology = True
    launch.save()
    for account in ("D0000001", "D0000002", "D0000003"):
        admit(account)
    launch_allocate(launch_id=launch.pk)
    assert Campaign.objects.filter(launch=launch, audience=Campaign.Audience.WAITLISTED).exists()
    apologies = Message.objects.filter(launch=launch, kind=Message.Kind.APOLOGY)
    assert sorted(apologies.values_list("customer__account_number", flat=True)) == ["D0000002", "D0000003"]
    launch_allocate(launch_id=launch.pk)  # a later run adds nobody twice
    assert apologies.count() == 2


def test_selling_out_sends_no_apology_unless_switched_on(launch_with_stock):
    from customers.models import Message

    launch, *_ = launch_with_stock(online_units=1, customers=2)
    admit("D0000001")
    admit("D0000002")
    launch_allocate(launch_id=launch.pk)
    assert not Message.objects.filter(kind=Message.Kind.APOLOGY).exists()


def test_position_read_with_the_insert_matches_the_position_read_later(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=1, customers=4)
    admit("D0000001")
    admit("D0000002")
    launch_allocate(launch_id=launch.pk)  # one allocated, one waitlisted (#1)
    third = admit("D0000003")
    fourth = admit("D0000004", fulfilment="collect", store="S001")
    assert third.position == order_queue_position(order=third.order).position == 2
    assert fourth.position == order_queue_position(order=fourth.order).position == 1


@pytest.mark.parametrize(
    ("field", "changed"),
    [
        ("customer", {"customer": "D0000002"}),
        ("sku", {"sku": "IP3G-16GB-WHITE"}),
        ("fulfilment", {"fulfilment": "collect", "store": "S001"}),
        ("store", {"fulfilment": "collect", "store": "S002"}),
        ("launch", {"launch": "iphone-3g-second"}),
    ],
)
def test_idempotency_key_reused_with_any_one_field_changed_is_a_conflict(launch_with_stock, field, changed):
    """Each field of the request is part of its fingerprint: changing any one of them under
    the same key is a conflict, never a replay of the first order nor a second order."""
    from inventory.tests.factories import LaunchFactory, SKUFactory
    from stores.tests.factories import StoreFactory

    launch, sku, _, people = launch_with_stock(online_units=5, store_units=5)
    white = SKUFactory(code="IP3G-16GB-WHITE")
    launch.skus.add(white)
    StoreFactory(code="S002")
    second = LaunchFactory(slug="iphone-3g-second", skus=[sku, white])
    UpgradeRegistration.objects.create(customer=people[0], launch=second, preferred_sku=sku)
    base = {"fulfilment": "collect", "store": "S001"} if field == "store" else {}
    first = admit("D0000001", idempotency_key="k-1", idempotency_scope="partner:1", **base)
    with pytest.raises(AdmissionRefused) as refused:
        admit("D0000001", idempotency_key="k-1", idempotency_scope="partner:1", **{**base, **changed})
    assert refused.value.code == "idempotency_conflict", field
    assert refused.value.details["reference"] == first.order.reference
    assert Order.objects.count() == 1


def test_replay_after_the_window_closed_returns_the_original_order(launch_with_stock):
    """A client retrying an acknowledged order after the window closed must hear about its
    order, not that the launch is not open."""
    launch, *_ = launch_with_stock(online_units=5)
    first = admit("D0000001", idempotency_key="k-late", idempotency_scope="partner:1")
    late = launch.closes_at + datetime.timedelta(minutes=5)
    again = admit("D0000001", idempotency_key="k-late", idempotency_scope="partner:1", now=late)
    assert again.replayed
    assert again.order.reference == first.order.reference
    assert Order.objects.count() == 1
