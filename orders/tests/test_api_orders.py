"""The partner API's orders, launches and stores: shapes of API.md, isolation, query counts."""

import datetime

import pytest
from django.utils import timezone

from customers.services.registration import eligibility_cache_warm
from orders.models import Order
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate
from orders.tests.api_support import (
    ORDERS,
    assert_envelope,
    order_body,
    partner_caller,
    partner_store,
)
from stores.models import Store

pytestmark = pytest.mark.django_db

ORDER_FIELDS = {
    "reference",
    "launch",
    "customer",
    "sku",
    "fulfilment",
    "store",
    "channel",
    "status",
    "queue_position",
    "created_at",
}


def test_post_order_answers_202_with_an_order_of_api_md_shape(launch_with_stock):
    launch_with_stock(online_units=5)
    caller = partner_caller()
    response = caller.client.post(ORDERS, order_body(), format="json")
    assert response.status_code == 202, response.content
    data = response.json()
    assert set(data) == ORDER_FIELDS
    assert data["reference"].startswith("LD") and len(data["reference"]) == 12
    assert data["launch"] == "iphone-3g"
    assert data["customer"] == "D0000001"
    assert data["sku"] == "IP3G-8GB-BLACK"
    assert data["fulfilment"] == "delivery"
    assert data["store"] is None
    assert data["channel"] == "partner"
    assert data["status"] == "queued"
    assert data["queue_position"] == 1
    assert datetime.datetime.fromisoformat(data["created_at"])
    order = Order.objects.get()
    assert order.reference == data["reference"]
    assert order.partner_id == caller.partner.pk
    assert order.channel == Order.Channel.PARTNER


def test_queue_position_counts_the_orders_ahead_and_is_null_once_allocated(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=1, customers=3)
    caller = partner_caller()
    positions = [
        caller.client.post(ORDERS, order_body(f"D000000{n}"), format="json").json()["queue_position"]
        for n in (1, 2, 3)
    ]
    assert positions == [1, 2, 3]
    launch_allocate(launch_id=launch.pk)
    first, second = (
        Order.objects.get(customer__account_number=a).reference for a in ("D0000001", "D0000002")
    )
    served = caller.client.get(f"{ORDERS}{first}").json()
    assert served["status"] == "allocated" and served["queue_position"] is None
    waiting = caller.client.get(f"{ORDERS}{second}").json()
    assert waiting["status"] == "waitlisted" and waiting["queue_position"] == 1


def test_collect_order_at_the_partners_own_store(launch_with_stock):
    _, sku, *_ = launch_with_stock(online_units=0)
    caller = partner_caller()
    partner_store(partner=caller.partner, code="P001", sku=sku, units=2)
    response = caller.client.post(ORDERS, order_body(fulfilment="collect", store="P001"), format="json")
    assert response.status_code == 202, response.content
    assert response.json()["store"] == "P001"
    assert Order.objects.get().store.code == "P001"


def test_single_order_path_costs_the_insert_and_the_position_query_only(
    launch_with_stock, django_assert_max_num_queries
):
    """Key lookup, launch catalogue and eligibility are cached; what is left is the write."""
    launch, *_ = launch_with_stock(online_units=5)
    eligibility_cache_warm(launch=launch)
    caller = partner_caller()
    assert (
        caller.client.post(ORDERS, order_body("D0000001"), format="json").status_code == 202
    )  # warms caches
    # Admission lock + INSERT + queue position (SQLite takes no advisory lock). The test
    # runs inside a transaction, so the service's atomic() adds SAVEPOINT and RELEASE,
    # which autocommit production replaces with BEGIN/COMMIT.
    with django_assert_max_num_queries(5) as captured:
        response = caller.client.post(ORDERS, order_body("D0000002"), format="json")
    assert response.status_code == 202
    assert len(_statements(captured)) <= 3
    # With an Idempotency-Key, one lookup more: is this a replay?
    with django_assert_max_num_queries(6) as captured:
        response = caller.client.post(
            ORDERS, order_body("D0000003"), format="json", HTTP_IDEMPOTENCY_KEY="key-3"
        )
    assert response.status_code == 202
    assert len(_statements(captured)) <= 4


def _statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_replay_with_the_same_key_returns_202_and_the_same_reference(launch_with_stock):
    launch_with_stock(online_units=5)
    caller = partner_caller()
    first = caller.client.post(ORDERS, order_body(), format="json", HTTP_IDEMPOTENCY_KEY="retry-me")
    again = caller.client.post(ORDERS, order_body(), format="json", HTTP_IDEMPOTENCY_KEY="retry-me")
    assert first.status_code == again.status_code == 202
    assert first.json()["reference"] == again.json()["reference"]
    assert set(again.json()) == ORDER_FIELDS
    assert Order.objects.count() == 1


def test_the_same_key_from_another_partner_is_another_key(launch_with_stock):
    launch_with_stock(online_units=5)
    ours, theirs = partner_caller(code="cpw"), partner_caller(code="other")
    assert (
        ours.client.post(ORDERS, order_body("D0000001"), format="json", HTTP_IDEMPOTENCY_KEY="k").status_code
        == 202
    )
    answer = theirs.client.post(ORDERS, order_body("D0000002"), format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert answer.status_code == 202
    assert Order.objects.count() == 2


def test_get_order_of_another_partner_is_not_found(launch_with_stock):
    launch_with_stock(online_units=5)
    ours, theirs = partner_caller(code="cpw"), partner_caller(code="other")
    reference = ours.client.post(ORDERS, order_body(), format="json").json()["reference"]
    assert ours.client.get(f"{ORDERS}{reference}").status_code == 200
    assert_envelope(theirs.client.get(f"{ORDERS}{reference}"), 404, "not_found")
    online = order_admit(
        launch="iphone-3g", customer="D0000002", sku="IP3G-8GB-BLACK", fulfilment="delivery", channel="online"
    ).order
    assert_envelope(ours.client.get(f"{ORDERS}{online.reference}"), 404, "not_found")


def test_list_is_this_partners_orders_filtered_and_cursor_paginated(launch_with_stock, settings):
    launch, *_ = launch_with_stock(online_units=2, customers=7)
    ours, theirs = partner_caller(code="cpw"), partner_caller(code="other")
    mine = [
        ours.client.post(ORDERS, order_body(f"D000000{n}"), format="json").json()["reference"]
        for n in range(1, 6)
    ]
    theirs.client.post(ORDERS, order_body("D0000006"), format="json")
    launch_allocate(launch_id=launch.pk)

    page = ours.client.get(ORDERS, {"page_size": 2}).json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 5 and page["previous"] is None
    seen = [o["reference"] for o in page["results"]]
    while page["next"]:
        page = ours.client.get(page["next"]).json()
        seen += [o["reference"] for o in page["results"]]
    assert seen == mine  # every order once, in sequence order, none of the other partner's

    waitlisted = ours.client.get(ORDERS, {"launch": "iphone-3g", "status": "waitlisted"}).json()
    assert waitlisted["count"] == 3
    assert [o["queue_position"] for o in waitlisted["results"]] == [1, 2, 3]
    assert ours.client.get(ORDERS, {"launch": "no-such-launch"}).json()["count"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"status": "lost"},
        {"cursor": "////"},
        {"cursor": "cD1hYmM="},
        {"cursor": "cD05OTk5OTk5OTk5OTk5OTk5OTk5OTk5"},
        {"cursor": "\x00"},
        {"page_size": "0"},
        {"page_size": "501"},
        {"page_size": "abc"},
    ],
)
def test_bad_list_parameters_are_validation_errors(launch_with_stock, params):
    launch_with_stock(online_units=1)
    caller = partner_caller()
    assert_envelope(caller.client.get(ORDERS, params), 400, "validation_error")


def test_launches_and_availability(launch_with_stock):
    launch, sku, *_ = launch_with_stock(online_units=3, customers=5)
    caller = partner_caller()
    launches = caller.client.get("/api/v1/launches/").json()
    assert launches["results"] == [
        {
            "slug": "iphone-3g",
            "name": launch.name,
            "opens_at": launch.opens_at.isoformat(),
            "closes_at": launch.closes_at.isoformat(),
            "is_open": True,
        }
    ]
    for n in range(1, 6):
        caller.client.post(ORDERS, order_body(f"D000000{n}"), format="json")
    queued = caller.client.get("/api/v1/launches/iphone-3g/availability").json()
    assert queued == {
        "launch": "iphone-3g",
        "skus": [{"sku": sku.code, "name": sku.name, "online_available": 3, "waiting": 5}],
    }
    launch_allocate(launch_id=launch.pk)
    after = caller.client.get("/api/v1/launches/iphone-3g/availability").json()["skus"][0]
    assert (after["online_available"], after["waiting"]) == (0, 2)
    assert_envelope(caller.client.get("/api/v1/launches/nope/availability"), 404, "not_found")


def test_stores_are_the_partners_own_with_their_stock(launch_with_stock):
    _, sku, *_ = launch_with_stock()  # also makes the operator's own store S001
    ours, theirs = partner_caller(code="cpw"), partner_caller(code="other")
    partner_store(partner=ours.partner, code="P002", sku=sku, units=4)
    partner_store(partner=ours.partner, code="P001")
    partner_store(partner=theirs.partner, code="Q001", sku=sku, units=1)
    stores = ours.client.get("/api/v1/stores/").json()["results"]
    assert [s["code"] for s in stores] == ["P001", "P002"]
    assert set(stores[0]) == {"code", "name", "opens_at_launch"}
    assert stores[0]["opens_at_launch"] == "08:02:00"
    stock = ours.client.get("/api/v1/stores/P002/stock").json()
    assert stock == {
        "store": "P002",
        "stock": [{"sku": sku.code, "on_hand": 4, "reserved": 0, "available": 4}],
    }
    assert_envelope(ours.client.get("/api/v1/stores/Q001/stock"), 404, "not_found")
    assert_envelope(ours.client.get("/api/v1/stores/S001/stock"), 404, "not_found")
    assert_envelope(ours.client.get("/api/v1/stores/NOPE/stock"), 404, "not_found")
    # A closed store leaves the list, and its stock with it.
    Store.objects.filter(code="P002").update(is_active=False)
    assert [s["code"] for s in ours.client.get("/api/v1/stores/").json()["results"]] == ["P001"]
    assert_envelope(ours.client.get("/api/v1/stores/P002/stock"), 404, "not_found")


def test_paths_without_or_with_an_extra_slash_reach_the_same_view(launch_with_stock):
    launch_with_stock(online_units=1)
    caller = partner_caller()
    assert caller.client.post("/api/v1/orders", order_body(), format="json").status_code == 202
    assert caller.client.get("/api/v1/launches").status_code == 200
    assert caller.client.get("/api/v1/launches/iphone-3g/availability/").status_code == 200


def test_an_order_in_a_fair_starts_opening_draw_is_told_no_place_yet(launch_with_stock):
    """docs/partner-api.md: queue_position is null while the order is queued in the opening
    draw, in the 202 (single and bulk) and when read back; a number once the allocator ran."""
    launch, *_ = launch_with_stock(online_units=1, customers=3)
    launch.opens_at = timezone.now() - datetime.timedelta(seconds=2)
    launch.fair_start_seconds = 30
    launch.save(update_fields=["opens_at", "fair_start_seconds"])
    caller = partner_caller()

    single = caller.client.post(ORDERS, order_body("D0000001"), format="json")
    bulk = caller.client.post(
        "/api/v1/orders/bulk", {"orders": [order_body("D0000002"), order_body("D0000003")]}, format="json"
    )

    assert single.status_code == 202, single.content
    assert (single.json()["status"], single.json()["queue_position"]) == ("queued", None)
    assert bulk.status_code == 200, bulk.content
    assert [r["order"]["queue_position"] for r in bulk.json()["results"]] == [None, None]
    reference = single.json()["reference"]
    assert caller.client.get(f"{ORDERS}{reference}").json()["queue_position"] is None
    # The draw closed: the allocator serves it in draw order; one unit, two wait with a place.
    launch.opens_at = timezone.now() - datetime.timedelta(seconds=60)
    launch.save(update_fields=["opens_at"])
    launch_allocate(launch_id=launch.pk)
    places = sorted(
        caller.client.get(f"{ORDERS}{o.reference}").json()["queue_position"] or 0
        for o in Order.objects.filter(launch=launch)
    )
    assert places == [0, 1, 2]
