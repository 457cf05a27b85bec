"""Bulk orders: a result per item in input order, order_admit's rules, one INSERT, no deadlock."""

import threading

import pytest
from django.db import connection

from inventory.tests.factories import LaunchFactory
from orders.models import Order
from orders.services.admission import AdmissionRefused, OrderRequest, order_admit, references_new
from orders.services.bulk import orders_admit_bulk
from orders.tests.api_support import (
    BULK,
    ORDERS,
    assert_envelope,
    assert_nothing_written,
    order_body,
    partner_caller,
    partner_store,
)

pytestmark = pytest.mark.django_db


def test_one_result_per_item_in_input_order(launch_with_stock):
    _, sku, *_ = launch_with_stock(online_units=5, customers=6)
    caller = partner_caller()
    partner_store(partner=caller.partner, code="P001", sku=sku, units=1)
    other = partner_caller(code="other")
    partner_store(partner=other.partner, code="Q001")
    earlier = caller.client.post(ORDERS, order_body("D0000005"), format="json").json()["reference"]
    items = [
        order_body("D0000001"),  # 0 admitted
        order_body("N0000001"),  # 1 not registered
        order_body("D0000002", sku="IP3G-64GB-GOLD"),  # 2 unknown SKU
        order_body("D0000003", fulfilment="collect", store="P001"),  # 3 admitted, own store
        {"launch": "iphone-3g", "customer": 7},  # 4 shape
        order_body("D0000001"),  # 5 same customer again inside the bulk
        order_body("D0000005"),  # 6 ordered before this bulk
        order_body("D0000004", fulfilment="collect", store="Q001"),  # 7 another partner's store
        order_body("D0000006", launch="iphone-4"),  # 8 no such launch
        "D0000006",  # 9 not an object
    ]
    response = caller.client.post(BULK, {"orders": items}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["status"] for r in results] == [202, 422, 422, 202, 400, 409, 409, 403, 404, 400]
    codes = [r["error"]["code"] if "error" in r else None for r in results]
    assert codes == [
        None,
        "not_eligible",
        "unknown_sku",
        None,
        "validation_error",
        "already_ordered",
        "already_ordered",
        "permission_denied",
        "not_found",
        "invalid_json",
    ]
    assert set(results[4]["error"]["details"]) == {"customer", "postcode", "sku", "fulfilment"}
    first = results[0]["order"]
    assert results[5]["error"]["details"]["reference"] == first["reference"]
    assert results[6]["error"]["details"]["reference"] == earlier
    assert first["channel"] == "partner" and first["status"] == "queued" and first["store"] is None
    assert results[3]["order"]["store"] == "P001"
    saved = {o.reference: o for o in Order.objects.select_related("customer", "store")}
    assert saved[first["reference"]].customer.account_number == "D0000001"
    assert saved[first["reference"]].partner_id == caller.partner.pk
    assert saved[results[3]["order"]["reference"]].store.code == "P001"
    assert len(saved) == 3  # the earlier order and the two admitted ones


def test_queue_positions_follow_the_sequence_after_earlier_orders(launch_with_stock):
    launch_with_stock(online_units=0, customers=5)
    caller = partner_caller()
    caller.client.post(ORDERS, order_body("D0000001"), format="json")
    items = [order_body(f"D000000{n}") for n in (4, 2, 3)]
    results = caller.client.post(BULK, items, format="json").json()["results"]  # a bare array works too
    assert [r["order"]["queue_position"] for r in results] == [2, 3, 4]
    assert [r["order"]["customer"] for r in results] == ["D0000004", "D0000002", "D0000003"]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"launch": "no-such-launch"}, "not_found"),
        ({"customer": "N0000001"}, "not_eligible"),
        ({"customer": "D9999999"}, "not_eligible"),
        ({"sku": "IP3G-64GB-GOLD"}, "unknown_sku"),
        ({"fulfilment": "collect", "store": "S999"}, "validation_error"),
        ({"fulfilment": "collect", "store": "S001"}, "permission_denied"),  # the operator's store
    ],
)
def test_bulk_refuses_with_the_code_and_message_order_admit_gives(launch_with_stock, overrides, code):
    launch_with_stock(online_units=5)
    caller = partner_caller()
    body = order_body("D0000001", **overrides)
    with pytest.raises(AdmissionRefused) as single:
        order_admit(**body, channel=Order.Channel.PARTNER, partner_id=caller.partner.pk)
    [outcome] = orders_admit_bulk(
        requests=[OrderRequest(**body)], channel=Order.Channel.PARTNER, partner_id=caller.partner.pk
    )
    assert outcome.order is None
    assert (
        (outcome.refusal.code, outcome.refusal.message)
        == (single.value.code, single.value.message)
        == (
            outcome.refusal.code,
            single.value.message,
        )
    )
    assert outcome.refusal.code == code
    assert outcome.refusal.details == single.value.details
    assert_nothing_written()


@pytest.mark.services  # the one-statement bulk insert is PostgreSQL's; SQLite admits item by item
def test_a_thousand_orders_cost_a_handful_of_queries(launch_with_stock, django_assert_max_num_queries):
    launch_with_stock(online_units=10, customers=1000)
    caller = partner_caller()
    caller.client.get("/api/v1/launches/")  # key cached
    items = [order_body(f"D{n:07d}") for n in range(1, 1001)]
    # Launch catalogue, store, eligibility misses (one query), lock, INSERT, positions,
    # plus the test transaction's savepoints; never one per item.
    with django_assert_max_num_queries(12):
        response = caller.client.post(BULK, {"orders": items}, format="json")
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202] * 1000
    assert [r["order"]["queue_position"] for r in results] == list(range(1, 1001))
    assert Order.objects.count() == 1000
    # A retry of the whole bulk changes nothing and names every reference.
    again = caller.client.post(BULK, {"orders": items}, format="json").json()["results"]
    assert [r["error"]["details"]["reference"] for r in again] == [r["order"]["reference"] for r in results]
    assert Order.objects.count() == 1000


@pytest.mark.parametrize(
    "body",
    [{"orders": []}, [], {"orders": "D0000001"}, {"orders": {"0": {}}}, {}],
)
def test_a_bulk_without_a_list_of_orders_is_a_validation_error(launch_with_stock, body):
    launch_with_stock(online_units=1)
    caller = partner_caller()
    assert_envelope(caller.client.post(BULK, body, format="json"), 400, "validation_error")
    assert_nothing_written()


def test_launches_allowing_two_orders_go_one_by_one(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=5, customers=2)
    launch.per_customer_limit = 2
    launch.save()
    caller = partner_caller()
    items = [order_body("D0000001"), order_body("D0000001"), order_body("D0000002")]
    first = caller.client.post(BULK, items, format="json").json()["results"]
    assert [r["status"] for r in first] == [202, 409, 202]
    second = caller.client.post(BULK, items[:1], format="json").json()["results"]
    assert second[0]["status"] == 202  # the customer's second slot
    assert Order.objects.filter(customer__account_number="D0000001").count() == 2


def test_references_are_admissions_format_and_distinct():
    references = references_new(5000)
    assert len(set(references)) == 5000
    assert all(len(r) == 12 and r.startswith("LD") for r in references)
    assert set("".join(r[2:] for r in references)) == set("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_overlapping_bulks_from_threads_make_one_order_per_customer(launch_with_stock):
    """Two bulks naming the same customers in opposite orders: no deadlock, no double order."""
    launch_with_stock(online_units=50, customers=200)
    LaunchFactory(slug="other-launch")
    caller = partner_caller()
    forward = [order_body(f"D{n:07d}") for n in range(1, 201)]
    backward = list(reversed(forward))
    answers: list = [None] * 4
    barrier = threading.Barrier(4)

    def send(i: int, items) -> None:
        try:
            barrier.wait(10)
            answers[i] = orders_admit_bulk(
                requests=[OrderRequest(**item) for item in items],
                channel=Order.Channel.PARTNER,
                partner_id=caller.partner.pk,
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i, forward if i % 2 else backward)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a is not None for a in answers)
    assert Order.objects.count() == 200
    by_customer = dict(Order.objects.values_list("customer__account_number", "reference"))
    for answer, items in zip(answers, [backward, forward, backward, forward], strict=True):
        for outcome, item in zip(answer, items, strict=True):
            if outcome.order is not None:
                assert outcome.order.reference == by_customer[item["customer"]]
            else:
                assert outcome.refusal.code == "already_ordered"
                assert outcome.refusal.details["reference"] == by_customer[item["customer"]]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_bulk_the_database_cannot_take_is_a_503_with_retry_after_not_a_500(launch_with_stock):
    """The orders table held by another session past this one's lock timeout: a real
    database error, which a partner must see as a polite, retryable refusal."""
    launch_with_stock(online_units=5, customers=3)
    caller = partner_caller()
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's lock timeout")
    locked, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:
        from django.db import connections, transaction

        try:
            with transaction.atomic():
                connections["default"].cursor().execute(
                    f"LOCK TABLE {Order._meta.db_table} IN ACCESS EXCLUSIVE MODE"
                )
                locked.set()
                release.wait(30)
        finally:
            connections["default"].close()

    holder = threading.Thread(target=hold_the_table)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        response = caller.client.post(
            BULK, {"orders": [order_body("D0000001"), order_body("D0000002")]}, format="json"
        )
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    finally:
        release.set()
        holder.join(30)
    error = assert_envelope(response, 503, "overloaded")
    assert error["details"] == {"reason": "database_unavailable"}
    assert int(response["Retry-After"]) >= 1
    assert not Order.objects.exists()
